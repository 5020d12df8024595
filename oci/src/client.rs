//! The registry v2 API client: resolves references, fetches manifests and blobs with sha256
//! verification, authenticates (anonymous, basic, bearer token), retries with backoff, and
//! pushes (blobs, manifests and whole images: the builder's action images, the tests' images).
//!
//! Over reqwest (rustls with ring only) rather than bare hyper: blob downloads are redirected
//! to object storage by most registries, and reqwest brings redirects, connection reuse and
//! the HTTP(S)_PROXY/NO_PROXY environment that HookOS and EMT configure.

pub mod auth;
mod push;
mod retry;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use agent_channel::tls;
use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use rustls::RootCertStore;
use sha2::{Digest as _, Sha256};

use bootkit_common::error_chain;

use crate::digest::{sha256_digest, verify_digest};
use crate::error::RegistryError;
use crate::manifest::{self, Descriptor, ImageManifest, ManifestDocument};
use crate::reference::Reference;

pub use auth::Credentials;
pub use push::PushReport;
pub use retry::RetryPolicy;

use auth::{Challenge, TokenResponse};

/// Registry settings as HookOS and EMT give them.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// `docker_registry`: every image is pulled from this host instead of its own.
    pub mirror: Option<String>,
    /// Hosts reached over HTTPS without certificate checks, or plain HTTP (Docker's rule).
    pub insecure_registries: Vec<String>,
    /// PEM CA bundle for registry certificates; the system bundle when not given.
    pub ca_bundle: Option<PathBuf>,
    /// Sent for basic challenges and to token endpoints; `None`: anonymous.
    pub credentials: Option<Credentials>,
    /// How each registry request is retried.
    pub retry: RetryPolicy,
}

/// A resolved image: the linux/amd64 manifest and where it came from.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The reference actually pulled from (the mirror applied).
    pub source: Reference,
    /// The image manifest's descriptor (an index is resolved to its linux/amd64 entry).
    pub descriptor: Descriptor,
    /// The image manifest, parsed.
    pub manifest: ImageManifest,
    /// The image manifest as the registry sent it, the bytes `descriptor`'s digest is of.
    pub manifest_bytes: Bytes,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scheme {
    Https,
    HttpsUnverified,
    Http,
}

/// A client of the registry v2 API, for any number of pulls and pushes: it keeps their
/// connections, their authorizations and the scheme each insecure registry answered on.
pub struct RegistryClient {
    config: RegistryConfig,
    verified: reqwest::Client,
    unverified: reqwest::Client,
    /// Authorization header per (host, scope), so a token is fetched once per repository.
    authorizations: Mutex<HashMap<(String, String), String>>,
    /// The scheme found to work for each insecure registry.
    insecure_schemes: Mutex<HashMap<String, Scheme>>,
}

/// The certificates of `ca_bundle` (PEM), or of the system's bundle when none is given. No
/// bundle at all is not an error here: pulls from `insecure_registries` need no roots.
fn trusted_roots(ca_bundle: Option<&Path>) -> Result<RootCertStore, RegistryError> {
    let bundle = match (ca_bundle, tls::system_ca_bundle()) {
        (Some(configured), _) => configured,
        (None, Some(system)) => system,
        (None, None) => return Ok(RootCertStore::empty()),
    };
    tls::roots_from_bundle(bundle).map_err(|error| RegistryError::CaBundle {
        path: bundle.to_path_buf(),
        why: error.to_string(),
    })
}

/// Upper bound for a manifest or config document, which are read whole.
const MAX_DOCUMENT_BYTES: usize = 8 << 20;

