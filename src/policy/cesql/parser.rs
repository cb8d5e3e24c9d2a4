//! The CESQL grammar (§2), parsed with `winnow` into [`Node`]s by precedence climbing.
//!
//! Binding powers, loosest first (§3.6): `AND` `OR` `XOR`; comparisons; `+` `-`; `*` `/` `%`;
//! `IN`; `LIKE`; the prefix `NOT` and `-`. Equal powers group left to right. `EXISTS`, function
//! calls, literals, attributes and parentheses are operands. A sign directly before digits in
//! operand position is part of the integer literal, so `-2147483648` is a valid literal.

use winnow::combinator::{opt, peek};
use winnow::error::{ContextError, ErrMode, StrContext, StrContextValue};
use winnow::prelude::*;
use winnow::stream::Stream;
use winnow::token::{any, take_while};

use super::ast::{BinaryOp, Function, Node};
use super::like::Pattern;
use super::ParseError;
use crate::policy::attribute::Attribute;

/// The deepest nesting of parentheses, prefix operators, function arguments and right-hand
/// operands an expression may have, so parsing stays well within a thread's stack.
pub(crate) const MAX_NESTING: usize = 64;

/// The deepest tree an expression may parse to (a chain of `AND`s is one level per clause), so
/// evaluating and dropping it stays well within a thread's stack.
pub(crate) const MAX_DEPTH: usize = 256;

const PREFIX: u8 = 13;

type Input<'i> = &'i str;
type Parsed = (Node, usize);

/// Parses `text` into an expression tree.
pub(crate) fn parse(text: &str) -> Result<Node, ParseError> {
    let mut whole = |i: &mut Input<'_>| -> ModalResult<Node> {
        let (node, _) = expression(i, 0, 0)?;
        ws(i)?;
        Ok(node)
    };
    whole
        .parse(text)
        .map_err(|e: winnow::error::ParseError<_, ContextError>| {
            let offset = e.offset();
            let expected: Vec<String> = e
                .inner()
                .context()
                .filter_map(|c| match c {
                    StrContext::Expected(value) => Some(value.to_string()),
                    _ => None,
                })
                .collect();
            let expected = if expected.is_empty() {
                "an operator or the end of the expression".to_owned()
            } else {
                expected.join(" or ")
            };
            ParseError {
                position: text[..offset].chars().count() + 1,
                message: format!("expected {expected}, found {}", found(&text[offset..])),
            }
        })
}

/// Describes the token at the start of `rest`.
fn found(rest: &str) -> String {
    let word = rest
        .find(|c: char| !is_word_char(c))
        .map_or(rest, |end| &rest[..end]);
    match rest.chars().next() {
        None => "the end of the expression".to_owned(),
        Some(_) if !word.is_empty() => format!("`{word}`"),
        Some(c) => format!("`{c}`"),
    }
}

fn fail<T>(expected: &'static str) -> ModalResult<T> {
    let mut error = ContextError::new();
    error.push(StrContext::Expected(StrContextValue::Description(expected)));
    Err(ErrMode::Cut(error))
}

fn ws(i: &mut Input<'_>) -> ModalResult<()> {
    take_while(0.., [' ', '\t', '\r', '\n'])
        .void()
        .parse_next(i)
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn word<'i>(i: &mut Input<'i>) -> ModalResult<&'i str> {
    take_while(1.., is_word_char).parse_next(i)
}

fn is_keyword(word: &str, keyword: &str) -> bool {
    word.eq_ignore_ascii_case(keyword)
}

fn deeper(depth: usize) -> ModalResult<usize> {
    if depth >= MAX_DEPTH {
        return fail("an expression less than 256 operators deep");
    }
    Ok(depth + 1)
}

fn nested(level: usize) -> ModalResult<usize> {
    if level >= MAX_NESTING {
        return fail("an expression nested less than 64 levels deep");
    }
    Ok(level + 1)
}

/// An operator after an operand.
enum Operator {
    Binary(BinaryOp),
    Like(bool),
    In(bool),
}

impl Operator {
    /// Left binding power.
    fn power(&self) -> u8 {
        match self {
            Self::Binary(BinaryOp::And | BinaryOp::Or | BinaryOp::Xor) => 1,
            Self::Binary(BinaryOp::Add | BinaryOp::Subtract) => 5,
            Self::Binary(BinaryOp::Multiply | BinaryOp::Divide | BinaryOp::Modulo) => 7,
            Self::Binary(_) => 3,
            Self::In(_) => 9,
            Self::Like(_) => 11,
        }
    }
}

