//! The provisioning service: Tinkerbell-compatible workflows on an embedded store.
//!
//! - [`store`]: hardware, templates and workflows in SQLite.
//! - [`template`]: Tinkerbell's template YAML, validation and `{{.key}}` substitution.
//! - [`state`]: the workflow/action state machine driven by workers' reports.
//! - [`grpc`]: `proto.WorkflowService`, both protocols on one port.
//! - [`http`]: the REST/JSON API.
//! - [`server`]: both listeners together (`provisioner serve`).

pub mod grpc;
pub mod http;
pub mod server;
pub mod state;
pub mod store;
pub mod template;
