//! The provisioner's admin API as an operator reads it: `GET /api/v1/nodes...` with the
//! bearer token. It listens on the bridge's address, so every request is made from inside
//! the scenario's network namespace.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::netns::NetNs;

/// One request's bound: the API answers from SQLite on the same machine.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The API's client. No `Debug`: it holds the token.
pub(super) struct AdminApi<'a> {
    ns: &'a NetNs,
    base: String,
    token: String,
}

impl<'a> AdminApi<'a> {
    /// A fresh random token, written to a 0600 file in `work_dir` for `provisioner serve`;
    /// returns the client and the flags that make the server require the token.
    pub(super) fn create(
        ns: &'a NetNs,
        listen: SocketAddr,
        work_dir: &Path,
    ) -> Result<(Self, [String; 2])> {
        let mut random = [0u8; 24];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut source| source.read_exact(&mut random))
            .map_err(Error::io("reading /dev/urandom for the admin token"))?;
        let token: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
        let path = work_dir.join("admin-token");
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut file| file.write_all(token.as_bytes()))
            .map_err(Error::io(format!("writing {}", path.display())))?;
        let api = AdminApi {
            ns,
            base: format!("http://{listen}"),
            token,
        };
        Ok((
            api,
            ["--admin-token-file".to_string(), path.display().to_string()],
        ))
    }

    /// `GET /api/v1/nodes`: every node the provisioner knows.
    pub(super) fn nodes(&self) -> Result<Vec<NodeView>> {
        self.get("/api/v1/nodes")
    }

    /// `GET /api/v1/nodes/{key}`: a node with its timeline.
    pub(super) fn node(&self, key: &str) -> Result<NodeDetail> {
        self.get(&format!("/api/v1/nodes/{key}"))
    }

    /// `GET /api/v1/nodes/{key}/logs`: the node's first stored log lines.
    pub(super) fn logs(&self, key: &str) -> Result<Vec<LogLine>> {
        self.get(&format!("/api/v1/nodes/{key}/logs"))
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let authorization = format!("Bearer {}", self.token);
        let request_url = url.clone();
        let body = self
            .ns
            .within(move || -> reqwest::Result<String> {
                // Built in the namespace: the client's runtime thread inherits it.
                reqwest::blocking::Client::builder()
                    .timeout(REQUEST_TIMEOUT)
                    .build()?
                    .get(&request_url)
                    .header("authorization", &authorization)
                    .send()?
                    .error_for_status()?
                    .text()
            })?
            .map_err(|error| {
                Error::Other(format!(
                    "GET {url} failed: {}; the provisioner's log (provisioner.log in the stack's directory) says why",
                    bootkit_common::error_chain(&error)
                ))
            })?;
        serde_json::from_str(&body).map_err(|error| {
            Error::Other(format!(
                "GET {url} answered what this harness cannot read ({error}):\n{body}"
            ))
        })
    }
}

/// A node as `GET /api/v1/nodes` shows it (the fields the scenario checks).
#[derive(Debug, Deserialize)]
pub(super) struct NodeView {
    pub id: String,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub macs: Vec<String>,
    #[serde(default)]
    pub profile: Option<String>,
    pub state: String,
    /// "1/2: stream-os-image".
    #[serde(default)]
    pub progress_text: Option<String>,
    #[serde(default)]
    pub failure: Option<String>,
}

impl NodeView {
    /// Seen nodes carry the machine's MAC; a registration by serial is not the machine
    /// until discovery has matched it (then it has the MAC too).
    pub fn is(&self, machine: &super::Machine) -> bool {
        self.macs.iter().any(|mac| mac == machine.mac)
    }
}

/// `GET /api/v1/nodes/{key}`.
#[derive(Debug, Deserialize)]
pub(super) struct NodeDetail {
    #[serde(flatten)]
    pub node: NodeView,
    #[serde(default)]
    pub timeline: Vec<Event>,
    /// The node's credentials (`GET /api/v1/nodes/{key}` lists them by fingerprint).
    #[serde(default)]
    pub credentials: Vec<Credential>,
}

/// One of a node's credentials, as the node detail shows it.
#[derive(Debug, Deserialize)]
pub(super) struct Credential {
    /// `certificate` or `client-secret`.
    pub kind: String,
    /// Neither revoked nor expired.
    pub active: bool,
}

impl NodeDetail {
    pub fn has_event(&self, kind: &str) -> bool {
        self.timeline.iter().any(|event| event.kind == kind)
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Event {
    pub kind: String,
}

/// A stored log line (syslog or action output).
#[derive(Debug, Deserialize)]
pub(super) struct LogLine {
    /// The sending program (syslog APP-NAME), e.g. `tink-worker`.
    pub source: String,
    /// The message.
    #[serde(default)]
    pub text: String,
}
