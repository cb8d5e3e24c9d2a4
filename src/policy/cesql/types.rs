//! Values during evaluation, the casts between the three types (§3.7) and the errors raised,
//! kept unformatted until someone asks for the detail text.

use std::borrow::Cow;

use super::{ErrorKind, EvalError, Value};

/// A CESQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    Integer,
    String,
    Boolean,
}

impl Type {
    /// The type's zero value (§3.1).
    pub(crate) fn zero(self) -> Val<'static> {
        match self {
            Self::Integer => Val::Int(0),
            Self::String => Val::Str(Cow::Borrowed("")),
            Self::Boolean => Val::Bool(false),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Integer => "Integer",
            Self::String => "String",
            Self::Boolean => "Boolean",
        }
    }
}

/// A value during evaluation; strings borrow from the expression or the event when they can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Val<'a> {
    Int(i32),
    Bool(bool),
    Str(Cow<'a, str>),
}

impl<'a> Val<'a> {
    /// The value's type.
    pub(crate) fn ty(&self) -> Type {
        match self {
            Self::Int(_) => Type::Integer,
            Self::Bool(_) => Type::Boolean,
            Self::Str(_) => Type::String,
        }
    }

    /// The public, owned value.
    pub(crate) fn into_value(self) -> Value {
        match self {
            Self::Int(i) => Value::Integer(i),
            Self::Bool(b) => Value::Boolean(b),
            Self::Str(s) => Value::String(s.into_owned()),
        }
    }

    /// Cast to Integer: booleans are 1 or 0; strings are base-10 32-bit integers with an
    /// optional sign, anything else is a cast error giving 0.
    pub(crate) fn into_int(self) -> Result<i32, Fault<'a>> {
        match self {
            Self::Int(i) => Ok(i),
            Self::Bool(b) => Ok(i32::from(b)),
            Self::Str(s) => s
                .parse()
                .map_err(|_| Fault::Cast(Self::Str(s), Type::Integer)),
        }
    }

    /// Cast to Boolean: strings `true` and `false` in any case; integers only through the
    /// explicit `BOOL` (`explicit`), since the TCK makes the implicit cast an error.
    pub(crate) fn into_bool(self, explicit: bool) -> Result<bool, Fault<'a>> {
        match self {
            Self::Bool(b) => Ok(b),
            Self::Int(i) if explicit => Ok(i != 0),
            Self::Str(ref s) if s.eq_ignore_ascii_case("true") => Ok(true),
            Self::Str(ref s) if s.eq_ignore_ascii_case("false") => Ok(false),
            other => Err(Fault::Cast(other, Type::Boolean)),
        }
    }

    /// Cast to String, which never fails.
    pub(crate) fn into_str(self) -> Cow<'a, str> {
        match self {
            Self::Str(s) => s,
            Self::Int(i) => Cow::Owned(i.to_string()),
            Self::Bool(true) => Cow::Borrowed("true"),
            Self::Bool(false) => Cow::Borrowed("false"),
        }
    }

    /// Implicit cast to `ty`; a failed cast yields the type's zero value and the error.
    pub(crate) fn cast(self, ty: Type) -> Result<Val<'a>, (Val<'a>, Fault<'a>)> {
        match ty {
            Type::String => Ok(Val::Str(self.into_str())),
            Type::Integer => self.into_int().map(Val::Int).map_err(|f| (Val::Int(0), f)),
            Type::Boolean => self
                .into_bool(false)
                .map(Val::Bool)
                .map_err(|f| (Val::Bool(false), f)),
        }
    }
}

