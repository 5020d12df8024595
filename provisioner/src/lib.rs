//! The provisioning service: Tinkerbell-compatible workflows on an embedded store.
//!
//! - [`store`]: hardware, templates and workflows in SQLite.
//! - [`template`]: Tinkerbell's template YAML, validation and `{{.key}}` substitution.
//! - [`state`]: the workflow/action state machine driven by workers' reports.
//! - [`grpc`]: `proto.WorkflowService`, both protocols on one port.
//! - [`boot`]: the node-facing boot service (DHCP, TFTP, iPXE scripts, artifacts, metadata, syslog).
//! - [`onboarding`]: device discovery's onboarding service.
//! - [`admin`]: the admin REST/JSON API, its OpenAPI document, the status page and their
//!   authentication; [`metrics`]: Prometheus; [`https`]: TLS for axum routers.
//! - [`server`]: every listener together (`provisioner serve`).
//! - [`tinkerbell`]: Tinkerbell's `Hardware`, `Template` and `Workflow` objects in and out
//!   (`provisioner apply`, `provisioner get`).

pub mod admin;
pub mod boot;
pub mod grpc;
pub mod https;
pub mod metrics;
pub mod onboarding;
pub mod server;
pub mod state;
pub mod store;
pub mod template;
pub mod tinkerbell;
