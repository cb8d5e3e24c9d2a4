//! Pure decisions over events and configuration: no I/O, no clocks, no broker. A floor above
//! `event` and `config` that `delivery` and `api` consult.
//!
//! - [`access`]: principals — whose token a request carries and what it may do.
//! - [`schema`]: schema rules (JSON Schema, Avro, Protobuf) checked and applied at publish, and
//!   the decoding of encoded events for delivery.
//! - [`cesql`]: CloudEvents SQL (CESQL) v1.0 expressions, parsed once and evaluated per event.
//! - [`filter`]: the CloudEvents Subscriptions API filter dialects (`exact`, `prefix`,
//!   `suffix`, `all`, `any`, `not`, `sql`) as a serde type for subscriptions.
//! - [`topics`]: topic mapping — logical names, physical names, shadows and prefixes.

pub mod access;
mod attribute;
pub mod cesql;
pub mod filter;
pub mod schema;
pub mod topics;
