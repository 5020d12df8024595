//! `onboardingmgr.v1` on the store: device discovery's OnboardNodeStream (and CreateNodes).
//!
//! Each stream request is one discovery: the node is matched to its registration (or the
//! default profile), recorded, and its workflow created once. The answer is ONBOARDED with
//! the node's credentials, REGISTERED when the node must wait (provisioned or failed, until
//! `provisioner node reprovision`), or a non-OK `status`: NotFound for an unregistered node
//! with no default profile, FailedPrecondition for conflicting registrations.
//!
//! Credentials: `client_id` is the node id (its boot MAC); `client_secret` is fresh random
//! text issued with every ONBOARDED answer, of which the store keeps only the SHA-256. A
//! request with `bootkit_csr_pem` (and a node CA configured) also gets a client certificate
//! signed for the node (`bootkit_client_cert_pem`) and the node CA (`bootkit_node_ca_pem`).
//!
//! First contact wins (issue 15 §1): a node holding an active credential (certificate or
//! client secret, not revoked, not expired) is refused PERMISSION_DENIED, and the attempt
//! changes nothing, until an operator runs `provisioner node approve-enrollment` or `node
//! reprovision`: someone who knows a node's serial and MAC cannot take its place.
//!
//! `CreateNodes` registers nodes, so it is an admin call: it needs the admin token as gRPC
//! metadata `authorization: Bearer <token>`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use onboarding_proto::NodeState;
use onboarding_proto::google::rpc::Status as RpcStatus;
use onboarding_proto::v1::interactive_onboarding_service_server::{
    InteractiveOnboardingService, InteractiveOnboardingServiceServer,
};
use onboarding_proto::v1::non_interactive_onboarding_service_server::{
    NonInteractiveOnboardingService, NonInteractiveOnboardingServiceServer,
};
use onboarding_proto::v1::{
    CreateNodesRequest, CreateNodesResponse, HwData, OnboardNodeStreamRequest,
    OnboardNodeStreamResponse,
};
use tonic::{Code, Request, Response, Status, Streaming};

use crate::admin::{Auth, bearer_value, token_actor};
use crate::node_ca::{NodeCa, NodeCaError};
use crate::store::text::plain_text;
use crate::store::{
    Discovery, EnrollmentRefused, Identity, NewAuditEntry, RegistrationSpec, Store, StoreError,
};
use crate::template::FieldError;

/// The project (site) id handed to every onboarded node: one provisioner is one site.
pub const PROJECT_ID: &str = "bootkit";

/// How long a client secret issued without a node CA stays the node's active credential
/// (with one, the node CA's certificate lifetime, `--node-cert-lifetime`, applies).
pub const DEFAULT_CREDENTIAL_LIFETIME: Duration = crate::node_ca::DEFAULT_NODE_CERT_LIFETIME;

/// Who is onboarding: the peer address (for the log and the node's timeline) and, when the
/// TLS connection carries an active node certificate, the node it was issued to (a node
/// re-entering onboarding in the same boot, which may enroll again as itself only).
#[derive(Debug, Clone)]
struct Caller {
    address: String,
    certificate_node: Option<String>,
}

/// The onboarding services (device discovery's `onboardingmgr.v1`) over the store.
#[derive(Clone)]
pub struct OnboardingServer {
    store: Arc<Store>,
    artifact_base: Option<String>,
    node_ca: Option<Arc<NodeCa>>,
    admin: Option<Arc<Auth>>,
}

impl OnboardingServer {
    /// `artifact_base`: `http://host:port` of the node-facing HTTP service, for profiles whose
    /// OS image is a file on this host.
    pub fn new(store: Arc<Store>, artifact_base: Option<String>) -> Self {
        Self {
            store,
            artifact_base,
            node_ca: None,
            admin: None,
        }
    }

    /// Signs the client certificates of nodes that send a certificate request; without a
    /// node CA they get a client secret only.
    #[must_use]
    pub fn with_node_ca(mut self, node_ca: Option<Arc<NodeCa>>) -> Self {
        self.node_ca = node_ca;
        self
    }

    /// The admin authentication `CreateNodes` checks its bearer token with; without one
    /// (no admin token configured) `CreateNodes` is refused.
    #[must_use]
    pub fn with_admin_auth(mut self, admin: Option<Auth>) -> Self {
        self.admin = admin.map(Arc::new);
        self
    }

