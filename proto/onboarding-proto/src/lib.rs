//! Open Edge Platform's onboarding protocol, `onboardingmgr.v1`: device discovery (the client,
//! `agents/device-discovery`) and the provisioner (the server) share these generated types.
//!
//! `NonInteractiveOnboardingService.OnboardNodeStream`: the node sends its UUID, serial, MAC
//! and IP; the server answers `REGISTERED` (known, not yet onboarded: resend after a backoff)
//! or `ONBOARDED` with the node's credentials, or a non-OK `status` (NotFound: unknown node).

pub mod google {
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

// Nested as the package is, so the generated `super::super::google::rpc` paths resolve.
pub mod onboardingmgr {
    pub mod v1 {
        tonic::include_proto!("onboardingmgr.v1");
    }
}

pub use onboardingmgr::v1;
pub use v1::onboard_node_stream_response::NodeState;
