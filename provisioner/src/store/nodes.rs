//! Nodes: machines the provisioner has seen or expects, their lifecycle and timeline.
//!
//! Lifecycle: registered (expected, never seen) → discovered (device discovery reported it;
//! its workflow is created then, once) → provisioning (an action started) → provisioned
//! (workflow SUCCESS) or failed (FAILED/TIMEOUT). A provisioned node's PXE boots get
//! [`BootPlan::LocalDisk`] until `reprovision` re-arms it; a failed node's PXE boots still
//! get its bootkit (so its logs reach the operator), but discovery creates no workflow for
//! either until then, so neither can loop through installs. `reprovision` puts a node back
//! in `registered` with no workflow; its next discovery creates a new one.
//!
//! A node's id is the boot MAC it was first discovered with (the first MAC of the
//! [`Identity`]), which is also its hardware id and Tinkerbell worker id.

mod discovery;
mod lifecycle;
mod records;
mod revocation;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::hardware::record_discovered_hardware;
use super::identity::Identity;
use super::registrations::match_identity;
use super::templates::load_template;
use super::text::plain_optional;
use super::workflows::insert_workflow;
use super::{Result, Store, StoreError, now_ms, rfc3339};
use crate::template::FieldError;
use discovery::{save_discovered_node, workflow_values};
pub(crate) use lifecycle::follow_report;
use records::{
    expected_node, load_node, load_nodes, lookup_node, node_not_found, unseen_registrations,
};
pub(crate) use records::{find_node, insert_event};
pub(super) use revocation::revoke_in;

/// Where a node is in its life: registered, discovered, provisioning, then provisioned or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Known by registration only; it has not booted yet.
    Registered,
    /// Device discovery reported it; its workflow exists.
    Discovered,
    /// Its workflow is running.
    Provisioning,
    /// Its workflow succeeded; it boots its disk until `reprovision`.
    Provisioned,
    /// Its workflow failed or timed out; it waits for `reprovision`.
    Failed,
}

impl NodeState {
    /// Every state, in lifecycle order.
    pub const ALL: [NodeState; 5] = [
        NodeState::Registered,
        NodeState::Discovered,
        NodeState::Provisioning,
        NodeState::Provisioned,
        NodeState::Failed,
    ];

    /// The lower-case spelling the store and the API use (`registered`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Registered => "registered",
            NodeState::Discovered => "discovered",
            NodeState::Provisioning => "provisioning",
            NodeState::Provisioned => "provisioned",
            NodeState::Failed => "failed",
        }
    }

    /// Provisioned and failed nodes wait for `reprovision` before they install again, so
    /// neither can loop through installs.
    pub fn awaits_rearm(self) -> bool {
        matches!(self, NodeState::Provisioned | NodeState::Failed)
    }
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn parse_node_state(text: &str) -> Result<NodeState> {
    NodeState::ALL
        .into_iter()
        .find(|state| state.as_str() == text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown node state {text:?}")))
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}: {}", self.position, self.total, self.action)
    }
}

/// The running (or last) action: shown as "3/10: Stream OS image".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// 1-based position of the action in the workflow.
    pub position: usize,
    /// Actions in the workflow.
    pub total: usize,
    /// The action's name.
    pub action: String,
    /// The action's state.
    pub state: crate::state::State,
}

/// A machine the provisioner knows: by registration, by discovery, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Unique; generated when the node is first seen or registered.
    pub id: String,
    /// SMBIOS serial number; None when unknown.
    pub serial: Option<String>,
    /// SMBIOS system UUID, lower case; None when unknown.
    pub uuid: Option<String>,
    /// Lower-case `aa:bb:cc:dd:ee:ff`.
    pub macs: Vec<String>,
    /// The address it last reported in discovery.
    pub ip: Option<String>,
    /// From its registration, if any.
    pub hostname: Option<String>,
    /// The profile it boots; None until registered or discovered.
    pub profile: Option<String>,
    /// The registration it matched; None for a node on the default profile.
    pub registration_id: Option<String>,
    /// Where it is in its life.
    pub state: NodeState,
    /// Its workflow, once created.
    pub workflow_id: Option<String>,
    /// Its running (or last) action; None before the workflow starts.
    pub progress: Option<Progress>,
    /// Why the workflow failed (the action's message), when it did.
    pub failure: Option<String>,
    /// RFC 3339 with milliseconds, UTC.
    pub created_at: String,
    /// RFC 3339 with milliseconds, UTC.
    pub updated_at: String,
}

