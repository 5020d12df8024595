//! Reading node rows (and registrations no node has matched yet) and writing the timeline.

use std::collections::HashMap;

use bootkit_common::identity::normalize_uuid;
use bootkit_common::mac::MacAddr;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Node, NodeState, Progress, parse_node_state};
use crate::state::State;
use crate::store::identity::Identity;
use crate::store::registrations::{Registration, load_registrations};
use crate::store::workflows::load_actions;
use crate::store::{Result, StoreError, from_json, now_ms, parse_state, rfc3339};

/// The node `identity` belongs to: by MAC first, then UUID, then serial.
pub(crate) fn find_node(connection: &Connection, identity: &Identity) -> Result<Option<Node>> {
    let mut candidates: Vec<(&str, &str)> = identity
        .macs
        .iter()
        .map(|mac| {
            (
                "SELECT id FROM nodes WHERE id = ?1
                 OR EXISTS (SELECT 1 FROM json_each(nodes.macs) WHERE value = ?1) LIMIT 1",
                mac.as_str(),
            )
        })
        .collect();
    if let Some(uuid) = &identity.uuid {
        candidates.push(("SELECT id FROM nodes WHERE uuid = ?1 LIMIT 1", uuid));
    }
    if let Some(serial) = &identity.serial {
        candidates.push(("SELECT id FROM nodes WHERE serial = ?1 LIMIT 1", serial));
    }
    for (query, value) in candidates {
        let id: Option<String> = connection
            .query_row(query, [value], |row| row.get(0))
            .optional()?;
        if let Some(id) = id {
            return load_node(connection, &id).map(Some);
        }
    }
    Ok(None)
}

