//! The real parts behind the loop's traits: the workflow protocol client and containerd.

use bootkit_hwinfo::AgentAttributes;

use super::{ActionRunner, RunOutcome, RunRequest, StepError, WorkflowServer, log_action_output};
use crate::protocol::{Action, ActionReport, ProtocolError, WorkflowClient};
use crate::runtime::{ArgsMode, ContainerRequest, Runtime, RuntimeError};
use bootkit_oci::RegistryClient;

/// The workflow service over gRPC, with this machine's attributes sent on every request
/// (collected once: they do not change while the worker runs).
pub struct ServerConnection {
    client: WorkflowClient,
    attributes: AgentAttributes,
}

impl ServerConnection {
    /// A connection over `client` that sends `attributes` with every request.
    pub fn new(client: WorkflowClient, attributes: AgentAttributes) -> Self {
        Self { client, attributes }
    }
}

impl WorkflowServer for ServerConnection {
    async fn next_action(&mut self) -> Result<Option<Action>, StepError> {
        self.client
            .next_action(&self.attributes)
            .await
            .map_err(protocol_step_error)
    }

    async fn report(&mut self, report: &ActionReport) -> Result<(), StepError> {
        self.client
            .report(report)
            .await
            .map_err(protocol_step_error)
    }
}

fn protocol_step_error(error: ProtocolError) -> StepError {
    StepError::classified(error.is_retryable(), error)
}

/// containerd through the runtime module, images through the registry client.
pub struct ContainerdRunner {
    runtime: Runtime,
    registry: RegistryClient,
    args_mode: ArgsMode,
    keep_containers: bool,
}

impl ContainerdRunner {
    /// A runner over containerd (`runtime`) and the registry; `keep_containers` leaves them in
    /// place for debugging.
    pub fn new(
        runtime: Runtime,
        registry: RegistryClient,
        args_mode: ArgsMode,
        keep_containers: bool,
    ) -> Self {
        Self {
            runtime,
            registry,
            args_mode,
            keep_containers,
        }
    }

    fn container_request(&self, request: &RunRequest<'_>) -> ContainerRequest {
        let action = request.action;
        ContainerRequest {
            name: request.label.to_string(),
            image: action.image.clone(),
            workflow_id: action.workflow_id.clone(),
            command: request
                .command_override
                .map_or_else(|| action.command.clone(), <[String]>::to_vec),
            environment: action
                .environment
                .iter()
                .map(|entry| match entry.split_once('=') {
                    Some((key, value)) => (key.to_string(), value.to_string()),
                    None => (entry.clone(), String::new()),
                })
                .collect(),
            volumes: action.volumes.clone(),
            host_pid: action.pid_host,
            network_namespace: action.network_namespace,
            args_mode: self.args_mode,
            timeout: Some(request.timeout),
            keep: self.keep_containers,
        }
    }
}

impl ActionRunner for ContainerdRunner {
    async fn pull(&mut self, image: &str) -> Result<(), StepError> {
        self.runtime
            .pull(&self.registry, image)
            .await
            .map(drop)
            .map_err(runtime_step_error)
    }

    async fn run(&mut self, request: RunRequest<'_>) -> Result<RunOutcome, StepError> {
        let container = self.container_request(&request);
        let label = request.label;
        let outcome = self
            .runtime
            .run_action(&container, &|_stream, line: &str| {
                log_action_output(label, line)
            })
            .await
            .map_err(runtime_step_error)?;
        Ok(RunOutcome {
            exit_code: (!outcome.timed_out).then_some(i64::from(outcome.exit_code)),
            last_lines: outcome.last_lines,
        })
    }
}

fn runtime_step_error(error: RuntimeError) -> StepError {
    StepError::classified(error.is_retryable(), error)
}
