//! An image held in memory as content-addressed blobs: what the builder makes and writes as an
//! image layout, and what [`crate::RegistryClient::push_image`] publishes.

use std::fmt;

use crate::digest::sha256_digest;
use crate::manifest::Descriptor;

/// A content-addressed blob.
#[derive(Clone, PartialEq, Eq)]
pub struct Blob {
    /// The media type a descriptor of it carries (`OCI_CONFIG`, `OCI_LAYER_GZIP`, ...).
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// The blob's bytes.
    pub data: Vec<u8>,
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob")
            .field("media_type", &self.media_type)
            .field("digest", &self.digest)
            .field("size", &self.data.len())
            .finish()
    }
}

impl Blob {
    /// A blob of `data`, its digest computed.
    pub fn new(media_type: &str, data: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.to_string(),
            digest: sha256_digest(&data),
            data,
        }
    }

    /// The descriptor a manifest lists this blob by (no platform, no annotations).
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.data.len() as i64,
            platform: None,
            annotations: Default::default(),
        }
    }

    /// The digest's hex part, the blob's file name in a layout.
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
}

/// An image: its manifest, config and layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciImage {
    /// The manifest blob, whose digest is the image's.
    pub manifest: Blob,
    /// The config blob the manifest names.
    pub config: Blob,
    /// The layer blobs, in the manifest's order (base first).
    pub layers: Vec<Blob>,
}

impl OciImage {
    /// Config and layers first, manifest last: the order a registry needs them in.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config)
            .chain(&self.layers)
            .chain(std::iter::once(&self.manifest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_named_by_its_content_and_an_image_lists_its_manifest_last() {
        let blob = |data: &[u8]| Blob::new("application/octet-stream", data.to_vec());
        let image = OciImage {
            manifest: blob(b"manifest"),
            config: blob(b"config"),
            layers: vec![blob(b"layer")],
        };
        assert_eq!(image.config.digest, sha256_digest(b"config"));
        assert_eq!(image.config.descriptor().size, 6);
        assert_eq!(
            format!("sha256:{}", image.config.hex()),
            image.config.digest
        );
        let order: Vec<_> = image.blobs().map(|blob| blob.data.clone()).collect();
        assert_eq!(order, [&b"config"[..], b"layer", b"manifest"]);
        assert!(format!("{:?}", image.layers[0]).contains("size: 5"));
    }
}
