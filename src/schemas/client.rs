//! The Schema Registry REST subset sidebus uses: `GET /subjects/{subject}/versions/latest` and
//! `GET /schemas/ids/{id}`, with HTTP Basic or bearer auth.
//!
//! Over the hyper client already in the tree (the one webhook deliveries use, with the system's
//! TLS through `hyper-tls`) rather than `reqwest`: a handful of GETs at startup and once per
//! unseen schema id do not justify a second HTTP stack in the binary.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_tls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::Deserialize;

use crate::config::SchemaRegistryConfig;
use crate::error_text::chain;
use crate::policy::schema::Kind;

/// What is percent-encoded in a subject put into a path: what a path segment cannot hold.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// How long one registry request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Largest registry answer read: schemas are text, far below this.
const MAX_ANSWER: usize = 8 << 20;

/// A registry client; cheap to clone.
#[derive(Clone)]
pub struct RegistryClient {
    base: String,
    auth: Option<HeaderValue>,
    http: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// A schema as the registry returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct Fetched {
    /// Its global id (absent in `/schemas/ids/{id}` answers, where the caller knows it).
    #[serde(default)]
    pub id: Option<u32>,
    /// The schema text.
    pub schema: String,
    /// `AVRO` (also when absent), `JSON` or `PROTOBUF`.
    #[serde(default, rename = "schemaType")]
    pub schema_type: Option<String>,
}

impl Fetched {
    /// The kind its `schemaType` names.
    pub fn kind(&self) -> Result<Kind, FetchError> {
        match self.schema_type.as_deref() {
            None | Some("AVRO") => Ok(Kind::Avro),
            Some("JSON") => Ok(Kind::JsonSchema),
            Some("PROTOBUF") => Ok(Kind::Protobuf),
            Some(other) => Err(FetchError(format!("unknown schemaType `{other}`"))),
        }
    }
}

/// Why the registry did not give a schema.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

impl RegistryClient {
    /// A client for `config` (validated beforehand).
    pub fn new(config: &SchemaRegistryConfig) -> Self {
        let auth = match (&config.token, &config.username, &config.password) {
            (Some(token), _, _) => Some(format!("Bearer {token}")),
            (None, Some(user), Some(password)) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            _ => None,
        };
        let auth = auth.and_then(|a| {
            let mut value = HeaderValue::from_str(&a).ok()?;
            value.set_sensitive(true);
            Some(value)
        });
        Self {
            base: config.url.trim_end_matches('/').to_string(),
            auth,
            http: Client::builder(TokioExecutor::new()).build(HttpsConnector::new()),
        }
    }

    /// The base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The `dataschema` of events encoded with schema `id`.
    pub fn schema_url(&self, id: u32) -> String {
        format!("{}/schemas/ids/{id}", self.base)
    }

    /// The latest version of `subject`.
    pub async fn latest(&self, subject: &str) -> Result<Fetched, FetchError> {
        let subject = utf8_percent_encode(subject, SEGMENT);
        let fetched = self
            .get(&format!("/subjects/{subject}/versions/latest"))
            .await?;
        if fetched.id.is_none() {
            return Err(FetchError("the answer has no `id`".into()));
        }
        Ok(fetched)
    }

    /// Schema `id`.
    pub async fn by_id(&self, id: u32) -> Result<Fetched, FetchError> {
        let mut fetched = self.get(&format!("/schemas/ids/{id}")).await?;
        fetched.id = Some(id);
        Ok(fetched)
    }

    async fn get(&self, path: &str) -> Result<Fetched, FetchError> {
        let url = format!("{}{path}", self.base);
        let uri: Uri = url.parse().map_err(|e| FetchError(format!("{url}: {e}")))?;
        let mut request = Request::get(uri).header(
            header::ACCEPT,
            "application/vnd.schemaregistry.v1+json, application/json",
        );
        if let Some(auth) = &self.auth {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| FetchError(e.to_string()))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| FetchError(format!("GET {url}: {}", chain(&e))))?;
            let status = response.status();
            let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| FetchError(format!("GET {url}: reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, FetchError>((status, body))
        };
        let (status, body) = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| FetchError(format!("GET {url}: no answer within {TIMEOUT:?}")))??;
        if status != StatusCode::OK {
            let text = String::from_utf8_lossy(&body);
            return Err(FetchError(format!(
                "GET {url}: {status}: {}",
                text.chars().take(200).collect::<String>()
            )));
        }
        serde_json::from_slice(&body)
            .map_err(|e| FetchError(format!("GET {url}: not a registry schema answer: {e}")))
    }
}
