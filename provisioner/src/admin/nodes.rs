//! `/api/v1/nodes`: the fleet's state, a node's workflow, timeline and logs, and re-arming.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::reply::{ApiResult, Shared, blocking, found};
use crate::state::State as ActionState;
use crate::store::{Event, Node, Store, Workflow};

/// The most log lines one request returns; the page and `node logs --follow` page on.
const MAX_LOG_LINES: usize = 1000;
const DEFAULT_LOG_LINES: usize = 200;

pub(super) fn routes() -> Router<Arc<Store>> {
    Router::new()
        .route("/api/v1/nodes", get(list_nodes))
        .route("/api/v1/nodes/{key}", get(get_node))
        .route("/api/v1/nodes/{key}/logs", get(node_logs))
        .route("/api/v1/nodes/{key}/reprovision", post(reprovision))
        .route("/api/v1/nodes/{key}/revoke", post(revoke))
        .route(
            "/api/v1/nodes/{key}/approve-enrollment",
            post(approve_enrollment),
        )
}

/// A node as the API shows it: the stored node and its progress as one line of text.
#[derive(Serialize)]
struct NodeView {
    #[serde(flatten)]
    node: Node,
    progress_text: Option<String>,
}

impl From<Node> for NodeView {
    fn from(node: Node) -> Self {
        Self {
            progress_text: progress_text(&node),
            node,
        }
    }
}

/// "3/10: Stream OS image", with " [failed: why]" when the action failed (as OEP's UI shows).
pub fn progress_text(node: &Node) -> Option<String> {
    let progress = node.progress.as_ref()?;
    let mut text = format!(
        "{}/{}: {}",
        progress.position, progress.total, progress.action
    );
    let failed = matches!(progress.state, ActionState::Failed | ActionState::Timeout);
    if failed {
        let reason = node.failure.as_deref().unwrap_or(progress.state.as_str());
        text.push_str(&format!(" [failed: {reason}]"));
    }
    Some(text)
}

/// The API's shape of a node's detail: the node's view with its workflow, `timeline` and
/// hardware `attributes`.
#[derive(Serialize)]
struct NodeDetailView {
    #[serde(flatten)]
    view: NodeView,
    workflow: Option<Workflow>,
    timeline: Vec<Event>,
    /// As Tinkerbell's Hardware `status.attributes`: `{"inBand": {...}}`, absent until device
    /// discovery has reported an inventory.
    #[serde(skip_serializing_if = "Option::is_none")]
    attributes: Option<HardwareAttributes>,
    /// The node's credentials by fingerprint (never the secret itself).
    credentials: Vec<crate::store::Credential>,
}

/// Tinkerbell's `HardwareAttributes`: one subtree per collection path (only in-band here).
#[derive(Serialize)]
struct HardwareAttributes {
    #[serde(rename = "inBand")]
    in_band: serde_json::Value,
}

async fn list_nodes(State(store): Shared) -> ApiResult {
    blocking(move || {
        let nodes: Vec<NodeView> = store
            .list_nodes()?
            .into_iter()
            .map(NodeView::from)
            .collect();
        found(nodes)
    })
    .await
}

async fn get_node(State(store): Shared, Path(key): Path<String>) -> ApiResult {
    blocking(move || {
        let detail = store.node_detail(&key)?;
        let attributes = detail.in_band.map(|in_band| HardwareAttributes { in_band });
        found(NodeDetailView {
            view: detail.node.into(),
            workflow: detail.workflow,
            timeline: detail.events,
            attributes,
            credentials: detail.credentials,
        })
    })
    .await
}

#[derive(Deserialize)]
struct LogQuery {
    /// Lines after this sequence number (the last one the caller has).
    #[serde(default)]
    after: i64,
    limit: Option<usize>,
}

async fn node_logs(
    State(store): Shared,
    Path(key): Path<String>,
    Query(query): Query<LogQuery>,
) -> ApiResult {
    blocking(move || {
        let node = store.get_node(&key)?;
        let limit = query.limit.unwrap_or(DEFAULT_LOG_LINES).min(MAX_LOG_LINES);
        found(store.node_logs(&node.id, query.after, limit)?)
    })
    .await
}

async fn reprovision(State(store): Shared, Path(key): Path<String>) -> ApiResult {
    blocking(move || found(NodeView::from(store.reprovision(&key)?))).await
}

async fn revoke(State(store): Shared, Path(key): Path<String>) -> ApiResult {
    blocking(move || found(store.revoke_node(&key)?)).await
}

async fn approve_enrollment(State(store): Shared, Path(key): Path<String>) -> ApiResult {
    blocking(move || found(store.approve_enrollment(&key)?)).await
}
