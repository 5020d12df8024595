//! The push side: blob uploads (monolithic POST then PUT) and manifest uploads, used to
//! publish test images.

use std::collections::HashMap;

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, LOCATION};

use super::{Descriptor, Reference, RegistryClient, RegistryError, sha256_digest};

impl RegistryClient {
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
        let what = format!("blob {digest}");
        let repository = &target.repository;
        let exists = self
            .send(target, "pull,push", &what, |client, base| {
                client.head(format!("{base}/v2/{repository}/blobs/{digest}"))
            })
            .await;
        match exists {
            Ok(_) => return Ok(descriptor),
            Err(RegistryError::NotFound { .. }) => {}
            Err(error) => return Err(error),
        }
        let started = self
            .send(target, "pull,push", "blob upload", |client, base| {
                client.post(format!("{base}/v2/{repository}/blobs/uploads/"))
            })
            .await?;
        let location = started
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Transfer {
                host: target.api_host().to_string(),
                what: what.clone(),
                detail: "the upload was started without a Location header".to_string(),
            })?
            .to_string();
        let separator = if location.contains('?') { '&' } else { '?' };
        self.send(target, "pull,push", &what, |client, base| {
            // The Location may be absolute or relative to the registry.
            let url = if location.starts_with("http") {
                location.clone()
            } else {
                format!("{base}{location}")
            };
            client
                .put(format!("{url}{separator}digest={digest}"))
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(data.clone())
        })
        .await?;
        Ok(descriptor)
    }

    /// Uploads a manifest under `target`'s tag; returns its digest.
    pub async fn push_manifest(
        &self,
        target: &Reference,
        media_type: &str,
        body: Bytes,
    ) -> Result<String, RegistryError> {
        let selector = target.manifest_selector().to_string();
        let path = format!("/v2/{}/manifests/{selector}", target.repository);
        self.send(
            target,
            "pull,push",
            &format!("manifest {selector}"),
            |client, base| {
                client
                    .put(format!("{base}{path}"))
                    .header(CONTENT_TYPE, media_type)
                    .body(body.clone())
            },
        )
        .await?;
        Ok(sha256_digest(&body))
    }
}
