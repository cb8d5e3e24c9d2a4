//! A JSON document as simd-json's tape, validated by `jsonschema` through its
//! custom-representation traits (`jsonschema::json`). Building a `serde_json::Value` tree cost
//! three times the validation itself (an allocation per member and per object, all freed again),
//! and reading the text byte by byte through serde cost twice the validation; simd-json finds
//! the structure of the text with vector instructions and writes one flat vector of nodes whose
//! strings point into a copy of the text (escapes undone in place). The copy, the tape and
//! simd-json's working buffers are kept per thread and reused.

use std::borrow::Cow;
use std::cell::RefCell;

use jsonschema::json::{self, Array, Json, NodeIdentity, Object};
use jsonschema::JsonType;
use serde_json::{Number, Value};
use simd_json::{Buffers, StaticNode, Tape};

/// One node of the tape: a container is followed by its contents (an object's as name, value,
/// name, value …) and counts the nodes they take.
type Entry<'t> = simd_json::Node<'t>;

/// The deepest nesting the tape reads; below serde_json's limit (128), so that whatever the
/// tape reads the tree could too. Deeper texts go to the tree, which decides them.
const MAX_DEPTH: usize = 100;

/// Texts up to this size leave their buffers to the next one; a larger text's are freed, so a
/// worker thread does not hold the largest body it ever read.
const KEEP_BUFFERS_UP_TO: usize = 64 * 1024;

/// A thread's reusable memory for reading texts.
struct Scratch {
    /// The text copied with simd-json's padding after it (simd-json writes into it).
    input: Vec<u8>,
    buffers: Buffers,
    /// Empty between reads.
    tape: Option<Tape<'static>>,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            input: Vec::new(),
            buffers: Buffers::with_max_depth(0, MAX_DEPTH),
            tape: None,
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

/// Reads `text` and passes its root to `decide`; `None` when the text is not one JSON value,
/// nests deeper than [`MAX_DEPTH`], names a member twice in one object (serde_json keeps the
/// last, and a validator that saw the first would be bypassed), or holds a number the tape
/// cannot represent exactly as serde_json does (beyond 64-bit integers, or not finite). The
/// tree decides all of those.
pub(super) fn read<T>(text: &[u8], decide: impl FnOnce(Node<'_>) -> T) -> Option<T> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.try_borrow_mut().ok()?;
        let Scratch {
            input,
            buffers,
            tape: kept,
        } = &mut *scratch;
        input.clear();
        input.extend_from_slice(text);
        input.resize(text.len() + simd_json::INPUT_PADDING, 0);
        let mut tape = kept.take().unwrap_or_else(Tape::null).reset();
        let decided = simd_json::fill_tape_padded(input, text.len(), buffers, &mut tape)
            .ok()
            .filter(|()| well_formed(&tape.0))
            .map(|()| {
                decide(Node {
                    entries: &tape.0,
                    at: 0,
                })
            });
        *kept = Some(tape.reset());
        if text.len() > KEEP_BUFFERS_UP_TO {
            *scratch = Scratch::new();
        }
        decided
    })
}

