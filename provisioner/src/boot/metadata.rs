//! EC2-style instance metadata as Tinkerbell's Hegel serves it: plain text, for the node
//! that asks. Who asks is told by the client certificate the node got at enrollment,
//! presented over boot HTTPS (issue 15 §1): that node's data, whatever its address. Without
//! one, by the requester's address (the node's last known IP) only when the site chose it
//! (`serve --metadata-by-address`, for installed OSes' cloud-init, spoofable on a LAN);
//! otherwise 401.

use std::net::SocketAddr;

use axum::Extension;
use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::served::{Served, store_failed};
use crate::https::PeerCertificates;
use crate::store::{Node, Registration};

/// The client certificate of the request's TLS connection, when it presented one.
type Presented = Option<Extension<PeerCertificates>>;

/// Registration metadata keys served as user-data and as SSH public keys (one per line).
const USER_DATA_KEY: &str = "user_data";
const PUBLIC_KEYS_KEY: &str = "public_keys";

pub(super) fn routes() -> Router<Served> {
    Router::new()
        .route("/2009-04-04/meta-data", get(index))
        .route("/2009-04-04/meta-data/", get(index))
        .route("/2009-04-04/meta-data/{item}", get(item))
        .route("/2009-04-04/user-data", get(user_data))
}

/// What the store knows about the requester.
struct Requester {
    node: Node,
    registration: Option<Registration>,
}

impl Requester {
    /// The meta-data items this node has values for, in EC2's names.
    fn items(&self) -> Vec<(&'static str, String)> {
        let node = &self.node;
        let hostname = node.hostname.clone().or_else(|| {
            self.registration
                .as_ref()
                .and_then(|registration| registration.hostname.clone())
        });
        let public_keys = self
            .registration
            .as_ref()
            .and_then(|registration| registration.metadata.get(PUBLIC_KEYS_KEY))
            .map(|keys| keys.lines().map(str::trim).collect::<Vec<_>>().join("\n"));
        [
            ("hostname", hostname.clone()),
            ("instance-id", Some(node.id.clone())),
            ("local-hostname", hostname),
            ("local-ipv4", node.ip.clone()),
            ("mac", node.macs.first().cloned()),
            ("public-keys", public_keys),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| (name, value)))
        .collect()
    }
}

/// Why a metadata request gets no answer.
enum Unanswered {
    NotFound(String),
    Unauthenticated(String),
    StoreFailed(crate::store::StoreError),
}

impl From<crate::store::StoreError> for Unanswered {
    fn from(error: crate::store::StoreError) -> Self {
        Unanswered::StoreFailed(error)
    }
}

/// Plain text, or the refusal as a response.
fn respond(served: &Served, peer: SocketAddr, answer: Result<String, Unanswered>) -> Response {
    served.count(|counters| &counters.metadata);
    match answer {
        Ok(text) => text.into_response(),
        Err(Unanswered::NotFound(why)) => served.not_found(why),
        Err(Unanswered::Unauthenticated(why)) => (StatusCode::UNAUTHORIZED, why).into_response(),
        Err(Unanswered::StoreFailed(error)) => {
            store_failed(&format!("the metadata lookup for {peer}"), &error)
        }
    }
}

/// The node whose credential the request presents; without one, the node at the requester's
/// address if the site allows that.
fn requester(
    served: &Served,
    peer: SocketAddr,
    presented: Presented,
) -> Result<Requester, Unanswered> {
    let store = &served.context.store;
    let node = match presented
        .as_ref()
        .and_then(|Extension(PeerCertificates(chain))| chain.first())
    {
        Some(leaf) => {
            let fingerprint = crate::node_ca::sha256_hex(leaf.as_ref());
            let Some(node_id) = store.active_credential(&fingerprint)? else {
                return Err(Unanswered::Unauthenticated(format!(
                    "the client certificate (sha256 {fingerprint}) is not an active node \
                     credential here: it was revoked, expired or issued elsewhere; the node \
                     enrolls again after `provisioner node reprovision KEY`\n"
                )));
            };
            store.get_node(&node_id)?
        }
        None if served.context.metadata_by_address => {
            let ip = peer.ip().to_string();
            let Some(node) = store.node_by_ip(&ip)? else {
                return Err(Unanswered::NotFound(format!("no node is known at {ip}\n")));
            };
            node
        }
        None => {
            return Err(Unanswered::Unauthenticated(
                "metadata is served to the node whose client certificate (from enrollment) \
                 the request presents over boot HTTPS; this request presented none. The \
                 operator may serve it by source address instead (serve \
                 --metadata-by-address, spoofable on a LAN)\n"
                    .to_string(),
            ));
        }
    };
    let registration = match &node.registration_id {
        Some(id) => store
            .list_registrations()?
            .into_iter()
            .find(|registration| &registration.id == id),
        None => None,
    };
    Ok(Requester { node, registration })
}

async fn index(
    State(served): State<Served>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    presented: Presented,
) -> Response {
    let answer = requester(&served, peer, presented).map(|requester| {
        let names: Vec<&str> = requester.items().iter().map(|(name, _)| *name).collect();
        format!("{}\n", names.join("\n"))
    });
    respond(&served, peer, answer)
}

async fn item(
    State(served): State<Served>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    presented: Presented,
    Path(name): Path<String>,
) -> Response {
    let answer = requester(&served, peer, presented).and_then(|requester| {
        requester
            .items()
            .into_iter()
            .find(|(item, _)| *item == name)
            .map(|(_, value)| value)
            .ok_or_else(|| Unanswered::NotFound(format!("no meta-data {name:?} for this node\n")))
    });
    respond(&served, peer, answer)
}

async fn user_data(
    State(served): State<Served>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    presented: Presented,
) -> Response {
    let answer = requester(&served, peer, presented).and_then(|requester| {
        requester
            .registration
            .and_then(|registration| registration.metadata.get(USER_DATA_KEY).cloned())
            .ok_or_else(|| Unanswered::NotFound("no user-data for this node\n".to_string()))
    });
    respond(&served, peer, answer)
}
