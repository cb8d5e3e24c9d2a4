//! `GET /v1/brokers/{broker}/topics`: what topics a broker has (design §8.4), so a caller learns
//! what exists, and what a pattern would match, without the broker's admin API.

use std::collections::HashMap;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::extract::{Path, Query};
use crate::api::error::ApiError;
use crate::api::AppState;
use crate::backend::TopicInfo;

/// Body of `GET /v1/brokers/{broker}/topics`.
#[derive(Debug, Serialize)]
pub struct Topics {
    /// The topics, sorted by name.
    pub topics: Vec<TopicInfo>,
}

/// `GET /v1/brokers/{broker}/topics[?prefix=]`: the broker's topics whose names start with
/// `prefix`; `404` for an unknown broker, `501` for a broker that cannot list its topics.
pub async fn list(
    State(state): State<AppState>,
    Path(broker): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Topics>, ApiError> {
    if let Some(unknown) = params.keys().find(|k| k.as_str() != "prefix") {
        return Err(ApiError::BadRequest(format!(
            "unknown query parameter `{unknown}`; this route takes prefix"
        )));
    }
    let found = state
        .broker(&broker)
        .ok_or_else(|| ApiError::NotFound(format!("no broker named `{broker}` is configured")))?;
    let prefix = params
        .get("prefix")
        .map(String::as_str)
        .filter(|p| !p.is_empty());
    let map = state.live().topics.clone();
    let listing = map.listing_prefix(&broker, prefix);
    let listed = found.backend.list_topics(listing.as_deref()).await?;
    // Services see logical names only: physical ones are renamed, other tenants' left out.
    let mut topics: Vec<TopicInfo> = listed
        .into_iter()
        .filter_map(|mut topic| {
            let logical = map.logical(&broker, &topic.name)?.into_owned();
            topic.name = logical;
            Some(topic)
        })
        .filter(|topic| prefix.is_none_or(|p| topic.name.starts_with(p)))
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(Topics { topics }))
}