/// Whether every object names each member once and every number is one serde_json reads alike.
fn well_formed(entries: &[Entry<'_>]) -> bool {
    let mut names: Vec<&str> = Vec::with_capacity(SMALL_OBJECT);
    for (at, entry) in entries.iter().enumerate() {
        match entry {
            Entry::Object { len, .. } => {
                names.clear();
                names.extend(Object::members(&Node { entries, at }).map(|(name, _)| name));
                if names.len() != *len || named_twice(&mut names) {
                    return false;
                }
            }
            Entry::Static(StaticNode::F64(f)) if !f.is_finite() => return false,
            Entry::Static(
                StaticNode::I64(_)
                | StaticNode::U64(_)
                | StaticNode::F64(_)
                | StaticNode::Bool(_)
                | StaticNode::Null,
            )
            | Entry::String(_)
            | Entry::Array { .. } => {}
            #[allow(unreachable_patterns)]
            _ => return false,
        }
    }
    true
}

/// Objects with up to this many members are checked for a repeated name by comparing each name
/// with those before it (most pairs differ in length, compared first); larger ones by sorting.
const SMALL_OBJECT: usize = 16;

/// Whether two of an object's member names are equal.
fn named_twice(names: &mut [&str]) -> bool {
    if names.len() <= SMALL_OBJECT {
        return (1..names.len()).any(|i| names[..i].contains(&names[i]));
    }
    names.sort_unstable();
    names.windows(2).any(|pair| pair[0] == pair[1])
}

/// The entry after the value at `at` and everything in it.
fn after(entries: &[Entry<'_>], at: usize) -> usize {
    match entries.get(at) {
        Some(Entry::Object { count, .. } | Entry::Array { count, .. }) => at + 1 + count,
        _ => at + 1,
    }
}

/// The tape as `jsonschema` reads it.
pub(super) struct TapeJson;

impl Json for TapeJson {
    type Node<'a> = Node<'a>;
    type PreparedKey = Box<str>;
    type StringBuffer = ();

    /// A lookup scans the members, so one pass over them replaces a lookup per few names.
    const KEYS_PER_LOOKUP: usize = 8;
    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> Box<str> {
        key.into()
    }

    fn with_string_node<T>((): &mut (), string: &str, f: impl FnOnce(Node<'_>) -> T) -> T {
        let entries = [Entry::String(string)];
        f(Node {
            entries: &entries,
            at: 0,
        })
    }
}

/// One value of a tape.
#[derive(Clone, Copy)]
pub(super) struct Node<'a> {
    entries: &'a [Entry<'a>],
    at: usize,
}

impl<'a> Node<'a> {
    fn entry(&self) -> &'a Entry<'a> {
        &self.entries[self.at]
    }

    /// The entry after this value and everything in it.
    fn next(&self) -> usize {
        after(self.entries, self.at)
    }

    fn at(&self, at: usize) -> Self {
        Node {
            entries: self.entries,
            at,
        }
    }

    fn children(&self) -> Children<'a> {
        Children {
            node: self.at(self.at + 1),
            end: self.next(),
        }
    }

    fn len(&self) -> usize {
        match self.entry() {
            Entry::Array { len, .. } | Entry::Object { len, .. } => *len,
            Entry::String(_) | Entry::Static(_) => 0,
        }
    }
}

impl<'a> json::Node<'a, TapeJson> for Node<'a> {
    type Object = Node<'a>;
    type Array = Node<'a>;
    type Number = Number;

    fn as_object(&self) -> Option<Node<'a>> {
        matches!(self.entry(), Entry::Object { .. }).then_some(*self)
    }

    fn as_array(&self) -> Option<Node<'a>> {
        matches!(self.entry(), Entry::Array { .. }).then_some(*self)
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match self.entry() {
            Entry::String(s) => Some(Cow::Borrowed(s)),
            _ => None,
        }
    }

    /// A `serde_json::Number` holds a 64-bit integer or a float inline: no allocation.
    fn as_number(&self) -> Option<Number> {
        match self.entry() {
            Entry::Static(StaticNode::I64(n)) => Some((*n).into()),
            Entry::Static(StaticNode::U64(n)) => Some((*n).into()),
            Entry::Static(StaticNode::F64(n)) => Number::from_f64(*n),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self.entry() {
            Entry::Static(StaticNode::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.entry(), Entry::Static(StaticNode::Null))
    }

    fn json_type(&self) -> JsonType {
        match self.entry() {
            Entry::Static(StaticNode::Null) => JsonType::Null,
            Entry::Static(StaticNode::Bool(_)) => JsonType::Boolean,
            Entry::Static(_) => JsonType::Number,
            Entry::String(_) => JsonType::String,
            Entry::Array { .. } => JsonType::Array,
            Entry::Object { .. } => JsonType::Object,
        }
    }

    /// Scalars compare without building a `Value` (an `enum` of strings is checked per event).
    fn equals_value(&self, expected: &Value) -> bool {
        match self.entry() {
            Entry::Static(StaticNode::Null) => expected.is_null(),
            Entry::Static(StaticNode::Bool(b)) => expected.as_bool() == Some(*b),
            Entry::Static(_) => matches!(
                (expected, self.as_number()),
                (Value::Number(e), Some(n)) if json::cmp::equal_numbers(&n, e)
            ),
            Entry::String(s) => expected.as_str() == Some(s),
            Entry::Array { .. } | Entry::Object { .. } => {
                json::cmp::equal(&self.to_value(), expected)
            }
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(match self.entry() {
            Entry::Static(StaticNode::Null) => Value::Null,
            Entry::Static(StaticNode::Bool(b)) => Value::Bool(*b),
            Entry::Static(_) => self.as_number().map_or(Value::Null, Value::Number),
            Entry::String(s) => Value::String((*s).to_string()),
            Entry::Array { .. } => Value::Array(
                Array::elements(self)
                    .map(|item| item.to_value().into_owned())
                    .collect(),
            ),
            Entry::Object { .. } => Value::Object(
                Object::members(self)
                    .map(|(name, value)| (name.to_string(), value.to_value().into_owned()))
                    .collect(),
            ),
        })
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::new(std::ptr::from_ref(self.entry()) as usize))
    }
}

/// An object's members or an array's items, in text order.
pub(super) struct Children<'a> {
    node: Node<'a>,
    end: usize,
}

