//! Avro: plain JSON to Avro binary (validating on the way, with a JSON Pointer per failure) and
//! Avro binary back to plain JSON.
//!
//! Plain JSON, not Avro's JSON encoding: a union takes `null` or the first branch the value's
//! JSON type fits (no `{"type": value}` wrapper), `bytes` and `fixed` take base64 strings, an
//! enum its symbol. Decoding writes the same shapes, so a round trip gives back the input.

use std::collections::HashMap;
use std::fmt::Write;

use apache_avro::schema::{Name, RecordSchema};
use apache_avro::types::Value;
use apache_avro::Schema;
use base64::Engine;
use serde_json::Value as Json;

use super::Failure;

mod text;

/// A parsed Avro schema with its named types, for references.
#[derive(Debug)]
pub struct AvroCodec {
    schema: Schema,
    named: HashMap<String, Schema>,
    plan: text::Plan,
}

impl AvroCodec {
    /// Parses an `.avsc` text.
    pub fn compile(text: &str) -> Result<Self, String> {
        let schema = Schema::parse_str(text).map_err(|e| e.to_string())?;
        let mut named = HashMap::new();
        collect(&schema, &mut named);
        let mut codec = Self {
            schema,
            named,
            plan: text::Plan::default(),
        };
        codec.plan = text::Plan::of(&codec);
        Ok(codec)
    }

    /// Encodes a JSON text that fits the schema as it is read, with no JSON tree built; `None`
    /// when it is not JSON or does not fit, or fits only in a way that reading it once cannot
    /// decide — then [`encode`](Self::encode) on the parsed value gives the bytes or the
    /// failures.
    pub fn encode_text(&self, text: &[u8]) -> Option<Vec<u8>> {
        self.plan.encode(text)
    }

    /// Encodes `value` as an Avro datum, or says where it does not fit the schema. The datum is
    /// written while the value is checked, in one walk: no intermediate Avro value, and no
    /// second validation pass (apache-avro's writer validates again and resolves the schema's
    /// names on every call, which cost three times the whole encoding).
    pub fn encode(&self, value: &Json) -> Result<Vec<u8>, Vec<Failure>> {
        let mut out = Vec::with_capacity(256);
        let mut pointer = String::new();
        self.write(&self.schema, value, &mut pointer, 0, &mut out)?;
        Ok(out)
    }

    /// Decodes an Avro datum to plain JSON.
    pub fn decode(&self, mut bytes: &[u8]) -> Result<Json, String> {
        let value = apache_avro::from_avro_datum(&self.schema, &mut bytes, None)
            .map_err(|e| e.to_string())?;
        Ok(to_json(value))
    }

    fn resolve<'a>(&'a self, schema: &'a Schema) -> &'a Schema {
        match schema {
            Schema::Ref { name } => self.named.get(&key(name)).unwrap_or(schema),
            other => other,
        }
    }

