//! Avro written straight from the JSON text, with no `serde_json::Value` tree in between: the
//! publish path's fast way to encode a valid event. Building the tree cost more than the rest of
//! the encoding (about 2 µs of allocating and freeing for a 1 KiB order), so the text is read once
//! through serde's deserializer, driven by a [`Plan`] compiled from the schema, and each member's
//! bytes are written as it is read.
//!
//! It only says whether the text fits: anything it does not take — a member that breaks the
//! schema, a duplicate member, a union whose branch only trying each could pick — makes the
//! caller fall back to the tree writer, which decides the same way and names every failing
//! member. Where both succeed they write the same bytes (maps aside: the tree writes a map's
//! entries sorted by key, this writer in the text's order).

use std::fmt;

use apache_avro::Schema;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{bytes, is_long, zigzag, AvroCodec};

/// A schema as the text writer walks it: nodes in one list, so named types referred to again
/// (and recursive ones) are one index instead of a name looked up per value.
#[derive(Debug, Default)]
pub(super) struct Plan {
    nodes: Vec<Node>,
}

#[derive(Debug)]
enum Node {
    Null,
    Boolean,
    /// `int` and the logical types written as one (`date`, `time-millis`).
    Int,
    /// `long` and the logical types written as one.
    Long,
    Float,
    Double,
    String,
    Uuid,
    /// `bytes`, or a decimal on bytes: a base64 string.
    Bytes,
    /// `fixed` of this size, or a decimal on one: a base64 string.
    Fixed(usize),
    Enum(Vec<String>),
    Array(usize),
    Map(usize),
    Record(Vec<Field>),
    Union(Vec<usize>),
    /// Kinds the tree writer refuses too (durations, big decimals): nothing fits.
    Never,
}

#[derive(Debug)]
struct Field {
    name: String,
    node: usize,
    /// The encoded default, written where the member is absent; `None` when the field has no
    /// default or its default does not fit (the tree writer then reports it).
    default: Option<Vec<u8>>,
}

impl Plan {
    /// The plan of `codec`'s schema; the root is node 0.
    pub(super) fn of(codec: &AvroCodec) -> Self {
        let mut plan = Plan { nodes: Vec::new() };
        let mut named = Vec::new();
        plan.add(codec, &codec.schema, &mut named);
        plan
    }

    fn add(
        &mut self,
        codec: &AvroCodec,
        schema: &Schema,
        named: &mut Vec<(String, usize)>,
    ) -> usize {
        let schema = codec.resolve(schema);
        let name = match schema {
            Schema::Record(r) => Some(&r.name),
            Schema::Enum(e) => Some(&e.name),
            Schema::Fixed(f) => Some(&f.name),
            _ => None,
        }
        .map(super::key);
        if let Some(found) = name
            .as_ref()
            .and_then(|n| named.iter().find(|(k, _)| k == n))
        {
            return found.1;
        }
        let at = self.nodes.len();
        self.nodes.push(Node::Null);
        if let Some(name) = name {
            named.push((name, at));
        }
        let node = match schema {
            Schema::Null => Node::Null,
            Schema::Boolean => Node::Boolean,
            Schema::Int | Schema::Date | Schema::TimeMillis => Node::Int,
            s if is_long(s) => Node::Long,
            Schema::Float => Node::Float,
            Schema::Double => Node::Double,
            Schema::String => Node::String,
            Schema::Uuid => Node::Uuid,
            Schema::Bytes => Node::Bytes,
            Schema::Fixed(f) => Node::Fixed(f.size),
            Schema::Decimal(d) => match codec.resolve(&d.inner) {
                Schema::Fixed(f) => Node::Fixed(f.size),
                _ => Node::Bytes,
            },
            Schema::Enum(e) => Node::Enum(e.symbols.clone()),
            Schema::Array(a) => Node::Array(self.add(codec, &a.items, named)),
            Schema::Map(m) => Node::Map(self.add(codec, &m.types, named)),
            Schema::Union(u) => Node::Union(
                u.variants()
                    .iter()
                    .map(|v| self.add(codec, v, named))
                    .collect(),
            ),
            Schema::Record(r) => Node::Record(
                r.fields
                    .iter()
                    .map(|f| Field {
                        name: f.name.clone(),
                        node: self.add(codec, &f.schema, named),
                        default: f.default.as_ref().and_then(|d| codec.default(&f.schema, d)),
                    })
                    .collect(),
            ),
            _ => Node::Never,
        };
        self.nodes[at] = node;
        at
    }