/// One entry of a node's timeline. Kinds: "pxe" (what a PXE boot was told), "discovered",
/// "workflow-created", "action" ("action 3/10 Stream OS image: SUCCESS (12.3s)"),
/// "provisioned", "failed", "reprovision".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Increasing per database.
    pub seq: i64,
    /// When it happened (RFC 3339, ms, UTC).
    pub at: String,
    /// See the kinds above.
    pub kind: String,
    /// What the operator reads.
    pub message: String,
}

/// What device discovery reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Discovery {
    /// Who the node says it is.
    pub identity: Identity,
    /// The address the node reports for itself.
    pub ip: Option<String>,
    /// The hardware attributes (bootkit-hwinfo as JSON), stored with the node's hardware.
    pub attributes: Option<serde_json::Value>,
    /// `http://host:port` of the node-facing HTTP service: profile files given as paths are
    /// handed to workflows as URLs under it (`{base}/artifacts/profiles/{name}/os-image`).
    pub artifact_base: Option<String>,
}

/// Everything an operator looks at for one node: the node, its workflow and its timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDetail {
    /// The node itself.
    pub node: Node,
    /// Its workflow, once created.
    pub workflow: Option<super::Workflow>,
    /// Its timeline, oldest first.
    pub events: Vec<Event>,
    /// Its latest hardware inventory (Tinkerbell's `status.attributes.inBand` shape), once
    /// device discovery has sent one.
    #[serde(default, rename = "inBand", skip_serializing_if = "Option::is_none")]
    pub in_band: Option<serde_json::Value>,
    /// Every credential issued to it (certificates and client secrets, by fingerprint only),
    /// oldest first.
    #[serde(default)]
    pub credentials: Vec<super::credential::Credential>,
}

/// The outcome of a discovery report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Discovered {
    /// The node as now stored.
    pub node: Node,
    /// The node's workflow; created on first discovery only.
    pub workflow_id: Option<String>,
    /// True when this report created the workflow.
    pub workflow_created: bool,
}

/// What a PXE-booting node (by DHCP or by its iPXE script request) is told to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BootPlan {
    /// Boot the profile's bootkit.
    Install {
        /// The node, when known (None: first seen, on the default profile).
        node_id: Option<String>,
        /// The profile to boot.
        profile: super::profiles::Profile,
    },
    /// Provisioned: boot the local disk.
    LocalDisk {
        /// The node's id.
        node_id: String,
    },
    /// Admission refused: unknown node and no default profile (or a conflict).
    Refused {
        /// Why, for the operator (logged and recorded).
        reason: String,
    },
}

