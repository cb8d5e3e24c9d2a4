//! The subscribe direction: webhook push delivery of consumed events, and Server-Sent Events.

pub mod registry;
pub mod spec;
pub mod sse;
pub mod status;
pub mod webhook;
mod whole;

pub use registry::{Registry, RegistryError, SubscriptionView};
pub use spec::SubscriptionSpec;
