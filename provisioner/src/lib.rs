//! The provisioning service: Tinkerbell-compatible workflows on an embedded store.
//!
//! - [`store`]: hardware, templates and workflows in SQLite.
//! - [`template`]: Tinkerbell's template YAML, validation and `{{.key}}` substitution.
//! - [`state`]: the workflow/action state machine driven by workers' reports.
//! - [`grpc`]: `proto.WorkflowService`, both protocols on one port.
//! - [`boot`]: the node-facing boot service (DHCP, TFTP, iPXE scripts, artifacts, metadata, syslog).
//! - [`onboarding`]: device discovery's onboarding service.
//! - [`node_ca`]: the node CA that signs the client certificates nodes enroll for.
//! - [`admin`]: the admin REST/JSON API, its OpenAPI document, the status page and their
//!   authentication; [`metrics`]: Prometheus; [`https`]: TLS for axum routers.
//! - [`server`]: every listener together (`provisioner serve`).
//! - [`tinkerbell`]: Tinkerbell's `Hardware`, `Template` and `Workflow` objects in and out
//!   (`provisioner apply`, `provisioner get`).
//! - [`udp_drops`]: the boot service's UDP receive buffers and the kernel's drops on them.
//! - [`log_lines`]: `serve`'s log lines, with what nodes and clients sent escaped.

pub mod admin;
pub mod boot;
pub mod grpc;
pub mod hints;
pub mod https;
pub mod limits;
pub mod log_lines;
pub mod metrics;
pub mod node_ca;
pub mod onboarding;
pub mod server;
pub mod state;
pub mod store;
pub mod template;
pub mod tinkerbell;
pub mod udp_drops;
