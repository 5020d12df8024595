//! Tinkerbell's two worker protocols, generated at build time from `proto/`.
//!
//! - [`current`]: tinkerbell/tinkerbell v0.17 and later (`GetAction`,
//!   `ReportActionStatus(ActionStatusRequest)`).
//! - [`legacy`]: tink v0.9 to v0.12 (`GetWorkflowContexts`, `GetWorkflowActions`,
//!   `ReportActionStatus(WorkflowActionStatus)`), spoken by EMT's containerd worker.
//!
//! Both use the service name `proto.WorkflowService`, and both have a method
//! `/proto.WorkflowService/ReportActionStatus` with different request messages. A server
//! that speaks both on one port uses [`dual::DualWorkflowServer`], which tells the two
//! report messages apart by the rule in [`report`].

#[allow(clippy::all)]
pub mod current {
    //! The current protocol, package `proto` (tinkerbell/tinkerbell v0.17+).
    include!(concat!(env!("OUT_DIR"), "/current/proto.rs"));
}

#[allow(clippy::all)]
pub mod legacy {
    //! The legacy protocol, package `proto` (tink v0.9 to v0.12).
    include!(concat!(env!("OUT_DIR"), "/legacy/proto.rs"));
}

pub mod dual;
pub mod report;

/// The gRPC service name both protocols use.
pub const SERVICE_NAME: &str = "proto.WorkflowService";