    /// `text` encoded, or `None` when it does not fit as the text writer reads it.
    pub(super) fn encode(&self, text: &[u8]) -> Option<Vec<u8>> {
        let mut writer = Writer {
            plan: self,
            out: Vec::with_capacity(text.len()),
            spans: Vec::new(),
        };
        // Checked as UTF-8 once here, serde_json does not check each string again.
        let text = std::str::from_utf8(text).ok()?;
        let mut de = serde_json::Deserializer::from_str(text);
        Value {
            w: &mut writer,
            node: 0,
        }
        .deserialize(&mut de)
        .ok()?;
        de.end().ok()?;
        Some(writer.out)
    }
}

struct Writer<'p> {
    plan: &'p Plan,
    out: Vec<u8>,
    /// Where each field of the records being written lies in `out`, a stretch per record.
    spans: Vec<Option<(usize, usize)>>,
}

/// The reason a text does not fit; its wording is never shown (the tree writer's is).
fn misfit<E: de::Error>() -> E {
    E::custom("does not fit")
}

impl Writer<'_> {
    fn number(&mut self, node: usize, n: Number) -> bool {
        let plan = self.plan;
        match (&plan.nodes[node], n) {
            (Node::Int, Number::Int(n)) if i32::try_from(n).is_ok() => zigzag(n, &mut self.out),
            (Node::Long, Number::Int(n)) => zigzag(n, &mut self.out),
            (Node::Float, n) => self
                .out
                .extend_from_slice(&(n.as_f64() as f32).to_le_bytes()),
            (Node::Double, n) => self.out.extend_from_slice(&n.as_f64().to_le_bytes()),
            (Node::Union(branches), n) => {
                let Some((i, &b)) = branches.iter().enumerate().find(|(_, &b)| {
                    matches!(
                        (&plan.nodes[b], n),
                        (Node::Int, Number::Int(n)) if i32::try_from(n).is_ok()
                    ) || matches!(
                        (&plan.nodes[b], n),
                        (Node::Long, Number::Int(_)) | (Node::Float | Node::Double, _)
                    )
                }) else {
                    return false;
                };
                zigzag(i as i64, &mut self.out);
                return self.number(b, n);
            }
            _ => return false,
        }
        true
    }

    fn string(&mut self, node: usize, s: &str) -> bool {
        let plan = self.plan;
        let out = &mut self.out;
        match &plan.nodes[node] {
            Node::String => bytes(s.as_bytes(), out),
            Node::Uuid => match s.parse::<uuid::Uuid>() {
                Ok(uuid) => bytes(uuid.hyphenated().encode_lower(&mut [0; 36]).as_bytes(), out),
                Err(_) => return false,
            },
            Node::Bytes => match super::base64(s, "") {
                Ok(value) => bytes(&value, out),
                Err(_) => return false,
            },
            Node::Fixed(size) => match super::base64(s, "") {
                Ok(value) if value.len() == *size => out.extend_from_slice(&value),
                _ => return false,
            },
            Node::Enum(symbols) => match symbols.iter().position(|x| x == s) {
                Some(i) => zigzag(i as i64, out),
                None => return false,
            },
            Node::Union(branches) => {
                let start = out.len();
                for (i, &b) in branches.iter().enumerate() {
                    zigzag(i as i64, &mut self.out);
                    if self.string(b, s) {
                        return true;
                    }
                    self.out.truncate(start);
                }
                return false;
            }
            _ => return false,
        }
        true
    }

    /// The one branch of a union that an array or object can be; `None` when none or several
    /// can (only trying each could decide, which the tree writer does).
    fn branch(&mut self, node: usize, fits: fn(&Node) -> bool) -> Option<usize> {
        let plan = self.plan;
        let Node::Union(branches) = &plan.nodes[node] else {
            return Some(node);
        };
        let mut fitting = branches
            .iter()
            .enumerate()
            .filter(|(_, &b)| fits(&plan.nodes[b]));
        let (i, &b) = fitting.next()?;
        if fitting.next().is_some() {
            return None;
        }
        zigzag(i as i64, &mut self.out);
        Some(b)
    }

    /// Appends a block count before the items written since `start`, then the end marker.
    fn close_blocks(&mut self, start: usize, count: i64) {
        if count > 0 {
            let mut head = Vec::with_capacity(10);
            zigzag(count, &mut head);
            self.out.splice(start..start, head);
        }
        self.out.push(0);
    }

    fn record<'de, A: MapAccess<'de>>(&mut self, node: usize, mut map: A) -> Result<(), A::Error> {
        let plan = self.plan;
        let Node::Record(fields) = &plan.nodes[node] else {
            return Err(misfit());
        };
        let base = self.spans.len();
        self.spans.resize(base + fields.len(), None);
        let start = self.out.len();
        let mut next = 0;
        let mut in_order = true;
        while let Some(i) = map.next_key_seed(FieldName { fields, next })? {
            if self.spans[base + i].is_some() {
                return Err(misfit());
            }
            in_order &= i == next;
            next = i + 1;
            let from = self.out.len();
            map.next_value_seed(Value {
                w: self,
                node: fields[i].node,
            })?;
            self.spans[base + i] = Some((from, self.out.len()));
        }
        if in_order {
            for field in &fields[next..] {
                self.out
                    .extend_from_slice(field.default.as_deref().ok_or_else(misfit)?);
            }
        } else {
            let members = self.out.split_off(start);
            for (field, span) in fields.iter().zip(&self.spans[base..]) {
                match (span, &field.default) {
                    (Some((from, to)), _) => self
                        .out
                        .extend_from_slice(&members[from - start..to - start]),
                    (None, Some(default)) => self.out.extend_from_slice(default),
                    (None, None) => return Err(misfit()),
                }
            }
        }
        self.spans.truncate(base);
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Number {
    Int(i64),
    Big(u64),
    Float(f64),
}

impl Number {
    fn as_f64(self) -> f64 {
        match self {
            Number::Int(n) => n as f64,
            Number::Big(n) => n as f64,
            Number::Float(f) => f,
        }
    }
}

/// A value under plan node `node`, written as it is read.
struct Value<'w, 'p> {
    w: &'w mut Writer<'p>,
    node: usize,
}

impl<'de> DeserializeSeed<'de> for Value<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Value<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value of the Avro schema")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        let plan = self.w.plan;
        match &plan.nodes[self.node] {
            Node::Null => Ok(()),
            Node::Union(branches) => {
                let i = branches
                    .iter()
                    .position(|&b| matches!(plan.nodes[b], Node::Null))
                    .ok_or_else(misfit)?;
                zigzag(i as i64, &mut self.w.out);
                Ok(())
            }
            _ => Err(misfit()),
        }
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<(), E> {
        let plan = self.w.plan;
        let node = match &plan.nodes[self.node] {
            Node::Union(branches) => {
                let (i, &node) = branches
                    .iter()
                    .enumerate()
                    .find(|(_, &n)| matches!(plan.nodes[n], Node::Boolean))
                    .ok_or_else(misfit)?;
                zigzag(i as i64, &mut self.w.out);
                node
            }
            _ => self.node,
        };
        match plan.nodes[node] {
            Node::Boolean => {
                self.w.out.push(u8::from(b));
                Ok(())
            }
            _ => Err(misfit()),
        }
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<(), E> {
        self.w
            .number(self.node, Number::Int(n))
            .then_some(())
            .ok_or_else(misfit)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<(), E> {
        let n = i64::try_from(n).map_or(Number::Big(n), Number::Int);
        self.w.number(self.node, n).then_some(()).ok_or_else(misfit)
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<(), E> {
        self.w
            .number(self.node, Number::Float(n))
            .then_some(())
            .ok_or_else(misfit)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        self.w.string(self.node, s).then_some(()).ok_or_else(misfit)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let w = self.w;
        let node = w
            .branch(self.node, |n| matches!(n, Node::Array(_)))
            .ok_or_else(misfit)?;
        let Node::Array(items) = w.plan.nodes[node] else {
            return Err(misfit());
        };
        let start = w.out.len();
        let mut count = 0;
        while seq.next_element_seed(Value { w, node: items })?.is_some() {
            count += 1;
        }
        w.close_blocks(start, count);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let w = self.w;
        let node = w
            .branch(self.node, |n| matches!(n, Node::Record(_) | Node::Map(_)))
            .ok_or_else(misfit)?;
        let Node::Map(values) = w.plan.nodes[node] else {
            return w.record(node, map);
        };
        let start = w.out.len();
        let mut count = 0;
        while map.next_key_seed(MapKey { out: &mut w.out })?.is_some() {
            map.next_value_seed(Value { w, node: values })?;
            count += 1;
        }
        w.close_blocks(start, count);
        Ok(())
    }
}

/// A record member's name, read as the index of its field; `next` is tried first, since members
/// mostly come in the schema's order.
struct FieldName<'a> {
    fields: &'a [Field],
    next: usize,
}

impl<'de> DeserializeSeed<'de> for FieldName<'_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldName<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<usize, E> {
        if self.fields.get(self.next).is_some_and(|f| f.name == name) {
            return Ok(self.next);
        }
        self.fields
            .iter()
            .position(|f| f.name == name)
            .ok_or_else(misfit)
    }
}

