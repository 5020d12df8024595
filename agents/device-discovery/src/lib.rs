//! Device discovery: works out who this machine is, reports it to the provisioner with OEP's
//! onboarding protocol (`onboardingmgr.v1` OnboardNodeStream), waits until it is onboarded and
//! writes what the tink-worker needs. EMT's device-discovery, rewritten on bootkit-hwinfo.
//! Onboarding is a mode ([`config::Onboarding`]): against a plain Tinkerbell stack, which has
//! no onboarding service, the worker starts without it as under HookOS.

pub mod config;
pub mod console;
pub mod enroll;
mod hardware;
pub mod held;
pub mod identity;
pub mod onboard;
pub mod output;

use std::time::{Duration, Instant};

use agent_channel::{ChannelError, Liveness};
use config::{Config, Onboarding, ServerTls};

use identity::{AddressSource, Identity, IpWait};
use onboard::{Credentials, NotServed, Progress};

/// Why a device discovery run ended without the node onboarded.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The run's time ran out before the provisioner onboarded the node.
    #[error(
        "gave up after {}s without being onboarded by {server}: {last}; the supervisor will start device discovery again",
        after.as_secs()
    )]
    GaveUp {
        /// The onboarding service, `host:port`.
        server: String,
        /// How long the run tried.
        after: Duration,
        /// The last answer or error, for the log.
        last: String,
    },
    /// The machine's identity (MAC, serial, UUID) cannot be read.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// The gRPC channel cannot be made.
    #[error("the onboarding channel cannot be set up ({hint})", hint = channel_hint(.0))]
    Channel(#[from] ChannelError),
    /// The credentials cannot be written.
    #[error(transparent)]
    Output(#[from] output::OutputError),
    /// This boot's key pair cannot be made.
    #[error(transparent)]
    Key(#[from] enroll::KeyError),
    /// The certificate the provisioner signed is not usable.
    #[error(transparent)]
    Certificate(#[from] enroll::CertificateError),
}

/// The onboarding stream stays open while the node waits to be onboarded, so calls are not
/// bounded (the run's timeout is); pings, also between streams, notice a provisioner that
/// vanished without closing the connection.
const LIVENESS: Liveness = Liveness {
    request_timeout: None,
    keep_alive_interval: Duration::from_secs(20),
    keep_alive_while_idle: true,
};

/// What the operator can change about a channel that cannot be made.
fn channel_hint(error: &ChannelError) -> &'static str {
    match error {
        ChannelError::Address { .. } => {
            "give the onboarding service as host:port (--obm-svc, onboarding_stream_svc= or grpc_authority=)"
        }
        ChannelError::TlsSetup(_) => {
            "pass --ca-sha256 (or tinkerbell_ca_sha256=) or --ca-cert (or tinkerbell_ca=) with the provisioner's CA, or --tls false for a plaintext server"
        }
    }
}

/// How a successful run let the worker start.
#[derive(Debug)]
pub enum Admission {
    /// The provisioner onboarded the node and sent these.
    Onboarded(Credentials),
    /// The server does not serve onboarding and the mode allows starting without it.
    NotServed(NotServed),
    /// Onboarding is off: nothing was asked.
    Off,
}

impl Admission {
    /// The env file's `ONBOARDING` value.
    pub fn name(&self) -> &'static str {
        match self {
            Admission::Onboarded(_) => "onboarded",
            Admission::NotServed(_) => "not-served",
            Admission::Off => "off",
        }
    }

    /// The credentials, when onboarded.
    pub fn credentials(&self) -> Option<&Credentials> {
        match self {
            Admission::Onboarded(credentials) => Some(credentials),
            Admission::NotServed(_) | Admission::Off => None,
        }
    }
}

/// What a successful run found, and how the worker was let start.
#[derive(Debug)]
pub struct Discovered {
    /// Who the node said it is.
    pub identity: Identity,
    /// Onboarded, or why not.
    pub admission: Admission,
    /// The onboarding service, `host:port` (empty when onboarding is off and none is set).
    pub server: String,
    /// How long the run took.
    pub elapsed: Duration,
    /// Onboarding requests sent, the last one included.
    pub requests: u32,
}

impl Discovered {
    /// The one line the init forwards to the console and syslog.
    pub fn summary(&self) -> String {
        let shown = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_string());
        let who = format!(
            "serial={} uuid={} mac={} ip={}",
            shown(&self.identity.serial),
            shown(&self.identity.uuid),
            self.identity.boot_mac,
            shown(&self.identity.ip),
        );
        match &self.admission {
            Admission::Onboarded(credentials) => format!(
                "onboarded {who} node={} server={} after {:.1}s ({} requests)",
                credentials.client_id,
                self.server,
                self.elapsed.as_secs_f64(),
                self.requests,
            ),
            Admission::NotServed(answer) => format!(
                "not onboarded: {} does not serve OEP onboarding (onboardingmgr.v1: {}); the tink-worker starts without it, as under HookOS ({who}; bootkit.onboarding=required would wait instead)",
                self.server, answer.0
            ),
            Admission::Off => format!(
                "onboarding is off (bootkit.onboarding=off): the tink-worker starts without it ({who})"
            ),
        }
    }
}

