//! The built-in functions (§3.5 and the TCK's casting functions), over arguments already
//! evaluated. Each returns its value and, when it refused its arguments, the error the
//! specification names; an argument that does not cast to its parameter type is a cast error
//! and counts as that type's zero value.

use std::borrow::Cow;

use super::ast::Function;
use super::types::{Fault, Val};

/// Collects the first error raised while calling one function.
struct Call<'a> {
    fault: Option<Fault<'a>>,
}

impl<'a> Call<'a> {
    fn raise(&mut self, fault: Fault<'a>) {
        self.fault.get_or_insert(fault);
    }

    fn int(&mut self, value: Val<'a>) -> i32 {
        value.into_int().unwrap_or_else(|f| {
            self.raise(f);
            0
        })
    }
}

/// Calls `function` with `args` (as many as it takes: the parser resolved the arity).
pub(crate) fn call<'a>(function: Function, args: Vec<Val<'a>>) -> (Val<'a>, Option<Fault<'a>>) {
    let mut cx = Call { fault: None };
    let value = match function {
        Function::Concat => Val::Str(Cow::Owned(join("", args))),
        Function::ConcatWs => {
            let mut args = args.into_iter();
            let delimiter = args.next().map(Val::into_str).unwrap_or_default();
            Val::Str(Cow::Owned(join(&delimiter, args)))
        }
        _ => {
            let mut args = args.into_iter();
            let mut next = || args.next().unwrap_or(Val::Bool(false));
            fixed(&mut cx, function, &mut next)
        }
    };
    (value, cx.fault)
}

fn join<'a>(delimiter: &str, args: impl IntoIterator<Item = Val<'a>>) -> String {
    let mut out = String::new();
    for (i, arg) in args.into_iter().enumerate() {
        if i > 0 {
            out.push_str(delimiter);
        }
        out.push_str(&arg.into_str());
    }
    out
}

fn fixed<'a>(cx: &mut Call<'a>, function: Function, next: &mut impl FnMut() -> Val<'a>) -> Val<'a> {
    match function {
        Function::Length => Val::Int(saturating_len(next().into_str().chars().count())),
        Function::Lower => Val::Str(Cow::Owned(next().into_str().to_lowercase())),
        Function::Upper => Val::Str(Cow::Owned(next().into_str().to_uppercase())),
        Function::Trim => match next().into_str() {
            Cow::Borrowed(s) => Val::Str(Cow::Borrowed(s.trim())),
            Cow::Owned(s) => Val::Str(Cow::Owned(s.trim().to_owned())),
        },
        Function::Left | Function::Right => {
            let text = next().into_str();
            let n = cx.int(next());
            Val::Str(left_right(cx, function, text, n))
        }
        Function::Substring | Function::SubstringLength => {
            let text = next().into_str();
            let pos = cx.int(next());
            let len = (function == Function::SubstringLength).then(|| cx.int(next()));
            Val::Str(Cow::Owned(substring(cx, &text, pos, len)))
        }
        Function::Abs => {
            let x = cx.int(next());
            Val::Int(x.checked_abs().unwrap_or_else(|| {
                cx.raise(Fault::Overflow("ABS"));
                i32::MAX
            }))
        }
        Function::Int => Val::Int(cx.int(next())),
        Function::Bool => Val::Bool(next().into_bool(true).unwrap_or_else(|f| {
            cx.raise(f);
            false
        })),
        Function::String => Val::Str(next().into_str()),
        Function::IsInt => Val::Bool(Val::Str(next().into_str()).into_int().is_ok()),
        Function::IsBool => Val::Bool(Val::Str(next().into_str()).into_bool(false).is_ok()),
        Function::Concat | Function::ConcatWs => unreachable!("variadic functions join"),
    }
}

fn saturating_len(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The byte offset of character `n` of `text` (its length when `n` is past the end).
fn char_offset(text: &str, n: usize) -> usize {
    text.char_indices().nth(n).map_or(text.len(), |(i, _)| i)
}

/// `LEFT(x, n)` and `RIGHT(x, n)`: the first or last `n` characters, `x` itself with an error
/// for a negative `n`.
fn left_right<'a>(
    cx: &mut Call<'a>,
    function: Function,
    text: Cow<'a, str>,
    n: i32,
) -> Cow<'a, str> {
    let Ok(n) = usize::try_from(n) else {
        cx.raise(Fault::Function(
            function.name(),
            "the length must not be negative",
        ));
        return text;
    };
    let total = text.chars().count();
    if n >= total {
        return text;
    }
    let range = if function == Function::Left {
        0..char_offset(&text, n)
    } else {
        char_offset(&text, total - n)..text.len()
    };
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(&s[range]),
        Cow::Owned(s) => Cow::Owned(s[range].to_owned()),
    }
}

/// `SUBSTRING(x, pos[, len])`: from the 1-based `pos` (counted from the end when negative) to
/// the end or for `len` characters.
fn substring<'a>(cx: &mut Call<'a>, text: &str, pos: i32, len: Option<i32>) -> String {
    let total = i64::try_from(text.chars().count()).unwrap_or(i64::MAX);
    let pos = i64::from(pos);
    if pos > total || pos < -total {
        cx.raise(Fault::Function(
            "SUBSTRING",
            "the position is outside the string",
        ));
        return String::new();
    }
    if len.is_some_and(|len| len < 0) {
        cx.raise(Fault::Function(
            "SUBSTRING",
            "the length must not be negative",
        ));
        return String::new();
    }
    if pos == 0 {
        return String::new();
    }
    let start = if pos > 0 { pos - 1 } else { total + pos };
    let end = len.map_or(total, |len| (start + i64::from(len)).min(total));
    let (start, end) = (to_usize(start), to_usize(end));
    text[char_offset(text, start)..char_offset(text, end)].to_owned()
}

fn to_usize(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Val<'_> {
        Val::Str(Cow::Borrowed(text))
    }

    #[test]
    fn substring_counts_characters() {
        let mut cx = Call { fault: None };
        assert_eq!(substring(&mut cx, "héllo", 2, Some(3)), "éll");
        assert_eq!(substring(&mut cx, "héllo", -4, None), "éllo");
        assert_eq!(substring(&mut cx, "héllo", 5, Some(100)), "o");
        assert!(cx.fault.is_none());
        assert_eq!(substring(&mut cx, "", 1, None), "");
        assert!(cx.fault.is_some());
    }

    #[test]
    fn left_and_right_borrow_when_they_can() {
        let (value, fault) = call(Function::Left, vec![s("héllo"), Val::Int(2)]);
        assert_eq!(value, s("hé"));
        assert!(matches!(value, Val::Str(Cow::Borrowed(_))));
        assert!(fault.is_none());
        let (value, _) = call(Function::Right, vec![s("héllo"), Val::Int(4)]);
        assert_eq!(value, s("éllo"));
    }

    #[test]
    fn integer_parameters_cast_or_fail() {
        let (value, fault) = call(Function::Left, vec![s("abc"), s("x")]);
        assert_eq!(value, s(""));
        assert_eq!(fault.map(|f| f.kind()), Some(super::super::ErrorKind::Cast));
        let (value, fault) = call(Function::Abs, vec![s("-3")]);
        assert_eq!((value, fault), (Val::Int(3), None));
    }
}