/// An expression whose operators bind at least `min` tightly; `level` counts recursion.
fn expression(i: &mut Input<'_>, min: u8, level: usize) -> ModalResult<Parsed> {
    let level = nested(level)?;
    let (mut left, mut depth) = operand(i, level)?;
    loop {
        ws(i)?;
        let before = i.checkpoint();
        let Some(op) = operator(i)? else {
            break;
        };
        if op.power() < min {
            i.reset(&before);
            break;
        }
        let (node, d) = match op {
            Operator::Binary(op) => {
                let (right, d) = expression(i, op_power(op) + 1, level)?;
                (Node::Binary(op, Box::new(left), Box::new(right)), d)
            }
            Operator::Like(negated) => {
                ws(i)?;
                if !matches!(peek(opt(any)).parse_next(i)?, Some('\'' | '"')) {
                    return fail("a string literal pattern after LIKE");
                }
                let pattern = Pattern::new(&string(i)?);
                let value = Box::new(left);
                (
                    Node::Like {
                        value,
                        pattern,
                        negated,
                    },
                    0,
                )
            }
            Operator::In(negated) => {
                let (set, d) = set(i, level)?;
                let value = Box::new(left);
                (
                    Node::In {
                        value,
                        set,
                        negated,
                    },
                    d,
                )
            }
        };
        left = node;
        depth = deeper(depth.max(d))?;
    }
    Ok((left, depth))
}

fn op_power(op: BinaryOp) -> u8 {
    Operator::Binary(op).power()
}

/// The operator at the input, consumed; `None` (nothing consumed) when there is none.
fn operator(i: &mut Input<'_>) -> ModalResult<Option<Operator>> {
    let symbols: [(&str, BinaryOp); 12] = [
        ("<>", BinaryOp::NotEqual),
        ("!=", BinaryOp::NotEqual),
        ("<=", BinaryOp::LessOrEqual),
        (">=", BinaryOp::GreaterOrEqual),
        ("=", BinaryOp::Equal),
        ("<", BinaryOp::Less),
        (">", BinaryOp::Greater),
        ("+", BinaryOp::Add),
        ("-", BinaryOp::Subtract),
        ("*", BinaryOp::Multiply),
        ("/", BinaryOp::Divide),
        ("%", BinaryOp::Modulo),
    ];
    for (symbol, op) in symbols {
        if let Some(rest) = i.strip_prefix(symbol) {
            *i = rest;
            return Ok(Some(Operator::Binary(op)));
        }
    }
    let before = i.checkpoint();
    let Some(w) = opt(word).parse_next(i)? else {
        return Ok(None);
    };
    let op = match () {
        _ if is_keyword(w, "AND") => Operator::Binary(BinaryOp::And),
        _ if is_keyword(w, "OR") => Operator::Binary(BinaryOp::Or),
        _ if is_keyword(w, "XOR") => Operator::Binary(BinaryOp::Xor),
        _ if is_keyword(w, "LIKE") => Operator::Like(false),
        _ if is_keyword(w, "IN") => Operator::In(false),
        _ if is_keyword(w, "NOT") => {
            ws(i)?;
            let after = i.checkpoint();
            match opt(word).parse_next(i)? {
                Some(w) if is_keyword(w, "LIKE") => Operator::Like(true),
                Some(w) if is_keyword(w, "IN") => Operator::In(true),
                _ => {
                    i.reset(&after);
                    return fail("LIKE or IN after NOT");
                }
            }
        }
        _ => {
            i.reset(&before);
            return Ok(None);
        }
    };
    Ok(Some(op))
}

/// `( expression, ... )` after `IN`: at least one element.
fn set(i: &mut Input<'_>, level: usize) -> ModalResult<(Vec<Node>, usize)> {
    ws(i)?;
    if opt('(').parse_next(i)?.is_none() {
        return fail("`(` and a list of values after IN");
    }
    ws(i)?;
    if peek(opt(')')).parse_next(i)?.is_some() {
        return fail("at least one value in the IN list");
    }
    list(i, level)
}

/// Comma-separated expressions up to and including `)`, the `(` already consumed.
fn list(i: &mut Input<'_>, level: usize) -> ModalResult<(Vec<Node>, usize)> {
    let mut elements = Vec::new();
    let mut depth = 0;
    ws(i)?;
    if opt(')').parse_next(i)?.is_some() {
        return Ok((elements, depth));
    }
    loop {
        let (element, d) = expression(i, 0, level)?;
        elements.push(element);
        depth = depth.max(d);
        ws(i)?;
        let at = i.checkpoint();
        match opt(any).parse_next(i)? {
            Some(',') => {}
            Some(')') => return Ok((elements, depth)),
            _ => {
                i.reset(&at);
                return fail("`,` or `)`");
            }
        }
    }
}