    /// Appends `value`'s binary encoding under `schema` to `out`, or every place it does not fit
    /// (then `out` holds garbage).
    fn write(
        &self,
        schema: &Schema,
        value: &Json,
        pointer: &mut String,
        depth: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), Vec<Failure>> {
        let fail = |pointer: &str, detail: String| {
            Err(vec![Failure {
                pointer: pointer.to_string(),
                detail,
            }])
        };
        if depth > 128 {
            return fail(pointer, "is nested too deeply".into());
        }
        let schema = self.resolve(schema);
        let expected = |what: &str| format!("{} is not {what}", kind_of(value));
        let int = |v: &Json| v.as_i64().and_then(|n| i32::try_from(n).ok());
        match (schema, value) {
            (Schema::Null, Json::Null) => {}
            (Schema::Boolean, Json::Bool(b)) => out.push(u8::from(*b)),
            (Schema::Int | Schema::Date | Schema::TimeMillis, v) if int(v).is_some() => {
                zigzag(i64::from(int(v).unwrap_or_default()), out)
            }
            (schema, Json::Number(n)) if is_long(schema) && n.as_i64().is_some() => {
                zigzag(n.as_i64().unwrap_or_default(), out)
            }
            (Schema::Float, Json::Number(n)) => {
                out.extend_from_slice(&(n.as_f64().unwrap_or_default() as f32).to_le_bytes())
            }
            (Schema::Double, Json::Number(n)) => {
                out.extend_from_slice(&n.as_f64().unwrap_or_default().to_le_bytes())
            }
            (Schema::String, Json::String(s)) => bytes(s.as_bytes(), out),
            (Schema::Uuid, Json::String(s)) => match s.parse::<uuid::Uuid>() {
                Ok(uuid) => bytes(uuid.to_string().as_bytes(), out),
                Err(_) => return fail(pointer, format!("`{s}` is not a UUID")),
            },
            (Schema::Bytes, Json::String(s)) => bytes(&base64(s, pointer)?, out),
            (Schema::Decimal(decimal), Json::String(s)) => {
                let value = base64(s, pointer)?;
                match self.resolve(&decimal.inner) {
                    Schema::Fixed(fixed) if value.len() != fixed.size => {
                        return fail(
                            pointer,
                            format!(
                                "is {} bytes; the decimal's fixed `{}` is {}",
                                value.len(),
                                fixed.name,
                                fixed.size
                            ),
                        )
                    }
                    Schema::Fixed(_) => out.extend_from_slice(&value),
                    _ => bytes(&value, out),
                }
            }
            (Schema::Fixed(fixed), Json::String(s)) => {
                let value = base64(s, pointer)?;
                if value.len() != fixed.size {
                    return fail(
                        pointer,
                        format!(
                            "is {} bytes; the fixed `{}` is {}",
                            value.len(),
                            fixed.name,
                            fixed.size
                        ),
                    );
                }
                out.extend_from_slice(&value);
            }
            (Schema::Enum(e), Json::String(s)) => match e.symbols.iter().position(|x| x == s) {
                Some(i) => zigzag(i as i64, out),
                None => {
                    return fail(
                        pointer,
                        format!(
                            "`{s}` is not a symbol of enum `{}` ({})",
                            e.name,
                            e.symbols.join(", ")
                        ),
                    )
                }
            },
            (Schema::Array(array), Json::Array(items)) => {
                if !items.is_empty() {
                    zigzag(items.len() as i64, out);
                }
                let mut failures = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let len = pointer.len();
                    let _ = write!(pointer, "/{i}");
                    if let Err(f) = self.write(&array.items, item, pointer, depth + 1, out) {
                        failures.extend(f);
                    }
                    pointer.truncate(len);
                }
                out.push(0);
                if !failures.is_empty() {
                    return Err(failures);
                }
            }
            (Schema::Map(map), Json::Object(members)) => {
                if !members.is_empty() {
                    zigzag(members.len() as i64, out);
                }
                let mut failures = Vec::new();
                for (k, v) in members {
                    let len = pointer.len();
                    push_token(pointer, k);
                    bytes(k.as_bytes(), out);
                    if let Err(f) = self.write(&map.types, v, pointer, depth + 1, out) {
                        failures.extend(f);
                    }
                    pointer.truncate(len);
                }
                out.push(0);
                if !failures.is_empty() {
                    return Err(failures);
                }
            }
            (Schema::Record(record), Json::Object(members)) => {
                self.record(record, members, pointer, depth, out)?
            }
            (Schema::Union(union), v) => {
                let variants = union.variants();
                let null = variants.iter().position(|s| matches!(s, Schema::Null));
                if let (Json::Null, Some(i)) = (v, null) {
                    zigzag(i as i64, out);
                    return Ok(());
                }
                let fits = variants
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| fits(self.resolve(s), v));
                let start = out.len();
                let mut last = None;
                for (i, branch) in fits {
                    out.truncate(start);
                    zigzag(i as i64, out);
                    match self.write(branch, v, pointer, depth + 1, out) {
                        Ok(()) => return Ok(()),
                        Err(f) => last = Some(f),
                    }
                }
                return match last {
                    Some(failures) => Err(failures),
                    None => fail(
                        pointer,
                        format!(
                            "{} fits no branch of the union [{}]",
                            kind_of(v),
                            variants
                                .iter()
                                .map(|s| self.describe(s))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                };
            }
            (schema, _) => return fail(pointer, expected(&self.describe(schema))),
        }
        Ok(())
    }