impl Store {
    /// A PXE request (DHCP or iPXE script) from `identity`: records a "pxe" event on a known
    /// node and answers what it should boot.
    pub fn pxe_boot(&self, identity: &Identity) -> Result<BootPlan> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let node = find_node(&transaction, identity)?;
        let (plan, note) = boot_plan(&transaction, identity, node.as_ref())?;
        if let Some(node) = &node {
            insert_event(&transaction, &node.id, "pxe", &note)?;
        }
        transaction.commit()?;
        Ok(plan)
    }

    /// What a PXE request would be told, recording nothing: DHCP asks for every packet
    /// (retransmissions included, hundreds a second when a rack powers on), and a timeline
    /// write with its fsync for each would make DHCP the bottleneck; the node's script
    /// request, once per boot, records the boot ([`Store::pxe_boot`]).
    pub fn peek_boot_plan(&self, identity: &Identity) -> Result<BootPlan> {
        let connection = self.connection();
        let node = find_node(&connection, identity)?;
        Ok(boot_plan(&connection, identity, node.as_ref())?.0)
    }

    /// Whether any registration names a serial (DHCP, which never sees serials, must then
    /// leave refusals to the script request, which carries the serial).
    pub fn any_registration_by_serial(&self) -> Result<bool> {
        Ok(self.connection().query_row(
            "SELECT EXISTS (SELECT 1 FROM registrations WHERE serial IS NOT NULL)",
            [],
            |row| row.get(0),
        )?)
    }

    /// Device discovery: creates or updates the node (and its hardware record, whose id is the
    /// worker id), and its workflow from the profile, once.
    pub fn discover(&self, discovery: &Discovery) -> Result<Discovered> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let discovered = discover_in(&transaction, discovery)?;
        transaction.commit()?;
        Ok(discovered)
    }

    /// Nodes seen, then registrations no node has matched yet (state `registered`).
    pub fn list_nodes(&self) -> Result<Vec<Node>> {
        let connection = self.connection();
        let mut nodes = load_nodes(&connection)?;
        nodes.extend(unseen_registrations(&connection)?.iter().map(expected_node));
        Ok(nodes)
    }

    /// By id, MAC, serial or UUID.
    pub fn get_node(&self, key: &str) -> Result<Node> {
        lookup_node(&self.connection(), key)
    }

    /// The node by id, MAC, serial or UUID, with its workflow (if it has one) and timeline.
    pub fn node_detail(&self, key: &str) -> Result<NodeDetail> {
        let node = self.get_node(key)?;
        let workflow = node
            .workflow_id
            .as_deref()
            .map(|id| self.get_workflow(id))
            .transpose()?;
        let events = self.node_events(&node.id)?;
        let in_band = self.node_in_band(&node.id)?;
        let credentials = self.node_credentials(&node.id)?;
        Ok(NodeDetail {
            node,
            workflow,
            events,
            in_band,
            credentials,
        })
    }

    /// The node's timeline, oldest first; unknown node: [`StoreError::NotFound`].
    pub fn node_events(&self, node_id: &str) -> Result<Vec<Event>> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT seq, at_ms, kind, message FROM node_events WHERE node_id = ?1 ORDER BY seq",
        )?;
        let events = statement
            .query_map([node_id], |row| {
                Ok(Event {
                    seq: row.get(0)?,
                    at: rfc3339(row.get(1)?),
                    kind: row.get(2)?,
                    message: row.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(events)
    }

    /// Appends one entry to the node's timeline.
    pub fn record_event(&self, node_id: &str, kind: &str, message: &str) -> Result<()> {
        let connection = self.connection();
        load_node(&connection, node_id)?;
        insert_event(&connection, node_id, kind, message)
    }

    /// Re-arms a node: its next PXE boot installs again and discovery creates a new workflow.
    pub fn reprovision(&self, key: &str) -> Result<Node> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let node = lookup_node(&transaction, key)?;
        if node.created_at.is_empty() {
            // Registered and never seen: it installs at its first boot already.
            return Ok(node);
        }
        transaction.execute(
            "UPDATE nodes SET state = 'registered', workflow_id = NULL, failure = NULL, updated_ms = ?2
             WHERE id = ?1",
            params![node.id, now_ms()],
        )?;
        // Re-armed nodes enroll again: their old credentials must not keep working.
        revoke_in(&transaction, &node.id, "revoked by reprovision")?;
        let previous = node
            .workflow_id
            .as_deref()
            .map_or_else(String::new, |workflow| {
                format!(" (previous workflow {workflow})")
            });
        insert_event(
            &transaction,
            &node.id,
            "reprovision",
            &format!(
                "re-armed from {}: the next boot installs again{previous}",
                node.state
            ),
        )?;
        let node = load_node(&transaction, &node.id)?;
        transaction.commit()?;
        Ok(node)
    }

    /// The node whose last known address is `ip` (syslog and metadata requests).
    pub fn node_by_ip(&self, ip: &str) -> Result<Option<Node>> {
        let connection = self.connection();
        let id: Option<String> = connection
            .query_row(
                "SELECT id FROM nodes WHERE ip = ?1 ORDER BY updated_ms DESC LIMIT 1",
                [ip],
                |row| row.get(0),
            )
            .optional()?;
        id.map(|id| load_node(&connection, &id)).transpose()
    }

    /// A new onboarding client secret for the node. Only its SHA-256 is stored: the secret
    /// is shown once, to the node, and a node that onboards again gets a new one.
    pub fn issue_client_secret(&self, node_id: &str) -> Result<String> {
        new_client_secret(&self.connection(), node_id).map(|(secret, _)| secret)
    }
}

/// [`Store::discover`] in the caller's transaction (onboarding adds its credentials to it).
pub(crate) fn discover_in(transaction: &Transaction, discovery: &Discovery) -> Result<Discovered> {
    let identity = &discovery.identity;
    // Whoever reports the discovery (onboarding checks its own fields first, by their
    // names there), what is stored is plain text.
    // Identity::new already keeps only well-formed MACs and UUIDs (bootkit_common's types);
    // the serial, the address and the hardware document get the text rule's identity checks.
    if let Some(serial) = identity.serial.as_deref() {
        super::text::serial("serial", serial)?;
    }
    plain_optional("uuid", identity.uuid.as_deref())?;
    if let Some(ip) = discovery.ip.as_deref() {
        super::text::ip_address("ip", ip)?;
    }
    if let Some(attributes) = discovery.attributes.as_ref() {
        super::text::document_strings("attributes", attributes)?;
    }
    let boot_mac = identity.macs.first().ok_or_else(|| {
        FieldError::new("mac", "device discovery must report the node's boot MAC")
    })?;
    let matched = match_identity(transaction, identity)?;
    record_discovered_hardware(
        transaction,
        boot_mac,
        &identity.macs,
        discovery.ip.as_deref(),
        discovery.attributes.as_ref(),
    )?;
    let node_id = save_discovered_node(transaction, discovery, boot_mac, &matched)?;
    let node = load_node(transaction, &node_id)?;
    let discovered = if node.state.awaits_rearm() || node.workflow_id.is_some() {
        Discovered {
            workflow_id: node.workflow_id.clone(),
            node,
            workflow_created: false,
        }
    } else {
        // A template that cannot be loaded is reported by insert_workflow, by field.
        let template_text = load_template(transaction, &matched.profile.template_id)
            .map(|template| template.data)
            .unwrap_or_default();
        let values = workflow_values(boot_mac, &node, &matched, discovery, &template_text)?;
        let workflow_id = insert_workflow(transaction, &matched.profile.template_id, &values)?;
        transaction.execute(
            "UPDATE nodes SET workflow_id = ?2, state = 'discovered', failure = NULL WHERE id = ?1",
            params![node_id, workflow_id],
        )?;
        insert_event(
            transaction,
            &node_id,
            "workflow-created",
            &format!(
                "workflow {workflow_id} from profile {}",
                matched.profile.name
            ),
        )?;
        Discovered {
            node: load_node(transaction, &node_id)?,
            workflow_id: Some(workflow_id),
            workflow_created: true,
        }
    };
    Ok(discovered)
}

/// [`Store::issue_client_secret`] on the caller's connection: the secret and its SHA-256 hex.
pub(crate) fn new_client_secret(
    connection: &Connection,
    node_id: &str,
) -> Result<(String, String)> {
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let digest: String = Sha256::digest(secret.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let updated = connection.execute(
        "UPDATE nodes SET secret_sha256 = ?2 WHERE id = ?1",
        params![node_id, digest],
    )?;
    if updated == 0 {
        return Err(node_not_found(node_id));
    }
    Ok((secret, digest))
}

/// What a PXE boot gets, and the timeline note saying so.
fn boot_plan(
    connection: &Connection,
    identity: &Identity,
    node: Option<&Node>,
) -> Result<(BootPlan, String)> {
    if let Some(node) = node.filter(|node| node.state == NodeState::Provisioned) {
        let plan = BootPlan::LocalDisk {
            node_id: node.id.clone(),
        };
        return Ok((plan, "provisioned: booting the local disk".to_string()));
    }
    match match_identity(connection, identity) {
        Ok(matched) => {
            let note = format!("booting the bootkit of profile {}", matched.profile.name);
            let plan = BootPlan::Install {
                node_id: node.map(|node| node.id.clone()),
                profile: matched.profile,
            };
            Ok((plan, note))
        }
        Err(StoreError::PermissionDenied(reason) | StoreError::Conflict(reason)) => {
            let note = format!("refused: {reason}");
            Ok((BootPlan::Refused { reason }, note))
        }
        Err(other) => Err(other),
    }
}
