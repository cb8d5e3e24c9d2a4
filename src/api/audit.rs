//! The audit log (design §8.6): one JSON line per state-changing request and per refusal, to a
//! daily-rotated file and/or a broker topic. Lines pass through a bounded queue to one writer
//! task, so a slow or failing sink never holds up or fails a request: it shows in `/readyz` and
//! in metrics instead.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;
use tracing_appender::rolling::{RollingFileAppender, Rotation};

use crate::backend::Outbound;
use crate::config::AuditConfig;
use crate::event::{trace, Event};
use crate::pipeline::Pipeline;
use crate::telemetry;

/// Most event ids one line lists.
pub const MAX_IDS: usize = 100;

/// Lines the writer takes from the queue at once (one write, one broker batch).
const CHUNK: usize = 256;

/// One audit line. Never a payload, a token or a secret.
#[derive(Debug, Default, Serialize)]
pub struct Record {
    /// When the request was answered (RFC 3339, UTC).
    pub time: String,
    /// The principal; `null` when the API is open or the token was missing or wrong.
    pub principal: Option<String>,
    /// `publish`, `subscription.put`, `subscription.delete`, `subscription.pause`,
    /// `subscription.resume` or `denied`.
    pub action: &'static str,
    /// The request's method and path, for `denied`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// The broker named in the path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
    /// The logical topic named in the path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The topic the broker got, after mapping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical_topic: Option<String>,
    /// The subscription, for subscription actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// Events in the request (publish).
    pub events: usize,
    /// Payload bytes of those events.
    pub bytes: usize,
    /// The response's status.
    pub status: u16,
    /// Up to [`MAX_IDS`] event ids.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// The request's `Idempotency-Key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The request's `X-Request-Id`, else its W3C trace id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// What a publish handler tells the audit layer of what it did, as a response extension.
#[derive(Debug, Clone, Default)]
pub struct Audited {
    /// The physical topic.
    pub physical_topic: Option<Arc<str>>,
    /// Events in the request.
    pub events: usize,
    /// Their payload bytes.
    pub bytes: usize,
    /// Their ids, up to [`MAX_IDS`].
    pub ids: Vec<String>,
}

/// Why the audit log could not start.
#[derive(Debug, thiserror::Error)]
#[error("audit.path `{path}`: {reason}")]
pub struct AuditError {
    /// The configured path.
    pub path: String,
    /// What failed.
    pub reason: String,
}

/// The last failure of each sink, cleared by its next success.
#[derive(Debug, Default)]
struct Health {
    file: Option<String>,
    topic: Option<String>,
}

/// The audit log's handle; cheap to clone. The writer stops once every handle is gone.
#[derive(Clone)]
pub struct Audit {
    lines: mpsc::Sender<String>,
    health: Arc<Mutex<Health>>,
    config: AuditConfig,
    physical: Option<Arc<str>>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("config", &self.config)
            .finish()
    }
}

impl Audit {
    /// Opens the file sink (creating its directory) and starts the writer; `sink` is the topic
    /// sink's broker pipeline and physical topic when `config.topic` names one.
    pub fn start(
        config: &AuditConfig,
        sink: Option<(Pipeline, Arc<str>)>,
    ) -> Result<Self, AuditError> {
        let file = match &config.path {
            Some(path) => Some(open(path)?),
            None => None,
        };
        let topic = sink.clone();
        let (lines, queue) = mpsc::channel(config.buffer);
        let health = Arc::new(Mutex::new(Health::default()));
        tokio::spawn(write(queue, file, topic, health.clone()));
        Ok(Self {
            lines,
            health,
            config: config.clone(),
            physical: sink.map(|(_, topic)| topic),
        })
    }

    /// Whether it writes where `config` says, to the physical topic `physical` (a reload keeps
    /// it running then).
    pub fn writes_as(&self, config: &AuditConfig, physical: Option<&Arc<str>>) -> bool {
        self.config == *config && self.physical.as_ref() == physical
    }

    /// Queues `record`; when the queue is full the line is dropped and counted.
    pub fn log(&self, record: &Record) {
        let line = serde_json::to_string(record).expect("records serialise");
        if self.lines.try_send(line).is_err() {
            metrics::counter!(telemetry::AUDIT_DROPPED).increment(1);
        }
    }

