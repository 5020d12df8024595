//! Publishing an [`OciImage`] to a registry with the distribution (v2) API: a HEAD per blob
//! to skip what the registry has, monolithic uploads (POST, then PUT with `?digest=`), then
//! the manifest under its tag. No authentication: the registries this pushes to are the
//! site's own (Debian's docker-registry in tests and in the demo).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ureq::Agent;
use ureq::tls::{PemItem, RootCerts, TlsConfig};

use crate::error::{BuildError, Result};
use crate::oci::{Blob, OciImage};

/// `HOST[:PORT]/REPOSITORY[:TAG]`, the tag `latest` when left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    pub registry: String,
    pub repository: String,
    pub tag: String,
}

impl FromStr for ImageReference {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let form = "expected HOST[:PORT]/REPOSITORY[:TAG], e.g. 127.0.0.1:5000/image2disk:latest";
        let (registry, path) = text
            .split_once('/')
            .filter(|(registry, path)| !registry.is_empty() && !path.is_empty())
            .ok_or_else(|| format!("{text:?}: {form}"))?;
        // A colon after the last slash starts the tag (a colon before it is a port).
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, tag),
            _ => (path, "latest"),
        };
        let valid_repository = !repository.is_empty()
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            });
        if !valid_repository {
            return Err(format!(
                "{text:?}: repository {repository:?} must be lower-case letters, digits, '.', '_', '-' and '/'"
            ));
        }
        let valid_tag = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid_tag {
            return Err(format!(
                "{text:?}: tag {tag:?} must be letters, digits, '.', '_' and '-'"
            ));
        }
        Ok(ImageReference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: tag.to_string(),
        })
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

/// How the registry is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Plain HTTP (what Docker calls an insecure registry).
    Http,
    /// HTTPS, the certificate checked against this PEM bundle, or the built-in roots.
    Https { ca: Option<PathBuf> },
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// The manifest's digest: `REPOSITORY@DIGEST` names exactly what was pushed.
    pub manifest_digest: String,
    pub uploaded_blobs: usize,
    /// Blobs the registry had already.
    pub skipped_blobs: usize,
}

/// One registry endpoint, with the agent that reaches it.
struct Registry {
    agent: Agent,
    base: String,
}

/// Push `image` to `target`.
pub fn push(
    image: &OciImage,
    target: &ImageReference,
    transport: &Transport,
) -> Result<PushReport> {
    let registry = Registry::connect(&target.registry, transport)?;
    let mut report = PushReport {
        manifest_digest: image.manifest.digest.clone(),
        uploaded_blobs: 0,
        skipped_blobs: 0,
    };
    for blob in std::iter::once(&image.config).chain(&image.layers) {
        if registry.has_blob(&target.repository, blob)? {
            report.skipped_blobs += 1;
        } else {
            registry.upload_blob(&target.repository, blob)?;
            report.uploaded_blobs += 1;
        }
    }
    registry.put_manifest(target, &image.manifest)?;
    Ok(report)
}

impl Registry {
    fn connect(host: &str, transport: &Transport) -> Result<Registry> {
        let (scheme, tls) = match transport {
            Transport::Http => ("http", TlsConfig::default()),
            Transport::Https { ca: None } => ("https", TlsConfig::default()),
            Transport::Https { ca: Some(ca) } => (
                "https",
                TlsConfig::builder()
                    .root_certs(RootCerts::Specific(Arc::new(read_certificates(ca)?)))
                    .build(),
            ),
        };
        let agent = Agent::config_builder()
            // Statuses are answers here (404: blob absent), not failures.
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .tls_config(tls)
            .build()
            .into();
        Ok(Registry {
            agent,
            base: format!("{scheme}://{host}"),
        })
    }

    fn fail(&self, what: &str, reason: impl fmt::Display) -> BuildError {
        BuildError::Registry {
            registry: self.base.clone(),
            reason: format!("{what}: {reason}"),
        }
    }

