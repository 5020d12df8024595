//! OnboardNodeStream until the node is onboarded: send the identity; REGISTERED or an unknown
//! node (NotFound) means wait and send it again on the same stream; a broken stream or an
//! unreachable server means wait and open a new one. The caller bounds the whole run.

use std::fmt;
use std::time::Duration;

use bootkit_common::backoff::{Backoff, Delays};
use onboarding_proto::NodeState;
use onboarding_proto::v1::non_interactive_onboarding_service_client::NonInteractiveOnboardingServiceClient;
use onboarding_proto::v1::{OnboardNodeStreamRequest, OnboardNodeStreamResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;

use crate::config::Onboarding;
use crate::console;
use crate::identity::Identity;

/// What the provisioner hands an onboarded node. Debug never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The node's client id (also its node id).
    pub client_id: String,
    /// The secret that goes with `client_id`.
    pub client_secret: String,
    /// The project the node belongs to.
    pub project_id: String,
    /// `bootkit_client_cert_pem`: the client certificate signed for this node's request;
    /// empty from a server that does not enroll (EMT's onboarding manager).
    pub client_cert_pem: String,
    /// `bootkit_node_ca_pem`: the CA that signed it.
    pub node_ca_pem: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("project_id", &self.project_id)
            .field("client_cert_pem", &!self.client_cert_pem.is_empty())
            .finish_non_exhaustive()
    }
}

/// The retry delays: `base` doubling to 16 × `base` (EMT: 2 s to 32 s), each up to a quarter
/// shorter at random so a rack of nodes booted together does not retry in lockstep.
pub fn retry_backoff(base: Duration) -> Backoff {
    const MAX_FACTOR: u32 = 16;
    Backoff::new(base, base.saturating_mul(MAX_FACTOR)).with_jitter(25)
}

/// Where onboarding stands: the last thing the server said (or why it could not be asked),
/// shown when the run gives up.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The last answer or failure, in words; empty before the first one.
    pub last: String,
    /// How many identity requests were sent, over all streams.
    pub attempts: u32,
}

/// The request device discovery sends: upstream's fields plus the bootkit extensions
/// (`csr_pem`: this boot's certificate request, empty to ask for no credential).
pub fn request(identity: &Identity, csr_pem: &str) -> OnboardNodeStreamRequest {
    OnboardNodeStreamRequest {
        uuid: identity.uuid.clone().unwrap_or_default(),
        serialnum: identity.serial.clone().unwrap_or_default(),
        mac_id: identity.boot_mac.clone(),
        host_ip: identity.ip.clone().unwrap_or_default(),
        mac_ids: identity.macs.clone(),
        hardware_json: identity.hardware.to_string(),
        bootkit_csr_pem: csr_pem.to_string(),
    }
}

/// What one answer means for the loop.
enum Answer {
    Onboarded(Credentials),
    /// Known but not onboarded yet, or another answer worth retrying: the reason.
    Retry(String),
    NotRegistered(String),
    /// PERMISSION_DENIED: the node already holds a credential; the server's message.
    Denied(String),
}

fn classify(response: OnboardNodeStreamResponse) -> Answer {
    if let Some(status) = response.status.as_ref().filter(|status| status.code != 0) {
        let code = Code::from_i32(status.code);
        if code == Code::NotFound {
            return Answer::NotRegistered(status.message.clone());
        }
        if code == Code::PermissionDenied {
            return Answer::Denied(status.message.clone());
        }
        return Answer::Retry(format!(
            "the provisioner answered {code:?}: {}",
            status.message
        ));
    }
    match response.node_state() {
        NodeState::Onboarded => Answer::Onboarded(Credentials {
            client_id: response.client_id,
            client_secret: response.client_secret,
            project_id: response.project_id,
            client_cert_pem: response.bootkit_client_cert_pem,
            node_ca_pem: response.bootkit_node_ca_pem,
        }),
        NodeState::Registered => Answer::Retry("registered, waiting to be onboarded".to_string()),
        NodeState::Unspecified => {
            Answer::Retry("the provisioner answered without a node state".to_string())
        }
    }
}

/// The console note for an unknown node: everything an operator needs to register it.
pub fn registration_hint(identity: &Identity, why: &str) -> String {
    let mut register = format!("provisioner node register --mac {}", identity.boot_mac);
    if let Some(serial) = &identity.serial {
        register.push_str(&format!(" --serial {serial}"));
    }
    if let Some(uuid) = &identity.uuid {
        register.push_str(&format!(" --uuid {uuid}"));
    }
    format!(
        "the provisioner does not know this node ({why}); an operator must register serial {} / UUID {} / MAC {}: `{register} --profile NAME` (or set a default profile); retrying",
        identity.serial.as_deref().unwrap_or("(none)"),
        identity.uuid.as_deref().unwrap_or("(none)"),
        identity.boot_mac,
    )
}

/// The console note for a refused enrollment: first contact won, and it was not this boot.
/// Our provisioner's message already names the operator's commands with the node's key; the
/// generic fix is added only when the server's message does not name it.
pub fn enrollment_refused_hint(why: &str) -> String {
    let fix = if why.contains("approve-enrollment") {
        String::new()
    } else {
        "; if this is the real machine (a reboot into the bootkit, a replaced disk), an operator \
         must run `provisioner node reprovision KEY` or `provisioner node approve-enrollment KEY`"
            .to_string()
    };
    format!(
        "the provisioner refuses to enroll this node: {why} (first contact won: this machine \
         enrolled before, or another machine enrolled as it){fix}; retrying"
    )
}

/// The code, the message and the causes behind it ("Unavailable: tcp connect error: …").
fn describe(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), agent_channel::describe(status))
}