/// An operand: literal, attribute, `EXISTS`, function call, parentheses or a prefix operator.
fn operand(i: &mut Input<'_>, level: usize) -> ModalResult<Parsed> {
    ws(i)?;
    let start = i.checkpoint();
    let Some(c) = peek(opt(any)).parse_next(i)? else {
        return fail("an operand");
    };
    match c {
        '(' => {
            any.parse_next(i)?;
            let inner = expression(i, 0, level)?;
            ws(i)?;
            if opt(')').parse_next(i)?.is_none() {
                return fail("`)`");
            }
            Ok(inner)
        }
        '\'' | '"' => Ok((Node::String(string(i)?.into_boxed_str()), 1)),
        '+' | '-' => {
            any.parse_next(i)?;
            let after_sign = i.checkpoint();
            if let Some(digits) = opt(word).parse_next(i)? {
                if digits.bytes().all(|b| b.is_ascii_digit()) {
                    i.reset(&start);
                    return Ok((Node::Integer(integer(i, c == '-', digits)?), 1));
                }
                i.reset(&after_sign);
            }
            if c == '+' {
                i.reset(&start);
                return fail("an operand (a `+` sign goes right before digits)");
            }
            let (x, depth) = expression(i, PREFIX, level)?;
            Ok((Node::Negate(Box::new(x)), deeper(depth)?))
        }
        c if is_word_char(c) => word_operand(i, level),
        _ => fail("an operand"),
    }
}

/// An integer literal of `digits` (with its sign, if any, still at the input).
fn integer(i: &mut Input<'_>, negative: bool, digits: &str) -> ModalResult<i32> {
    let mut value: i64 = 0;
    for digit in digits.bytes() {
        value = value * 10 + i64::from(digit - b'0');
        if value > 1 << 31 {
            break;
        }
    }
    let value = if negative { -value } else { value };
    match i32::try_from(value) {
        Ok(value) => {
            let sign = usize::from(i.starts_with(['+', '-']));
            *i = &i[sign + digits.len()..];
            Ok(value)
        }
        Err(_) => fail("an integer between -2147483648 and 2147483647"),
    }
}

fn word_operand(i: &mut Input<'_>, level: usize) -> ModalResult<Parsed> {
    let start = i.checkpoint();
    let w = word(i)?;
    if is_keyword(w, "TRUE") || is_keyword(w, "FALSE") {
        return Ok((Node::Boolean(is_keyword(w, "TRUE")), 1));
    }
    if is_keyword(w, "NOT") {
        let (x, depth) = expression(i, PREFIX, level)?;
        return Ok((Node::Not(Box::new(x)), deeper(depth)?));
    }
    if is_keyword(w, "EXISTS") {
        ws(i)?;
        let at = i.checkpoint();
        return match opt(word).parse_next(i)? {
            Some(name) if is_attribute_name(name) => Ok((Node::Exists(attribute(name)), 1)),
            _ => {
                i.reset(&at);
                fail("an attribute name after EXISTS")
            }
        };
    }
    if ["AND", "OR", "XOR", "LIKE", "IN"]
        .iter()
        .any(|k| is_keyword(w, k))
    {
        i.reset(&start);
        return fail("an operand");
    }
    ws(i)?;
    if is_function_name(w) && opt('(').parse_next(i)?.is_some() {
        let (args, depth) = list(i, level)?;
        let node = match Function::resolve(w, args.len()) {
            Some(function) => Node::Call(function, args),
            None => Node::MissingFunction {
                name: w.to_ascii_uppercase().into_boxed_str(),
                arity: args.len(),
            },
        };
        return Ok((node, deeper(depth)?));
    }
    if w.bytes().all(|b| b.is_ascii_digit()) {
        i.reset(&start);
        return Ok((Node::Integer(integer(i, false, w)?), 1));
    }
    if is_attribute_name(w) {
        return Ok((Node::Attribute(attribute(w)), 1));
    }
    i.reset(&start);
    fail("an attribute name (letters and digits) or a function call")
}

fn is_function_name(w: &str) -> bool {
    w.starts_with(|c: char| c.is_ascii_alphabetic())
        && w.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
}

fn is_attribute_name(w: &str) -> bool {
    w.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn attribute(name: &str) -> Attribute {
    Attribute::new(&name.to_ascii_lowercase())
}

/// A string literal in `'` or `"`: `\` plus that quote, or the quote doubled, stands for the
/// quote and `\\` for one backslash; every other backslash is kept for `LIKE` to read.
fn string(i: &mut Input<'_>) -> ModalResult<String> {
    let start = i.checkpoint();
    let quote = any.parse_next(i)?;
    let mut out = String::new();
    loop {
        match opt(any).parse_next(i)? {
            None => break,
            Some('\\') => match opt(any).parse_next(i)? {
                Some(c) if c == quote || c == '\\' => out.push(c),
                Some(c) => {
                    out.push('\\');
                    out.push(c);
                }
                None => break,
            },
            Some(c) if c == quote => {
                if opt(quote).parse_next(i)?.is_none() {
                    return Ok(out);
                }
                out.push(quote);
            }
            Some(c) => out.push(c),
        }
    }
    i.reset(&start);
    fail("a string literal closed by the quote it opens with")
}