    fn has_blob(&self, repository: &str, blob: &Blob) -> Result<bool> {
        let what = format!("checking for blob {}", blob.digest);
        let url = format!("{}/v2/{repository}/blobs/{}", self.base, blob.digest);
        let response = self
            .agent
            .head(&url)
            .call()
            .map_err(|err| self.fail(&what, unreachable_hint(err)))?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            status => Err(self.fail(&what, format!("HTTP {status}"))),
        }
    }

    fn upload_blob(&self, repository: &str, blob: &Blob) -> Result<()> {
        let what = format!("uploading blob {}", blob.digest);
        let started = self
            .agent
            .post(format!("{}/v2/{repository}/blobs/uploads/", self.base))
            .send_empty()
            .map_err(|err| self.fail(&what, unreachable_hint(err)))?;
        if started.status().as_u16() != 202 {
            return Err(self.fail(&what, answer(started)));
        }
        let location = started
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| self.fail(&what, "the upload answer has no Location header"))?;
        let url = upload_url(&self.base, location, &blob.digest);
        let finished = self
            .agent
            .put(&url)
            .header("content-type", "application/octet-stream")
            .send(&blob.data[..])
            .map_err(|err| self.fail(&what, unreachable_hint(err)))?;
        if finished.status().as_u16() != 201 {
            return Err(self.fail(&what, answer(finished)));
        }
        Ok(())
    }

    fn put_manifest(&self, target: &ImageReference, manifest: &Blob) -> Result<()> {
        let what = format!("putting the manifest as {target}");
        let response = self
            .agent
            .put(format!(
                "{}/v2/{}/manifests/{}",
                self.base, target.repository, target.tag
            ))
            .header("content-type", &manifest.media_type)
            .send(&manifest.data[..])
            .map_err(|err| self.fail(&what, unreachable_hint(err)))?;
        if response.status().as_u16() != 201 {
            return Err(self.fail(&what, answer(response)));
        }
        Ok(())
    }
}

/// The PUT that completes an upload: the Location the registry gave (absolute or relative,
/// maybe with its own query) plus the digest.
fn upload_url(base: &str, location: &str, digest: &str) -> String {
    let absolute = if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else {
        format!("{base}{location}")
    };
    let separator = if absolute.contains('?') { '&' } else { '?' };
    format!("{absolute}{separator}digest={digest}")
}

/// A failed answer's status and the start of its body (registries explain errors there).
fn answer(mut response: ureq::http::Response<ureq::Body>) -> String {
    let status = response.status();
    let body = response
        .body_mut()
        .with_config()
        .limit(2048)
        .read_to_string()
        .unwrap_or_default();
    format!("HTTP {status}: {}", body.trim())
}

fn unreachable_hint(err: ureq::Error) -> String {
    format!("{err} (is the registry running there, and is --insecure or --ca right for it?)")
}

fn read_certificates(path: &PathBuf) -> Result<Vec<ureq::tls::Certificate<'static>>> {
    let pem = std::fs::read(path).map_err(BuildError::io(format!(
        "read the registry CA bundle {}",
        path.display()
    )))?;
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(certificate)) => certificates.push(certificate),
            Ok(_) => {}
            Err(err) => {
                return Err(BuildError::Config(format!(
                    "--ca {}: not a PEM certificate bundle: {err}",
                    path.display()
                )));
            }
        }
    }
    if certificates.is_empty() {
        return Err(BuildError::Config(format!(
            "--ca {}: no certificate in it (give the registry's CA in PEM)",
            path.display()
        )));
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_host_repository_and_tag() {
        let full: ImageReference = "127.0.0.1:5000/actions/image2disk:v1".parse().unwrap();
        assert_eq!(
            (
                full.registry.as_str(),
                full.repository.as_str(),
                full.tag.as_str()
            ),
            ("127.0.0.1:5000", "actions/image2disk", "v1")
        );
        let untagged: ImageReference = "registry:5000/reboot".parse().unwrap();
        assert_eq!(untagged.tag, "latest");
        assert_eq!(untagged.to_string(), "registry:5000/reboot:latest");
        for bad in [
            "image2disk",
            "/x",
            "host/Upper",
            "host/x:bad tag",
            "host/a//b",
        ] {
            assert!(bad.parse::<ImageReference>().is_err(), "{bad} accepted");
        }
    }

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
