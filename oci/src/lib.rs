//! bootkit-oci: OCI images and the registry v2 API, for everything in the bootkit that makes,
//! pushes or pulls images: the builder's action images, the tink-worker's pulls, the tests'
//! images.
//!
//! - [`digest`]: sha256 content digests.
//! - [`manifest`]: the OCI / Docker schema 2 documents (descriptor, manifest, index, image
//!   config) and their media types.
//! - [`reference`](mod@reference): image references as Docker writes them.
//! - [`image`]: an image as content-addressed blobs in memory.
//! - [`hosts`]: containerd's registry host configuration (`certs.d/<registry>/hosts.toml`):
//!   mirrors, CAs, client certificates, headers per registry.
//! - [`client`]: the registry client (async, reqwest with rustls and ring): pull, push,
//!   authentication, mirrors (tried in order), insecure registries, retries.
//!
//! Why not the `oci-client` crate: it has no registry mirror, no Docker-style insecure
//! registries (HTTPS without checks, then plain HTTP), no way to hand it our rustls
//! configuration (ring only, the agents' CA bundle rules), and its errors do not say which
//! setting to fix; on top of it the worker would keep most of this code anyway.

pub mod client;
pub mod digest;
pub mod error;
pub mod hosts;
pub mod image;
pub mod manifest;
pub mod reference;

pub use client::{
    BlobReader, Credentials, PushReport, RegistryClient, RegistryConfig, ResolvedImage, RetryPolicy,
};
pub use digest::sha256_digest;
pub use error::RegistryError;
pub use hosts::{HostsDir, RegistryHost};
pub use image::{Blob, OciImage};
pub use manifest::{Descriptor, ImageConfig, ImageManifest};
pub use reference::Reference;
