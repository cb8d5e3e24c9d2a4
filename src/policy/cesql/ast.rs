//! The parsed form of an expression: attributes resolved, keywords and function names
//! resolved to enums and `LIKE` patterns compiled, so evaluation compares no names.

use super::like::Pattern;
use super::types::Type;
use crate::policy::attribute::Attribute;

/// A node of the expression tree.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Integer(i32),
    String(Box<str>),
    Boolean(bool),
    Attribute(Attribute),
    Exists(Attribute),
    Not(Box<Node>),
    Negate(Box<Node>),
    Binary(BinaryOp, Box<Node>, Box<Node>),
    Like {
        value: Box<Node>,
        pattern: Pattern,
        negated: bool,
    },
    In {
        value: Box<Node>,
        set: Vec<Node>,
        negated: bool,
    },
    Call(Function, Vec<Node>),
    MissingFunction {
        name: Box<str>,
        arity: usize,
    },
}

impl Node {
    /// The type the node evaluates to, whose zero value it yields when an operand fails. An
    /// attribute's type cannot be known before evaluation: Boolean, as §3.2 says.
    pub(crate) fn ty(&self) -> Type {
        match self {
            Self::Integer(_) | Self::Negate(_) => Type::Integer,
            Self::String(_) => Type::String,
            Self::Binary(op, _, _) => op.result(),
            Self::Call(function, _) => function.result(),
            Self::Boolean(_)
            | Self::Attribute(_)
            | Self::Exists(_)
            | Self::Not(_)
            | Self::Like { .. }
            | Self::In { .. }
            | Self::MissingFunction { .. } => Type::Boolean,
        }
    }
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Multiply,
    Divide,
    Modulo,
    Add,
    Subtract,
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    And,
    Or,
    Xor,
}

impl BinaryOp {
    fn result(self) -> Type {
        match self {
            Self::Multiply | Self::Divide | Self::Modulo | Self::Add | Self::Subtract => {
                Type::Integer
            }
            _ => Type::Boolean,
        }
    }

    /// The operator's symbol, for error details.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Self::Multiply => "*",
            Self::Divide => "/",
            Self::Modulo => "%",
            Self::Add => "+",
            Self::Subtract => "-",
            Self::Equal => "=",
            Self::NotEqual => "!=",
            Self::Less => "<",
            Self::LessOrEqual => "<=",
            Self::Greater => ">",
            Self::GreaterOrEqual => ">=",
            Self::And => "AND",
            Self::Or => "OR",
            Self::Xor => "XOR",
        }
    }
}

/// A built-in function at one arity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Length,
    Concat,
    ConcatWs,
    Lower,
    Upper,
    Trim,
    Left,
    Right,
    Substring,
    SubstringLength,
    Abs,
    Int,
    Bool,
    String,
    IsInt,
    IsBool,
}

impl Function {
    /// The built-in called `name` (case-insensitive) taking `arity` arguments.
    pub(crate) fn resolve(name: &str, arity: usize) -> Option<Self> {
        let upper = |s: &str| name.eq_ignore_ascii_case(s);
        let function = match arity {
            _ if upper("CONCAT") => Self::Concat,
            1.. if upper("CONCAT_WS") => Self::ConcatWs,
            1 if upper("LENGTH") => Self::Length,
            1 if upper("LOWER") => Self::Lower,
            1 if upper("UPPER") => Self::Upper,
            1 if upper("TRIM") => Self::Trim,
            1 if upper("ABS") => Self::Abs,
            1 if upper("INT") => Self::Int,
            1 if upper("BOOL") => Self::Bool,
            1 if upper("STRING") => Self::String,
            1 if upper("IS_INT") => Self::IsInt,
            1 if upper("IS_BOOL") => Self::IsBool,
            2 if upper("LEFT") => Self::Left,
            2 if upper("RIGHT") => Self::Right,
            2 if upper("SUBSTRING") => Self::Substring,
            3 if upper("SUBSTRING") => Self::SubstringLength,
            _ => return None,
        };
        Some(function)
    }

    /// The function's return type.
    pub(crate) fn result(self) -> Type {
        match self {
            Self::Length | Self::Abs | Self::Int => Type::Integer,
            Self::Bool | Self::IsInt | Self::IsBool => Type::Boolean,
            _ => Type::String,
        }
    }

    /// The function's name, for error details.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Length => "LENGTH",
            Self::Concat => "CONCAT",
            Self::ConcatWs => "CONCAT_WS",
            Self::Lower => "LOWER",
            Self::Upper => "UPPER",
            Self::Trim => "TRIM",
            Self::Left => "LEFT",
            Self::Right => "RIGHT",
            Self::Substring | Self::SubstringLength => "SUBSTRING",
            Self::Abs => "ABS",
            Self::Int => "INT",
            Self::Bool => "BOOL",
            Self::String => "STRING",
            Self::IsInt => "IS_INT",
            Self::IsBool => "IS_BOOL",
        }
    }
}