    /// The non-interactive service (`OnboardNodeStream`) that device discovery calls.
    pub fn non_interactive(&self) -> NonInteractiveOnboardingServiceServer<Self> {
        NonInteractiveOnboardingServiceServer::new(self.clone())
    }

    /// The interactive service (`CreateNodes`): registers nodes with the default profile.
    pub fn interactive(&self) -> InteractiveOnboardingServiceServer<Self> {
        InteractiveOnboardingServiceServer::new(self.clone())
    }

    /// The answer to one stream request; failures go in the answer's `status`, so the
    /// stream stays open for the node's next attempt.
    fn answer(
        &self,
        request: &OnboardNodeStreamRequest,
        caller: &Caller,
    ) -> OnboardNodeStreamResponse {
        match self.onboard(request, caller) {
            Ok(response) => response,
            Err(error) => {
                let status = match error {
                    Refusal::Store(error) => crate::grpc::status(rejection(error)),
                    Refusal::NodeCa(error) => node_ca_status(&error),
                    Refusal::Enrolled(error) => Status::permission_denied(error.to_string()),
                };
                tracing::info!(
                    mac = ?request.mac_id,
                    caller = %caller.address,
                    "onboarding refused: {}",
                    status.message()
                );
                let identity = Identity::new(
                    Some(&request.serialnum),
                    Some(&request.uuid),
                    &[&request.mac_id],
                );
                self.store.record_refusal(
                    &identity,
                    Some(&request.host_ip),
                    "onboarding",
                    status.message(),
                );
                OnboardNodeStreamResponse {
                    status: Some(RpcStatus {
                        code: status.code() as i32,
                        message: status.message().to_string(),
                        details: Vec::new(),
                    }),
                    ..Default::default()
                }
            }
        }
    }

    fn onboard(
        &self,
        request: &OnboardNodeStreamRequest,
        caller: &Caller,
    ) -> Result<OnboardNodeStreamResponse, Refusal> {
        let csr = Some(request.bootkit_csr_pem.trim()).filter(|csr| !csr.is_empty());
        let lifetime = self
            .node_ca
            .as_deref()
            .map_or(DEFAULT_CREDENTIAL_LIFETIME, NodeCa::lifetime);
        let enrolled = self.store.enroll(
            &discovery(request, self.artifact_base.clone())?,
            &caller.address,
            caller.certificate_node.as_deref(),
            lifetime,
            |node| -> Result<_, Refusal> {
                match (csr, &self.node_ca) {
                    (Some(csr), Some(node_ca)) => {
                        Ok(Some(node_ca.sign(csr, &node.id, node_ca.lifetime())?))
                    }
                    (Some(_), None) => {
                        // The node works with the client secret; its agents then present no
                        // certificate, which the site may or may not accept.
                        tracing::warn!(
                            node = %node.id,
                            "the node sent a certificate request but serve has no node CA \
                             (--node-ca-cert, --node-ca-key): it gets a client secret only"
                        );
                        Ok(None)
                    }
                    (None, _) => Ok(None),
                }
            },
        )?;
        let node = enrolled.discovered.node;
        let discovered_workflow = enrolled.discovered.workflow_id;
        let ok = Some(RpcStatus {
            code: Code::Ok as i32,
            ..Default::default()
        });
        let Some(client_secret) = enrolled.client_secret else {
            tracing::info!(node = %node.id, state = %node.state, "onboarding: waits for reprovision");
            return Ok(OnboardNodeStreamResponse {
                status: ok,
                node_state: NodeState::Registered as i32,
                ..Default::default()
            });
        };
        tracing::info!(
            node = %node.id,
            workflow = ?discovered_workflow,
            caller = %caller.address,
            re_entry = caller.certificate_node.is_some(),
            certificate = enrolled.certificate.is_some(),
            "onboarded"
        );
        let (bootkit_client_cert_pem, bootkit_node_ca_pem) =
            match (enrolled.certificate, &self.node_ca) {
                (Some(certificate), Some(node_ca)) => {
                    (certificate.cert_pem, node_ca.ca_pem().to_string())
                }
                _ => (String::new(), String::new()),
            };
        Ok(OnboardNodeStreamResponse {
            status: ok,
            node_state: NodeState::Onboarded as i32,
            client_id: node.id,
            client_secret,
            project_id: PROJECT_ID.to_string(),
            bootkit_client_cert_pem,
            bootkit_node_ca_pem,
        })
    }

