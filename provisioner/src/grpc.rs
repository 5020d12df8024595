//! `proto.WorkflowService` for workers of both protocols, on the store.
//!
//! Every worker call says who it is (issue 15 §1): the client certificate a node got at
//! enrollment, verified by the TLS handshake against the node CA, names its node through the
//! store's `node_credentials`; such a call acts only as that node (another node's worker id,
//! workflow or action is PERMISSION_DENIED). A call without one is UNAUTHENTICATED unless the
//! site serves upstream workers (`serve --allow-unauthenticated-workers`), which cannot
//! present our credentials.

use std::collections::BTreeSet;
use std::sync::Arc;

use tink_proto::current::workflow_service_server::WorkflowService as CurrentService;
use tink_proto::current::{
    ActionRequest, ActionResponse, ActionStatusRequest, ActionStatusResponse, Namespaces, StateType,
};
use tink_proto::dual::DualWorkflowServer;
use tink_proto::legacy::workflow_service_server::WorkflowService as LegacyService;
use tink_proto::legacy::{
    Empty, State as LegacyState, WorkflowAction, WorkflowActionList, WorkflowActionStatus,
    WorkflowActionsRequest, WorkflowContext, WorkflowContextRequest,
};
use tonic::{Request, Response, Status};

use crate::state::{ReportError, State};
use crate::store::{ActionRecord, ActionReport, ReportTarget, Store, StoreError};

/// The workflow service; serve it with [`WorkflowServer::into_service`].
#[derive(Clone)]
pub struct WorkflowServer {
    store: Arc<Store>,
    allow_unauthenticated: bool,
}

/// Who a worker call comes from.
#[derive(Debug)]
enum Caller {
    /// A node with an active credential: it acts only as itself.
    Node(NodeScope),
    /// No client certificate, and the site allows unauthenticated workers.
    Unauthenticated,
}

/// An authenticated node and the hardware records that are its own.
#[derive(Debug)]
struct NodeScope {
    node_id: String,
    /// Hardware ids by its id and its MACs: discovery names its record by the boot MAC,
    /// `provisioner apply` by any id holding one of its MACs.
    hardware: BTreeSet<String>,
}

impl NodeScope {
    fn check(&self, method: &str, what: &str, hardware: &str) -> Result<(), Status> {
        if self.hardware.contains(hardware) {
            return Ok(());
        }
        tracing::warn!(
            node = self.node_id,
            hardware,
            method,
            "refused: a node asked for another machine's work"
        );
        Err(Status::permission_denied(format!(
            "{method}: the client certificate is node {:?}'s, and {what} belongs to hardware \
             {hardware:?}, which is not that node: a node acts only as itself",
            self.node_id
        )))
    }
}

impl Caller {
    /// Checks that `hardware` is the caller's own; anyone's for unauthenticated workers.
    fn may_act_for(&self, method: &str, what: &str, hardware: &str) -> Result<(), Status> {
        match self {
            Caller::Node(scope) => scope.check(method, what, hardware),
            Caller::Unauthenticated => Ok(()),
        }
    }
}

impl WorkflowServer {
    /// The workflow service over `store`. `allow_unauthenticated`: serve calls that present
    /// no node certificate (upstream workers), acting for any worker id they name.
    pub fn new(store: Arc<Store>, allow_unauthenticated: bool) -> Self {
        Self {
            store,
            allow_unauthenticated,
        }
    }