/// A node by id, MAC, serial or UUID; registrations not yet seen count as nodes.
pub(super) fn lookup_node(connection: &Connection, key: &str) -> Result<Node> {
    let key = key.trim();
    let mac = key
        .parse::<MacAddr>()
        .map(|mac| mac.to_string())
        .unwrap_or_default();
    // Not a UUID: NULL, which matches no row.
    let uuid = normalize_uuid(key).ok();
    let ids = connection
        .prepare(
            "SELECT id FROM nodes WHERE id = ?1 OR serial = ?1 OR uuid = ?2
             OR EXISTS (SELECT 1 FROM json_each(nodes.macs) WHERE value = ?3) ORDER BY id",
        )?
        .query_map(params![key, uuid, mac], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut found = ids
        .iter()
        .map(|id| load_node(connection, id))
        .collect::<Result<Vec<_>>>()?;
    if found.is_empty() {
        found = unseen_registrations(connection)?
            .iter()
            .filter(|registration| {
                registration.id == key
                    || registration.serial.as_deref() == Some(key)
                    || (uuid.is_some() && registration.uuid == uuid)
                    || (!mac.is_empty() && registration.mac.as_deref() == Some(mac.as_str()))
            })
            .map(expected_node)
            .collect();
    }
    match found.len() {
        0 => Err(node_not_found(key)),
        1 => Ok(found.remove(0)),
        _ => Err(StoreError::Conflict(format!(
            "{key:?} names {} nodes ({}); use the node's id",
            found.len(),
            found
                .iter()
                .map(|node| node.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

pub(super) fn node_not_found(key: &str) -> StoreError {
    StoreError::NotFound {
        kind: "node (by id, MAC, serial or UUID)",
        id: key.to_string(),
    }
}

pub(super) fn unseen_registrations(connection: &Connection) -> Result<Vec<Registration>> {
    let seen = connection
        .prepare("SELECT registration_id FROM nodes WHERE registration_id IS NOT NULL")?
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(load_registrations(connection)?
        .into_iter()
        .filter(|registration| !seen.contains(&registration.id))
        .collect())
}

/// A registered node nobody has seen yet: known by its MAC when registered with one, else
/// by its registration id. Its `created_at` is empty: it has no node record.
pub(super) fn expected_node(registration: &Registration) -> Node {
    Node {
        id: registration
            .mac
            .clone()
            .unwrap_or_else(|| registration.id.clone()),
        serial: registration.serial.clone(),
        uuid: registration.uuid.clone(),
        macs: registration.mac.iter().cloned().collect(),
        ip: None,
        hostname: registration.hostname.clone(),
        profile: Some(registration.profile.clone()),
        registration_id: Some(registration.id.clone()),
        state: NodeState::Registered,
        workflow_id: None,
        progress: None,
        failure: None,
        created_at: String::new(),
        updated_at: registration.created_at.clone(),
    }
}

const NODE_COLUMNS: &str = "id, serial, uuid, macs, ip, hostname, profile, registration_id, state,
    workflow_id, failure, created_ms, updated_ms";

pub(crate) fn load_node(connection: &Connection, id: &str) -> Result<Node> {
    let mut statement =
        connection.prepare(&format!("SELECT {NODE_COLUMNS} FROM nodes WHERE id = ?1"))?;
    let mut node = statement
        .query_row([id], |row| Ok(node_row(row)))
        .optional()?
        .ok_or_else(|| node_not_found(id))??;
    if let Some(workflow_id) = &node.workflow_id {
        let steps: Vec<Step> = load_actions(connection, workflow_id)?
            .into_iter()
            .map(|action| (action.name, action.state))
            .collect();
        node.progress = progress(&steps);
    }
    Ok(node)
}

/// Every node row, oldest first, with its progress: in two queries whatever the fleet's
/// size (a query per node made the status page of 2,000 nodes wait on SQLite).
pub(crate) fn load_nodes(connection: &Connection) -> Result<Vec<Node>> {
    let mut statement = connection.prepare(&format!(
        "SELECT {NODE_COLUMNS} FROM nodes ORDER BY created_ms, id"
    ))?;
    let mut rows = statement.query([])?;
    let mut nodes = Vec::new();
    while let Some(row) = rows.next()? {
        nodes.push(node_row(row)?);
    }
    let steps = workflow_steps(connection)?;
    for node in &mut nodes {
        if let Some(workflow_id) = &node.workflow_id {
            node.progress = steps.get(workflow_id).and_then(|steps| progress(steps));
        }
    }
    Ok(nodes)
}

/// An action's name and state: what a node's progress is read from.
type Step = (String, State);

/// Each workflow's steps, in order.
fn workflow_steps(connection: &Connection) -> Result<HashMap<String, Vec<Step>>> {
    let mut statement = connection
        .prepare("SELECT workflow_id, name, state FROM actions ORDER BY workflow_id, position")?;
    let mut rows = statement.query([])?;
    let mut steps: HashMap<String, Vec<Step>> = HashMap::new();
    while let Some(row) = rows.next()? {
        let step = (row.get(1)?, parse_state(&row.get::<_, String>(2)?)?);
        steps.entry(row.get(0)?).or_default().push(step);
    }
    Ok(steps)
}

fn node_row(row: &Row<'_>) -> Result<Node> {
    Ok(Node {
        id: row.get(0)?,
        serial: row.get(1)?,
        uuid: row.get(2)?,
        macs: from_json(&row.get::<_, String>(3)?)?,
        ip: row.get(4)?,
        hostname: row.get(5)?,
        profile: row.get(6)?,
        registration_id: row.get(7)?,
        state: parse_node_state(&row.get::<_, String>(8)?)?,
        workflow_id: row.get(9)?,
        progress: None,
        failure: row.get(10)?,
        created_at: rfc3339(row.get(11)?),
        updated_at: rfc3339(row.get(12)?),
    })
}

/// The action running, or else the last one that ran, or else the first.
fn progress(steps: &[Step]) -> Option<Progress> {
    let index = steps
        .iter()
        .position(|(_, state)| *state == State::Running)
        .or_else(|| {
            steps
                .iter()
                .rposition(|(_, state)| *state != State::Pending)
        })
        .unwrap_or(0);
    steps.get(index).map(|(name, state)| Progress {
        position: index + 1,
        total: steps.len(),
        action: name.clone(),
        state: *state,
    })
}

pub(crate) fn insert_event(
    connection: &Connection,
    node_id: &str,
    kind: &str,
    message: &str,
) -> Result<()> {
    connection.execute(
        "INSERT INTO node_events (node_id, at_ms, kind, message) VALUES (?1, ?2, ?3, ?4)",
        params![node_id, now_ms(), kind, message],
    )?;
    Ok(())
}