    /// The caller of `request`, by its peer address and client certificate. A certificate
    /// that is not an active credential (revoked, expired) counts as none: such a node
    /// enrolls as any new contact does.
    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let address = request
            .remote_addr()
            .as_ref()
            .map_or_else(|| "an unknown address".to_string(), SocketAddr::to_string);
        let certificate_node = match crate::node_ca::client_certificate_fingerprint(request) {
            None => None,
            Some(fingerprint) => {
                let node = self
                    .store
                    .active_credential(&fingerprint)
                    .map_err(crate::grpc::status)?;
                if node.is_none() {
                    tracing::info!(
                        fingerprint,
                        caller = %address,
                        "onboarding: the client certificate is not an active credential (revoked or expired); treated as none"
                    );
                }
                node
            }
        };
        Ok(Caller {
            address,
            certificate_node,
        })
    }

    /// CreateNodes: checks the admin token ([`Self::require_admin`]), then registers each
    /// machine with the default profile.
    fn create_nodes_as_admin(
        &self,
        request: Request<CreateNodesRequest>,
    ) -> Result<Response<CreateNodesResponse>, Status> {
        self.require_admin(&request)?;
        let request = request.into_inner();
        let profile = self
            .store
            .default_profile()
            .map_err(crate::grpc::status)?
            .ok_or_else(|| {
                Status::permission_denied(
                    "no default profile is set, so CreateNodes has no profile to register nodes with: \
                     set one (`provisioner profile default NAME`) or register nodes with a profile",
                )
            })?;
        for hardware in request.payload.iter().flat_map(|node| &node.hwdata) {
            self.store
                .register(&registration(hardware, &profile.name))
                .map_err(crate::grpc::status)?;
        }
        Ok(Response::new(CreateNodesResponse {
            payload: request.payload,
            project_id: PROJECT_ID.to_string(),
        }))
    }

    /// Refuses a `CreateNodes` call without the admin token.
    fn require_admin<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|value| bearer_value(value.as_bytes()));
        let Some(admin) = &self.admin else {
            return Err(Status::unauthenticated(
                "CreateNodes registers nodes, so it needs the admin token, and this provisioner \
                 has none configured: serve with --admin-token-file (provisioner init writes one)",
            ));
        };
        if admin.admits_token(given) {
            return Ok(());
        }
        let what = if given.is_some() {
            "the admin token sent is not this provisioner's"
        } else {
            "no admin token was sent"
        };
        Err(Status::unauthenticated(format!(
            "CreateNodes registers nodes, so it needs the admin token: {what}; send gRPC metadata \
             `authorization: Bearer <token>` with the content of serve's --admin-token-file"
        )))
    }
}

/// Why an onboarding request was refused.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    NodeCa(#[from] NodeCaError),
    #[error(transparent)]
    Enrolled(#[from] EnrollmentRefused),
}

impl From<FieldError> for Refusal {
    fn from(error: FieldError) -> Self {
        Refusal::Store(error.into())
    }
}

/// A certificate request the node got wrong is its fault; the rest is the server's.
fn node_ca_status(error: &NodeCaError) -> Status {
    match error {
        NodeCaError::Request(_) => Status::invalid_argument(error.to_string()),
        _ => Status::internal(error.to_string()),
    }
}

/// An unregistered node with no default profile is "not found" to the onboarding protocol.
fn rejection(error: StoreError) -> StoreError {
    match error {
        StoreError::PermissionDenied(message) => StoreError::NotFound {
            kind: "registration",
            id: message,
        },
        other => other,
    }
}

