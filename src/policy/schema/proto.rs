//! Protobuf: a `.proto` text compiled in memory (pure Rust, `protox`), JSON in its canonical
//! mapping to binary and back (`prost-reflect`'s serde support).

use prost::Message;
use prost_reflect::{DynamicMessage, FileDescriptor, MessageDescriptor};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use serde_json::Value as Json;

use super::avro::push_token;
use super::Failure;

/// One message of a compiled `.proto` file.
#[derive(Debug, Clone)]
pub struct ProtoCodec {
    file: FileDescriptor,
    message: MessageDescriptor,
    indexes: Vec<i32>,
}

/// The one file being compiled, served from memory.
struct Source {
    name: String,
    text: String,
}

impl FileResolver for Source {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == self.name {
            File::from_source(name, &self.text)
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

impl ProtoCodec {
    /// Compiles `text` (named `name` in errors and imports) and picks `message`, or the file's
    /// first message when `None` (what Confluent serializers use for a subject's schema). The
    /// file may import the `google/protobuf/*.proto` well-known types and nothing else.
    pub fn compile(name: &str, text: &str, message: Option<&str>) -> Result<Self, String> {
        let mut resolver = ChainFileResolver::new();
        resolver.add(Source {
            name: name.to_string(),
            text: text.to_string(),
        });
        resolver.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.include_imports(true);
        compiler.open_file(name).map_err(|e| e.to_string())?;
        let pool = compiler.descriptor_pool();
        let file = pool
            .get_file_by_name(name)
            .ok_or_else(|| format!("{name} compiled to no file"))?;
        let message = match message {
            Some(m) => pool
                .get_message_by_name(m)
                .ok_or_else(|| format!("{name} has no message `{m}`"))?,
            None => file
                .messages()
                .next()
                .ok_or_else(|| format!("{name} has no message"))?,
        };
        let indexes = indexes_of(&file, &message).unwrap_or_else(|| vec![0]);
        Ok(Self {
            file,
            message,
            indexes,
        })
    }

    /// The message's path in its file: Confluent's message-index array.
    pub fn indexes(&self) -> &[i32] {
        &self.indexes
    }

    /// The message's full name.
    pub fn message_name(&self) -> &str {
        self.message.full_name()
    }

    /// Encodes canonical-JSON `value` as the message, or says where it does not fit.
    pub fn encode(&self, value: &Json) -> Result<Vec<u8>, Vec<Failure>> {
        let mut track = serde_path_to_error::Track::new();
        let tracked = serde_path_to_error::Deserializer::new(value, &mut track);
        match DynamicMessage::deserialize(self.message.clone(), tracked) {
            Ok(message) => Ok(message.encode_to_vec()),
            Err(error) => {
                let mut pointer = String::new();
                for segment in track.path().iter() {
                    match segment {
                        serde_path_to_error::Segment::Seq { index } => {
                            pointer.push_str(&format!("/{index}"))
                        }
                        serde_path_to_error::Segment::Map { key } => push_token(&mut pointer, key),
                        serde_path_to_error::Segment::Enum { variant } => {
                            push_token(&mut pointer, variant)
                        }
                        serde_path_to_error::Segment::Unknown => {}
                    }
                }
                Err(vec![Failure {
                    pointer,
                    detail: format!("does not fit message `{}`: {error}", self.message_name()),
                }])
            }
        }
    }

    /// Decodes binary `bytes` as the message at `indexes` in this file (this codec's message
    /// when `None`) into canonical JSON.
    pub fn decode(&self, bytes: &[u8], indexes: Option<&[i32]>) -> Result<Json, String> {
        let message = match indexes {
            Some(indexes) => message_at(&self.file, indexes)
                .ok_or_else(|| format!("no message at index {indexes:?}"))?,
            None => self.message.clone(),
        };
        let decoded = DynamicMessage::decode(message, bytes).map_err(|e| e.to_string())?;
        serde_json::to_value(&decoded).map_err(|e| e.to_string())
    }
}

fn message_at(file: &FileDescriptor, indexes: &[i32]) -> Option<MessageDescriptor> {
    let (first, rest) = indexes.split_first()?;
    let mut message = file.messages().nth(usize::try_from(*first).ok()?)?;
    for i in rest {
        let child = message.child_messages().nth(usize::try_from(*i).ok()?)?;
        message = child;
    }
    Some(message)
}

fn indexes_of(file: &FileDescriptor, target: &MessageDescriptor) -> Option<Vec<i32>> {
    fn search(
        messages: impl Iterator<Item = MessageDescriptor>,
        target: &MessageDescriptor,
        path: &mut Vec<i32>,
    ) -> bool {
        for (i, message) in messages.enumerate() {
            path.push(i as i32);
            if message.full_name() == target.full_name()
                || search(message.child_messages(), target, path)
            {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = Vec::new();
    search(file.messages(), target, &mut path).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ORDER: &str = r#"syntax = "proto3";
package shop.v1;
import "google/protobuf/timestamp.proto";
message Order {
  string id = 1;
  double total = 2;
  repeated Line lines = 3;
  google.protobuf.Timestamp at = 4;
  message Line { string sku = 1; int64 qty = 2; }
}
message Refund { string order_id = 1; }
"#;

    #[test]
    fn canonical_json_round_trips() {
        let codec = ProtoCodec::compile("order.proto", ORDER, Some("shop.v1.Order")).unwrap();
        assert_eq!(codec.indexes(), [0]);
        let input = json!({"id": "o1", "total": 9.5, "lines": [{"sku": "a", "qty": "2"}],
            "at": "2026-01-01T00:00:00Z"});
        let bytes = codec.encode(&input).unwrap();
        assert_eq!(codec.decode(&bytes, None).unwrap(), input);
        let refund = ProtoCodec::compile("order.proto", ORDER, Some("shop.v1.Refund")).unwrap();
        assert_eq!(refund.indexes(), [1]);
        let line = ProtoCodec::compile("order.proto", ORDER, Some("shop.v1.Order.Line")).unwrap();
        assert_eq!(line.indexes(), [0, 0]);
        let bytes = line.encode(&json!({"sku": "x"})).unwrap();
        assert_eq!(
            codec.decode(&bytes, Some(&[0, 0])).unwrap(),
            json!({"sku": "x"})
        );
    }

    #[test]
    fn failures_point_at_members() {
        let codec = ProtoCodec::compile("order.proto", ORDER, None).unwrap();
        let failures = codec
            .encode(&json!({"id": "o1", "lines": [{"sku": "a", "qty": "many"}]}))
            .unwrap_err();
        assert_eq!(failures[0].pointer, "/lines/0/qty", "{failures:?}");
        let unknown = codec.encode(&json!({"nope": 1})).unwrap_err();
        assert_eq!(unknown[0].pointer, "", "{unknown:?}");
        assert!(unknown[0].detail.contains("nope"), "{unknown:?}");
        assert!(ProtoCodec::compile("bad.proto", "message {", None).is_err());
        assert!(ProtoCodec::compile("order.proto", ORDER, Some("shop.v1.Nope")).is_err());
    }
}
