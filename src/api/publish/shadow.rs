//! Shadow copies (design §8.7): every event published to a topic whose rule names a `shadow` is
//! also produced there. A copy never fails or slows the publish it copies: it is submitted
//! without waiting, and a copy refused or lost is counted and logged.

use crate::backend::Outbound;
use crate::pipeline::Broker;
use crate::telemetry;

/// Submits `copies` to `broker`'s pipeline; their results are awaited in the background.
pub fn copy(broker: &Broker, copies: Vec<Outbound>) {
    if copies.is_empty() {
        return;
    }
    let n = copies.len() as u64;
    let failed = metrics::counter!(telemetry::SHADOW_FAILED, "broker" => broker.name.clone());
    let topic = copies[0].topic.clone();
    match broker.pipeline.submit(copies, true) {
        Ok(Some(waiting)) => {
            tokio::spawn(async move {
                let lost = match waiting.await {
                    Ok(results) => results.iter().filter(|r| r.is_err()).count() as u64,
                    Err(_) => n,
                };
                if lost > 0 {
                    failed.increment(lost);
                    tracing::warn!(%topic, lost, "shadow copies failed");
                }
            });
        }
        Ok(None) => {}
        Err(e) => {
            failed.increment(n);
            tracing::warn!(%topic, error = %e, "shadow copies refused");
        }
    }
}
