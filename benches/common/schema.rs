//! The order event the schema benchmarks publish, and its schema in each format: a realistic
//! shape (nested objects, an array of line items, an enum, a pattern) rather than one string, so
//! a validator walks as many members as a real event makes it walk.

use serde_json::{json, Value};

/// The order as a JSON Schema (draft 2020-12).
pub const ORDER_JSON_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["order_id", "customer", "currency", "total", "placed_at", "items", "shipping"],
  "properties": {
    "order_id": {"type": "string", "minLength": 1, "maxLength": 64},
    "customer": {
      "type": "object",
      "required": ["id", "email", "tier"],
      "properties": {
        "id": {"type": "string"},
        "email": {"type": "string", "maxLength": 254},
        "tier": {"enum": ["standard", "silver", "gold"]}
      }
    },
    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
    "total": {"type": "number", "minimum": 0},
    "placed_at": {"type": "string"},
    "items": {
      "type": "array",
      "minItems": 1,
      "maxItems": 100,
      "items": {
        "type": "object",
        "required": ["sku", "qty", "price"],
        "properties": {
          "sku": {"type": "string"},
          "qty": {"type": "integer", "minimum": 1},
          "price": {"type": "number", "minimum": 0}
        }
      }
    },
    "shipping": {
      "type": "object",
      "required": ["street", "city", "postcode", "country"],
      "properties": {
        "street": {"type": "string"},
        "city": {"type": "string"},
        "postcode": {"type": "string"},
        "country": {"type": "string", "minLength": 2, "maxLength": 2}
      }
    },
    "note": {"type": "string"}
  }
}"#;

/// The same order as an Avro record.
pub const ORDER_AVSC: &str = r#"{
  "type": "record", "name": "Order", "namespace": "bench",
  "fields": [
    {"name": "order_id", "type": "string"},
    {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [
      {"name": "id", "type": "string"},
      {"name": "email", "type": "string"},
      {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["standard", "silver", "gold"]}}
    ]}},
    {"name": "currency", "type": "string"},
    {"name": "total", "type": "double"},
    {"name": "placed_at", "type": "string"},
    {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "Item", "fields": [
      {"name": "sku", "type": "string"},
      {"name": "qty", "type": "int"},
      {"name": "price", "type": "double"}
    ]}}},
    {"name": "shipping", "type": {"type": "record", "name": "Address", "fields": [
      {"name": "street", "type": "string"},
      {"name": "city", "type": "string"},
      {"name": "postcode", "type": "string"},
      {"name": "country", "type": "string"}
    ]}},
    {"name": "note", "type": ["null", "string"], "default": null}
  ]
}"#;

/// The same order as a Protobuf message, `bench.Order`.
#[allow(dead_code)]
pub const ORDER_PROTO: &str = r#"syntax = "proto3";
package bench;
message Order {
  string order_id = 1;
  Customer customer = 2;
  string currency = 3;
  double total = 4;
  string placed_at = 5;
  repeated Item items = 6;
  Address shipping = 7;
  string note = 8;
}
message Customer { string id = 1; string email = 2; Tier tier = 3; }
enum Tier { standard = 0; silver = 1; gold = 2; }
message Item { string sku = 1; int32 qty = 2; double price = 3; }
message Address { string street = 1; string city = 2; string postcode = 3; string country = 4; }
"#;

/// An order of about `size` bytes of JSON: eight line items, and a note that pads it to `size`
/// where the rest is smaller.
pub fn order(size: usize) -> Value {
    let items: Vec<Value> = (0..8)
        .map(|i| json!({"sku": format!("SKU-{i:05}"), "qty": i + 1, "price": 19.99 + i as f64}))
        .collect();
    let mut order = json!({
        "order_id": "ord-0001234567",
        "customer": {"id": "cust-000042", "email": "jane.doe@example.com", "tier": "gold"},
        "currency": "EUR",
        "total": 459.92,
        "placed_at": "2026-05-01T12:34:56.789Z",
        "items": items,
        "shipping": {"street": "Hauptstrasse 1", "city": "Berlin", "postcode": "10115", "country": "DE"},
        "note": "",
    });
    let base = order.to_string().len();
    order["note"] = Value::String("x".repeat(size.saturating_sub(base)));
    order
}