/// The server does not serve `onboardingmgr.v1` (it answered UNIMPLEMENTED): a plain
/// Tinkerbell stack. The text is the server's answer, for the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotServed(pub String);

/// How one stream ended.
enum StreamEnd {
    Onboarded(Credentials),
    /// It could not be opened or it broke: try a new one after a pause.
    Broken,
    NotServed(NotServed),
}

/// Talks to the server until the node is onboarded, or, with [`Onboarding::IfServed`], until
/// the server says it does not serve onboarding; never returns otherwise (the caller's
/// timeout and SIGTERM end it). `progress` keeps the last reason for the give-up message.
pub async fn until_onboarded(
    channel: Channel,
    identity: &Identity,
    csr_pem: &str,
    onboarding: Onboarding,
    backoff: &mut Delays,
    progress: &mut Progress,
) -> Result<Credentials, NotServed> {
    let mut client = NonInteractiveOnboardingServiceClient::new(channel);
    let request = request(identity, csr_pem);
    loop {
        match one_stream(&mut client, &request, identity, backoff, progress).await {
            StreamEnd::Onboarded(credentials) => return Ok(credentials),
            StreamEnd::NotServed(answer) if onboarding == Onboarding::IfServed => {
                return Err(answer);
            }
            StreamEnd::NotServed(answer) => console::note(required_but_not_served(&answer)),
            StreamEnd::Broken => {}
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// One stream, until it onboards the node, breaks or turns out to be unserved.
async fn one_stream(
    client: &mut NonInteractiveOnboardingServiceClient<Channel>,
    request: &OnboardNodeStreamRequest,
    identity: &Identity,
    backoff: &mut Delays,
    progress: &mut Progress,
) -> StreamEnd {
    // One request in flight at a time: the server answers each before the next is sent.
    let (sender, receiver) = mpsc::channel(1);
    if sender.send(request.clone()).await.is_err() {
        return StreamEnd::Broken;
    }
    progress.attempts += 1;
    let mut answers = match client
        .onboard_node_stream(ReceiverStream::new(receiver))
        .await
    {
        Ok(response) => response.into_inner(),
        Err(status) => return failed(&status, identity, progress),
    };
    loop {
        let answer = match answers.message().await {
            Ok(Some(response)) => classify(response),
            Ok(None) => {
                progress.last = "the provisioner closed the stream".to_string();
                return StreamEnd::Broken;
            }
            Err(status) => return failed(&status, identity, progress),
        };
        match answer {
            Answer::Onboarded(credentials) => return StreamEnd::Onboarded(credentials),
            Answer::Retry(why) => progress.last = why,
            Answer::NotRegistered(why) => {
                console::note(registration_hint(identity, &why));
                progress.last = format!("not registered: {why}");
            }
            Answer::Denied(why) => {
                console::note(enrollment_refused_hint(&why));
                progress.last = format!("enrollment refused: {why}");
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
        if sender.send(request.clone()).await.is_err() {
            return StreamEnd::Broken;
        }
        progress.attempts += 1;
    }
}

/// Notes a failed call; UNIMPLEMENTED is the caller's to judge (the mode decides), so it is
/// returned rather than noted.
fn failed(status: &tonic::Status, identity: &Identity, progress: &mut Progress) -> StreamEnd {
    let why = describe(status);
    progress.last.clone_from(&why);
    match status.code() {
        Code::Unimplemented => return StreamEnd::NotServed(NotServed(why)),
        Code::NotFound => console::note(registration_hint(identity, status.message())),
        Code::PermissionDenied => console::note(enrollment_refused_hint(status.message())),
        _ => console::note(format_args!("onboarding failed ({why}); retrying")),
    }
    StreamEnd::Broken
}

/// The console note for a server without onboarding when onboarding is required.
fn required_but_not_served(answer: &NotServed) -> String {
    format!(
        "the server does not serve OEP onboarding (onboardingmgr.v1: {}), and onboarding is required (bootkit.onboarding=required or --onboarding required); point grpc_authority / --obs-svc at the provisioner's gRPC port, or boot with bootkit.onboarding=if-served to start the tink-worker without it; retrying",
        answer.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_enrollment_names_the_operators_fix_once() {
        let ours = enrollment_refused_hint(
            "node m1 is enrolled already; an operator runs `provisioner node approve-enrollment m1`",
        );
        assert_eq!(ours.matches("approve-enrollment").count(), 1, "{ours}");
        assert!(ours.contains("approve-enrollment m1"), "{ours}");
        let other = enrollment_refused_hint("denied");
        assert!(
            other.contains("provisioner node approve-enrollment KEY"),
            "a server that does not say gets the generic fix: {other}"
        );
    }

    #[test]
    fn backoff_doubles_to_sixteen_times_the_base_with_bounded_jitter() {
        let mut backoff = retry_backoff(Duration::from_millis(2000)).delays();
        let expected = [2000u128, 4000, 8000, 16000, 32000, 32000];
        for base in expected {
            let delay = backoff.next_delay().as_millis();
            // The shared rule takes jitter off (it used to be added): never above the delay.
            assert!(
                (base - base / 4..=base).contains(&delay),
                "{delay} ms not within {base} ms - 25%"
            );
        }
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let credentials = Credentials {
            client_id: "node-1".to_string(),
            client_secret: "s3cr3t-value".to_string(),
            project_id: "p".to_string(),
            client_cert_pem: String::new(),
            node_ca_pem: String::new(),
        };
        let shown = format!("{credentials:?}");
        assert!(shown.contains("node-1"));
        assert!(!shown.contains("s3cr3t-value"));
    }
}