    /// Who `request` comes from, by the client certificate its TLS connection verified.
    fn caller<T>(&self, method: &str, request: &Request<T>) -> Result<Caller, Status> {
        let Some(fingerprint) = crate::node_ca::client_certificate_fingerprint(request) else {
            if self.allow_unauthenticated {
                return Ok(Caller::Unauthenticated);
            }
            return Err(Status::unauthenticated(format!(
                "{method}: no client certificate: present the client certificate from \
                 enrollment (device discovery writes /run/bootkit/credentials/node.pem and \
                 node-key.pem; the worker reads TINKERBELL_CLIENT_CERT and \
                 TINKERBELL_CLIENT_KEY); or the operator runs serve \
                 --allow-unauthenticated-workers for upstream workers"
            )));
        };
        let Some(node_id) = self.store.active_credential(&fingerprint).map_err(status)? else {
            tracing::warn!(
                fingerprint,
                method,
                "refused: a revoked, expired or unknown node certificate"
            );
            return Err(Status::unauthenticated(format!(
                "{method}: the client certificate (sha256 {fingerprint}) is not an active \
                 credential of this provisioner: it was revoked, expired or issued elsewhere; \
                 the node enrolls again after `provisioner node reprovision KEY` or \
                 `provisioner node approve-enrollment KEY`"
            )));
        };
        let node = self.store.get_node(&node_id).map_err(status)?;
        let mut hardware = BTreeSet::new();
        for key in std::iter::once(&node.id).chain(&node.macs) {
            match self.store.hardware_for_agent(key) {
                Ok(id) => {
                    hardware.insert(id);
                }
                Err(StoreError::NotFound { .. }) => {}
                Err(error) => return Err(status(error)),
            }
        }
        Ok(Caller::Node(NodeScope { node_id, hardware }))
    }

    /// The hardware `agent` names, checked to be the caller's own.
    fn agent_hardware(&self, caller: &Caller, method: &str, agent: &str) -> Result<String, Status> {
        let hardware = self.store.hardware_for_agent(agent).map_err(status)?;
        caller.may_act_for(method, &format!("worker {agent:?}"), &hardware)?;
        Ok(hardware)
    }

    /// Refuses a report on an action that is not the caller's own (before the store applies
    /// it: a report moves the workflow and the node's lifecycle).
    fn check_report(
        &self,
        caller: &Caller,
        method: &str,
        report: &ActionReport<'_>,
    ) -> Result<(), Status> {
        if matches!(caller, Caller::Unauthenticated) {
            return Ok(());
        }
        let workflow = self
            .store
            .get_workflow(report.workflow_id)
            .map_err(status)?;
        let action = workflow.actions.iter().find(|action| match report.target {
            ReportTarget::ActionId(id) => action.action_id == id,
            ReportTarget::Names { task, action: name } => {
                action.task_name == task && action.name == name
            }
        });
        // An unknown action is the store's NOT_FOUND to report, with its message.
        match action {
            Some(action) => caller.may_act_for(
                method,
                &format!(
                    "action {:?} of workflow {:?}",
                    action.name, report.workflow_id
                ),
                &action.worker,
            ),
            None => Ok(()),
        }
    }

    /// Both protocols as one tonic service.
    pub fn into_service(self) -> DualWorkflowServer<Self> {
        DualWorkflowServer::new(self)
    }

    fn report(&self, report: &ActionReport<'_>) -> Result<(), Status> {
        let decision = self.store.report(report).map_err(status)?;
        tracing::info!(
            workflow = report.workflow_id,
            target = ?report.target,
            state = %report.state,
            ?decision,
            "action status reported"
        );
        Ok(())
    }
}

/// Store errors as gRPC statuses, with the store's message (it names what failed).
pub(crate) fn status(error: StoreError) -> Status {
    let message = error.to_string();
    match error {
        StoreError::Invalid(_) | StoreError::Report(ReportError::NotReportable(_)) => {
            Status::invalid_argument(message)
        }
        StoreError::NotFound { .. } => Status::not_found(message),
        StoreError::Conflict(_) | StoreError::Report(_) => Status::failed_precondition(message),
        StoreError::PermissionDenied(_) => Status::permission_denied(message),
        StoreError::Database(_) | StoreError::Corrupt(_) => {
            tracing::error!("store failed: {message}");
            Status::internal(message)
        }
    }
}

fn required<'a>(method: &str, field: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.trim().is_empty() {
        return Err(Status::invalid_argument(format!(
            "{method}: {field} is empty"
        )));
    }
    Ok(value)
}

/// A worker's timestamp in Unix milliseconds; none for a time at or before 1970: upstream's
/// tink-agent sends Go's zero time (year 1, `seconds = -62135596800`) for a start it did not
/// stamp, and proto's default is 0. The store then uses the time the report arrived.
fn timestamp_ms(timestamp: &Option<prost_types::Timestamp>) -> Option<i64> {
    timestamp
        .as_ref()
        .filter(|time| time.seconds > 0)
        .map(|time| {
            time.seconds
                .saturating_mul(1000)
                .saturating_add(i64::from(time.nanos) / 1_000_000)
        })
}

