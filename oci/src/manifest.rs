//! The OCI / Docker schema 2 documents a pull reads, a push writes and an image layout holds.
//!
//! Hand-written serde structs for the handful of fields used here: the oci-spec crate models
//! every field of every document with builders and getters, far more than the builder and
//! the worker need, and unknown fields are ignored on reading either way.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::RegistryError;

/// Media type of an OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of a gzip-compressed OCI layer (what the builder writes).
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The index annotation that names an image of a layout (its tag).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// Media type of a Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Media type of a Docker schema 2 manifest list (Docker's index).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Every manifest kind a pull accepts, for the `Accept` header.
pub const ACCEPTED_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// The platform the worker runs images for.
pub const PLATFORM_OS: &str = "linux";
/// The architecture the worker runs images for (OCI/Go spelling).
pub const PLATFORM_ARCH: &str = "amd64";

/// A reference to a blob or manifest: its type, digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The referenced content's media type.
    pub media_type: String,
    /// `sha256:<hex>` of the content.
    pub digest: String,
    /// The content's length in bytes (signed, as the OCI spec has it).
    pub size: i64,
    /// In an index: the platform the manifest is for; None elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// OCI annotations (in a layout's index: [`REF_NAME_ANNOTATION`] names the tag).
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

/// The platform an image is for, as an index entry names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// Go's `GOARCH` spelling (`amd64`, `arm64`).
    pub architecture: String,
    /// Go's `GOOS` spelling (`linux`).
    pub os: String,
    /// CPU variant (`v8` for arm64); None when the index names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform the worker runs and the builder makes images for.
    pub fn linux_amd64() -> Platform {
        Platform {
            architecture: PLATFORM_ARCH.to_string(),
            os: PLATFORM_OS.to_string(),
            variant: None,
        }
    }
}

/// An image manifest (OCI or Docker schema 2: the same fields).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// 2 for every manifest this crate reads or writes.
    pub schema_version: u32,
    /// The manifest's own media type; Docker's always has it, OCI's may not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image config.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
}

/// An image index or Docker manifest list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// 2 for every index this crate reads or writes.
    pub schema_version: u32,
    /// The index's own media type, when it carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// One entry per image, each with its platform.
    pub manifests: Vec<Descriptor>,
}

/// The parts of the image config a pull and a run need.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    /// The architecture the image was built for (Go spelling); empty when absent.
    #[serde(default)]
    pub architecture: String,
    /// The OS the image was built for (Go spelling); empty when absent.
    #[serde(default)]
    pub os: String,
    /// How a container of the image runs.
    #[serde(default)]
    pub config: ContainerConfig,
    /// The layers' uncompressed digests.
    pub rootfs: RootFs,
}

/// The image config's `config`: a container's defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `Entrypoint`; None: the image sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`: arguments after the entrypoint; None: the image sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `Env`, as `KEY=value`; None: the image sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// `WorkingDir`; None: the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
}

/// The image config's `rootfs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `sha256:<hex>` of each layer uncompressed, in layer order.
    pub diff_ids: Vec<String>,
}

/// What a manifest endpoint answered: an image manifest, or an index to pick from.
pub enum ManifestDocument {
    /// A single-platform image manifest.
    Image(ImageManifest),
    /// An index (or Docker manifest list) to pick a platform's manifest from.
    Index(ImageIndex),
}

impl ManifestDocument {
    /// Parses by the media type the registry sent, falling back to the document's own
    /// `mediaType` (some registries answer with a generic content type).
    pub fn parse(content_type: &str, body: &[u8]) -> Result<Self, RegistryError> {
        let declared: Option<String> = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string));
        let kind = match content_type {
            OCI_INDEX | DOCKER_MANIFEST_LIST | OCI_MANIFEST | DOCKER_MANIFEST => content_type,
            _ => declared.as_deref().unwrap_or(""),
        };
        let invalid = |source: serde_json::Error| RegistryError::InvalidDocument {
            what: "manifest",
            source,
        };
        match kind {
            OCI_INDEX | DOCKER_MANIFEST_LIST => serde_json::from_slice(body)
                .map(Self::Index)
                .map_err(invalid),
            OCI_MANIFEST | DOCKER_MANIFEST => serde_json::from_slice(body)
                .map(Self::Image)
                .map_err(invalid),
            // OCI allows an index or manifest without mediaType: tell them by their fields.
            _ if serde_json::from_slice::<ImageIndex>(body).is_ok() => serde_json::from_slice(body)
                .map(Self::Index)
                .map_err(invalid),
            _ => serde_json::from_slice(body).map(Self::Image).map_err(|_| {
                RegistryError::UnsupportedManifest {
                    media_type: content_type.to_string(),
                }
            }),
        }
    }
}

impl ImageIndex {
    /// The linux/amd64 image of a multi-platform index.
    pub fn pick_platform(&self) -> Option<&Descriptor> {
        self.manifests.iter().find(|manifest| {
            manifest
                .platform
                .as_ref()
                .is_some_and(|p| p.os == PLATFORM_OS && p.architecture == PLATFORM_ARCH)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_yields_its_linux_amd64_manifest() {
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
          "manifests":[
           {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:arm","size":1,
            "platform":{"architecture":"arm64","os":"linux"}},
           {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:x86","size":2,
            "platform":{"architecture":"amd64","os":"linux"}}]}"#;
        let ManifestDocument::Index(index) = ManifestDocument::parse(OCI_INDEX, body).unwrap()
        else {
            panic!("an index was not recognised");
        };
        assert_eq!(index.pick_platform().unwrap().digest, "sha256:x86");
    }

    #[test]
    fn a_docker_manifest_without_a_content_type_is_read_by_its_media_type() {
        let body = br#"{"schemaVersion":2,
          "mediaType":"application/vnd.docker.distribution.manifest.v2+json",
          "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:c","size":3},
          "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:l","size":4}]}"#;
        let ManifestDocument::Image(manifest) =
            ManifestDocument::parse("application/octet-stream", body).unwrap()
        else {
            panic!("a manifest was not recognised");
        };
        assert_eq!(manifest.config.digest, "sha256:c");
        assert_eq!(manifest.layers.len(), 1);
    }

    #[test]
    fn a_schema_1_manifest_is_refused_by_name() {
        let body = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        let error = ManifestDocument::parse(
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            body,
        );
        assert!(matches!(
            error,
            Err(RegistryError::UnsupportedManifest { .. })
        ));
    }
}
