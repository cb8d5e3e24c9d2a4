//! What delivery reads of the policy a reload replaces: the schema decoder and the topic map.
//! Each delivery reads the current one; a reload swaps them without stopping anything.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use crate::policy::topics::TopicMap;
use crate::schemas::SchemaStore;

/// The schema decoder and topic map in force.
pub struct Views {
    schemas: ArcSwap<SchemaStore>,
    topics: ArcSwap<TopicMap>,
}

impl Views {
    /// Views of `schemas` and `topics`.
    pub fn new(schemas: Arc<SchemaStore>, topics: Arc<TopicMap>) -> Self {
        Self {
            schemas: ArcSwap::new(schemas),
            topics: ArcSwap::new(topics),
        }
    }

    /// Replaces both (a reload).
    pub fn set(&self, schemas: Arc<SchemaStore>, topics: Arc<TopicMap>) {
        self.schemas.store(schemas);
        self.topics.store(topics);
    }

    /// The schema decoder in force (held across the awaits of decoding).
    pub fn schemas(&self) -> Arc<SchemaStore> {
        self.schemas.load_full()
    }

    /// The topic map in force.
    pub fn topics(&self) -> Guard<Arc<TopicMap>> {
        self.topics.load()
    }
}
