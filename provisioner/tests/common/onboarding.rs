//! The onboarding service as device discovery drives it: one open `OnboardNodeStream`.

use std::time::Duration;

use futures::channel::mpsc::{UnboundedSender, unbounded};
use onboarding_proto::v1::non_interactive_onboarding_service_client::NonInteractiveOnboardingServiceClient;
use onboarding_proto::v1::{OnboardNodeStreamRequest, OnboardNodeStreamResponse};
use tonic::Streaming;

use super::TestServer;

/// Bounds every wait for an answer; the server answers at once.
pub const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// One open OnboardNodeStream: send a request, read its answer.
pub struct OnboardingStream {
    /// Where requests go; dropping it ends the stream from the node's side.
    pub requests: UnboundedSender<OnboardNodeStreamRequest>,
    /// The server's answers, one per request.
    pub answers: Streaming<OnboardNodeStreamResponse>,
}

impl OnboardingStream {
    pub async fn open(server: &TestServer) -> Self {
        let mut client = NonInteractiveOnboardingServiceClient::connect(server.grpc_url())
            .await
            .unwrap();
        let (requests, receiver) = unbounded();
        let answers = client
            .onboard_node_stream(receiver)
            .await
            .unwrap()
            .into_inner();
        Self { requests, answers }
    }

    pub async fn ask(&mut self, request: OnboardNodeStreamRequest) -> OnboardNodeStreamResponse {
        self.requests.unbounded_send(request).unwrap();
        tokio::time::timeout(ANSWER_WAIT, self.answers.message())
            .await
            .expect("the server answers each request")
            .unwrap()
            .expect("the stream stays open")
    }
}
