//! The push side: blob uploads (monolithic POST then PUT, skipped when the registry has the
//! blob already), manifest uploads, and whole images in the order a registry needs.

use std::collections::HashMap;

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, LOCATION};

use super::{Endpoint, RegistryClient};
use crate::digest::sha256_digest;
use crate::error::RegistryError;
use crate::image::OciImage;
use crate::manifest::Descriptor;
use crate::reference::Reference;

/// The scope a push asks a token server for.
const PUSH_ACTIONS: &str = "pull,push";

/// What a push of a whole image did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// The manifest's digest: `REPOSITORY@DIGEST` names exactly what was pushed.
    pub manifest_digest: String,
    /// Blobs uploaded (config and layers).
    pub uploaded_blobs: usize,
    /// Blobs the registry had already.
    pub skipped_blobs: usize,
}

impl RegistryClient {
    /// Pushes `image` under `target`'s tag: config and layers (those the registry lacks),
    /// then the manifest.
    pub async fn push_image(
        &self,
        target: &Reference,
        image: &OciImage,
    ) -> Result<PushReport, RegistryError> {
        let mut report = PushReport {
            manifest_digest: image.manifest.digest.clone(),
            uploaded_blobs: 0,
            skipped_blobs: 0,
        };
        for blob in std::iter::once(&image.config).chain(&image.layers) {
            let data = Bytes::from(blob.data.clone());
            if self
                .upload_blob_if_absent(target, &blob.digest, data)
                .await?
            {
                report.uploaded_blobs += 1;
            } else {
                report.skipped_blobs += 1;
            }
        }
        self.push_manifest(
            target,
            &image.manifest.media_type,
            Bytes::from(image.manifest.data.clone()),
        )
        .await?;
        Ok(report)
    }

    /// Uploads `data` as a blob of `target`'s repository (skipped when the registry has it).
    pub async fn push_blob(
        &self,
        target: &Reference,
        media_type: &str,
        data: Bytes,
    ) -> Result<Descriptor, RegistryError> {
        let digest = sha256_digest(&data);
        let descriptor = Descriptor {
            media_type: media_type.to_string(),
            digest: digest.clone(),
            size: data.len() as i64,
            platform: None,
            annotations: HashMap::new(),
        };
        self.upload_blob_if_absent(target, &digest, data).await?;
        Ok(descriptor)
    }

    /// Whether the blob had to be uploaded (`false`: the registry had it).
    async fn upload_blob_if_absent(
        &self,
        target: &Reference,
        digest: &str,
        data: Bytes,
    ) -> Result<bool, RegistryError> {
        let what = format!("blob {digest}");
        let repository = &target.repository;
        let host = self.push_host(target);
        let endpoint = Endpoint {
            host: &host,
            namespace: None,
        };
        let retry = self.config.retry.clone();
        let exists = self
            .send(
                &endpoint,
                repository,
                PUSH_ACTIONS,
                &what,
                &retry,
                |client, base| client.head(format!("{}/{repository}/blobs/{digest}", base.api)),
            )
            .await;
        match exists {
            Ok(_) => return Ok(false),
            Err(RegistryError::NotFound { .. }) => {}
            Err(error) => return Err(error),
        }
        let started = self
            .send(
                &endpoint,
                repository,
                PUSH_ACTIONS,
                "blob upload",
                &retry,
                |client, base| client.post(format!("{}/{repository}/blobs/uploads/", base.api)),
            )
            .await?;
        let location = started
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Transfer {
                host: host.host.clone(),
                what: what.clone(),
                detail: "the upload was started without a Location header".to_string(),
            })?
            .to_string();
        self.send(
            &endpoint,
            repository,
            PUSH_ACTIONS,
            &what,
            &retry,
            |client, base| {
                client
                    .put(upload_url(&base.origin, &location, digest))
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(data.clone())
            },
        )
        .await?;
        Ok(true)
    }

    /// Uploads a manifest under `target`'s tag; returns its digest.
    pub async fn push_manifest(
        &self,
        target: &Reference,
        media_type: &str,
        body: Bytes,
    ) -> Result<String, RegistryError> {
        let selector = target.manifest_selector().to_string();
        let path = format!("/{}/manifests/{selector}", target.repository);
        let host = self.push_host(target);
        let endpoint = Endpoint {
            host: &host,
            namespace: None,
        };
        self.send(
            &endpoint,
            &target.repository,
            PUSH_ACTIONS,
            &format!("manifest {selector}"),
            &self.config.retry.clone(),
            |client, base| {
                client
                    .put(format!("{}{path}", base.api))
                    .header(CONTENT_TYPE, media_type)
                    .body(body.clone())
            },
        )
        .await?;
        Ok(sha256_digest(&body))
    }
}

/// The PUT that completes an upload: the Location the registry gave (absolute or relative to
/// the registry, maybe with its own query) plus the digest.
fn upload_url(base: &str, location: &str, digest: &str) -> String {
    let absolute = if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else {
        format!("{base}{location}")
    };
    let separator = if absolute.contains('?') { '&' } else { '?' };
    format!("{absolute}{separator}digest={digest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upload_url_keeps_the_registrys_query() {
        assert_eq!(
            upload_url(
                "http://r:5000",
                "/v2/x/blobs/uploads/u1?_state=s",
                "sha256:ab"
            ),
            "http://r:5000/v2/x/blobs/uploads/u1?_state=s&digest=sha256:ab"
        );
        assert_eq!(
            upload_url(
                "http://r:5000",
                "http://r:5000/v2/x/blobs/uploads/u1",
                "sha256:ab"
            ),
            "http://r:5000/v2/x/blobs/uploads/u1?digest=sha256:ab"
        );
    }
}
