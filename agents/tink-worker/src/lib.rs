//! tink-worker: asks the workflow service for actions and runs each as a containerd container.

pub mod config;
mod error_text;
pub mod protocol;
pub mod registry;
pub mod runtime;
pub mod worker;