impl RegistryClient {
    /// A client with `config`; fails when the CA bundle cannot be read or TLS cannot be set
    /// up. Connects to nothing yet.
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        let build = |tls: rustls::ClientConfig| {
            reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .connect_timeout(Duration::from_secs(10))
                .build()
                .map_err(RegistryError::Client)
        };
        Ok(Self {
            verified: build(
                tls::verified_config(trusted_roots(config.ca_bundle.as_deref())?)
                    .map_err(RegistryError::Tls)?,
            )?,
            unverified: build(tls::unverified_config().map_err(RegistryError::Tls)?)?,
            config,
            authorizations: Mutex::new(HashMap::new()),
            insecure_schemes: Mutex::new(HashMap::new()),
        })
    }

    /// The retry policy of the configuration, for callers retrying more than one request.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.config.retry
    }

    /// The reference with the configured mirror applied.
    pub fn source_of(&self, reference: &Reference) -> Reference {
        match &self.config.mirror {
            Some(mirror) if !mirror.is_empty() => reference.with_registry(mirror),
            _ => reference.clone(),
        }
    }

    /// Fetches the manifest of `reference` (through the mirror if one is set), picking the
    /// linux/amd64 image of an index.
    pub async fn resolve(&self, reference: &Reference) -> Result<ResolvedImage, RegistryError> {
        let source = self.source_of(reference);
        let selector = source.manifest_selector().to_string();
        let (content_type, body) = self.fetch_manifest(&source, &selector).await?;
        if let Some(pinned) = &source.digest {
            verify_digest(&format!("manifest of {source}"), pinned, &body)?;
        }
        let (descriptor, manifest, manifest_bytes) =
            match ManifestDocument::parse(&content_type, &body)? {
                ManifestDocument::Image(manifest) => (
                    descriptor_of(&content_type, &manifest, &body),
                    manifest,
                    body,
                ),
                ManifestDocument::Index(index) => {
                    let chosen = index.pick_platform().cloned().ok_or_else(|| {
                        RegistryError::NoMatchingPlatform {
                            reference: source.to_string(),
                        }
                    })?;
                    let (content_type, body) = self.fetch_manifest(&source, &chosen.digest).await?;
                    verify_digest(
                        &format!("manifest {}", chosen.digest),
                        &chosen.digest,
                        &body,
                    )?;
                    let ManifestDocument::Image(manifest) =
                        ManifestDocument::parse(&content_type, &body)?
                    else {
                        return Err(RegistryError::UnsupportedManifest {
                            media_type: "an index inside an index".to_string(),
                        });
                    };
                    let descriptor = Descriptor {
                        platform: None,
                        ..chosen
                    };
                    (descriptor, manifest, body)
                }
            };
        Ok(ResolvedImage {
            source,
            descriptor,
            manifest,
            manifest_bytes,
        })
    }

    async fn fetch_manifest(
        &self,
        source: &Reference,
        selector: &str,
    ) -> Result<(String, Bytes), RegistryError> {
        let what = format!("manifest {}:{selector}", source.repository);
        let path = format!("/v2/{}/manifests/{selector}", source.repository);
        let response = self
            .send(source, "pull", &what, |client, base| {
                client
                    .get(format!("{base}{path}"))
                    .header(ACCEPT, manifest::ACCEPTED_MANIFESTS)
            })
            .await?;
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
            .unwrap_or_default();
        let body = read_document(source, &what, response).await?;
        Ok((content_type, body))
    }

    /// Fetches and verifies a small blob (an image config) whole.
    pub async fn fetch_document(
        &self,
        source: &Reference,
        descriptor: &Descriptor,
    ) -> Result<Bytes, RegistryError> {
        let what = format!("blob {}", descriptor.digest);
        let response = self.blob_response(source, descriptor).await?;
        let body = read_document(source, &what, response).await?;
        verify_digest(&what, &descriptor.digest, &body)?;
        Ok(body)
    }

    /// Opens a blob for streaming; the returned reader checks size and sha256 at the end.
    pub async fn fetch_blob(
        &self,
        source: &Reference,
        descriptor: &Descriptor,
    ) -> Result<BlobReader, RegistryError> {
        let response = self.blob_response(source, descriptor).await?;
        Ok(BlobReader {
            host: source.api_host().to_string(),
            response,
            hasher: Sha256::new(),
            received: 0,
            expected: descriptor.clone(),
        })
    }

    async fn blob_response(
        &self,
        source: &Reference,
        descriptor: &Descriptor,
    ) -> Result<Response, RegistryError> {
        let what = format!("blob {}", descriptor.digest);
        let path = format!("/v2/{}/blobs/{}", source.repository, descriptor.digest);
        self.send(source, "pull", &what, |client, base| {
            client.get(format!("{base}{path}"))
        })
        .await
    }

    /// Sends a request with retries, authenticating when the registry challenges it.
    async fn send(
        &self,
        reference: &Reference,
        actions: &str,
        what: &str,
        build: impl Fn(&reqwest::Client, &str) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        self.config
            .retry
            .run(what, RegistryError::is_retryable, || {
                self.send_once(reference, actions, what, &build)
            })
            .await
    }

    async fn send_once(
        &self,
        reference: &Reference,
        actions: &str,
        what: &str,
        build: &impl Fn(&reqwest::Client, &str) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let host = reference.api_host();
        let scope = format!("repository:{}:{actions}", reference.repository);
        let cache_key = (host.to_string(), scope.clone());
        let mut response = self.send_authorized(host, &cache_key, build).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            let header = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let authorization = self.authorize(host, &scope, &header).await?;
            self.lock_authorizations()
                .insert(cache_key.clone(), authorization);
            response = self.send_authorized(host, &cache_key, build).await?;
        }
        check_status(host, what, response).await
    }

    async fn send_authorized(
        &self,
        host: &str,
        cache_key: &(String, String),
        build: &impl Fn(&reqwest::Client, &str) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let authorization = self.lock_authorizations().get(cache_key).cloned();
        let with_auth = |request: RequestBuilder| match &authorization {
            Some(value) => request.header(AUTHORIZATION, value),
            None => request,
        };
        let scheme = self.scheme_for(host);
        let result = with_auth(build(self.client_for(scheme), &base_url(scheme, host)))
            .send()
            .await;
        match (scheme, result) {
            // Docker's rule for insecure registries: HTTPS without checks, else plain HTTP.
            (Scheme::HttpsUnverified, Err(error)) if error.is_connect() => {
                let response = with_auth(build(&self.verified, &base_url(Scheme::Http, host)))
                    .send()
                    .await
                    .map_err(|e| transport_error(host, e))?;
                self.lock_schemes().insert(host.to_string(), Scheme::Http);
                Ok(response)
            }
            (_, result) => result.map_err(|e| transport_error(host, e)),
        }
    }

    /// Answers a 401 challenge with basic credentials or a bearer token.
    async fn authorize(
        &self,
        host: &str,
        scope: &str,
        header: &str,
    ) -> Result<String, RegistryError> {
        let unauthorized = || RegistryError::Unauthorized {
            host: host.to_string(),
            what: scope.to_string(),
            status: StatusCode::UNAUTHORIZED,
        };
        match Challenge::parse(header) {
            Some(Challenge::Basic) => self
                .config
                .credentials
                .as_ref()
                .map(Credentials::basic_header)
                .ok_or_else(unauthorized),
            Some(Challenge::Bearer {
                realm,
                service,
                scope: challenge_scope,
            }) => {
                let scope = challenge_scope.unwrap_or_else(|| scope.to_string());
                let token = self.fetch_token(&realm, service.as_deref(), &scope).await?;
                Ok(format!("Bearer {token}"))
            }
            None => Err(RegistryError::UnsupportedChallenge {
                host: host.to_string(),
                header: header.to_string(),
            }),
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let token_error = |detail: String| RegistryError::Token {
            realm: realm.to_string(),
            detail,
        };
        let realm_host = reqwest::Url::parse(realm)
            .map_err(|e| token_error(format!("the realm is not a URL: {e}")))?
            .host_str()
            .unwrap_or_default()
            .to_string();
        let mut query = vec![("scope", scope)];
        if let Some(service) = service {
            query.push(("service", service));
        }
        let mut request = self
            .client_for(self.scheme_for(&realm_host))
            .request(Method::GET, realm)
            .query(&query);
        if let Some(credentials) = &self.config.credentials {
            request = request.header(AUTHORIZATION, credentials.basic_header());
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(&realm_host, e))?;
        let response = check_status(&realm_host, "token", response).await?;
        let body = response
            .bytes()
            .await
            .map_err(|e| token_error(format!("the answer was cut: {}", error_chain(&e))))?;
        let answer: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| token_error(format!("unreadable answer: {e}")))?;
        answer
            .into_token()
            .ok_or_else(|| token_error("the answer holds neither token nor access_token".into()))
    }

    fn scheme_for(&self, host: &str) -> Scheme {
        let insecure = self
            .config
            .insecure_registries
            .iter()
            .any(|listed| listed.trim_end_matches('/') == host);
        if !insecure {
            return Scheme::Https;
        }
        self.lock_schemes()
            .get(host)
            .copied()
            .unwrap_or(Scheme::HttpsUnverified)
    }

    fn client_for(&self, scheme: Scheme) -> &reqwest::Client {
        match scheme {
            Scheme::HttpsUnverified => &self.unverified,
            Scheme::Https | Scheme::Http => &self.verified,
        }
    }

    fn lock_authorizations(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), String>> {
        // The maps hold plain values: a panic elsewhere cannot leave them half-updated.
        self.authorizations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn lock_schemes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Scheme>> {
        self.insecure_schemes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// A blob being downloaded; `next_chunk` returns `None` once the whole blob has arrived and
/// matched its size and digest.
pub struct BlobReader {
    host: String,
    response: Response,
    hasher: Sha256,
    received: i64,
    expected: Descriptor,
}

impl BlobReader {
    /// The next piece of the blob; `None` at its end, once its size and digest are checked.
    /// An error when the transfer breaks, or the blob is longer or shorter than announced or
    /// does not match its digest.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, RegistryError> {
        let what = || format!("blob {}", self.expected.digest);
        let chunk = self
            .response
            .chunk()
            .await
            .map_err(|e| RegistryError::Transfer {
                host: self.host.clone(),
                what: what(),
                detail: error_chain(&e),
            })?;
        match chunk {
            Some(chunk) => {
                self.hasher.update(&chunk);
                self.received += chunk.len() as i64;
                if self.received > self.expected.size {
                    return Err(RegistryError::Transfer {
                        host: self.host.clone(),
                        what: what(),
                        detail: format!("more than the {} bytes announced", self.expected.size),
                    });
                }
                Ok(Some(chunk))
            }
            None => {
                let actual = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
                if self.received != self.expected.size {
                    return Err(RegistryError::Transfer {
                        host: self.host.clone(),
                        what: what(),
                        detail: format!(
                            "ended after {} of {} bytes",
                            self.received, self.expected.size
                        ),
                    });
                }
                if actual != self.expected.digest {
                    return Err(RegistryError::DigestMismatch {
                        what: what(),
                        expected: self.expected.digest.clone(),
                        actual,
                    });
                }
                Ok(None)
            }
        }
    }
}

fn descriptor_of(content_type: &str, manifest: &ImageManifest, body: &[u8]) -> Descriptor {
    let media_type = manifest
        .media_type
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| match content_type {
            "" => manifest::OCI_MANIFEST.to_string(),
            other => other.to_string(),
        });
    Descriptor {
        media_type,
        digest: sha256_digest(body),
        size: body.len() as i64,
        platform: None,
        annotations: HashMap::new(),
    }
}

