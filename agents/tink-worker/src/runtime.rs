//! containerd over its gRPC socket: image pulls on the client side (containerd 1.6 has no
//! Transfer service) and workflow actions run as privileged containers.
//!
//! The Transfer service of containerd 2.x is detected (`has_transfer_service`) but pulls
//! stay on the client side everywhere: the daemon-side pull would need the registry CA and
//! credentials configured in containerd itself, and Debian's containerd 1.6, the one the
//! tests run, cannot exercise that path.
//!
//! Every call carries the `containerd-namespace` header (namespace `tinkerbell` by default).
//! The channel is made on first use and dropped when containerd goes away, so that a
//! restarted daemon is reached again on the next call.

mod container;
mod pull;
mod spec;

use std::path::PathBuf;
use std::sync::Mutex;

use containerd_client::services::v1::PluginsRequest;
use containerd_client::services::v1::introspection_client::IntrospectionClient;
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request, Status};

use bootkit_common::error_chain;
use bootkit_oci::RegistryError;

pub use container::{ActionOutcome, ArgsMode, ContainerRequest, OutputStream};
pub use pull::PulledImage;

/// Where containerd listens unless configured otherwise.
pub const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";
/// The containerd namespace actions' images and containers live in (HookOS's).
pub const DEFAULT_NAMESPACE: &str = "tinkerbell";

/// Why a containerd or image step failed; [`RuntimeError::is_retryable`] tells whether to try
/// again.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// containerd's socket cannot be connected to.
    #[error("cannot connect to containerd at {socket}: {detail}; check that containerd is running")]
    Connect {
        /// containerd's socket path.
        socket: PathBuf,
        /// The transport's reason.
        detail: String,
    },
    /// A containerd call answered an error.
    #[error("containerd {operation} failed: {status_message} ({code:?})")]
    Containerd {
        /// The call (`create container`, `start task`, ...).
        operation: String,
        /// containerd's gRPC status code.
        code: Code,
        /// containerd's message.
        status_message: String,
    },
    /// Pulling the image from its registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The image cannot be run (no linux/amd64 manifest, a broken config).
    #[error("the image {image} is not usable: {why}")]
    Image {
        /// The image as the template writes it.
        image: String,
        /// What is wrong with it.
        why: String,
    },
    /// A local file operation failed (the FIFOs, the workflow directory).
    #[error("{what}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The action cannot be turned into a container spec (for example a malformed volume).
    #[error("invalid action: {0}")]
    InvalidAction(String),
}

impl RuntimeError {
    /// Whether a later attempt can succeed: containerd restarting or busy, the registry down.
    /// (`Unknown` is how containerd reports runc failures, such as a bad spec: not retried.)
    pub fn is_retryable(&self) -> bool {
        match self {
            RuntimeError::Connect { .. } => true,
            RuntimeError::Containerd { code, .. } => matches!(
                code,
                Code::Unavailable | Code::Cancelled | Code::Aborted | Code::DeadlineExceeded
            ),
            RuntimeError::Registry(error) => error.is_retryable(),
            _ => false,
        }
    }

    fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            what: what.into(),
            source,
        }
    }
}

/// How the worker uses containerd; `Default` is HookOS's layout.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// containerd's socket ([`DEFAULT_SOCKET`]).
    pub socket: PathBuf,
    /// The containerd namespace ([`DEFAULT_NAMESPACE`]).
    pub namespace: String,
    /// The snapshotter images are unpacked with (`overlayfs`).
    pub snapshotter: String,
    /// The shim containers run with.
    pub runtime: String,
    /// Where the stdout/stderr FIFOs of running actions are made.
    pub state_dir: PathBuf,
    /// The host's `/worker`, mounted as `/worker`; `<worker_dir>/<workflow>` is `/workflow`.
    pub worker_dir: PathBuf,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_SOCKET),
            namespace: DEFAULT_NAMESPACE.to_string(),
            snapshotter: "overlayfs".to_string(),
            runtime: "io.containerd.runc.v2".to_string(),
            state_dir: PathBuf::from("/run/tink-worker"),
            worker_dir: PathBuf::from("/worker"),
        }
    }
}

/// A handle on containerd; cheap to share behind an `Arc`.
pub struct Runtime {
    config: RuntimeConfig,
    channel: Mutex<Option<Channel>>,
}

impl Runtime {
    /// A runtime that connects on first use.
    pub fn new(config: RuntimeConfig) -> Self {
        Self {
            config,
            channel: Mutex::new(None),
        }
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The channel to containerd, connecting if there is none.
    async fn channel(&self) -> Result<Channel, RuntimeError> {
        if let Some(channel) = self.lock_channel().clone() {
            return Ok(channel);
        }
        let channel = containerd_client::connect(&self.config.socket)
            .await
            .map_err(|error| RuntimeError::Connect {
                socket: self.config.socket.clone(),
                detail: error_chain(&error),
            })?;
        *self.lock_channel() = Some(channel.clone());
        Ok(channel)
    }

    fn lock_channel(&self) -> std::sync::MutexGuard<'_, Option<Channel>> {
        // Holds only an Option<Channel>: a panic elsewhere cannot leave it inconsistent.
        self.channel.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Turns a gRPC status into an error naming the operation; when containerd is gone the
    /// channel is dropped so that the next call connects afresh.
    fn failed(&self, operation: impl Into<String>, status: Status) -> RuntimeError {
        // tonic reports a connection lost mid-call as Cancelled, a refused one as Unavailable,
        // and an HTTP/2 stream broken by a dying daemon as Unknown with the transport error
        // as its source (statuses containerd itself sends carry no source): all three mean
        // containerd is gone, and a retry on a fresh channel is the cure.
        let code = match status.code() {
            Code::Unknown if std::error::Error::source(&status).is_some() => Code::Unavailable,
            code => code,
        };
        if matches!(code, Code::Unavailable | Code::Cancelled) {
            *self.lock_channel() = None;
        }
        RuntimeError::Containerd {
            operation: operation.into(),
            code,
            status_message: status.message().to_string(),
        }
    }

    /// A request in the worker's namespace, optionally under a lease.
    fn request<T>(&self, message: T, lease: Option<&str>) -> Request<T> {
        let mut request = Request::new(message);
        let metadata = request.metadata_mut();
        if let Ok(namespace) = self.config.namespace.parse() {
            metadata.insert("containerd-namespace", namespace);
        }
        if let Some(lease) = lease.and_then(|l| l.parse().ok()) {
            metadata.insert("containerd-lease", lease);
        }
        request
    }

    /// Whether the daemon offers the Transfer service (containerd 2.0 and later).
    pub async fn has_transfer_service(&self) -> Result<bool, RuntimeError> {
        let mut client = IntrospectionClient::new(self.channel().await?);
        let request = PluginsRequest {
            filters: vec!["type==io.containerd.transfer.v1".to_string()],
        };
        let plugins = client
            .plugins(self.request(request, None))
            .await
            .map_err(|status| self.failed("introspection (list plugins)", status))?
            .into_inner()
            .plugins;
        Ok(plugins.iter().any(|plugin| plugin.init_err.is_none()))
    }
}