/// The whole run, bounded by `config.timeout`: identity, onboarding as the mode says, then the
/// outputs (the readiness file last).
pub async fn run(config: &Config, addresses: &dyn AddressSource) -> Result<Discovered, RunError> {
    let started = Instant::now();
    let gave_up = |last: String| RunError::GaveUp {
        server: config.server.clone(),
        after: started.elapsed(),
        last,
    };
    let wait = IpWait {
        tries: config.ip_tries,
        interval: config.ip_interval,
    };
    let identity = tokio::time::timeout(
        config.timeout,
        identity::discover(&config.root, &config.overrides, addresses, wait),
    )
    .await
    .map_err(|_| gave_up("still looking for the boot interface's address".to_string()))??;
    if identity.serial.is_none() {
        console::note(
            "this machine has no usable serial number (DMI is empty or a placeholder); the provisioner will match it by UUID or MAC",
        );
    }
    let mut progress = Progress::default();
    let mut node_key = None;
    let admission = if config.onboarding == Onboarding::Off {
        Admission::Off
    } else {
        // Made in RAM for this boot only; the provisioner sees its public half. A run
        // started again in the same boot presents the certificate the first one got, and
        // keeps its key.
        let (key, client_identity) = match held_credential(config, &identity.boot_mac) {
            Some(held) => (held.key, Some(held.identity)),
            None => (enroll::NodeKey::generate(&identity.boot_mac)?, None),
        };
        let key = node_key.insert(key);
        let remaining = config.timeout.saturating_sub(started.elapsed());
        let onboarded = tokio::time::timeout(
            remaining,
            onboard(
                config,
                &identity,
                key.csr_pem(),
                client_identity.as_ref(),
                &mut progress,
            ),
        )
        .await
        .map_err(|_| gave_up(progress.last.clone()))??;
        match onboarded {
            Ok(credentials) => Admission::Onboarded(credentials),
            Err(answer) => Admission::NotServed(answer),
        }
    };
    let mut node_credential = None;
    if let Some(credentials) = admission.credentials() {
        if let (Some(key), false) = (&node_key, credentials.client_cert_pem.is_empty()) {
            let credential = key.accept(&credentials.client_cert_pem, &credentials.node_ca_pem)?;
            node_credential = Some(output::write_node_credential(
                &config.node_credentials_dir,
                &credential,
            )?);
        }
        output::write_credentials(&config.credentials_dir, credentials)?;
    }
    // Last: the env file is the worker's signal that everything it reads is in place.
    output::write_env_file(
        &config.output,
        &output::env_file_text(&identity, &admission, node_credential.as_ref()),
    )?;
    Ok(Discovered {
        identity,
        admission,
        server: config.server.clone(),
        elapsed: started.elapsed(),
        requests: progress.attempts,
    })
}

/// The credential an earlier run of this boot left, when it can be presented again; files
/// that are there but unusable are noted on the console (a fresh key enrolls instead).
fn held_credential(config: &Config, boot_mac: &str) -> Option<held::HeldCredential> {
    match held::find(
        &config.node_credentials_dir,
        boot_mac,
        std::time::SystemTime::now(),
    ) {
        Ok(Some(held)) => {
            console::note(format_args!(
                "presenting the client certificate from this boot's earlier enrollment ({})",
                held.identity.cert_chain.display()
            ));
            Some(held)
        }
        Ok(None) => None,
        Err(error) => {
            console::note(format_args!(
                "the credential from this boot's earlier enrollment is not used: {}; enrolling with a fresh key (the provisioner refuses that while the old credential is active: an operator runs `provisioner node approve-enrollment`)",
                bootkit_common::error_chain(&error)
            ));
            None
        }
    }
}

/// The onboarding conversation: credentials, or the server's word that it serves none.
/// `client_identity`: the certificate of this boot's earlier enrollment, presented so the
/// provisioner lets the node enroll again as itself.
async fn onboard(
    config: &Config,
    identity: &Identity,
    csr_pem: &str,
    client_identity: Option<&agent_channel::ClientIdentity>,
    progress: &mut Progress,
) -> Result<Result<Credentials, NotServed>, RunError> {
    if config.tls == ServerTls::InsecureSkipVerify {
        console::note(format_args!(
            "insecure TLS is set: the certificate of {} is NOT checked; anyone on the network path can impersonate the provisioner",
            config.server
        ));
    }
    let channel =
        agent_channel::connect_lazy(&config.server, &config.tls, client_identity, LIVENESS)?;
    let mut backoff = onboard::retry_backoff(config.backoff_base).delays();
    Ok(onboard::until_onboarded(
        channel,
        identity,
        csr_pem,
        config.onboarding,
        &mut backoff,
        progress,
    )
    .await)
}