fn base_url(scheme: Scheme, host: &str) -> String {
    match scheme {
        Scheme::Http => format!("http://{host}"),
        Scheme::Https | Scheme::HttpsUnverified => format!("https://{host}"),
    }
}

async fn read_document(
    source: &Reference,
    what: &str,
    mut response: Response,
) -> Result<Bytes, RegistryError> {
    let transfer = |detail: String| RegistryError::Transfer {
        host: source.api_host().to_string(),
        what: what.to_string(),
        detail,
    };
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transfer(error_chain(&e)))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(transfer(format!("larger than {MAX_DOCUMENT_BYTES} bytes")));
        }
    }
    Ok(Bytes::from(body))
}

async fn check_status(
    host: &str,
    what: &str,
    response: Response,
) -> Result<Response, RegistryError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(RegistryError::Unauthorized {
            host: host.to_string(),
            what: what.to_string(),
            status,
        }),
        StatusCode::NOT_FOUND => Err(RegistryError::NotFound {
            host: host.to_string(),
            what: what.to_string(),
        }),
        _ => {
            let body = response.text().await.unwrap_or_default();
            Err(RegistryError::Status {
                host: host.to_string(),
                what: what.to_string(),
                status,
                body: body.chars().take(300).collect(),
            })
        }
    }
}

/// A certificate problem is a configuration mistake (not retried); anything else that stops
/// the connection is the registry being unreachable (retried).
fn transport_error(host: &str, error: reqwest::Error) -> RegistryError {
    match tls_cause(&error) {
        Some(tls) => RegistryError::TlsHandshake {
            host: host.to_string(),
            detail: tls.to_string(),
        },
        None => RegistryError::Unreachable {
            host: host.to_string(),
            detail: error_chain(&error),
        },
    }
}

/// The rustls error behind a connection failure, if one is: it travels inside an io::Error,
/// whose `source()` skips it, so io errors are looked into with `get_ref`.
fn tls_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let inner_tls = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| tls_cause(inner));
        if inner_tls.is_some() {
            return inner_tls;
        }
        current = err.source();
    }
    None
}
