//! `onboardingmgr.v1` on the store: device discovery's OnboardNodeStream (and CreateNodes).
//!
//! Each stream request is one discovery: the node is matched to its registration (or the
//! default profile), recorded, and its workflow created once. The answer is ONBOARDED with
//! the node's credentials, REGISTERED when the node must wait (provisioned or failed, until
//! `provisioner node reprovision`), or a non-OK `status`: NotFound for an unregistered node
//! with no default profile, FailedPrecondition for conflicting registrations.
//!
//! Credentials: `client_id` is the node id (its boot MAC); `client_secret` is fresh random
//! text issued with every ONBOARDED answer, of which the store keeps only the SHA-256.

use std::pin::Pin;
use std::sync::Arc;

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

use crate::store::text::plain_text;
use crate::store::{Discovery, Identity, RegistrationSpec, Store, StoreError};

/// The project (site) id handed to every onboarded node: one provisioner is one site.
pub const PROJECT_ID: &str = "bootkit";

/// The onboarding services (device discovery's `onboardingmgr.v1`) over the store.
#[derive(Clone)]
pub struct OnboardingServer {
    store: Arc<Store>,
    artifact_base: Option<String>,
}

impl OnboardingServer {
    /// `artifact_base`: `http://host:port` of the node-facing HTTP service, for profiles whose
    /// OS image is a file on this host.
    pub fn new(store: Arc<Store>, artifact_base: Option<String>) -> Self {
        Self {
            store,
            artifact_base,
        }
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
    fn answer(&self, request: &OnboardNodeStreamRequest) -> OnboardNodeStreamResponse {
        match self.onboard(request) {
            Ok(response) => response,
            Err(error) => {
                let status = crate::grpc::status(rejection(error));
                tracing::info!(mac = %request.mac_id, "onboarding refused: {}", status.message());
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
    ) -> Result<OnboardNodeStreamResponse, StoreError> {
        let discovered = self
            .store
            .discover(&discovery(request, self.artifact_base.clone())?)?;
        let node = discovered.node;
        let ok = Some(RpcStatus {
            code: Code::Ok as i32,
            ..Default::default()
        });
        if node.state.awaits_rearm() {
            tracing::info!(node = %node.id, state = %node.state, "onboarding: waits for reprovision");
            return Ok(OnboardNodeStreamResponse {
                status: ok,
                node_state: NodeState::Registered as i32,
                ..Default::default()
            });
        }
        let client_secret = self.store.issue_client_secret(&node.id)?;
        tracing::info!(node = %node.id, workflow = ?discovered.workflow_id, "onboarded");
        Ok(OnboardNodeStreamResponse {
            status: ok,
            node_state: NodeState::Onboarded as i32,
            client_id: node.id,
            client_secret,
            project_id: PROJECT_ID.to_string(),
            ..Default::default()
        })
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
        let answers = request
            .into_inner()
            .map(move |request| request.map(|request| server.answer(&request)));
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
            ..Default::default()
        }))
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
