//! What a load worker repeats: the `Op` trait, how an operation fails, and the HTTP request
//! over one keep-alive connection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::batch::BatchBody;

/// Why one operation failed.
pub(crate) struct OpError {
    /// A 429 from sidebus's full pipeline (counted apart from other failures).
    pub(crate) rejected: bool,
    pub(crate) message: String,
}

impl OpError {
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self {
            rejected: false,
            message: message.into(),
        }
    }
}

/// One kind of operation a worker repeats: an HTTP request, or a native publish-to-ack.
pub(crate) trait Op: Send + 'static {
    fn call(&mut self) -> impl Future<Output = Result<(), OpError>> + Send;
}

/// The request an HTTP worker sends over and over.
pub(crate) struct HttpRequest {
    pub(crate) path: String,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Body,
    pub(crate) expect: StatusCode,
}

/// What an [`HttpRequest`] carries.
pub(crate) enum Body {
    /// The same bytes every time (binary mode: sidebus gives each event its own id).
    Fixed(Bytes),
    /// A structured batch with fresh ids per request; its response must report `"failed":0`.
    Batch(BatchBody),
}

impl Body {
    fn next(&self) -> Bytes {
        match self {
            Body::Fixed(bytes) => bytes.clone(),
            Body::Batch(batch) => batch.next(),
        }
    }
}

/// One keep-alive HTTP/1.1 connection (raw hyper client), remade after a transport error.
pub(crate) struct HttpOp {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
    request: Arc<HttpRequest>,
}

impl HttpOp {
    pub(crate) async fn connect(
        addr: SocketAddr,
        request: Arc<HttpRequest>,
    ) -> Result<Self, OpError> {
        Ok(Self {
            addr,
            sender: Some(Self::open(addr).await?),
            request,
        })
    }

    async fn open(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, OpError> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| OpError::failed(format!("connecting to {addr}: {e}")))?;
        stream
            .set_nodelay(true)
            .map_err(|e| OpError::failed(format!("TCP_NODELAY: {e}")))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| OpError::failed(format!("HTTP handshake: {e}")))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

impl Op for HttpOp {
    async fn call(&mut self) -> Result<(), OpError> {
        // Taken out while in use: a request cut short (timeout) leaves no half-used connection.
        let mut sender = match self.sender.take() {
            Some(sender) => sender,
            None => Self::open(self.addr).await?,
        };
        sender
            .ready()
            .await
            .map_err(|e| OpError::failed(format!("connection: {e}")))?;
        let r = &*self.request;
        let mut builder = Request::post(r.path.as_str()).header(header::HOST, "127.0.0.1");
        for (name, value) in &r.headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(r.body.next()))
            .expect("a valid request");
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| OpError::failed(format!("request: {e}")))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| OpError::failed(format!("response body: {e}")))?
            .to_bytes();
        self.sender = Some(sender);
        if status == StatusCode::TOO_MANY_REQUESTS {
            // Back off a little instead of spinning on refusals; the time is not a latency.
            tokio::time::sleep(Duration::from_millis(20)).await;
            return Err(OpError {
                rejected: true,
                message: format!("429: {}", snippet(&body)),
            });
        }
        if status != r.expect {
            return Err(OpError::failed(format!("{status}: {}", snippet(&body))));
        }
        if matches!(r.body, Body::Batch(_)) && !body.ends_with(b"\"failed\":0}") {
            return Err(OpError::failed(format!(
                "batch entries failed: …{}",
                String::from_utf8_lossy(&body[body.len().saturating_sub(300)..])
            )));
        }
        Ok(())
    }
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}
