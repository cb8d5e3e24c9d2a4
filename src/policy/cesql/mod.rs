//! CloudEvents SQL (CESQL) v1.0: expressions over a CloudEvent's context attributes, as
//! subscription filters (`{"sql": "..."}`), SSE `?filter=` and `POST /v1/filters/evaluate` use
//! them.
//!
//! An expression is parsed once ([`parse`]) and evaluated per event ([`Expression::evaluate`],
//! [`Expression::matches`]). Evaluation follows the specification and its TCK:
//!
//! - Values are 32-bit signed integers, strings and booleans; every attribute is a string
//!   (sidebus stores extension values as text, so `myint = 10` compares through the implicit
//!   cast the specification prescribes, and a bare `myint` evaluates to the string `"10"`).
//! - An operator or function whose operand raised an error yields the zero value of its own
//!   return type (`0`, `""`, `false`) and passes the error up; an operator's own failure (a
//!   cast, a division by zero, an overflow) yields the value the specification names for it.
//!   The first error raised is the one reported.
//! - `AND` and `OR` short-circuit; `IN` stops at the first equal element.
//! - A bare attribute that is missing evaluates to `false` (its type cannot be known).
//!
//! Interpretations where the specification is silent or disagrees with its TCK:
//!
//! - `AND`, `OR` and `XOR` share one precedence level and group left to right, as §3.6 says
//!   ("evaluated left to right when the precedence is equal"); the informative ANTLR grammar
//!   marks them right-associative.
//! - An implicit cast from Integer to Boolean (`NOT 10`, `1 AND TRUE`) is a cast error giving
//!   `false`, as the TCK expects; the explicit `BOOL(10)` is `true`.
//! - Attribute names are case-insensitive like keywords (`EXISTS SOURCE`, as in the TCK).
//! - In a string literal, `\'` (single-quoted) or `\"` (double-quoted) and a doubled quote
//!   stand for the quote and `\\` for one backslash; every other backslash is kept, so `LIKE`
//!   sees `\%` and `\_`. In a `LIKE` pattern only `%` and `_` can be escaped; another
//!   backslash is literal.
//! - `IS_INT(x)` and `IS_BOOL(x)` (from the CESQL drafts) say whether the string form of `x`
//!   casts to an integer or a boolean without error.
//!
//! The parser is written with `winnow`: a maintained parser-combinator crate with no
//! proc-macros and no runtime dependencies, already in the build through `toml`, whose
//! primitives over `&str` keep every token's position for the 1-based error offsets.

mod ast;
mod eval;
mod functions;
mod like;
mod parser;
mod types;

#[cfg(test)]
mod tests;

use std::fmt;

use serde::Serialize;

use crate::event::Event;

/// A parsed CESQL expression, ready to evaluate against any number of events.
#[derive(Clone, Debug)]
pub struct Expression {
    text: Box<str>,
    root: ast::Node,
}

impl Expression {
    /// The expression's text, exactly as it was parsed.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Evaluates the expression against `event`: the result value and the first error raised,
    /// if any (evaluation errors never abort: the value is then what the specification says).
    pub fn evaluate(&self, event: &Event) -> (Value, Option<EvalError>) {
        let (value, fault) = eval::evaluate(&self.root, event);
        (value.into_value(), fault.map(types::Fault::into_error))
    }

    /// Whether `event` passes the expression as a filter: the result is `Boolean(true)` and no
    /// error was raised. Allocates nothing for the attribute comparisons a filter makes.
    pub fn matches(&self, event: &Event) -> bool {
        matches!(
            eval::evaluate(&self.root, event),
            (types::Val::Bool(true), None)
        )
    }
}

impl PartialEq for Expression {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Expression {}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Expression {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        parse(text)
    }
}

/// Parses a CESQL v1.0 expression.
pub fn parse(text: &str) -> Result<Expression, ParseError> {
    let root = parser::parse(text)?;
    Ok(Expression {
        text: text.into(),
        root,
    })
}

/// Why an expression could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct ParseError {
    /// 1-based character offset into the expression where parsing failed (one past the last
    /// character when the expression ended too early).
    pub position: usize,
    /// What was expected and what was found.
    pub message: String,
}

/// A CESQL value; serializes as the plain JSON value (`3`, `"abc"`, `true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A 32-bit signed integer.
    Integer(i32),
    /// A string of Unicode characters.
    String(String),
    /// A boolean.
    Boolean(bool),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Integer(i) => write!(f, "{i}"),
            Self::String(s) => f.write_str(s),
            Self::Boolean(b) => write!(f, "{b}"),
        }
    }
}

/// The CESQL error types (specification §3.3), named as the TCK names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorKind {
    /// The expression could not be parsed.
    Parse,
    /// Division or modulo by zero, or an integer overflow.
    Math,
    /// An implicit or explicit cast failed (e.g. `INT('abc')`).
    Cast,
    /// The expression names an attribute the event does not carry.
    MissingAttribute,
    /// No built-in function has that name and number of arguments.
    MissingFunction,
    /// A function refused its arguments (e.g. `LEFT('abc', -1)`).
    FunctionEvaluation,
    /// Any other error.
    Generic,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Parse => "parse",
            Self::Math => "math",
            Self::Cast => "cast",
            Self::MissingAttribute => "missingAttribute",
            Self::MissingFunction => "missingFunction",
            Self::FunctionEvaluation => "functionEvaluation",
            Self::Generic => "generic",
        })
    }
}

/// An error raised while evaluating an expression; serializes as `{"kind", "detail"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct EvalError {
    /// The error type.
    pub kind: ErrorKind,
    /// What went wrong, for a person.
    pub detail: String,
}
