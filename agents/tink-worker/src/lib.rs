//! tink-worker: asks the workflow service for actions and runs each as a containerd container.

pub mod config;
pub mod protocol;
pub mod runtime;
pub mod worker;
pub mod worker_dir;
