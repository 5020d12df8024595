//! The worker's side of the workflow protocols: Tinkerbell's current one (`GetAction`) and the
//! legacy one of tink v0.9–v0.12 (`GetWorkflowContexts`), behind one client. In `auto` mode the
//! client tries the current protocol first and, when the server answers UNIMPLEMENTED, switches
//! to the legacy one for the rest of its life.

mod attributes;
mod current;
mod legacy;

use std::time::{Duration, SystemTime};

use agent_channel::{ChannelError, Liveness};
use bootkit_hwinfo::AgentAttributes;
use tonic::Code;
use tonic::transport::Channel;

use crate::config::{Config, ProtocolChoice, ServerTls};

/// tink's rule: an action without a timeout gets one hour.
pub const DEFAULT_ACTION_TIMEOUT: Duration = Duration::from_secs(3600);

/// Calls are bounded (GetWorkflowContexts streams are short: one message per workflow), and
/// pings while a call is open notice a server that vanished without closing the connection.
const LIVENESS: Liveness = Liveness {
    request_timeout: Some(Duration::from_secs(60)),
    keep_alive_interval: Duration::from_secs(30),
    keep_alive_while_idle: false,
};

/// One action to run, whichever protocol it came from. `Default` is for building one by hand
/// (`run-once`, tests): its timeout is zero, so set one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Action {
    /// The workflow the action belongs to.
    pub workflow_id: String,
    /// The server's id of the action's task; with the legacy protocol, the task's name.
    pub task_id: String,
    /// The server's id of the action; with the legacy protocol, the action's index in its
    /// workflow (that protocol has no ids).
    pub action_id: String,
    /// The task's name in the template.
    pub task_name: String,
    /// The action's name in the template: the container ID is made from it.
    pub name: String,
    /// The container image, as the template writes it.
    pub image: String,
    /// How long the action may run (the template's `timeout`, in seconds on the wire).
    pub timeout: Duration,
    /// Command and arguments; how they combine with the image's is the runner's
    /// [`crate::runtime::ArgsMode`].
    pub command: Vec<String>,
    /// Docker syntax: `host:container[:ro]`.
    pub volumes: Vec<String>,
    /// `KEY=value`.
    pub environment: Vec<String>,
    /// Run in the host's PID namespace (`pid: host`).
    pub pid_host: bool,
    /// Run in a network namespace of its own instead of the host's (`namespaces.network` set to
    /// something other than `host`).
    pub network_namespace: bool,
    /// Legacy `on-timeout` / `on-failure` commands.
    pub on_timeout: Vec<String>,
    /// Commands run (same image and mounts) when the action fails.
    pub on_failure: Vec<String>,
}

/// The states a worker reports; PENDING is the server's alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionState {
    /// The action started.
    Running,
    /// It exited 0.
    Success,
    /// It exited non-zero or could not be run.
    Failed,
    /// Its timeout ran out and it was killed.
    Timeout,
}

/// What the worker tells the server about an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionReport {
    /// The workflow the action belongs to.
    pub workflow_id: String,
    /// As [`Action::task_id`].
    pub task_id: String,
    /// As [`Action::action_id`].
    pub action_id: String,
    /// The task's name in the template.
    pub task_name: String,
    /// The action's name in the template.
    pub action_name: String,
    /// The state reported.
    pub state: ActionState,
    /// When the action started.
    pub started: SystemTime,
    /// Set on the final report only.
    pub stopped: Option<SystemTime>,
    /// For the server and its operator: why it failed (the output's last lines), or empty.
    pub message: String,
}

impl ActionReport {
    /// From start to stop (zero while running).
    fn duration(&self) -> Duration {
        self.stopped
            .and_then(|stopped| stopped.duration_since(self.started).ok())
            .unwrap_or_default()
    }
}

/// The protocol a client speaks once it knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// tinkerbell/tinkerbell v0.17 and later (`GetAction`).
    Current,
    /// tink v0.9 to v0.12 (`GetWorkflowContexts`), as EMT's worker speaks.
    Legacy,
}

