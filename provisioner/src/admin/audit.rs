//! The admin API's audit: every change (POST, PUT, PATCH, DELETE) and every refusal (401,
//! 403) is recorded with who asked, from where and what was answered; `GET /api/v1/audit`
//! reads the log back.
//!
//! Who is named by the credential the request presented, never by the credential itself: a
//! client certificate by its subject CN and SHA-256 fingerprint, a token by the first 8 hex
//! digits of its SHA-256 (enough to tell two tokens apart, useless to guess one).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::auth::bearer;
use super::reply::{ApiResult, Shared, blocking, found};
use crate::https::PeerCertificates;
use crate::node_ca::sha256_hex;
use crate::store::{MAX_AUDIT_READ, NewAuditEntry, Store};

/// Entries one `GET /api/v1/audit` returns without `limit`.
const DEFAULT_AUDIT_READ: usize = 100;

/// A created record's answer is read for its id or name only up to this size; beyond it the
/// entry names the collection alone (the answer is passed on whole either way).
const MAX_NAMED_ANSWER: usize = 1 << 20;

pub(super) fn routes() -> Router<Arc<Store>> {
    Router::new().route("/api/v1/audit", get(read_audit))
}

#[derive(Deserialize)]
struct AuditQuery {
    /// Entries recorded at or after this instant (ms since the epoch).
    #[serde(default)]
    since: i64,
    limit: Option<usize>,
}

async fn read_audit(State(store): Shared, Query(query): Query<AuditQuery>) -> ApiResult {
    let limit = query
        .limit
        .unwrap_or(DEFAULT_AUDIT_READ)
        .min(MAX_AUDIT_READ);
    blocking(move || found(store.audit_log(query.since, limit)?)).await
}

/// Middleware outside the authentication, so that refused requests are seen too.
pub(super) async fn record(
    State(store): State<Arc<Store>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let changes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let actor = actor(&request);
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |info| info.0.to_string());
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let status = response.status();
    let refused = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
    if !changes && !refused {
        return response;
    }
    let (response, created) = if status == StatusCode::CREATED {
        created_name(response).await
    } else {
        (response, None)
    };
    let entry = NewAuditEntry {
        summary: summary(&method, &path, status, created.as_deref()),
        actor,
        address,
        method: method.to_string(),
        path,
        status: status.as_u16(),
    };
    // SQLite off the async threads, as every handler's own work.
    let recorded = tokio::task::spawn_blocking(move || {
        let result = store.record_audit(&entry);
        (entry, result)
    })
    .await;
    let failure = match recorded {
        Ok((_, Ok(()))) => return response,
        Ok((entry, Err(error))) => format!(
            "{} {} by {}: {error}",
            entry.method, entry.path, entry.actor
        ),
        Err(error) => error.to_string(),
    };
    // The change is made already; the operator must learn that its record is missing.
    tracing::error!("recording an admin request in the audit log failed: {failure}");
    response
}

/// Who the request says it is: the verified client certificate if any (what the
/// authentication admits first), else the bearer token's hash prefix.
fn actor(request: &Request) -> String {
    if let Some(PeerCertificates(chain)) = request.extensions().get::<PeerCertificates>()
        && let Some(leaf) = chain.first()
    {
        let name = common_name(leaf.as_ref()).unwrap_or_else(|| "(none)".to_string());
        return format!(
            "client certificate CN={name:?} sha256 {}",
            sha256_hex(leaf.as_ref())
        );
    }
    bearer(request.headers()).map_or_else(|| "no credential".to_string(), token_actor)
}

/// How the audit log names a bearer token: `admin token ` and the first 8 hex digits of its
/// SHA-256 (for other services that take the admin token, such as onboarding's CreateNodes,
/// to record their changes under the same name).
pub fn token_actor(token: &[u8]) -> String {
    let hash = sha256_hex(token);
    format!("admin token {}", hash.get(..8).unwrap_or(&hash))
}

/// The subject CN of a DER certificate (the TLS handshake verified it already).
fn common_name(der: &[u8]) -> Option<String> {
    use x509_parser::prelude::FromDer;
    let (_, certificate) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
    let name = certificate.subject().iter_common_name().next()?;
    name.as_str().ok().map(str::to_string)
}

/// The `id` or `name` of the record a 201 answer carries, and the answer rebuilt.
async fn created_name(response: Response) -> (Response, Option<String>) {
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_NAMED_ANSWER).await else {
        // Too large or cut: the client's answer is lost either way; say so in the entry.
        return (
            Response::from_parts(parts, Body::empty()),
            Some("(answer unreadable)".into()),
        );
    };
    let name = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|value| {
            // The record itself, or the record an answer wraps (`{"registration": {..}}`).
            let wrapped = value.as_object()?.values().find(|field| field.is_object());
            std::iter::once(&value).chain(wrapped).find_map(|record| {
                ["id", "name"]
                    .iter()
                    .find_map(|key| record.get(key)?.as_str().map(str::to_string))
            })
        });
    (Response::from_parts(parts, Body::from(bytes)), name)
}

/// A few words for the entry: `create profile "edge"`, `delete registration "r1"`,
/// `reprovision node "n1"`, `refused (no valid credential)`.
fn summary(method: &Method, path: &str, status: StatusCode, created: Option<&str>) -> String {
    let segments: Vec<&str> = path
        .trim_start_matches("/api/v1/")
        .split('/')
        .filter(|segment| !segment.is_empty())
        .collect();
    let kind = |plural: &str| plural.strip_suffix('s').unwrap_or(plural).to_string();
    let what = match (method, segments.as_slice()) {
        (&Method::POST, [collection]) => match created {
            Some(name) => format!("create {} {name:?}", kind(collection)),
            None => format!("create {}", kind(collection)),
        },
        // A second segment after a collection is an action on it (`registrations/import`).
        (&Method::POST, [collection, action]) => format!("{action} {collection}"),
        (&Method::POST, [collection, id, action]) => {
            format!("{action} {} {id:?}", kind(collection))
        }
        (&Method::PUT | &Method::PATCH, [collection, id]) => {
            format!("set {} {id:?}", kind(collection))
        }
        (&Method::DELETE, [collection, id]) => format!("delete {} {id:?}", kind(collection)),
        _ => format!("{method} {path}"),
    };
    match status {
        StatusCode::UNAUTHORIZED => format!("{what}: refused (no valid credential)"),
        StatusCode::FORBIDDEN => format!("{what}: refused (not permitted)"),
        status if status.is_success() => what,
        status => format!("{what}: failed ({status})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_name_the_action_and_the_record() {
        let cases = [
            (
                Method::POST,
                "/api/v1/profiles",
                StatusCode::CREATED,
                Some("edge"),
                "create profile \"edge\"",
            ),
            (
                Method::DELETE,
                "/api/v1/registrations/r1",
                StatusCode::NO_CONTENT,
                None,
                "delete registration \"r1\"",
            ),
            (
                Method::POST,
                "/api/v1/nodes/n1/reprovision",
                StatusCode::OK,
                None,
                "reprovision node \"n1\"",
            ),
            (
                Method::POST,
                "/api/v1/registrations/import",
                StatusCode::UNAUTHORIZED,
                None,
                "import registrations: refused (no valid credential)",
            ),
            (
                Method::PUT,
                "/api/v1/profiles/default",
                StatusCode::NOT_FOUND,
                None,
                "set profile \"default\": failed (404 Not Found)",
            ),
        ];
        for (method, path, status, created, expected) in cases {
            assert_eq!(summary(&method, path, status, created), expected, "{path}");
        }
    }
}