impl<'a> Iterator for Children<'a> {
    type Item = Node<'a>;

    fn next(&mut self) -> Option<Node<'a>> {
        (self.node.at < self.end).then(|| {
            let child = self.node;
            self.node = child.at(child.next());
            child
        })
    }
}

/// An object's members: its children taken as name, value pairs.
pub(super) struct Members<'a> {
    entries: &'a [Entry<'a>],
    /// The entry of the next member's name.
    at: usize,
    /// The entry after the object.
    end: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, Node<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.end {
            return None;
        }
        let Some(Entry::String(name)) = self.entries.get(self.at) else {
            return None;
        };
        let value = self.at + 1;
        self.at = after(self.entries, value);
        Some((
            name,
            Node {
                entries: self.entries,
                at: value,
            },
        ))
    }
}

impl<'a> Object<'a, TapeJson> for Node<'a> {
    type Node = Node<'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        Node::len(self)
    }

    fn get(&self, key: &Box<str>) -> Option<Node<'a>> {
        Object::members(self).find_map(|(name, value)| (name == &**key).then_some(value))
    }

    fn members(&self) -> Members<'a> {
        Members {
            entries: self.entries,
            at: self.at + 1,
            end: self.next(),
        }
    }
}

impl<'a> Array<'a, TapeJson> for Node<'a> {
    type Node = Node<'a>;
    type ElementsIter = Children<'a>;

    fn len(&self) -> usize {
        Node::len(self)
    }

    fn elements(&self) -> Children<'a> {
        self.children()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use jsonschema::json::{Array, Node as _, Object};

    use super::super::JsonCheck;
    use super::{read, KEEP_BUFFERS_UP_TO, MAX_DEPTH, SCRATCH};

    /// The tape and the tree agree on every instance, whatever keywords the schema uses.
    #[test]
    fn the_tape_decides_as_the_tree_does() {
        let schema = json!({
            "type": "object",
            "required": ["id", "n"],
            "additionalProperties": false,
            "minProperties": 2,
            "propertyNames": {"pattern": "^[a-z_]+$"},
            "properties": {
                "id": {"type": "string", "minLength": 2, "maxLength": 4},
                "n": {"type": "integer", "minimum": 0, "multipleOf": 2},
                "tier": {"enum": ["gold", 1, null, [1, {"a": true}]]},
                "fixed": {"const": {"x": [1.0, "y"]}},
                "tags": {"type": "array", "uniqueItems": true, "items": {"type": "string"},
                    "contains": {"const": "a"}},
                "deep": {"$ref": "#/$defs/deep"},
                "one": {"oneOf": [{"type": "string"}, {"type": "number"}]}
            },
            "$defs": {"deep": {"type": "object", "properties": {"next": {"$ref": "#/$defs/deep"},
                "v": {"type": "boolean"}}}}
        });
        let check = JsonCheck::compile(&schema).unwrap();
        for text in [
            r#"{"id":"ab","n":2}"#,
            r#"{"id":"ab","n":2.0}"#,
            r#"{"id":"ab","n":3}"#,
            r#"{"id":"a","n":2}"#,
            r#"{"id":"\u00e9\u00e9","n":4}"#,
            r#"{"id":"\u00e9\u00e9\u00e9\u00e9\u00e9","n":4}"#,
            r#"{"id":"ab","n":-2}"#,
            r#"{"id":"ab"}"#,
            r#"{"id":"ab","n":2,"Other":1}"#,
            r#"{"id":"ab","n":2,"tier":"gold"}"#,
            r#"{"id":"ab","n":2,"tier":1.0}"#,
            r#"{"id":"ab","n":2,"tier":[1,{"a":true}]}"#,
            r#"{"id":"ab","n":2,"tier":[1,{"a":false}]}"#,
            r#"{"id":"ab","n":2,"tier":"silver"}"#,
            r#"{"id":"ab","n":2,"fixed":{"x":[1,"y"]}}"#,
            r#"{"id":"ab","n":2,"fixed":{"x":[1,"z"]}}"#,
            r#"{"id":"ab","n":2,"tags":["a","b"]}"#,
            r#"{"id":"ab","n":2,"tags":["a","a"]}"#,
            r#"{"id":"ab","n":2,"tags":["b"]}"#,
            r#"{"id":"ab","n":2,"deep":{"next":{"next":{"v":true}}}}"#,
            r#"{"id":"ab","n":2,"deep":{"next":{"next":{"v":1}}}}"#,
            r#"{"id":"ab","n":2,"one":"x"}"#,
            r#"{"id":"ab","n":2,"one":null}"#,
            r#"[1,2]"#,
            r#""ab""#,
        ] {
            let tree: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                check.accepts_text(text.as_bytes()),
                check.check(&tree).is_ok(),
                "{text}"
            );
        }
    }

    #[test]
    fn texts_the_tree_must_decide_are_not_accepted() {
        let check = JsonCheck::compile(&json!({"type": "object"})).unwrap();
        assert!(check.accepts_text(br#"{"a":1,"b":{"a":2}}"#));
        for text in [
            &br#"{"a":1,"a":2}"#[..],
            br#"{"b":{"x":1,"y":2,"x":3}}"#,
            br#"{"a":1} 2"#,
            br#"{"a":"#,
            b"",
        ] {
            assert!(
                !check.accepts_text(text),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn containers_end_where_their_contents_do() {
        let text = br#"{"a":[1,{"b":"x\ny"},[]],"c":{"d":null},"e":"\u00e9"}"#;
        let members = read(text, |root| {
            Object::members(&root)
                .map(|(name, value)| (name.to_string(), value.to_value().into_owned()))
                .collect::<Vec<_>>()
        })
        .unwrap();
        let tree: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(text).unwrap();
        assert_eq!(members, tree.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn what_serde_json_reads_otherwise_is_left_to_the_tree() {
        let deep = |n| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(read(deep(MAX_DEPTH - 1).as_bytes(), |_| ()).is_some());
        assert!(read(deep(MAX_DEPTH + 1).as_bytes(), |_| ()).is_none());
        for text in [
            &b"18446744073709551616"[..],
            b"1e400",
            br#"{"a":1,"b":2,"a":3}"#,
            br#""\ud800""#,
        ] {
            assert!(
                read(text, |_| ()).is_none(),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn a_large_text_does_not_keep_its_buffers() {
        let big = format!("[{}1]", "1,".repeat(KEEP_BUFFERS_UP_TO));
        assert_eq!(
            read(big.as_bytes(), |root| Array::len(&root)),
            Some(KEEP_BUFFERS_UP_TO + 1)
        );
        SCRATCH.with(|scratch| assert_eq!(scratch.borrow().input.capacity(), 0));
    }
}
