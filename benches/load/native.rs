//! The brokers' own clients, publishing straight to the broker for the native phase.

use std::sync::Arc;

use bytes::Bytes;

use crate::ops::{Op, OpError};
use crate::{EVENT_TYPE, OP_TIMEOUT, SOURCE};

/// A broker's own client, publishing what sidebus would put on the broker for the same event:
/// the payload plus CloudEvents binary-mode attribute headers.
pub(crate) enum Native {
    Kafka {
        producer: rdkafka::producer::FutureProducer,
        topic: String,
    },
    Nats {
        jetstream: async_nats::jetstream::Context,
        subject: String,
    },
    Amqp {
        channel: lapin::Channel,
        exchange: String,
    },
}

impl Native {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Native::Kafka { .. } => "rdkafka FutureProducer, acks=all, idempotent",
            Native::Nats { .. } => "async-nats JetStream publish + ack, Nats-Msg-Id",
            Native::Amqp { .. } => "lapin, publisher confirms, persistent, mandatory",
        }
    }

    /// Publishes one event and waits for the broker's acknowledgement.
    async fn publish(&self, payload: &Bytes) -> Result<(), OpError> {
        let id = uuid::Uuid::now_v7().to_string();
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let attributes = [
            ("specversion", "1.0"),
            ("id", id.as_str()),
            ("source", SOURCE),
            ("type", EVENT_TYPE),
            ("time", time.as_str()),
        ];
        match self {
            Native::Kafka { producer, topic } => {
                use rdkafka::message::{Header, OwnedHeaders};
                let mut headers = OwnedHeaders::new_with_capacity(attributes.len() + 1);
                for (name, value) in attributes {
                    headers = headers.insert(Header {
                        key: &format!("ce_{name}"),
                        value: Some(value),
                    });
                }
                headers = headers.insert(Header {
                    key: "content-type",
                    value: Some("application/json"),
                });
                let record = rdkafka::producer::FutureRecord::<(), [u8]>::to(topic)
                    .payload(&payload[..])
                    .headers(headers);
                producer
                    .send(record, OP_TIMEOUT)
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| OpError::failed(format!("kafka: {e}")))
            }
            Native::Nats { jetstream, subject } => {
                let mut headers = async_nats::HeaderMap::new();
                for (name, value) in attributes {
                    headers.insert(format!("ce-{name}").as_str(), value);
                }
                headers.insert("Content-Type", "application/json");
                let publish = async_nats::jetstream::message::PublishMessage::build()
                    .headers(headers)
                    .message_id(&id)
                    .payload(payload.clone());
                let ack = jetstream
                    .send_publish(subject.clone(), publish)
                    .await
                    .map_err(|e| OpError::failed(format!("nats publish: {e}")))?;
                ack.await
                    .map(|_| ())
                    .map_err(|e| OpError::failed(format!("nats ack: {e}")))
            }
            Native::Amqp { channel, exchange } => {
                use lapin::options::BasicPublishOptions;
                use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
                let mut headers = FieldTable::default();
                for (name, value) in attributes {
                    headers.insert(
                        ShortString::from(format!("ce-{name}")),
                        AMQPValue::LongString(LongString::from(value)),
                    );
                }
                let properties = lapin::BasicProperties::default()
                    .with_message_id(ShortString::from(id.as_str()))
                    .with_delivery_mode(2)
                    .with_headers(headers)
                    .with_content_type(ShortString::from("application/json"));
                let confirm = channel
                    .basic_publish(
                        ShortString::from(exchange.as_str()),
                        ShortString::from(exchange.as_str()),
                        BasicPublishOptions {
                            mandatory: true,
                            immediate: false,
                        },
                        payload,
                        properties,
                    )
                    .await
                    .map_err(|e| OpError::failed(format!("amqp publish: {e}")))?;
                match confirm.await {
                    Ok(lapin::Confirmation::Ack(None)) => Ok(()),
                    Ok(lapin::Confirmation::Ack(Some(_))) => {
                        Err(OpError::failed("amqp: returned as unroutable"))
                    }
                    Ok(lapin::Confirmation::Nack(_)) => Err(OpError::failed("amqp: nacked")),
                    Ok(lapin::Confirmation::NotRequested) => {
                        Err(OpError::failed("amqp: confirms are not enabled"))
                    }
                    Err(e) => Err(OpError::failed(format!("amqp confirm: {e}"))),
                }
            }
        }
    }
}

/// One native publisher task.
pub(crate) struct NativeOp {
    native: Arc<Native>,
    payload: Bytes,
}

impl Op for NativeOp {
    async fn call(&mut self) -> Result<(), OpError> {
        self.native.publish(&self.payload).await
    }
}

pub(crate) fn native_ops(native: &Arc<Native>, n: usize, payload: &Bytes) -> Vec<NativeOp> {
    (0..n)
        .map(|_| NativeOp {
            native: native.clone(),
            payload: payload.clone(),
        })
        .collect()
}