#[tonic::async_trait]
impl CurrentService for WorkflowServer {
    async fn get_action(
        &self,
        request: Request<ActionRequest>,
    ) -> Result<Response<ActionResponse>, Status> {
        let caller = self.caller("GetAction", &request)?;
        let request = request.into_inner();
        let agent_id = required("GetAction", "agent_id", request.agent_id())?;
        let hardware = self.agent_hardware(&caller, "GetAction", agent_id)?;
        if let Some(attributes) = &request.agent_attributes {
            record_attributes(&self.store, &hardware, attributes);
        }
        let next = self
            .store
            .next_action(&hardware)
            .map_err(status)?
            .ok_or_else(|| {
                Status::not_found(format!(
                    "no action for agent {agent_id:?} now: no unfinished workflow waits on it"
                ))
            })?;
        tracing::info!(agent = agent_id, workflow = %next.workflow_id, action = %next.action.name, "serving action");
        Ok(Response::new(action_response(
            next.workflow_id,
            agent_id,
            next.action,
        )))
    }

    async fn report_action_status(
        &self,
        request: Request<ActionStatusRequest>,
    ) -> Result<Response<ActionStatusResponse>, Status> {
        let method = "ReportActionStatus";
        let caller = self.caller(method, &request)?;
        let request = request.into_inner();
        let state = match request.action_state() {
            StateType::Unspecified => {
                return Err(Status::invalid_argument(format!(
                    "{method}: action_state is unspecified"
                )));
            }
            StateType::Pending => State::Pending,
            StateType::Running => State::Running,
            StateType::Failed => State::Failed,
            StateType::Timeout => State::Timeout,
            StateType::Success => State::Success,
        };
        let message = request
            .message
            .as_ref()
            .map(|message| message.message())
            .unwrap_or_default();
        let report = ActionReport {
            workflow_id: required(method, "workflow_id", request.workflow_id())?,
            target: ReportTarget::ActionId(required(method, "action_id", request.action_id())?),
            agent: request.agent_id(),
            state,
            started_ms: timestamp_ms(&request.execution_start),
            stopped_ms: timestamp_ms(&request.execution_stop),
            duration_ms: None,
            message,
        };
        self.check_report(&caller, method, &report)?;
        self.report(&report)?;
        Ok(Response::new(ActionStatusResponse {}))
    }
}

/// Attributes are kept for the operator; failing to keep them must not stop the work.
fn record_attributes(
    store: &Store,
    hardware: &str,
    attributes: &tink_proto::current::AgentAttributes,
) {
    let stored = serde_json::to_value(attributes)
        .map_err(|error| error.to_string())
        .and_then(|json| {
            store
                .record_agent_attributes(hardware, &json)
                .map_err(|error| error.to_string())
        });
    if let Err(error) = stored {
        tracing::warn!(hardware, "keeping the agent's attributes failed: {error}");
    }
}

fn action_response(workflow_id: String, agent_id: &str, action: ActionRecord) -> ActionResponse {
    let pid = (!action.pid.is_empty()).then_some(action.pid);
    let network = (!action.network.is_empty()).then_some(action.network);
    let namespaces = (pid.is_some() || network.is_some()).then(|| Namespaces {
        network,
        pid: pid.clone(),
    });
    ActionResponse {
        workflow_id: Some(workflow_id),
        task_id: Some(action.task_id),
        agent_id: Some(agent_id.to_string()),
        action_id: Some(action.action_id),
        name: Some(action.name),
        image: Some(action.image),
        timeout: Some(action.timeout),
        command: action.command,
        volumes: action.volumes,
        environment: action.environment,
        namespaces,
        pid,
    }
}

type ContextStream = futures::stream::Iter<std::vec::IntoIter<Result<WorkflowContext, Status>>>;

#[tonic::async_trait]
impl LegacyService for WorkflowServer {
    type GetWorkflowContextsStream = ContextStream;

