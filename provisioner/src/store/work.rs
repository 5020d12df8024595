//! What workers ask and tell: the next action, reports, and legacy workflow contexts.

use rusqlite::{Connection, OptionalExtension, params};

use super::hardware::resolve_hardware;
use super::nodes::follow_report;
use super::workflows::{ActionRecord, load_actions, workflow_not_found};
use super::{Result, Store, StoreError, now_ms, parse_state};
use crate::state::{self, Decision, State};

/// The action a worker should run next.
#[derive(Debug, Clone, PartialEq)]
pub struct NextAction {
    /// The workflow it belongs to.
    pub workflow_id: String,
    /// The action, as rendered.
    pub action: ActionRecord,
}

/// How a report names its action: by id (current protocol) or by task and action
/// name (legacy protocol).
#[derive(Debug, Clone, Copy)]
pub enum ReportTarget<'a> {
    /// The action's id (current protocol).
    ActionId(&'a str),
    /// The task's and the action's names (legacy protocol).
    Names {
        /// The task's name.
        task: &'a str,
        /// The action's name in the task.
        action: &'a str,
    },
}

/// A worker's report of an action's state.
#[derive(Debug, Clone)]
pub struct ActionReport<'a> {
    /// The workflow reported on.
    pub workflow_id: &'a str,
    /// The action reported on.
    pub target: ReportTarget<'a>,
    /// The reporting worker's id or MAC; empty when the protocol message has none.
    pub agent: &'a str,
    /// The state the worker reports.
    pub state: State,
    /// When the worker says the action started / stopped (ms since the epoch).
    pub started_ms: Option<i64>,
    /// See `started_ms`.
    pub stopped_ms: Option<i64>,
    /// The duration the worker measured, when it sends one but no start time.
    pub duration_ms: Option<i64>,
    /// The worker's message (an error, for a failure).
    pub message: &'a str,
}

/// A legacy `WorkflowContext`: the action last reported (or the first one) and its state.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowContext {
    /// The workflow.
    pub workflow_id: String,
    /// The current action's worker as the template rendered it (normally a MAC), as tink
    /// v0.12 reports it.
    pub current_worker: String,
    /// The current action's task name.
    pub current_task: String,
    /// The current action's name.
    pub current_action: String,
    /// 0-based index of the current action.
    pub current_action_index: usize,
    /// The current action's state.
    pub current_action_state: State,
    /// Actions in the workflow.
    pub total_number_of_actions: usize,
}

impl Store {
    /// The hardware id of the agent with this id or MAC.
    pub fn hardware_for_agent(&self, agent: &str) -> Result<String> {
        resolve_hardware(&self.connection(), agent)?.ok_or_else(|| StoreError::NotFound {
            kind: "hardware (by id or MAC) for agent",
            id: agent.to_string(),
        })
    }

    /// The first unfinished action of the oldest unfinished workflow whose turn it is
    /// for this hardware. An action already RUNNING is served again, so a worker (or a
    /// server) that restarted picks up where it was.
    pub fn next_action(&self, hardware_id: &str) -> Result<Option<NextAction>> {
        let connection = self.connection();
        for workflow_id in unfinished_workflows(&connection)? {
            let actions = load_actions(&connection, &workflow_id)?;
            let next = actions
                .into_iter()
                .find(|action| action.state != State::Success);
            if let Some(action) = next.filter(|action| action.worker == hardware_id) {
                return Ok(Some(NextAction {
                    workflow_id,
                    action,
                }));
            }
        }
        Ok(None)
    }

    /// Applies a report to the action and its workflow, in one transaction.
    pub fn report(&self, report: &ActionReport<'_>) -> Result<Decision> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let workflow_state: String = transaction
            .query_row(
                "SELECT state FROM workflows WHERE id = ?1",
                [report.workflow_id],
                |row| row.get(0),
            )
            .optional()?
            .ok_or_else(|| workflow_not_found(report.workflow_id))?;
        let actions = load_actions(&transaction, report.workflow_id)?;
        let index = find_action(&actions, report)?;
        check_agent(&transaction, &actions[index], report.agent)?;
        let states: Vec<(String, State)> = actions
            .iter()
            .map(|action| (action.name.clone(), action.state))
            .collect();
        let decision = state::decide(parse_state(&workflow_state)?, &states, index, report.state)?;
        if let Decision::Apply { action, workflow } = decision {
            apply(&transaction, report, index, action, workflow)?;
            follow_report(&transaction, report.workflow_id, index, workflow)?;
        }
        transaction.commit()?;
        Ok(decision)
    }