    /// A record's fields in schema order: each member, or the field's default where the member
    /// is absent; members the record lacks are failures.
    fn record(
        &self,
        record: &RecordSchema,
        members: &serde_json::Map<String, Json>,
        pointer: &mut String,
        depth: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), Vec<Failure>> {
        let mut failures = Vec::new();
        let mut present = 0;
        for field in &record.fields {
            match members.get(&field.name) {
                Some(v) => {
                    present += 1;
                    let len = pointer.len();
                    push_token(pointer, &field.name);
                    if let Err(f) = self.write(&field.schema, v, pointer, depth + 1, out) {
                        failures.extend(f);
                    }
                    pointer.truncate(len);
                }
                None => match &field.default {
                    Some(default) => match self.default(&field.schema, default) {
                        Some(bytes) => out.extend_from_slice(&bytes),
                        None => failures.push(Failure {
                            pointer: pointer.clone(),
                            detail: format!(
                                "the default of `{}` does not fit its schema",
                                field.name
                            ),
                        }),
                    },
                    None => failures.push(Failure {
                        pointer: pointer.clone(),
                        detail: format!(
                            "`{}` is a required member (record `{}`)",
                            field.name, record.name
                        ),
                    }),
                },
            }
        }
        // Every member named a field unless there are more members than fields found.
        if members.len() > present {
            for name in members.keys() {
                if !record.lookup.contains_key(name) {
                    let len = pointer.len();
                    push_token(pointer, name);
                    failures.push(Failure {
                        pointer: pointer.clone(),
                        detail: format!("`{name}` is not a field of record `{}`", record.name),
                    });
                    pointer.truncate(len);
                }
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }

    /// A field's default, encoded: a union's default is a value of its first branch. `None`
    /// when it does not fit.
    fn default(&self, schema: &Schema, default: &Json) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let schema = match self.resolve(schema) {
            Schema::Union(u) => {
                out.push(0);
                u.variants().first().unwrap_or(schema)
            }
            s => s,
        };
        self.write(schema, default, &mut String::new(), 1, &mut out)
            .ok()?;
        Some(out)
    }

    fn describe(&self, schema: &Schema) -> String {
        match self.resolve(schema) {
            Schema::Record(r) => format!("record `{}`", r.name),
            Schema::Enum(e) => format!("enum `{}`", e.name),
            Schema::Fixed(f) => format!("fixed `{}` (base64)", f.name),
            Schema::Bytes => "bytes (base64)".into(),
            Schema::Int => "an int (32-bit)".into(),
            Schema::Long => "a long (64-bit integer)".into(),
            other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)).to_lowercase(),
        }
    }
}

/// Whether `schema` is written as a `long`: the type itself and its logical types.
fn is_long(schema: &Schema) -> bool {
    matches!(
        schema,
        Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos
    )
}

/// Whether a JSON value's type can be a value of `schema` (before its contents are checked).
fn fits(schema: &Schema, value: &Json) -> bool {
    match value {
        Json::Null => matches!(schema, Schema::Null),
        Json::Bool(_) => matches!(schema, Schema::Boolean),
        Json::Number(n) => match schema {
            Schema::Int | Schema::Date | Schema::TimeMillis => {
                n.as_i64().is_some_and(|n| i32::try_from(n).is_ok())
            }
            schema if is_long(schema) => n.as_i64().is_some(),
            Schema::Float | Schema::Double => true,
            _ => false,
        },
        Json::String(_) => matches!(
            schema,
            Schema::String
                | Schema::Bytes
                | Schema::Fixed(_)
                | Schema::Enum(_)
                | Schema::Uuid
                | Schema::Decimal(_)
        ),
        Json::Array(_) => matches!(schema, Schema::Array(_)),
        Json::Object(_) => matches!(schema, Schema::Record(_) | Schema::Map(_)),
    }
}

/// Avro's `int` and `long`: zigzag, then a little-endian base-128 varint.
fn zigzag(n: i64, out: &mut Vec<u8>) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Avro's `bytes` and `string`: the length as a `long`, then the bytes.
fn bytes(value: &[u8], out: &mut Vec<u8>) {
    zigzag(value.len() as i64, out);
    out.extend_from_slice(value);
}

fn kind_of(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn base64(text: &str, pointer: &str) -> Result<Vec<u8>, Vec<Failure>> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| {
            vec![Failure {
                pointer: pointer.to_string(),
                detail: format!("bytes are a base64 string: {e}"),
            }]
        })
}

/// Appends `/token` to a JSON Pointer, escaped per RFC 6901.
pub(super) fn push_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    pointer.push_str(&token.replace('~', "~0").replace('/', "~1"));
}

fn key(name: &Name) -> String {
    name.fullname(None)
}

fn collect(schema: &Schema, named: &mut HashMap<String, Schema>) {
    match schema {
        Schema::Record(r) => {
            named.insert(key(&r.name), schema.clone());
            for field in &r.fields {
                collect(&field.schema, named);
            }
        }
        Schema::Enum(e) => {
            named.insert(key(&e.name), schema.clone());
        }
        Schema::Fixed(f) => {
            named.insert(key(&f.name), schema.clone());
        }
        Schema::Array(a) => collect(&a.items, named),
        Schema::Map(m) => collect(&m.types, named),
        Schema::Union(u) => u.variants().iter().for_each(|s| collect(s, named)),
        _ => {}
    }
}