    async fn get_workflow_contexts(
        &self,
        request: Request<WorkflowContextRequest>,
    ) -> Result<Response<ContextStream>, Status> {
        let method = "GetWorkflowContexts";
        let caller = self.caller(method, &request)?;
        let request = request.into_inner();
        let worker_id = required(method, "worker_id", &request.worker_id)?;
        let hardware = self.agent_hardware(&caller, method, worker_id)?;
        let contexts = self.store.contexts_for(&hardware).map_err(status)?;
        let messages: Vec<Result<WorkflowContext, Status>> = contexts
            .into_iter()
            .map(|context| {
                Ok(WorkflowContext {
                    workflow_id: context.workflow_id,
                    current_worker: context.current_worker,
                    current_task: context.current_task,
                    current_action: context.current_action,
                    current_action_index: context.current_action_index as i64,
                    current_action_state: legacy_state(context.current_action_state) as i32,
                    total_number_of_actions: context.total_number_of_actions as i64,
                })
            })
            .collect();
        Ok(Response::new(futures::stream::iter(messages)))
    }

    async fn get_workflow_actions(
        &self,
        request: Request<WorkflowActionsRequest>,
    ) -> Result<Response<WorkflowActionList>, Status> {
        let method = "GetWorkflowActions";
        let caller = self.caller(method, &request)?;
        let request = request.into_inner();
        let workflow_id = required(method, "workflow_id", &request.workflow_id)?;
        let workflow = self.store.get_workflow(workflow_id).map_err(status)?;
        if let Caller::Node(scope) = &caller {
            // The action list names every worker's images and environment: a node reads
            // only the workflows it takes part in.
            let own = workflow
                .actions
                .iter()
                .any(|action| scope.hardware.contains(&action.worker));
            if !own {
                let worker = workflow
                    .actions
                    .first()
                    .map_or("", |action| action.worker.as_str());
                scope.check(method, &format!("workflow {workflow_id:?}"), worker)?;
            }
        }
        let action_list = workflow.actions.into_iter().map(workflow_action).collect();
        Ok(Response::new(WorkflowActionList { action_list }))
    }

    async fn report_action_status(
        &self,
        request: Request<WorkflowActionStatus>,
    ) -> Result<Response<Empty>, Status> {
        let method = "ReportActionStatus";
        let caller = self.caller(method, &request)?;
        let request = request.into_inner();
        let state = match request.action_status() {
            LegacyState::Pending => State::Pending,
            LegacyState::Running => State::Running,
            LegacyState::Failed => State::Failed,
            LegacyState::Timeout => State::Timeout,
            LegacyState::Success => State::Success,
        };
        // Legacy workers stamp created_at when they send the report: the start of a
        // RUNNING action, the end of a finished one.
        let reported_at = timestamp_ms(&request.created_at);
        let running = state == State::Running;
        let report = ActionReport {
            workflow_id: required(method, "workflow_id", &request.workflow_id)?,
            target: ReportTarget::Names {
                task: required(method, "task_name", &request.task_name)?,
                action: required(method, "action_name", &request.action_name)?,
            },
            agent: &request.worker_id,
            state,
            started_ms: reported_at.filter(|_| running),
            stopped_ms: reported_at.filter(|_| !running),
            duration_ms: (!running).then(|| request.seconds.saturating_mul(1000)),
            message: &request.message,
        };
        self.check_report(&caller, method, &report)?;
        self.report(&report)?;
        Ok(Response::new(Empty {}))
    }
}

fn legacy_state(state: State) -> LegacyState {
    match state {
        State::Pending => LegacyState::Pending,
        State::Running => LegacyState::Running,
        State::Success => LegacyState::Success,
        State::Failed => LegacyState::Failed,
        State::Timeout => LegacyState::Timeout,
    }
}

fn workflow_action(action: ActionRecord) -> WorkflowAction {
    // tink v0.12 sends the task's rendered `worker` (normally the MAC), and its worker runs
    // only the actions whose worker_id is its own id.
    let worker_id = action.rendered_worker().to_string();
    WorkflowAction {
        task_name: action.task_name,
        name: action.name,
        image: action.image,
        timeout: action.timeout,
        command: action.command,
        on_timeout: action.on_timeout,
        on_failure: action.on_failure,
        worker_id,
        volumes: action.volumes,
        environment: action.environment,
        pid: action.pid,
    }
}