fn discovery(
    request: &OnboardNodeStreamRequest,
    artifact_base: Option<String>,
) -> Result<Discovery, StoreError> {
    // The raw values, before `Identity::new` trims them or drops malformed ones: a node
    // reporting control characters is refused, naming the request's field.
    plain_text("serialnum", &request.serialnum)?;
    plain_text("uuid", &request.uuid)?;
    plain_text("host_ip", &request.host_ip)?;
    let macs: Vec<&str> = std::iter::once(request.mac_id.as_str())
        .chain(request.mac_ids.iter().map(String::as_str))
        .collect();
    let attributes = match request.hardware_json.trim() {
        "" => None,
        json => Some(hardware_json(json)?),
    };
    Ok(Discovery {
        identity: Identity::new(Some(&request.serialnum), Some(&request.uuid), &macs),
        ip: Some(request.host_ip.trim())
            .filter(|ip| !ip.is_empty())
            .map(str::to_string),
        attributes,
        artifact_base,
    })
}

/// Device discovery's `hardware_json`: a JSON object whose `inBand`, when present, is an
/// object too (Tinkerbell's `status.attributes.inBand`, stored as the node's inventory).
fn hardware_json(json: &str) -> Result<serde_json::Value, crate::template::FieldError> {
    use crate::template::FieldError;
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|error| FieldError::new("hardware_json", format!("not valid JSON: {error}")))?;
    let object = value.as_object().ok_or_else(|| {
        FieldError::new(
            "hardware_json",
            "must be a JSON object (device discovery's hardware attributes)",
        )
    })?;
    if let Some(in_band) = object.get("inBand")
        && !in_band.is_object()
    {
        return Err(FieldError::new(
            "hardware_json.inBand",
            format!(
                "must be an object in the shape of Tinkerbell's status.attributes.inBand, not {in_band}"
            ),
        ));
    }
    Ok(value)
}

type ResponseStream =
    Pin<Box<dyn Stream<Item = Result<OnboardNodeStreamResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl NonInteractiveOnboardingService for OnboardingServer {
    type OnboardNodeStreamStream = ResponseStream;

    async fn onboard_node_stream(
        &self,
        request: Request<Streaming<OnboardNodeStreamRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let server = self.clone();
        let caller = server.caller(&request)?;
        let answers = request
            .into_inner()
            .map(move |request| request.map(|request| server.answer(&request, &caller)));
        Ok(Response::new(Box::pin(answers)))
    }
}

#[tonic::async_trait]
impl InteractiveOnboardingService for OnboardingServer {
    /// Registers each node with the default profile.
    async fn create_nodes(
        &self,
        request: Request<CreateNodesRequest>,
    ) -> Result<Response<CreateNodesResponse>, Status> {
        // Registering machines is an admin action: recorded in the audit log like the admin
        // API's, whoever asked and whatever the answer.
        let address = request
            .remote_addr()
            .map_or_else(|| "unknown".to_string(), |address| address.to_string());
        let actor = request
            .metadata()
            .get("authorization")
            .and_then(|value| bearer_value(value.as_bytes()))
            .map_or_else(|| "no credential".to_string(), token_actor);
        let hardware_count: usize = request
            .get_ref()
            .payload
            .iter()
            .map(|node| node.hwdata.len())
            .sum();
        let answer = self.create_nodes_as_admin(request);
        let entry = NewAuditEntry {
            actor,
            address,
            method: "gRPC".to_string(),
            path: "/onboardingmgr.v1.InteractiveOnboardingService/CreateNodes".to_string(),
            summary: format!("register {hardware_count} machine(s) with the default profile"),
            status: match &answer {
                Ok(_) => 200,
                Err(status) if status.code() == Code::Unauthenticated => 401,
                Err(status) if status.code() == Code::PermissionDenied => 403,
                Err(_) => 400,
            },
        };
        if let Err(error) = self.store.record_audit(&entry) {
            tracing::error!(%error, "recording CreateNodes in the audit log failed");
        }
        answer
    }
}

/// Placeholder serials and UUIDs are treated as absent: a node is then registered by what
/// identifies it for real.
fn registration(hardware: &HwData, profile: &str) -> RegistrationSpec {
    let identity = Identity::new(
        Some(&hardware.serialnum),
        Some(&hardware.uuid),
        &[hardware.mac_id.as_str()],
    );
    RegistrationSpec {
        serial: identity.serial,
        uuid: identity.uuid,
        mac: identity.macs.into_iter().next(),
        profile: profile.to_string(),
        ..Default::default()
    }
}
