//! The handle the layers above hold for one configured broker: its adapter and the pipeline
//! that batches publishes to it.

use std::sync::Arc;

use super::Pipeline;
use crate::backend::Backend;
use crate::spool::Spool;

/// One configured broker.
pub struct Broker {
    /// Name from the config; the `{broker}` path segment.
    pub name: String,
    /// The adapter.
    pub backend: Arc<dyn Backend>,
    /// Its publish pipeline.
    pub pipeline: Pipeline,
    /// Where publishes go while the broker cannot take them, if configured.
    pub spool: Option<Arc<Spool>>,
}
