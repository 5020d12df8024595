//! `/api/v1/fleet` and `/api/v1/refusals`: what the status page shows, filtered, sorted and
//! paged on the server so that a site of 2,000 nodes sends the browser one page of rows, and
//! a change marker so the page polls cheaply and fetches only when something moved.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::nodes::progress_text;
use super::reply::{ApiResult, Shared, blocking, found};
use crate::store::{Node, NodeState, Store};
use crate::template::FieldError;

/// The most rows one request returns.
const MAX_LIMIT: usize = 500;
const DEFAULT_LIMIT: usize = 100;

pub(super) fn routes() -> Router<Arc<Store>> {
    Router::new()
        .route("/api/v1/fleet", get(fleet))
        .route("/api/v1/refusals", get(refusals))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetQuery {
    /// Only nodes in this state.
    state: Option<String>,
    /// Case-insensitive part of the id, serial, UUID, a MAC (any spelling), host name or IP.
    q: Option<String>,
    /// `state` (failed first, the default), `hostname`, `serial`, `mac`, `ip`, `profile`,
    /// `last_seen` or `duration`.
    sort: Option<String>,
    /// `asc` (default) or `desc`.
    order: Option<String>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
    /// The change marker the caller has: if nothing changed since, the answer is only
    /// `{"marker": ..., "unchanged": true}`.
    since: Option<String>,
}

/// One row of the fleet table.
#[derive(Serialize)]
struct FleetRow {
    #[serde(flatten)]
    node: Node,
    progress_text: Option<String>,
    /// When the node last reported (its record's last change); None before it booted.
    last_seen: Option<String>,
    /// How long its workflow has run (until now) or ran, in ms; None before it started.
    duration_ms: Option<u64>,
}

#[derive(Serialize)]
struct FleetPage {
    marker: String,
    /// Nodes matching the query (before paging).
    total: usize,
    offset: usize,
    limit: usize,
    /// Nodes per state over the whole fleet, and `refused`: the page's filters.
    counts: BTreeMap<&'static str, usize>,
    nodes: Vec<FleetRow>,
}

/// The order an operator works in: what needs a hand first.
fn state_rank(state: NodeState) -> u8 {
    match state {
        NodeState::Failed => 0,
        NodeState::Provisioning => 1,
        NodeState::Discovered => 2,
        NodeState::Registered => 3,
        NodeState::Provisioned => 4,
    }
}

/// A MAC's hex digits only, so `52-54-00-AA-00-01`, `5254.00aa.0001` and `52:54:00:aa:00:01`
/// all find the same node.
fn mac_digits(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_ascii_lowercase()
}

fn matches(node: &Node, needle: &str) -> bool {
    let contains = |value: Option<&str>| value.is_some_and(|v| v.to_lowercase().contains(needle));
    // A MAC in another spelling only when the needle looks like part of one: "HUX0007"'s
    // digits must not find the MAC ending 00:75.
    let mac_like = needle
        .chars()
        .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '-' | '.'));
    let digits = if mac_like {
        mac_digits(needle)
    } else {
        String::new()
    };
    contains(Some(&node.id))
        || contains(node.serial.as_deref())
        || contains(node.uuid.as_deref())
        || contains(node.hostname.as_deref())
        || contains(node.ip.as_deref())
        || node.macs.iter().any(|mac| {
            mac.contains(needle) || (digits.len() >= 4 && mac_digits(mac).contains(&digits))
        })
}

async fn fleet(State(store): Shared, Query(query): Query<FleetQuery>) -> ApiResult {
    blocking(move || {
        let marker = store.change_marker()?;
        if query.since.as_deref() == Some(marker.as_str()) {
            return found(serde_json::json!({ "marker": marker, "unchanged": true }));
        }
        let state = query
            .state
            .as_deref()
            .filter(|state| !state.is_empty() && *state != "all")
            .map(|state| {
                NodeState::ALL
                    .into_iter()
                    .find(|known| known.as_str() == state)
                    .ok_or_else(|| {
                        FieldError::new(
                            "state",
                            format!(
                                "{state:?} is not a node state; use one of {}",
                                NodeState::ALL.map(NodeState::as_str).join(", ")
                            ),
                        )
                    })
            })
            .transpose()?;
        let descending = match query.order.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(
                    FieldError::new("order", format!("{other:?} is neither asc nor desc")).into(),
                );
            }
        };
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let needle = query
            .q
            .as_deref()
            .map(str::trim)
            .unwrap_or("")
            .to_lowercase();

        let nodes = store.list_nodes()?;
        let spans = store.workflow_spans()?;
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for node in &nodes {
            *counts.entry(node.state.as_str()).or_default() += 1;
        }
        counts.insert("all", nodes.len());
        counts.insert("refused", store.list_refusals()?.len());

        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
            });
        let mut rows: Vec<FleetRow> = nodes
            .into_iter()
            .filter(|node| state.is_none_or(|state| node.state == state))
            .filter(|node| needle.is_empty() || matches(node, &needle))
            .map(|node| {
                let duration_ms = node
                    .workflow_id
                    .as_ref()
                    .and_then(|id| spans.get(id))
                    .and_then(|span| {
                        let took = span.stopped_ms.unwrap_or(now_ms) - span.started_ms?;
                        u64::try_from(took).ok()
                    });
                let last_seen = Some(node.updated_at.clone()).filter(|at| !at.is_empty());
                FleetRow {
                    progress_text: progress_text(&node),
                    last_seen,
                    duration_ms,
                    node,
                }
            })
            .collect();
        let sort = query.sort.as_deref().unwrap_or("state");
        let text = |value: &Option<String>| value.clone().unwrap_or_default().to_lowercase();
        // Keys computed once per row, not at each of the sort's comparisons.
        match sort {
            "state" => rows.sort_by_cached_key(|row| {
                (
                    state_rank(row.node.state),
                    text(&row.node.hostname),
                    row.node.id.clone(),
                )
            }),
            "hostname" => rows.sort_by_cached_key(|row| text(&row.node.hostname)),
            "serial" => rows.sort_by_cached_key(|row| text(&row.node.serial)),
            "mac" => {
                rows.sort_by_cached_key(|row| row.node.macs.first().cloned().unwrap_or_default())
            }
            // Numerically, so 10.0.0.9 comes before 10.0.0.10.
            "ip" => rows.sort_by_cached_key(|row| {
                row.node
                    .ip
                    .as_deref()
                    .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
            }),
            "profile" => rows.sort_by_cached_key(|row| text(&row.node.profile)),
            "last_seen" => rows.sort_by_cached_key(|row| row.last_seen.clone()),
            "duration" => rows.sort_by_key(|row| row.duration_ms),
            other => {
                return Err(FieldError::new(
                    "sort",
                    format!(
                        "{other:?} is not a column to sort by; use state, hostname, serial, mac, \
                         ip, profile, last_seen or duration"
                    ),
                )
                .into());
            }
        }
        if descending {
            rows.reverse();
        }
        let total = rows.len();
        let nodes: Vec<FleetRow> = rows.into_iter().skip(query.offset).take(limit).collect();
        found(FleetPage {
            marker,
            total,
            offset: query.offset,
            limit,
            counts,
            nodes,
        })
    })
    .await
}

async fn refusals(State(store): Shared) -> ApiResult {
    blocking(move || found(store.list_refusals()?)).await
}