    /// Legacy contexts of the unfinished workflows this hardware takes part in.
    pub fn contexts_for(&self, hardware_id: &str) -> Result<Vec<WorkflowContext>> {
        let connection = self.connection();
        let mut contexts = Vec::new();
        for workflow_id in unfinished_workflows(&connection)? {
            let actions = load_actions(&connection, &workflow_id)?;
            if !actions.iter().any(|action| action.worker == hardware_id) {
                continue;
            }
            let index = actions
                .iter()
                .rposition(|action| action.state != State::Pending)
                .unwrap_or(0);
            let current = &actions[index];
            contexts.push(WorkflowContext {
                current_worker: current.rendered_worker().to_string(),
                current_task: current.task_name.clone(),
                current_action: current.name.clone(),
                current_action_index: index,
                current_action_state: current.state,
                total_number_of_actions: actions.len(),
                workflow_id,
            });
        }
        Ok(contexts)
    }
}

fn unfinished_workflows(connection: &Connection) -> Result<Vec<String>> {
    let ids = connection
        .prepare("SELECT id FROM workflows WHERE state IN ('PENDING', 'RUNNING') ORDER BY seq")?
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ids)
}

fn find_action(actions: &[ActionRecord], report: &ActionReport<'_>) -> Result<usize> {
    let (found, described) = match report.target {
        ReportTarget::ActionId(id) => (
            actions.iter().position(|action| action.action_id == id),
            format!("action_id {id:?}"),
        ),
        ReportTarget::Names { task, action: name } => (
            actions
                .iter()
                .position(|action| action.task_name == task && action.name == name),
            format!("action {name:?} of task {task:?}"),
        ),
    };
    found.ok_or_else(|| StoreError::NotFound {
        kind: "action",
        id: format!("{described} in workflow {:?}", report.workflow_id),
    })
}

fn check_agent(connection: &Connection, action: &ActionRecord, agent: &str) -> Result<()> {
    if agent.trim().is_empty() {
        return Ok(());
    }
    match resolve_hardware(connection, agent)? {
        Some(hardware) if hardware == action.worker => Ok(()),
        _ => Err(StoreError::PermissionDenied(format!(
            "action {:?} belongs to hardware {:?}, and agent {agent:?} is not that hardware",
            action.name, action.worker
        ))),
    }
}

fn apply(
    connection: &Connection,
    report: &ActionReport<'_>,
    index: usize,
    action_state: State,
    workflow_state: State,
) -> Result<()> {
    let now = now_ms();
    let position = index as i64;
    if action_state == State::Running {
        let started = report.started_ms.unwrap_or(now);
        connection.execute(
            "UPDATE actions SET state = 'RUNNING', started_ms = COALESCE(started_ms, ?3), message = ?4
             WHERE workflow_id = ?1 AND position = ?2",
            params![report.workflow_id, position, started, report.message],
        )?;
    } else {
        let stopped = report.stopped_ms.unwrap_or(now);
        let stored_start: Option<i64> = connection.query_row(
            "SELECT started_ms FROM actions WHERE workflow_id = ?1 AND position = ?2",
            params![report.workflow_id, position],
            |row| row.get(0),
        )?;
        let started = report.started_ms.or(stored_start);
        let duration = match (started, report.duration_ms) {
            (_, Some(duration)) if report.started_ms.is_none() => duration,
            (Some(started), _) => (stopped - started).max(0),
            (None, duration) => duration.unwrap_or(0),
        };
        connection.execute(
            "UPDATE actions SET state = ?3, started_ms = COALESCE(?4, started_ms, ?5 - ?6),
                stopped_ms = ?5, duration_ms = ?6, message = ?7
             WHERE workflow_id = ?1 AND position = ?2",
            params![
                report.workflow_id,
                position,
                action_state.as_str(),
                report.started_ms,
                stopped,
                duration,
                report.message
            ],
        )?;
    }
    let stopped = workflow_state
        .is_final()
        .then_some(report.stopped_ms.unwrap_or(now));
    connection.execute(
        "UPDATE workflows SET state = ?2, started_ms = COALESCE(started_ms, ?3), stopped_ms = ?4 WHERE id = ?1",
        params![report.workflow_id, workflow_state.as_str(), report.started_ms.unwrap_or(now), stopped],
    )?;
    Ok(())
}