/// An evaluation error, formatted only when the caller wants its detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault<'a> {
    MissingAttribute(&'a str),
    MissingFunction(&'a str, usize),
    DivisionByZero(&'static str),
    Overflow(&'static str),
    Cast(Val<'a>, Type),
    Function(&'static str, &'static str),
}

impl Fault<'_> {
    /// The error type.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            Self::MissingAttribute(_) => ErrorKind::MissingAttribute,
            Self::MissingFunction(..) => ErrorKind::MissingFunction,
            Self::DivisionByZero(_) | Self::Overflow(_) => ErrorKind::Math,
            Self::Cast(..) => ErrorKind::Cast,
            Self::Function(..) => ErrorKind::FunctionEvaluation,
        }
    }

    /// The public error with its detail text.
    pub(crate) fn into_error(self) -> EvalError {
        let detail = match &self {
            Self::MissingAttribute(name) => format!("the event has no attribute `{name}`"),
            Self::MissingFunction(name, arity) => {
                format!("no function {name} taking {arity} argument(s)")
            }
            Self::DivisionByZero(op) => format!("`{op}` by zero"),
            Self::Overflow(op) => format!("`{op}` overflows a 32-bit integer"),
            Self::Cast(Val::Str(s), to) => format!("cannot cast the string {s:?} to {}", to.name()),
            Self::Cast(from, to) => {
                let text = from.clone().into_str();
                format!(
                    "cannot cast the {} {text} to {}",
                    from.ty().name(),
                    to.name()
                )
            }
            Self::Function(name, why) => format!("{name}: {why}"),
        };
        EvalError {
            kind: self.kind(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Val<'_> {
        Val::Str(Cow::Borrowed(text))
    }

    #[test]
    fn casts_to_integer() {
        let cases: &[(Val, Option<i32>)] = &[
            (Val::Int(7), Some(7)),
            (Val::Bool(true), Some(1)),
            (Val::Bool(false), Some(0)),
            (s("42"), Some(42)),
            (s("+42"), Some(42)),
            (s("-42"), Some(-42)),
            (s("007"), Some(7)),
            (s("2147483647"), Some(i32::MAX)),
            (s("-2147483648"), Some(i32::MIN)),
            (s("2147483648"), None),
            (s(""), None),
            (s(" 1"), None),
            (s("1.0"), None),
            (s("abc"), None),
        ];
        for (value, expected) in cases {
            assert_eq!(value.clone().into_int().ok(), *expected, "{value:?}");
        }
    }

    #[test]
    fn casts_to_boolean() {
        let cases: &[(Val, bool, Option<bool>)] = &[
            (Val::Bool(true), false, Some(true)),
            (s("true"), false, Some(true)),
            (s("TRUE"), false, Some(true)),
            (s("False"), false, Some(false)),
            (s("yes"), false, None),
            (s("1"), false, None),
            (Val::Int(1), false, None),
            (Val::Int(1), true, Some(true)),
            (Val::Int(0), true, Some(false)),
            (Val::Int(-50), true, Some(true)),
        ];
        for (value, explicit, expected) in cases {
            assert_eq!(
                value.clone().into_bool(*explicit).ok(),
                *expected,
                "{value:?}"
            );
        }
    }

    #[test]
    fn casts_to_string() {
        assert_eq!(Val::Int(-12).into_str(), "-12");
        assert_eq!(Val::Bool(true).into_str(), "true");
        assert_eq!(Val::Bool(false).into_str(), "false");
        assert_eq!(s("x").into_str(), "x");
    }

    #[test]
    fn failed_implicit_casts_give_the_zero_value() {
        assert_eq!(s("x").cast(Type::Integer).unwrap_err().0, Val::Int(0));
        assert_eq!(s("x").cast(Type::Boolean).unwrap_err().0, Val::Bool(false));
        assert_eq!(
            Val::Int(3).cast(Type::Boolean).unwrap_err().0,
            Val::Bool(false)
        );
        assert_eq!(Val::Int(3).cast(Type::String), Ok(s("3")));
    }

    #[test]
    fn fault_details_name_the_problem() {
        let e = Fault::Cast(s("abc"), Type::Integer).into_error();
        assert_eq!(e.kind, ErrorKind::Cast);
        assert_eq!(e.detail, "cannot cast the string \"abc\" to Integer");
        let e = Fault::Cast(Val::Int(10), Type::Boolean).into_error();
        assert_eq!(e.detail, "cannot cast the Integer 10 to Boolean");
        let e = Fault::MissingAttribute("myext").into_error();
        assert_eq!(e.kind, ErrorKind::MissingAttribute);
        assert!(e.detail.contains("`myext`"));
    }
}
