//! A JSON document as one flat list of entries borrowed from its text, for `jsonschema` to
//! validate through its custom-representation traits (`jsonschema::json`). Building a
//! `serde_json::Value` tree cost three times the validation itself (an allocation per member
//! and per object, all freed again); the tape is one vector, its strings point into the text
//! unless they hold escapes, and serde_json still does the parsing.

use std::borrow::Cow;
use std::fmt;

use jsonschema::json::{self, Array, Json, NodeIdentity, Object};
use jsonschema::JsonType;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// The document's entries in text order: a container is followed by its contents (an object's
/// as name, value, name, value …) and knows where they end.
pub(super) struct Tape<'t> {
    entries: Vec<Entry<'t>>,
}

enum Entry<'t> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'t, str>),
    /// `len` items; the entries up to `end` (exclusive) are its contents.
    Array {
        len: u32,
        end: u32,
    },
    /// `len` members; the entries up to `end` (exclusive) are its contents.
    Object {
        len: u32,
        end: u32,
    },
}

impl<'t> Tape<'t> {
    /// Reads `text`; `None` when it is not one JSON value, or when an object names a member
    /// twice (serde_json keeps the last one, and the tree this defers to decides such a text).
    pub(super) fn read(text: &'t [u8]) -> Option<Self> {
        // Checked as UTF-8 once here, serde_json does not check each string again.
        let text = std::str::from_utf8(text).ok()?;
        let mut builder = Builder {
            entries: Vec::with_capacity(text.len() / 8),
            names: Vec::new(),
        };
        let mut de = serde_json::Deserializer::from_str(text);
        Push(&mut builder).deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(Tape {
            entries: builder.entries,
        })
    }

    /// The document's root.
    pub(super) fn root(&self) -> Node<'_> {
        Node {
            entries: &self.entries,
            at: 0,
        }
    }
}

struct Builder<'t> {
    entries: Vec<Entry<'t>>,
    /// The member names of the objects being read, as (fingerprint, entry) — to find a name
    /// given twice without comparing every pair of strings.
    names: Vec<(u64, usize)>,
}

impl Builder<'_> {
    fn push_name(&mut self, base: usize) -> Result<(), ()> {
        let at = self.entries.len() - 1;
        let Entry::String(name) = &self.entries[at] else {
            return Err(());
        };
        let print = fingerprint(name.as_bytes());
        for &(other, entry) in &self.names[base..] {
            if other == print && matches!(&self.entries[entry], Entry::String(n) if n == name) {
                return Err(());
            }
        }
        self.names.push((print, at));
        Ok(())
    }
}

/// A cheap summary of a member name (its length, first and last eight bytes): equal names have
/// equal fingerprints.
fn fingerprint(name: &[u8]) -> u64 {
    let n = name.len().min(8);
    let mut head = [0u8; 8];
    head[..n].copy_from_slice(&name[..n]);
    let mut tail = [0u8; 8];
    tail[8 - n..].copy_from_slice(&name[name.len() - n..]);
    u64::from_le_bytes(head)
        ^ u64::from_le_bytes(tail).rotate_left(29)
        ^ (name.len() as u64).rotate_left(58)
}

fn refuse<E: de::Error>() -> E {
    E::custom("a member named twice")
}

/// Appends the next value to the tape.
struct Push<'b, 't>(&'b mut Builder<'t>);

impl<'t> DeserializeSeed<'t> for Push<'_, 't> {
    type Value = ();

