//! The handle the layers above hold for one configured broker: its adapter and the pipeline
//! that batches publishes to it.

use std::sync::Arc;

use super::Pipeline;
use crate::backend::Backend;

/// One configured broker.
pub struct Broker {
    /// Name from the config; the `{broker}` path segment.
    pub name: String,
    /// The adapter.
    pub backend: Arc<dyn Backend>,
    /// Its publish pipeline (and its spool, if configured).
    pub pipeline: Pipeline,
}
