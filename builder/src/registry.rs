//! Publishing an [`OciImage`] to a registry with bootkit-oci's client, the one the tink-worker
//! pulls with: a HEAD per blob to skip what the registry has, monolithic uploads, then the
//! manifest under its tag, with the registry's authentication challenge answered.
//!
//! The builder is synchronous and pushes once per command, so the push runs the async client
//! on a current-thread tokio runtime made for it. That was chosen over a blocking facade in
//! bootkit-oci: a facade would be a second entry point to every call, kept in step for this
//! one user, and reqwest's own blocking client runs a runtime on a thread anyway.

use bootkit_common::error_chain;
use std::path::PathBuf;

use bootkit_oci::{OciImage, PushReport, Reference, RegistryClient, RegistryConfig, RetryPolicy};

use crate::error::{BuildError, Result};

/// How the registry is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Docker's insecure registry: HTTPS without certificate checks, else plain HTTP.
    Insecure,
    /// HTTPS, the certificate checked against this PEM bundle, or the system's CA bundle.
    Https {
        /// The PEM bundle of the CA that signed the registry's certificate.
        ca: Option<PathBuf>,
    },
}

/// Push `image` to `target` (its tag names the manifest).
pub fn push(image: &OciImage, target: &Reference, transport: &Transport) -> Result<PushReport> {
    let fail = |reason: String| BuildError::Registry {
        registry: target.registry.clone(),
        reason,
    };
    let client = RegistryClient::new(registry_config(target, transport))
        .map_err(|err| fail(error_chain(&err)))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| fail(format!("cannot start the push's runtime: {err}")))?;
    runtime
        .block_on(client.push_image(target, image))
        .map_err(|err| {
            fail(format!(
                "{err} (is the registry running there, and is --insecure or --ca right for it?)",
                err = error_chain(&err)
            ))
        })
}

fn registry_config(target: &Reference, transport: &Transport) -> RegistryConfig {
    let (insecure_registries, ca_bundle) = match transport {
        Transport::Insecure => (vec![target.registry.clone()], None),
        Transport::Https { ca } => (Vec::new(), ca.clone()),
    };
    RegistryConfig {
        insecure_registries,
        ca_bundle,
        // One attempt, as a build command always made: whoever runs it sees the failure now
        // and decides; the retries are for the agents, which have no one to ask.
        retry: RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        },
        ..RegistryConfig::default()
    }
}
