//! Workflows: a template rendered for a hardware map, with each action's progress.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::{Deserialize, Serialize};

use super::Outcome;
use super::hardware::resolve_hardware;
use super::templates::load_template;
use super::text::{plain_map, plain_text};
use super::{Result, Store, StoreError, from_json, now_ms, parse_state, rfc3339, to_json};
use crate::state::State;
use crate::template::{self, FieldError, Template};

/// A workflow: a template rendered for some hardware, and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// Unique; generated.
    pub id: String,
    /// The template it was rendered from.
    pub template_id: String,
    /// The hardware map the workflow was created with (`{"device_1": "<mac or id>"}`).
    pub hardware: BTreeMap<String, String>,
    /// Seconds the whole workflow may take (the template's `global_timeout`).
    pub global_timeout: i64,
    /// PENDING until the first report, then the state the reports move it to.
    pub state: State,
    /// RFC 3339 with milliseconds, UTC.
    pub created_at: String,
    /// When the first action started (RFC 3339, ms); None before.
    pub started_at: Option<String>,
    /// When it ended (RFC 3339, ms); None while it runs.
    pub stopped_at: Option<String>,
    /// Every action of every task, in run order.
    pub actions: Vec<ActionRecord>,
    /// The Tinkerbell `Workflow` object this workflow was applied from (`provisioner apply`),
    /// without status: written back by `provisioner get`. None for workflows made otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<serde_json::Value>,
}

/// When a workflow started and stopped, in ms since the epoch (None: not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkflowSpan {
    /// Its first action started.
    pub started_ms: Option<i64>,
    /// It ended (success, failure or timeout).
    pub stopped_ms: Option<i64>,
}

/// One action of a workflow, as rendered at creation, and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// The task's id within the workflow.
    pub task_id: String,
    /// The task's name in the template.
    pub task_name: String,
    /// The hardware id of the worker that runs this action.
    pub worker: String,
    /// The task's `worker` as the template rendered it (normally a MAC): what tink v0.12
    /// sends as the action's `worker_id`. Empty for actions stored before it was kept.
    pub worker_address: String,
    /// Unique; generated.
    pub action_id: String,
    /// The action's name in the template.
    pub name: String,
    /// The container image to run.
    pub image: String,
    /// Seconds; 0 leaves the limit to the worker.
    pub timeout: i64,
    /// Command and arguments; empty: the image's own.
    pub command: Vec<String>,
    /// Run when the action times out.
    pub on_timeout: Vec<String>,
    /// Run when the action fails.
    pub on_failure: Vec<String>,
    /// Task volumes, then the action's.
    pub volumes: Vec<String>,
    /// Task environment overlaid with the action's, as sorted `K=V`.
    pub environment: Vec<String>,
    /// PID namespace: `host` shares the host's; empty: the container's own.
    pub pid: String,
    /// Network namespace: `host`, another network's name, or empty for the worker's default.
    pub network: String,
    /// PENDING until reported, then the reported state.
    pub state: State,
    /// When the worker says it started (RFC 3339, ms).
    pub started_at: Option<String>,
    /// When the worker says it stopped (RFC 3339, ms).
    pub stopped_at: Option<String>,
    /// How long it ran, as measured or reported.
    pub duration_ms: Option<i64>,
    /// The worker's last message (an error, for a failure).
    pub message: String,
}

impl ActionRecord {
    /// The worker as the template named it: the rendered address, or the hardware id for
    /// actions stored before the address was kept.
    pub fn rendered_worker(&self) -> &str {
        if self.worker_address.is_empty() {
            &self.worker
        } else {
            &self.worker_address
        }
    }
}

impl Store {
    /// Renders template `template_id` with `hardware` and stores the workflow, PENDING.
    /// Every value of `hardware` must name known hardware.
    pub fn create_workflow(
        &self,
        template_id: &str,
        hardware: &BTreeMap<String, String>,
    ) -> Result<Workflow> {
        plain_text("template", template_id)?;
        plain_map("hardware", hardware, plain_text)?;
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        check_hardware_map(&transaction, hardware)?;
        let id = insert_workflow(&transaction, template_id, hardware)?;
        let workflow = load_workflow(&transaction, &id)?;
        transaction.commit()?;
        Ok(workflow)
    }

