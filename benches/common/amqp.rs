//! The AMQP topology the harnesses publish into, shared by the load and RSS benchmarks.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};

/// Declares the exchange `topic` as sidebus declares it (durable fanout) with one durable queue,
/// `queue`, bound to it, so a `mandatory` publish is routable. The queue is capped (oldest
/// dropped) so the broker's memory and disk stay bounded, and expires if a crashed run leaves it
/// behind.
pub(crate) async fn bound_queue(channel: &lapin::Channel, topic: &str, queue: &str) {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            topic.into(),
            lapin::ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await
        .expect("declaring the exchange");
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(200_000));
    args.insert("x-expires".into(), AMQPValue::LongLongInt(3_600_000));
    let options = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.into(), options, args)
        .await
        .expect("declaring the queue");
    channel
        .queue_bind(
            queue.into(),
            topic.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("binding the queue");
}