/// Why talking to the workflow server failed; each message says which setting to check.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The configured address is not `host:port`.
    #[error(
        "the workflow server address {authority:?} is not usable: {why}; set grpc_authority to host:port"
    )]
    Address {
        /// The address as configured.
        authority: String,
        /// What makes it unusable.
        why: String,
    },
    /// The TLS client configuration cannot be made (CA bundle).
    #[error(
        "cannot set up TLS for the workflow server: {why}; check the CA bundle (tinkerbell_ca / TINKERBELL_CA_CERT), the client certificate and key (tinkerbell_client_cert / tinkerbell_client_key, which device discovery writes), or set tinkerbell_tls=false for a plaintext server"
    )]
    TlsSetup {
        /// What is wrong (the CA bundle's error).
        why: String,
    },
    /// The TLS handshake with the server failed.
    #[error(
        "{operation} at {authority}: the TLS handshake failed: {why}; check the CA pin (tinkerbell_ca_sha256) or the CA bundle (tinkerbell_ca / TINKERBELL_CA_CERT), or tinkerbell_insecure_tls=true to skip certificate checks"
    )]
    Tls {
        /// The RPC that failed (`GetAction`, ...).
        operation: &'static str,
        /// The server, `host:port`.
        authority: String,
        /// The TLS library's reason.
        why: String,
    },
    /// The server answered an RPC with an error status.
    #[error("{operation} at {authority} failed ({code:?}): {message}")]
    Rpc {
        /// The RPC that failed.
        operation: &'static str,
        /// The server, `host:port`.
        authority: String,
        /// The gRPC status code.
        code: Code,
        /// The server's message.
        message: String,
    },
}