    /// Creates or updates workflow `id` from a Tinkerbell object: template `template_id`
    /// rendered with `hardware` (each task's rendered worker must name known hardware). An
    /// existing workflow whose spec (the rendering's inputs) is unchanged only gets the new
    /// `object`; one whose spec changed is rendered again while nothing of it has run, and
    /// refused once it has.
    pub fn apply_workflow(
        &self,
        id: &str,
        template_id: &str,
        hardware: &BTreeMap<String, String>,
        object: &serde_json::Value,
    ) -> Result<(Outcome, Workflow)> {
        plain_text("id", id)?;
        plain_text("template", template_id)?;
        plain_map("hardware", hardware, plain_text)?;
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        // Unlike `create_workflow`, the map's values need not be hardware: upstream's
        // hardwareMap holds template values; the tasks' workers must resolve (when rendered).
        let stored = match load_workflow(&transaction, id) {
            Ok(stored) => Some(stored),
            Err(StoreError::NotFound { .. }) => None,
            Err(other) => return Err(other),
        };
        let outcome = match stored {
            None => {
                insert_workflow_as(&transaction, id, template_id, hardware)?;
                transaction.execute(
                    "UPDATE workflows SET object = ?2 WHERE id = ?1",
                    params![id, to_json(object)?],
                )?;
                Outcome::Created
            }
            Some(stored) if stored.object.as_ref() == Some(object) => {
                return Ok((Outcome::Unchanged, stored));
            }
            Some(stored) => {
                let same_inputs = stored.template_id == template_id
                    && &stored.hardware == hardware
                    && stored.object.as_ref().and_then(|old| old.get("spec")) == object.get("spec");
                if !same_inputs {
                    let untouched = stored.state == State::Pending
                        && stored
                            .actions
                            .iter()
                            .all(|action| action.state == State::Pending);
                    if !untouched {
                        return Err(StoreError::Conflict(format!(
                            "workflow {id:?} has started (state {}); its spec cannot change \
                             now: delete it (`provisioner workflow delete {id}`) and apply again",
                            stored.state
                        )));
                    }
                    transaction.execute("DELETE FROM workflows WHERE id = ?1", [id])?;
                    insert_workflow_as(&transaction, id, template_id, hardware)?;
                }
                transaction.execute(
                    "UPDATE workflows SET object = ?2 WHERE id = ?1",
                    params![id, to_json(object)?],
                )?;
                Outcome::Configured
            }
        };
        let workflow = load_workflow(&transaction, id)?;
        transaction.commit()?;
        Ok((outcome, workflow))
    }

    /// The workflow with this id; [`StoreError::NotFound`] if none.
    pub fn get_workflow(&self, id: &str) -> Result<Workflow> {
        load_workflow(&self.connection(), id)
    }

    /// Every workflow, oldest first.
    pub fn list_workflows(&self) -> Result<Vec<Workflow>> {
        let connection = self.connection();
        let ids = connection
            .prepare("SELECT id FROM workflows ORDER BY seq")?
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        ids.iter()
            .map(|id| load_workflow(&connection, id))
            .collect()
    }

    /// When each workflow started and stopped, by id, in one query: the status page's
    /// durations without loading every workflow's actions.
    pub fn workflow_spans(&self) -> Result<HashMap<String, WorkflowSpan>> {
        let connection = self.connection();
        let mut statement =
            connection.prepare("SELECT id, started_ms, stopped_ms FROM workflows")?;
        let spans = statement
            .query_map([], |row| {
                let span = WorkflowSpan {
                    started_ms: row.get(1)?,
                    stopped_ms: row.get(2)?,
                };
                Ok((row.get::<_, String>(0)?, span))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(spans)
    }

    /// Deletes the workflow and its actions; [`StoreError::NotFound`] if none.
    pub fn delete_workflow(&self, id: &str) -> Result<()> {
        let deleted = self
            .connection()
            .execute("DELETE FROM workflows WHERE id = ?1", [id])?;
        if deleted == 0 {
            return Err(workflow_not_found(id));
        }
        Ok(())
    }
}

/// Every value of a hardware map must name known hardware (by id or MAC).
fn check_hardware_map(connection: &Connection, hardware: &BTreeMap<String, String>) -> Result<()> {
    for (key, value) in hardware {
        if resolve_hardware(connection, value)?.is_none() {
            return Err(FieldError::new(
                format!("hardware.{key}"),
                format!("no hardware with id or MAC {value:?}; create it first"),
            )
            .into());
        }
    }
    Ok(())
}

/// Renders the template with `values` (its `{{.key}}` substitutions) and stores the workflow,
/// PENDING; returns its id. Task workers must resolve to known hardware.
pub(crate) fn insert_workflow(
    transaction: &Transaction<'_>,
    template_id: &str,
    values: &BTreeMap<String, String>,
) -> Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    insert_workflow_as(transaction, &id, template_id, values)?;
    Ok(id)
}

/// [`insert_workflow`] with the workflow's id given (`namespace/name` for applied objects).
fn insert_workflow_as(
    transaction: &Transaction<'_>,
    id: &str,
    template_id: &str,
    values: &BTreeMap<String, String>,
) -> Result<()> {
    let template_record = load_template(transaction, template_id).map_err(|error| match error {
        StoreError::NotFound { .. } => {
            FieldError::new("template", format!("no template with id {template_id:?}")).into()
        }
        other => other,
    })?;
    let rendered = template::substitute(&template_record.data, values)?;
    let template = Template::parse(&rendered)?;
    transaction.execute(
        "INSERT INTO workflows (id, template_id, hardware_map, global_timeout, state, created_ms)
         VALUES (?1, ?2, ?3, ?4, 'PENDING', ?5)",
        params![
            id,
            template_id,
            to_json(values)?,
            template.global_timeout.unwrap_or(0),
            now_ms()
        ],
    )?;
    insert_actions(transaction, id, &template)?;
    Ok(())
}

pub(crate) fn workflow_not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        kind: "workflow",
        id: id.to_string(),
    }
}

