//! How workers' reports move a node along its lifecycle.

use rusqlite::{OptionalExtension, Transaction, params};

use super::NodeState;
use super::records::insert_event;
use crate::state::State;
use crate::store::workflows::load_actions;
use crate::store::{Result, now_ms};

/// Moves the node whose workflow this is along its lifecycle after a worker's report, in
/// the report's transaction, and records the action on its timeline.
pub(crate) fn follow_report(
    transaction: &Transaction<'_>,
    workflow_id: &str,
    index: usize,
    workflow_state: State,
) -> Result<()> {
    let node_id: Option<String> = transaction
        .query_row(
            "SELECT id FROM nodes WHERE workflow_id = ?1",
            [workflow_id],
            |row| row.get(0),
        )
        .optional()?;
    let Some(node_id) = node_id else {
        return Ok(());
    };
    let actions = load_actions(transaction, workflow_id)?;
    let Some(action) = actions.get(index) else {
        return Ok(());
    };
    let mut line = format!(
        "action {}/{} {}: {}",
        index + 1,
        actions.len(),
        action.name,
        action.state
    );
    if let Some(duration) = action.duration_ms.filter(|_| action.state.is_final()) {
        line.push_str(&format!(" ({:.1}s)", duration as f64 / 1000.0));
    }
    insert_event(transaction, &node_id, "action", &line)?;
    let (state, failure) = match workflow_state {
        State::Success => (NodeState::Provisioned, None),
        State::Failed | State::Timeout => {
            let failure = if action.message.trim().is_empty() {
                format!("action {} ended {}", action.name, action.state)
            } else {
                action.message.clone()
            };
            (NodeState::Failed, Some(failure))
        }
        State::Pending | State::Running => (NodeState::Provisioning, None),
    };
    transaction.execute(
        "UPDATE nodes SET state = ?2, failure = ?3, updated_ms = ?4 WHERE id = ?1",
        params![node_id, state.as_str(), failure, now_ms()],
    )?;
    match (state, failure) {
        (NodeState::Provisioned, _) => insert_event(
            transaction,
            &node_id,
            "provisioned",
            &format!("workflow {workflow_id} succeeded; the next PXE boot boots the local disk"),
        ),
        (NodeState::Failed, Some(failure)) => insert_event(
            transaction,
            &node_id,
            "failed",
            &format!("workflow {workflow_id} {workflow_state}: {failure}"),
        ),
        _ => Ok(()),
    }
}
