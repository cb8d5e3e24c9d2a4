//! Integration tests against real brokers, one module per concern; `common` holds the helpers
//! (sidebus started on port 0, broker clients, receivers, deploy tooling).

#[path = "../common/mod.rs"]
mod common;

mod amqp_tls;
mod audit;
mod backpressure;
mod cli;
mod compression;
mod consume_amqp;
mod consume_kafka;
mod deploy_compose;
mod deploy_helm;
mod deploy_helm_config;
mod deploy_image;
mod deploy_receiver;
mod filters;
mod fuzz_corpus;
mod handshake;
mod memory_bounds;
mod metrics;
mod nats_tls;
mod openapi_routes;
mod openapi_spec;
mod otlp;
mod outage;
mod overload;
mod principals;
mod publish_amqp;
mod publish_kafka;
mod publish_memory;
mod publish_nats;
mod quotas;
mod reload;
mod schemas;
mod security;
mod shutdown;
mod spool;
mod sse;
mod sse_browser;
mod sse_resume;
mod topic_mapping;
mod topics;
mod webhook_brokers;
mod webhook_kafka;
mod webhook_kill;
mod webhook_memory;
mod webhook_nats;
mod webhook_order;
mod webhook_tls;
mod wildcard;