fn insert_actions(
    transaction: &Transaction<'_>,
    workflow_id: &str,
    template: &Template,
) -> Result<()> {
    let mut position = 0i64;
    for (task_index, task) in template.tasks.iter().enumerate() {
        let task_name = task.name.clone().unwrap_or_default();
        let worker_text = task.worker.clone().unwrap_or_default();
        let worker = resolve_hardware(transaction, &worker_text)?.ok_or_else(|| {
            FieldError::new(
                format!("tasks[{task_index}].worker"),
                format!("{worker_text:?} is no known hardware id or MAC"),
            )
        })?;
        let task_id = format!("{task_index}.{task_name}");
        for (action_index, action) in task.actions.iter().enumerate() {
            let name = action.name.clone().unwrap_or_default();
            let mut environment = task.environment.clone();
            environment.extend(action.environment.clone());
            let environment: Vec<String> = environment
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect();
            let volumes: Vec<&String> = task.volumes.iter().chain(&action.volumes).collect();
            transaction.execute(
                "INSERT INTO actions (workflow_id, position, task_id, task_name, worker, action_id, name,
                    image, timeout, command, on_timeout, on_failure, volumes, environment, pid,
                    network, worker_address, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                    ?17, 'PENDING')",
                params![
                    workflow_id,
                    position,
                    task_id,
                    task_name,
                    worker,
                    format!("{task_index}.{action_index}.{name}"),
                    name,
                    action.image.clone().unwrap_or_default(),
                    action.timeout.unwrap_or(0),
                    to_json(&action.command)?,
                    to_json(&action.on_timeout)?,
                    to_json(&action.on_failure)?,
                    to_json(&volumes)?,
                    to_json(&environment)?,
                    action.pid_namespace().unwrap_or_default(),
                    action.network_namespace().unwrap_or_default(),
                    worker_text,
                ],
            )?;
            position += 1;
        }
    }
    Ok(())
}

pub(crate) fn load_workflow(connection: &Connection, id: &str) -> Result<Workflow> {
    let raw = connection
        .query_row(
            "SELECT template_id, hardware_map, global_timeout, state, created_ms, started_ms, stopped_ms,
                object
             FROM workflows WHERE id = ?1",
            [id],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, Option<i64>>(5)?,
                    row.get::<_, Option<i64>>(6)?,
                    row.get::<_, Option<String>>(7)?,
                ))
            },
        )
        .optional()?
        .ok_or_else(|| workflow_not_found(id))?;
    let (
        template_id,
        hardware_map,
        global_timeout,
        state,
        created_ms,
        started_ms,
        stopped_ms,
        object,
    ) = raw;
    Ok(Workflow {
        id: id.to_string(),
        template_id,
        hardware: from_json(&hardware_map)?,
        global_timeout,
        state: parse_state(&state)?,
        created_at: rfc3339(created_ms),
        started_at: started_ms.map(rfc3339),
        stopped_at: stopped_ms.map(rfc3339),
        actions: load_actions(connection, id)?,
        object: object.as_deref().map(from_json).transpose()?,
    })
}

const ACTION_COLUMNS: &str = "task_id, task_name, worker, action_id, name, image, timeout, command,
    on_timeout, on_failure, volumes, environment, pid, state, started_ms, stopped_ms, duration_ms, message,
    network, worker_address";

pub(crate) fn load_actions(
    connection: &Connection,
    workflow_id: &str,
) -> Result<Vec<ActionRecord>> {
    let mut statement = connection.prepare(&format!(
        "SELECT {ACTION_COLUMNS} FROM actions WHERE workflow_id = ?1 ORDER BY position"
    ))?;
    let mut rows = statement.query([workflow_id])?;
    let mut actions = Vec::new();
    while let Some(row) = rows.next()? {
        actions.push(action_record(row)?);
    }
    Ok(actions)
}

fn action_record(row: &Row<'_>) -> Result<ActionRecord> {
    let json_list =
        |index: usize| -> Result<Vec<String>> { from_json(&row.get::<_, String>(index)?) };
    let time = |index: usize| -> Result<Option<String>> {
        Ok(row.get::<_, Option<i64>>(index)?.map(rfc3339))
    };
    Ok(ActionRecord {
        task_id: row.get(0)?,
        task_name: row.get(1)?,
        worker: row.get(2)?,
        action_id: row.get(3)?,
        name: row.get(4)?,
        image: row.get(5)?,
        timeout: row.get(6)?,
        command: json_list(7)?,
        on_timeout: json_list(8)?,
        on_failure: json_list(9)?,
        volumes: json_list(10)?,
        environment: json_list(11)?,
        pid: row.get(12)?,
        state: parse_state(&row.get::<_, String>(13)?)?,
        started_at: time(14)?,
        stopped_at: time(15)?,
        duration_ms: row.get(16)?,
        message: row.get(17)?,
        network: row.get(18)?,
        worker_address: row.get(19)?,
    })
}
