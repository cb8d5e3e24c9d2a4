//! Evaluation of a parsed expression against one event.
//!
//! Each node yields `Ok(value)`, or `Err(value)` when it raised an error (recorded in the
//! context, first one kept). A node whose operand yields `Err` does not compute: it yields the
//! zero value of its own type, as an error too. A node whose own cast or arithmetic fails
//! computes on with the value the specification names and yields it as an error.

use std::borrow::Cow;

use super::ast::{BinaryOp, Node};
use super::functions;
use super::types::{Fault, Type, Val};
use crate::event::Event;

type Eval<'a> = Result<Val<'a>, Val<'a>>;

struct Cx<'a> {
    event: &'a Event,
    fault: Option<Fault<'a>>,
}

impl<'a> Cx<'a> {
    fn raise(&mut self, fault: Fault<'a>) {
        self.fault.get_or_insert(fault);
    }

    fn int(&mut self, value: Val<'a>, failed: &mut bool) -> i32 {
        value.into_int().unwrap_or_else(|fault| {
            self.raise(fault);
            *failed = true;
            0
        })
    }

    fn bool(&mut self, value: Val<'a>, failed: &mut bool) -> bool {
        value.into_bool(false).unwrap_or_else(|fault| {
            self.raise(fault);
            *failed = true;
            false
        })
    }

    fn cast(&mut self, value: Val<'a>, ty: Type, failed: &mut bool) -> Val<'a> {
        value.cast(ty).unwrap_or_else(|(zero, fault)| {
            self.raise(fault);
            *failed = true;
            zero
        })
    }
}

fn done(value: Val<'_>, failed: bool) -> Eval<'_> {
    if failed {
        Err(value)
    } else {
        Ok(value)
    }
}

/// Evaluates `root` against `event`: the value and the first error raised.
pub(crate) fn evaluate<'a>(root: &'a Node, event: &'a Event) -> (Val<'a>, Option<Fault<'a>>) {
    let mut cx = Cx { event, fault: None };
    let (Ok(value) | Err(value)) = eval(root, &mut cx);
    (value, cx.fault)
}

macro_rules! operand {
    ($cx:expr, $node:expr, $parent:expr) => {
        match eval($node, $cx) {
            Ok(value) => value,
            Err(_) => return Err($parent.ty().zero()),
        }
    };
}

fn eval<'a>(node: &'a Node, cx: &mut Cx<'a>) -> Eval<'a> {
    let mut failed = false;
    match node {
        Node::Integer(i) => Ok(Val::Int(*i)),
        Node::String(s) => Ok(Val::Str(Cow::Borrowed(s))),
        Node::Boolean(b) => Ok(Val::Bool(*b)),
        Node::Attribute(attribute) => match attribute.get(cx.event) {
            Some(value) => Ok(Val::Str(Cow::Borrowed(value))),
            None => {
                cx.raise(Fault::MissingAttribute(attribute.name()));
                Err(node.ty().zero())
            }
        },
        Node::Exists(attribute) => Ok(Val::Bool(attribute.get(cx.event).is_some())),
        Node::Not(x) => {
            let value = operand!(cx, x, node);
            let b = cx.bool(value, &mut failed);
            done(Val::Bool(!b), failed)
        }
        Node::Negate(x) => {
            let value = operand!(cx, x, node);
            let i = cx.int(value, &mut failed);
            match i.checked_neg() {
                Some(negated) => done(Val::Int(negated), failed),
                None => {
                    cx.raise(Fault::Overflow("-"));
                    Err(Val::Int(0))
                }
            }
        }
        Node::Binary(op, left, right) => binary(cx, node, *op, left, right),
        Node::Like {
            value,
            pattern,
            negated,
        } => {
            let value = operand!(cx, value, node).into_str();
            Ok(Val::Bool(pattern.matches(&value) != *negated))
        }
        Node::In {
            value,
            set,
            negated,
        } => {
            let value = operand!(cx, value, node);
            let ty = value.ty();
            let mut found = false;
            for element in set {
                let element = operand!(cx, element, node);
                if cx.cast(element, ty, &mut failed) == value {
                    found = true;
                    break;
                }
            }
            done(Val::Bool(found != *negated), failed)
        }
        Node::Call(function, args) => {
            let mut values = Vec::with_capacity(args.len());
            for arg in args {
                values.push(operand!(cx, arg, node));
            }
            let (value, fault) = functions::call(*function, values);
            match fault {
                Some(fault) => {
                    cx.raise(fault);
                    Err(value)
                }
                None => Ok(value),
            }
        }
        Node::MissingFunction { name, arity } => {
            cx.raise(Fault::MissingFunction(name, *arity));
            Err(node.ty().zero())
        }
    }
}

fn binary<'a>(
    cx: &mut Cx<'a>,
    node: &'a Node,
    op: BinaryOp,
    left: &'a Node,
    right: &'a Node,
) -> Eval<'a> {
    let mut failed = false;
    let l = operand!(cx, left, node);
    match op {
        BinaryOp::And | BinaryOp::Or => {
            let l = cx.bool(l, &mut failed);
            if l == (op == BinaryOp::Or) {
                return done(Val::Bool(l), failed);
            }
            let r = operand!(cx, right, node);
            let r = cx.bool(r, &mut failed);
            done(Val::Bool(r), failed)
        }
        BinaryOp::Xor => {
            let r = operand!(cx, right, node);
            let l = cx.bool(l, &mut failed);
            let r = cx.bool(r, &mut failed);
            done(Val::Bool(l != r), failed)
        }
        BinaryOp::Equal | BinaryOp::NotEqual => {
            let r = operand!(cx, right, node);
            let l = cx.cast(l, r.ty(), &mut failed);
            done(Val::Bool((l == r) == (op == BinaryOp::Equal)), failed)
        }
        _ => {
            let r = operand!(cx, right, node);
            let l = cx.int(l, &mut failed);
            let r = cx.int(r, &mut failed);
            let value = match op {
                BinaryOp::Less => Val::Bool(l < r),
                BinaryOp::LessOrEqual => Val::Bool(l <= r),
                BinaryOp::Greater => Val::Bool(l > r),
                BinaryOp::GreaterOrEqual => Val::Bool(l >= r),
                _ => return arithmetic(cx, op, l, r, failed),
            };
            done(value, failed)
        }
    }
}

fn arithmetic<'a>(cx: &mut Cx<'a>, op: BinaryOp, l: i32, r: i32, failed: bool) -> Eval<'a> {
    if r == 0 && matches!(op, BinaryOp::Divide | BinaryOp::Modulo) {
        cx.raise(Fault::DivisionByZero(op.symbol()));
        return Err(Val::Int(0));
    }
    let value = match op {
        BinaryOp::Multiply => l.checked_mul(r),
        BinaryOp::Divide => l.checked_div(r),
        BinaryOp::Modulo => Some(l.wrapping_rem(r)),
        BinaryOp::Add => l.checked_add(r),
        _ => l.checked_sub(r),
    };
    match value {
        Some(value) => done(Val::Int(value), failed),
        None => {
            cx.raise(Fault::Overflow(op.symbol()));
            Err(Val::Int(0))
        }
    }
}