fn to_json(value: Value) -> Json {
    let b64 = |b: &[u8]| Json::String(base64::engine::general_purpose::STANDARD.encode(b));
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(b),
        Value::Int(n) | Value::Date(n) | Value::TimeMillis(n) => n.into(),
        Value::Long(n)
        | Value::TimeMicros(n)
        | Value::TimestampMillis(n)
        | Value::TimestampMicros(n)
        | Value::TimestampNanos(n)
        | Value::LocalTimestampMillis(n)
        | Value::LocalTimestampMicros(n)
        | Value::LocalTimestampNanos(n) => n.into(),
        Value::Float(f) => {
            serde_json::Number::from_f64(f64::from(f)).map_or(Json::Null, Json::Number)
        }
        Value::Double(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        Value::Bytes(b) | Value::Fixed(_, b) => b64(&b),
        Value::String(s) | Value::Enum(_, s) => Json::String(s),
        Value::Uuid(u) => Json::String(u.to_string()),
        Value::Decimal(d) => Vec::<u8>::try_from(d).map_or(Json::Null, |b| b64(&b)),
        Value::BigDecimal(d) => Json::String(d.to_string()),
        Value::Duration(d) => b64(&<[u8; 12]>::from(d)),
        Value::Union(_, v) => to_json(*v),
        Value::Array(items) => Json::Array(items.into_iter().map(to_json).collect()),
        Value::Map(members) => {
            Json::Object(members.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
        Value::Record(fields) => {
            Json::Object(fields.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An order with a union of three, a nested record referred to again, an enum and defaults;
    /// the text writer's tests use it too.
    pub(super) const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
        {"name":"id","type":"string"},
        {"name":"total","type":"double"},
        {"name":"note","type":["null","string"],"default":null},
        {"name":"tag","type":["null","bytes","long"]},
        {"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[
            {"name":"sku","type":"string"},{"name":"qty","type":"int"}]}}},
        {"name":"first","type":["null","Item"],"default":null},
        {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}}]}"#;

    #[test]
    fn plain_json_round_trips_through_avro() {
        let codec = AvroCodec::compile(ORDER).unwrap();
        let input = json!({"id":"o1","total":9.5,"note":"hi","tag":"AAE=",
            "items":[{"sku":"a","qty":2}],"first":{"sku":"b","qty":1},"status":"PAID"});
        let bytes = codec.encode(&input).unwrap();
        let back = codec.decode(&bytes).unwrap();
        assert_eq!(back, input);
        let defaults = codec
            .encode(&json!({"id":"o2","total":1,"tag":7,"items":[],"status":"NEW"}))
            .unwrap();
        let back = codec.decode(&defaults).unwrap();
        assert_eq!(back["note"], Json::Null);
        assert_eq!(back["tag"], 7);
    }

    /// The hand-written encoder writes exactly what apache-avro's writer writes.
    #[test]
    fn bytes_match_apache_avros_writer() {
        let codec = AvroCodec::compile(ORDER).unwrap();
        let input = json!({"id":"o1","total":9.5,"tag":-300,
            "items":[{"sku":"a","qty":2},{"sku":"bb","qty":-70000}],"status":"PAID"});
        let item = |sku: &str, qty| {
            Value::Record(vec![
                ("sku".into(), Value::String(sku.into())),
                ("qty".into(), Value::Int(qty)),
            ])
        };
        let expected = Value::Record(vec![
            ("id".into(), Value::String("o1".into())),
            ("total".into(), Value::Double(9.5)),
            ("note".into(), Value::Union(0, Box::new(Value::Null))),
            ("tag".into(), Value::Union(2, Box::new(Value::Long(-300)))),
            (
                "items".into(),
                Value::Array(vec![item("a", 2), item("bb", -70000)]),
            ),
            ("first".into(), Value::Union(0, Box::new(Value::Null))),
            ("status".into(), Value::Enum(1, "PAID".into())),
        ]);
        let theirs = apache_avro::to_avro_datum(&codec.schema, expected).unwrap();
        assert_eq!(codec.encode(&input).unwrap(), theirs);
    }

    #[test]
    fn failures_point_at_members() {
        let codec = AvroCodec::compile(ORDER).unwrap();
        let failures = codec
            .encode(
                &json!({"id":"o1","total":"x","tag":null,"items":[{"sku":"a","qty":1.5}],
                "status":"GONE","extra":1}),
            )
            .unwrap_err();
        let pointers: Vec<_> = failures.iter().map(|f| f.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/total", "/items/0/qty", "/status", "/extra"],
            "{failures:?}"
        );
        let missing = codec.encode(&json!({"total":1})).unwrap_err();
        assert_eq!(missing[0].pointer, "");
        assert!(missing[0].detail.contains("`id`"), "{missing:?}");
    }
}