/// A map's key, written as an Avro string.
struct MapKey<'a> {
    out: &'a mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for MapKey<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for MapKey<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<(), E> {
        bytes(key.as_bytes(), self.out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value as Json};

    use super::super::tests::ORDER;
    use super::super::AvroCodec;

    /// Both writers on `input`: the text writer's bytes, checked to decode as the tree writer's.
    fn both(codec: &AvroCodec, input: &Json) -> Option<Vec<u8>> {
        let text = codec.encode_text(input.to_string().as_bytes());
        let tree = codec.encode(input);
        if let Some(bytes) = &text {
            let tree = tree.expect("the tree writer takes what the text writer took");
            assert_eq!(codec.decode(bytes), codec.decode(&tree), "{input}");
        }
        text
    }

    #[test]
    fn writes_what_the_tree_writer_writes_in_any_member_order() {
        let codec = AvroCodec::compile(ORDER).unwrap();
        let in_order = r#"{"id":"o1","total":9.5,"note":"hi","tag":"AAE=",
            "items":[{"sku":"a","qty":2},{"sku":"b","qty":-70000}],"first":{"sku":"c","qty":1},
            "status":"PAID"}"#;
        let value: Json = serde_json::from_str(in_order).unwrap();
        let tree = codec.encode(&value).unwrap();
        assert_eq!(codec.encode_text(in_order.as_bytes()).unwrap(), tree);
        // `to_string` sorts the members: every field out of order, and items' too.
        assert_eq!(
            codec.encode_text(value.to_string().as_bytes()).unwrap(),
            tree
        );
        for input in [
            json!({"id":"o2","total":1,"tag":7,"items":[],"status":"NEW"}),
            json!({"status":"NEW","items":[],"tag":null,"total":-1.25e3,"id":""}),
            json!({"id":"o3","total":2,"tag":-9007199254740993i64,"items":[],"status":"NEW",
                "first":null,"note":null}),
        ] {
            let text = both(&codec, &input).expect("fits");
            assert_eq!(text, codec.encode(&input).unwrap(), "{input}");
        }
    }

    #[test]
    fn refuses_what_does_not_fit_and_leaves_it_to_the_tree_writer() {
        let codec = AvroCodec::compile(ORDER).unwrap();
        let fits = r#"{"id":"o","total":1,"tag":null,"items":[],"status":"NEW"}"#;
        assert!(codec.encode_text(fits.as_bytes()).is_some());
        for text in [
            r#"{"id":"o","total":"1","tag":null,"items":[],"status":"NEW"}"#,
            r#"{"id":"o","total":1,"tag":null,"items":[{"sku":"a","qty":1.5}],"status":"NEW"}"#,
            r#"{"id":"o","total":1,"tag":null,"items":[{"sku":"a","qty":2147483648}],"status":"NEW"}"#,
            r#"{"id":"o","total":1,"tag":null,"items":[],"status":"GONE"}"#,
            r#"{"id":"o","total":1,"tag":null,"items":[],"status":"NEW","extra":1}"#,
            r#"{"total":1,"tag":null,"items":[],"status":"NEW"}"#,
            r#"{"id":"o","total":1,"tag":true,"items":[],"status":"NEW"}"#,
            r#"{"id":"o","total":1,"tag":"not base64!","items":[],"status":"NEW"}"#,
            r#"{"id":"o","id":"p","total":1,"tag":null,"items":[],"status":"NEW"}"#,
            r#"{"id":"o","total":1,"tag":null,"items":[],"status":"NEW"} x"#,
            r#"{"id":"o","total":1,"tag":null,"items":[],"status":"NEW""#,
            r#"[]"#,
        ] {
            assert_eq!(codec.encode_text(text.as_bytes()), None, "{text}");
        }
        // A duplicate member is the tree's to judge: serde_json keeps the last one.
        let duplicate = r#"{"id":"o","id":"p","total":1,"tag":null,"items":[],"status":"NEW"}"#;
        assert!(codec
            .encode(&serde_json::from_str(duplicate).unwrap())
            .is_ok());
    }

    #[test]
    fn maps_logical_types_and_recursion() {
        let codec = AvroCodec::compile(
            r#"{"type":"record","name":"Node","fields":[
                {"name":"id","type":{"type":"string","logicalType":"uuid"}},
                {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
                {"name":"day","type":{"type":"int","logicalType":"date"}},
                {"name":"hash","type":{"type":"fixed","name":"H","size":2}},
                {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}},
                {"name":"ratio","type":"float"},
                {"name":"flag","type":["null","boolean"]},
                {"name":"labels","type":{"type":"map","values":"long"}},
                {"name":"next","type":["null","Node"],"default":null}]}"#,
        )
        .unwrap();
        let leaf = json!({"id":"67E55044-10B1-426F-9247-BB680E5FE0C8","at":1700000000000i64,
            "day":19000,"hash":"AAE=","price":"BNI=","ratio":0.5,"flag":true,
            "labels":{"b":2,"a":-1}});
        let mut node = leaf.clone();
        node["next"] = leaf.clone();
        node["labels"] = json!({});
        let bytes = both(&codec, &node).expect("fits");
        let back = codec.decode(&bytes).unwrap();
        assert_eq!(back["id"], "67e55044-10b1-426f-9247-bb680e5fe0c8");
        assert_eq!(back["next"]["labels"], json!({"a":-1,"b":2}));
        for (member, bad) in [
            ("id", json!("nope")),
            ("hash", json!("AAEC")),
            ("day", json!(1e3)),
            ("labels", json!({"a":"x"})),
        ] {
            let mut wrong = leaf.clone();
            wrong[member] = bad;
            assert_eq!(both(&codec, &wrong), None, "{member}");
        }
    }

    #[test]
    fn a_union_only_trying_could_decide_goes_to_the_tree_writer() {
        let codec = AvroCodec::compile(
            r#"[{"type":"record","name":"A","fields":[{"name":"a","type":"int"}]},
                {"type":"record","name":"B","fields":[{"name":"b","type":"int"}]},
                "string",{"type":"string","logicalType":"uuid"}]"#,
        )
        .unwrap();
        let b = json!({"b": 1});
        assert_eq!(both(&codec, &b), None);
        assert_eq!(codec.encode(&b).unwrap(), [2, 2]);
        // Strings are tried branch by branch, as the tree writer does: `string` comes first.
        let text = both(&codec, &json!("x")).unwrap();
        assert_eq!(text, [4, 2, b'x']);
    }
}
