//! Pure decisions over events and configuration: no I/O, no clocks, no broker. A floor above
//! `event` and `config` that `delivery` and `api` consult.
//!
//! - [`schema`]: schema rules (JSON Schema, Avro, Protobuf) checked and applied at publish, and
//!   the decoding of encoded events for delivery.

pub mod schema;