    fn deserialize<D: Deserializer<'t>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'t> Visitor<'t> for Push<'_, 't> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.entries.push(Entry::Null);
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<(), E> {
        self.0.entries.push(Entry::Bool(b));
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<(), E> {
        self.0.entries.push(Entry::Number(n.into()));
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<(), E> {
        self.0.entries.push(Entry::Number(n.into()));
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<(), E> {
        let n = Number::from_f64(n).ok_or_else(|| E::custom("not a finite number"))?;
        self.0.entries.push(Entry::Number(n));
        Ok(())
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'t str) -> Result<(), E> {
        self.0.entries.push(Entry::String(Cow::Borrowed(s)));
        Ok(())
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        self.0.entries.push(Entry::String(Cow::Owned(s.to_owned())));
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'t>>(self, mut seq: A) -> Result<(), A::Error> {
        let b = self.0;
        let at = b.entries.len();
        b.entries.push(Entry::Null);
        let mut len = 0;
        while seq.next_element_seed(Push(b))?.is_some() {
            len += 1;
        }
        b.entries[at] = Entry::Array {
            len,
            end: b.entries.len() as u32,
        };
        Ok(())
    }

    fn visit_map<A: MapAccess<'t>>(self, mut map: A) -> Result<(), A::Error> {
        let b = self.0;
        let at = b.entries.len();
        b.entries.push(Entry::Null);
        let base = b.names.len();
        let mut len = 0;
        while map.next_key_seed(Name(b))?.is_some() {
            b.push_name(base).map_err(|()| refuse::<A::Error>())?;
            map.next_value_seed(Push(b))?;
            len += 1;
        }
        b.names.truncate(base);
        b.entries[at] = Entry::Object {
            len,
            end: b.entries.len() as u32,
        };
        Ok(())
    }
}

/// Appends a member name to the tape.
struct Name<'b, 't>(&'b mut Builder<'t>);

impl<'t> DeserializeSeed<'t> for Name<'_, 't> {
    type Value = ();

    fn deserialize<D: Deserializer<'t>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(Push(self.0))
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
        let entries = [Entry::String(Cow::Borrowed(string))];
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
        match self.entry() {
            Entry::Array { end, .. } | Entry::Object { end, .. } => *end as usize,
            _ => self.at + 1,
        }
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
            Entry::Array { len, .. } | Entry::Object { len, .. } => *len as usize,
            _ => 0,
        }
    }
}

impl<'a> json::Node<'a, TapeJson> for Node<'a> {
    type Object = Node<'a>;
    type Array = Node<'a>;
    type Number = &'a Number;

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

    fn as_number(&self) -> Option<&'a Number> {
        match self.entry() {
            Entry::Number(n) => Some(n),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self.entry() {
            Entry::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.entry(), Entry::Null)
    }

    fn json_type(&self) -> JsonType {
        match self.entry() {
            Entry::Null => JsonType::Null,
            Entry::Bool(_) => JsonType::Boolean,
            Entry::Number(_) => JsonType::Number,
            Entry::String(_) => JsonType::String,
            Entry::Array { .. } => JsonType::Array,
            Entry::Object { .. } => JsonType::Object,
        }
    }

    /// Scalars compare without building a `Value` (an `enum` of strings is checked per event).
    fn equals_value(&self, expected: &Value) -> bool {
        match self.entry() {
            Entry::Null => expected.is_null(),
            Entry::Bool(b) => expected.as_bool() == Some(*b),
            Entry::String(s) => expected.as_str() == Some(s),
            Entry::Number(n) => {
                matches!(expected, Value::Number(e) if json::cmp::equal_numbers(n, e))
            }
            Entry::Array { .. } | Entry::Object { .. } => {
                json::cmp::equal(&self.to_value(), expected)
            }
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(match self.entry() {
            Entry::Null => Value::Null,
            Entry::Bool(b) => Value::Bool(*b),
            Entry::Number(n) => Value::Number(n.clone()),
            Entry::String(s) => Value::String(s.to_string()),
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
pub(super) struct Members<'a>(Children<'a>);

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, Node<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let name = self.0.next()?;
        let value = self.0.next()?;
        match name.entry() {
            Entry::String(name) => Some((name, value)),
            _ => None,
        }
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
        Members(self.children())
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

    use super::super::JsonCheck;
    use super::Tape;

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
    fn strings_borrow_from_the_text_unless_escaped() {
        let tape = Tape::read(br#"{"plain":"abc","esc\n":"a\"b"}"#).unwrap();
        let borrowed: Vec<bool> = tape
            .entries
            .iter()
            .filter_map(|e| match e {
                super::Entry::String(s) => Some(matches!(s, std::borrow::Cow::Borrowed(_))),
                _ => None,
            })
            .collect();
        assert_eq!(borrowed, [true, true, false, false]);
    }
}
