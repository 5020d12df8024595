//! Nodes: machines the provisioner has seen or expects, their lifecycle and timeline.
//! PLACEHOLDER bodies: the types and method signatures are the contract.
//!
//! Lifecycle: registered (expected, never seen) → discovered (device discovery reported it;
//! its workflow is created then, once) → provisioning (an action started) → provisioned
//! (workflow SUCCESS) or failed (FAILED/TIMEOUT). A provisioned node's PXE boots get
//! [`BootPlan::LocalDisk`] until `reprovision` re-arms it.

use serde::{Deserialize, Serialize};

use super::registrations::Identity;
use super::{Result, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Registered,
    Discovered,
    Provisioning,
    Provisioned,
    Failed,
}

/// The running (or last) action: shown as "3/10: Stream OS image".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// 1-based position of the action in the workflow.
    pub position: usize,
    pub total: usize,
    pub action: String,
    pub state: crate::state::State,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub serial: Option<String>,
    pub uuid: Option<String>,
    pub macs: Vec<String>,
    pub ip: Option<String>,
    pub hostname: Option<String>,
    pub profile: Option<String>,
    pub registration_id: Option<String>,
    pub state: NodeState,
    pub workflow_id: Option<String>,
    pub progress: Option<Progress>,
    /// Why the workflow failed (the action's message), when it did.
    pub failure: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// One entry of a node's timeline ("pxe", "discovered", "workflow-created", "action",
/// "provisioned", "failed", "reprovision", "local-boot", ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub message: String,
}

/// What device discovery reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Discovery {
    pub identity: Identity,
    pub ip: Option<String>,
    /// The hardware attributes (bootkit-hwinfo as JSON), stored with the node's hardware.
    pub attributes: Option<serde_json::Value>,
    /// `http://host:port` of the node-facing HTTP service: profile files given as paths are
    /// handed to workflows as URLs under it (`{base}/artifacts/profiles/{name}/os-image`).
    pub artifact_base: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Discovered {
    pub node: Node,
    /// The node's workflow; created on first discovery only.
    pub workflow_id: Option<String>,
    pub workflow_created: bool,
}

/// What a PXE-booting node (by DHCP or by its iPXE script request) is told to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BootPlan {
    /// Boot the profile's bootkit.
    Install {
        node_id: Option<String>,
        profile: super::profiles::Profile,
    },
    /// Provisioned: boot the local disk.
    LocalDisk { node_id: String },
    /// Admission refused: unknown node and no default profile (or a conflict).
    Refused { reason: String },
}

impl Store {
    /// A PXE request (DHCP or iPXE script) from `identity`: records a "pxe" event on a known
    /// node and answers what it should boot.
    pub fn pxe_boot(&self, _identity: &Identity) -> Result<BootPlan> {
        todo!()
    }
    /// Device discovery: creates or updates the node (and its hardware record, whose id is the
    /// worker id), and its workflow from the profile, once.
    pub fn discover(&self, _discovery: &Discovery) -> Result<Discovered> {
        todo!()
    }
    pub fn list_nodes(&self) -> Result<Vec<Node>> {
        todo!()
    }
    /// By id, MAC, serial or UUID.
    pub fn get_node(&self, _key: &str) -> Result<Node> {
        todo!()
    }
    pub fn node_events(&self, _node_id: &str) -> Result<Vec<Event>> {
        todo!()
    }
    pub fn record_event(&self, _node_id: &str, _kind: &str, _message: &str) -> Result<()> {
        todo!()
    }
    /// Re-arms a node: its next PXE boot installs again and discovery creates a new workflow.
    pub fn reprovision(&self, _key: &str) -> Result<Node> {
        todo!()
    }
    /// The node whose last known address is `ip` (syslog and metadata requests).
    pub fn node_by_ip(&self, _ip: &str) -> Result<Option<Node>> {
        todo!()
    }
}