    /// Each failing sink and its last error, for `/readyz`.
    pub fn failures(&self) -> Vec<String> {
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let file = health.file.as_ref().map(|e| format!("audit file: {e}"));
        let topic = health.topic.as_ref().map(|e| format!("audit topic: {e}"));
        file.into_iter().chain(topic).collect()
    }
}

fn open(path: &Path) -> Result<RollingFileAppender, AuditError> {
    let fail = |reason: String| AuditError {
        path: path.display().to_string(),
        reason,
    };
    let name = path
        .file_name()
        .ok_or_else(|| fail("names no file".into()))?
        .to_string_lossy()
        .into_owned();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix(name)
        .build(dir)
        .map_err(|e| fail(crate::error_text::chain(&e)))
}

/// The writer: takes up to [`CHUNK`] queued lines at a time, writes them to the file in one
/// write and publishes them to the topic as one batch.
async fn write(
    mut queue: mpsc::Receiver<String>,
    mut file: Option<RollingFileAppender>,
    topic: Option<(Pipeline, Arc<str>)>,
    health: Arc<Mutex<Health>>,
) {
    let mut chunk = Vec::with_capacity(CHUNK);
    while queue.recv_many(&mut chunk, CHUNK).await > 0 {
        if let Some(file) = &mut file {
            let mut text = String::new();
            for line in &chunk {
                text.push_str(line);
                text.push('\n');
            }
            let written = file.write_all(text.as_bytes()).and_then(|_| file.flush());
            settle(
                &health,
                "file",
                chunk.len(),
                written.map_err(|e| e.to_string()),
                |h| &mut h.file,
            );
        }
        if let Some((pipeline, topic)) = &topic {
            let events = chunk
                .iter()
                .map(|line| Outbound {
                    topic: topic.clone(),
                    event: event(line),
                })
                .collect();
            let published = match pipeline.submit(events, true) {
                Ok(Some(waiting)) => match waiting.await {
                    Ok(results) => match results.into_iter().find_map(Result::err) {
                        None => Ok(()),
                        Some(e) => Err(e.to_string()),
                    },
                    Err(_) => Err("sidebus is stopping".to_string()),
                },
                Ok(None) => Ok(()),
                Err(e) => Err(e.to_string()),
            };
            settle(&health, "topic", chunk.len(), published, |h| &mut h.topic);
        }
        chunk.clear();
    }
}

/// Records a sink's outcome for `lines` lines: a failure is kept for `/readyz`, logged and
/// counted per line.
fn settle(
    health: &Mutex<Health>,
    sink: &'static str,
    lines: usize,
    outcome: Result<(), String>,
    slot: impl FnOnce(&mut Health) -> &mut Option<String>,
) {
    let mut health = health.lock().unwrap_or_else(|e| e.into_inner());
    let slot = slot(&mut health);
    match outcome {
        Ok(()) => *slot = None,
        Err(e) => {
            if slot.is_none() {
                tracing::error!(sink, error = %e, "audit sink failing");
            }
            metrics::counter!(telemetry::AUDIT_FAILED, "sink" => sink).increment(lines as u64);
            *slot = Some(e);
        }
    }
}

/// An audit line as a CloudEvent.
fn event(line: &str) -> Event {
    Event {
        id: uuid::Uuid::now_v7().to_string(),
        source: "sidebus://audit".into(),
        ty: "dev.sidebus.audit".into(),
        time: Some(now()),
        datacontenttype: Some("application/json".into()),
        dataschema: None,
        subject: None,
        extensions: Vec::new(),
        data: Bytes::copy_from_slice(line.as_bytes()),
    }
}

/// Now as RFC 3339 with milliseconds, UTC.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Record {
    /// What a line says of `request` itself: its method and path, `Idempotency-Key` and id.
    pub fn of(request: &Request) -> Self {
        Self {
            request: Some(format!("{} {}", request.method(), request.uri().path())),
            idempotency_key: header(request.headers(), "idempotency-key"),
            request_id: request_id(request.headers()),
            ..Record::default()
        }
    }

    /// The audit line of a request refused before it reached a route's handler.
    pub fn denied(request: &Request, status: StatusCode) -> Self {
        Self {
            time: now(),
            action: "denied",
            status: status.as_u16(),
            ..Self::of(request)
        }
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `X-Request-Id` when the request has one, else the trace id of its `traceparent`.
fn request_id(headers: &HeaderMap) -> Option<String> {
    header(headers, "x-request-id").or_else(|| {
        let context = trace::from_headers(headers)?;
        context.traceparent.split('-').nth(1).map(str::to_string)
    })
}
