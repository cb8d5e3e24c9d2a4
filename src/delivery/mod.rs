//! The subscribe direction: webhook push delivery of consumed events, and Server-Sent Events.

pub mod registry;
pub mod sse;
pub mod status;
mod views;
pub mod webhook;

pub use registry::{Registry, RegistryError, SubscriptionView};
pub use views::Views;