impl ProtocolError {
    /// Whether trying again later can help: the server or the network is away or busy. A
    /// rejected request (NotFound, InvalidArgument, FailedPrecondition, …) or a TLS trust
    /// problem stays the same however often it is retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProtocolError::Rpc { code, .. } => !matches!(
                code,
                Code::NotFound
                    | Code::InvalidArgument
                    | Code::FailedPrecondition
                    | Code::PermissionDenied
                    | Code::Unauthenticated
                    | Code::Unimplemented
                    | Code::AlreadyExists
                    | Code::OutOfRange
            ),
            ProtocolError::Address { .. }
            | ProtocolError::TlsSetup { .. }
            | ProtocolError::Tls { .. } => false,
        }
    }

    /// The gRPC status code the server answered, if it answered.
    pub fn code(&self) -> Option<Code> {
        match self {
            ProtocolError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    fn from_channel(error: ChannelError) -> Self {
        match error {
            ChannelError::Address { authority, why } => ProtocolError::Address { authority, why },
            ChannelError::TlsSetup(why) => ProtocolError::TlsSetup {
                why: bootkit_common::error_chain(&why),
            },
        }
    }

    fn from_status(operation: &'static str, authority: &str, status: tonic::Status) -> Self {
        if let Some(handshake) = agent_channel::handshake_failure(&status) {
            return ProtocolError::Tls {
                operation,
                authority: authority.to_string(),
                why: handshake,
            };
        }
        ProtocolError::Rpc {
            operation,
            authority: authority.to_string(),
            code: status.code(),
            message: agent_channel::describe(&status),
        }
    }
}

/// A connection to the workflow service, speaking whichever protocol it serves.
pub struct WorkflowClient {
    channel: Channel,
    authority: String,
    worker_id: String,
    choice: ProtocolChoice,
    selected: Option<Protocol>,
}

impl WorkflowClient {
    /// The client for the configured server. Connecting is lazy (and repeated after failures by
    /// the channel itself), so a server that is not up yet is an error of the first call, not
    /// of this one.
    pub fn from_config(config: &Config) -> Result<Self, ProtocolError> {
        Self::with_identity(
            &config.grpc_authority,
            &config.tls,
            config.client_identity.as_ref(),
            &config.worker_id,
            config.protocol,
        )
    }

    /// Must be called inside a tokio runtime (the channel's background task starts here).
    pub fn new(
        authority: &str,
        tls: &ServerTls,
        worker_id: &str,
        choice: ProtocolChoice,
    ) -> Result<Self, ProtocolError> {
        Self::with_identity(authority, tls, None, worker_id, choice)
    }

    /// [`WorkflowClient::new`], presenting `identity` (the node credential) in every TLS
    /// handshake.
    pub fn with_identity(
        authority: &str,
        tls: &ServerTls,
        identity: Option<&agent_channel::ClientIdentity>,
        worker_id: &str,
        choice: ProtocolChoice,
    ) -> Result<Self, ProtocolError> {
        let selected = match choice {
            ProtocolChoice::Auto => None,
            ProtocolChoice::Current => Some(Protocol::Current),
            ProtocolChoice::Legacy => Some(Protocol::Legacy),
        };
        if *tls == ServerTls::InsecureSkipVerify {
            tracing::warn!(
                "tinkerbell_insecure_tls is set: the workflow server's certificate at {authority} is NOT checked; anyone on the network path can impersonate it"
            );
        }
        let channel = agent_channel::connect_lazy(authority, tls, identity, LIVENESS)
            .map_err(ProtocolError::from_channel)?;
        Ok(WorkflowClient {
            channel,
            authority: authority.to_string(),
            worker_id: worker_id.to_string(),
            choice,
            selected,
        })
    }

    /// The protocol in use: the configured one, or in auto mode the one the server answered to
    /// (None before the first successful exchange).
    pub fn protocol(&self) -> Option<Protocol> {
        self.selected
    }

    /// The next action for this worker; None when the server has no work for it.
    pub async fn next_action(
        &mut self,
        attributes: &AgentAttributes,
    ) -> Result<Option<Action>, ProtocolError> {
        if let Some(protocol) = self.selected {
            return self.next_action_with(protocol, attributes).await;
        }
        match self.next_action_with(Protocol::Current, attributes).await {
            Err(error) if self.should_fall_back(&error) => {
                self.select_legacy();
                self.next_action_with(Protocol::Legacy, attributes).await
            }
            result => {
                if result.is_ok() {
                    self.selected = Some(Protocol::Current);
                }
                result
            }
        }
    }

    /// Sends one status report.
    pub async fn report(&mut self, report: &ActionReport) -> Result<(), ProtocolError> {
        if let Some(protocol) = self.selected {
            return self.report_with(protocol, report).await;
        }
        match self.report_with(Protocol::Current, report).await {
            Err(error) if self.should_fall_back(&error) => {
                self.select_legacy();
                self.report_with(Protocol::Legacy, report).await
            }
            result => {
                if result.is_ok() {
                    self.selected = Some(Protocol::Current);
                }
                result
            }
        }
    }

    fn should_fall_back(&self, error: &ProtocolError) -> bool {
        self.choice == ProtocolChoice::Auto && error.code() == Some(Code::Unimplemented)
    }

    fn select_legacy(&mut self) {
        tracing::info!(
            "the workflow server at {} does not implement the current protocol (GetAction): using the legacy one (GetWorkflowContexts)",
            self.authority
        );
        self.selected = Some(Protocol::Legacy);
    }

    async fn next_action_with(
        &self,
        protocol: Protocol,
        attributes: &AgentAttributes,
    ) -> Result<Option<Action>, ProtocolError> {
        let result = match protocol {
            Protocol::Current => {
                current::next_action(self.channel.clone(), &self.worker_id, attributes).await
            }
            Protocol::Legacy => legacy::next_action(self.channel.clone(), &self.worker_id).await,
        };
        result.map_err(|(operation, status)| {
            ProtocolError::from_status(operation, &self.authority, status)
        })
    }

    async fn report_with(
        &self,
        protocol: Protocol,
        report: &ActionReport,
    ) -> Result<(), ProtocolError> {
        let result = match protocol {
            Protocol::Current => {
                current::report(self.channel.clone(), &self.worker_id, report).await
            }
            Protocol::Legacy => legacy::report(self.channel.clone(), &self.worker_id, report).await,
        };
        result.map_err(|status| {
            ProtocolError::from_status("ReportActionStatus", &self.authority, status)
        })
    }
}

/// A protocol timeout in seconds as an action deadline: zero or negative means tink's default.
fn action_timeout(seconds: i64) -> Duration {
    u64::try_from(seconds)
        .ok()
        .filter(|seconds| *seconds > 0)
        .map_or(DEFAULT_ACTION_TIMEOUT, Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_negative_timeouts_mean_one_hour() {
        assert_eq!(action_timeout(0), DEFAULT_ACTION_TIMEOUT);
        assert_eq!(action_timeout(-5), DEFAULT_ACTION_TIMEOUT);
        assert_eq!(action_timeout(90), Duration::from_secs(90));
    }

    #[test]
    fn rejections_are_permanent_and_outages_are_retryable() {
        let rpc = |code| ProtocolError::Rpc {
            operation: "GetAction",
            authority: "a:1".into(),
            code,
            message: String::new(),
        };
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Unknown,
            Code::Internal,
            Code::ResourceExhausted,
        ] {
            assert!(rpc(code).is_retryable(), "{code:?}");
        }
        for code in [
            Code::NotFound,
            Code::InvalidArgument,
            Code::FailedPrecondition,
            Code::Unimplemented,
        ] {
            assert!(!rpc(code).is_retryable(), "{code:?}");
        }
        let tls = ProtocolError::Tls {
            operation: "GetAction",
            authority: "a:1".into(),
            why: "UnknownIssuer".into(),
        };
        assert!(!tls.is_retryable());
    }
}
