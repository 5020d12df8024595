//! The registry v2 API client: resolves references, fetches manifests and blobs with sha256
//! verification, authenticates (anonymous, basic, bearer token), retries with backoff, and
//! pushes (blobs, manifests and whole images: the builder's action images, the tests' images).
//!
//! Pulls go through the hosts of the image's registry in order ([`crate::hosts`]): the
//! mirrors of containerd's `hosts.toml`, then its `server` (the registry itself unless the
//! file says otherwise). `docker_registry` and `insecure_registries` are the same thing in a
//! simpler form: a mirror that is the only server of every registry without a hosts file of
//! its own, and hosts reached over HTTPS without checks, else plain HTTP.
//!
//! Over reqwest (rustls with ring only) rather than bare hyper: blob downloads are redirected
//! to object storage by most registries, and reqwest brings redirects, connection reuse and
//! the HTTP(S)_PROXY/NO_PROXY environment that HookOS and EMT configure.

pub mod auth;
mod push;
mod retry;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_channel::tls;
use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use rustls::RootCertStore;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest as _, Sha256};

use bootkit_common::error_chain;

use crate::digest::{sha256_digest, verify_digest};
use crate::error::RegistryError;
use crate::hosts::{ClientCertificate, HostScheme, HostsDir, RegistryHost, load_namespace_dir};
use crate::manifest::{self, Descriptor, ImageManifest, ManifestDocument};
use crate::reference::Reference;

pub use auth::Credentials;
pub use push::PushReport;
pub use retry::RetryPolicy;

use auth::{Challenge, TokenResponse};

/// Registry settings as HookOS, EMT and tink-agent give them.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// `docker_registry`: every image of a registry without a hosts file of its own is pulled
    /// from this host instead of its own (it takes the place of certs.d's `_default`).
    pub mirror: Option<String>,
    /// Hosts reached over HTTPS without certificate checks, or plain HTTP (Docker's rule).
    pub insecure_registries: Vec<String>,
    /// PEM CA bundle for registry certificates; the system bundle when not given.
    pub ca_bundle: Option<PathBuf>,
    /// Sent for basic challenges and to token endpoints; `None`: anonymous.
    pub credentials: Option<Credentials>,
    /// How each registry request is retried (on the last host of a pull's list; earlier hosts
    /// get one attempt, so that a mirror that is down costs one try).
    pub retry: RetryPolicy,
    /// containerd's `certs.d` directory of `hosts.toml` files (mirrors, CAs, client
    /// certificates, headers per registry); `None`: none is read. Read at every pull, as
    /// containerd does, so edits need no restart.
    pub hosts_dir: Option<PathBuf>,
}

/// A resolved image: the linux/amd64 manifest and the hosts its blobs come from.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The reference as asked for (its registry is the namespace of the hosts).
    pub source: Reference,
    /// The URL of the host that served the manifest.
    pub served_by: String,
    /// The hosts blobs are fetched from, in order (those with the pull capability; a host
    /// that failed while resolving is tried last).
    pub blob_hosts: Vec<RegistryHost>,
    /// The image manifest's descriptor (an index is resolved to its linux/amd64 entry).
    pub descriptor: Descriptor,
    /// The image manifest, parsed.
    pub manifest: ImageManifest,
    /// The image manifest as the registry sent it, the bytes `descriptor`'s digest is of.
    pub manifest_bytes: Bytes,
}

/// The TLS a host is reached with: one reqwest client each (their connection pools too).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
struct TlsKey {
    ca: Vec<PathBuf>,
    client: Option<ClientCertificate>,
    skip_verify: bool,
    dial_timeout: Option<Duration>,
}

/// How requests reach a host.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    Https,
    Http,
    /// HTTPS first, plain HTTP when that cannot connect (Docker's insecure registries,
    /// containerd's `http://` hosts with TLS settings); the answer is remembered per host.
    HttpsThenHttp,
}

/// One host of a request, with what the request needs to know about it.
struct Endpoint<'a> {
    host: &'a RegistryHost,
    /// containerd's `ns` query parameter: the registry namespace, sent to mirrors (a
    /// proxy cache such as Harbor or Zot learns the upstream from it).
    namespace: Option<&'a str>,
}

impl Endpoint<'_> {
    fn transport(&self) -> Transport {
        match self.host.scheme {
            HostScheme::Https => Transport::Https,
            HostScheme::Http
                if self.host.has_tls_settings() && !self.host.host.ends_with(":80") =>
            {
                Transport::HttpsThenHttp
            }
            HostScheme::Http => Transport::Http,
        }
    }

    fn tls_key(&self) -> TlsKey {
        TlsKey {
            ca: self.host.ca.clone(),
            client: self.host.client.first().cloned(),
            skip_verify: self.host.skip_verify == Some(true),
            dial_timeout: self.host.dial_timeout,
        }
    }

    fn base(&self, https: bool) -> String {
        let scheme = if https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.host.host, self.host.path)
    }
}

/// A client of the registry v2 API, for any number of pulls and pushes: it keeps their
/// connections, their authorizations and the scheme each insecure registry answered on.
pub struct RegistryClient {
    config: RegistryConfig,
    /// The roots every verified host trusts (the configured or the system bundle).
    roots: RootCertStore,
    /// One client per TLS configuration, the default one made at once.
    clients: Mutex<HashMap<TlsKey, reqwest::Client>>,
    /// Authorization header per (host, scope), so a token is fetched once per repository.
    authorizations: Mutex<HashMap<(String, String), String>>,
    /// The hosts found to answer only plain HTTP.
    plain_http_hosts: Mutex<HashMap<String, bool>>,
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

/// How long a connection may take unless a host's `dial_timeout` says otherwise.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl RegistryClient {
    /// A client with `config`; fails when the CA bundle cannot be read or TLS cannot be set
    /// up. Connects to nothing yet.
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        let roots = trusted_roots(config.ca_bundle.as_deref())?;
        let client = Self {
            config,
            roots,
            clients: Mutex::new(HashMap::new()),
            authorizations: Mutex::new(HashMap::new()),
            plain_http_hosts: Mutex::new(HashMap::new()),
        };
        client.http_client(&TlsKey::default(), "")?;
        Ok(client)
    }

    /// The retry policy of the configuration, for callers retrying more than one request.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.config.retry
    }

    /// The hosts an image of `registry` is pulled from, in order: its `hosts.toml` (or
    /// certificate files) in the hosts directory, else the `docker_registry` mirror as its
    /// only server, else the directory's `_default`, else the registry itself. A file without
    /// `server` ends with the registry itself; `insecure_registries` apply to every host.
    pub fn hosts_for(&self, registry: &str) -> Result<Vec<RegistryHost>, RegistryError> {
        let hosts_dir = self.config.hosts_dir.as_deref().map(HostsDir::new);
        let namespace_dir = match &hosts_dir {
            Some(dir) => dir.namespace_dir(registry, false)?,
            None => None,
        };
        let mirror = self
            .config
            .mirror
            .as_deref()
            .map(|m| m.trim_end_matches('/'))
            .filter(|m| !m.is_empty());
        let mut hosts = match (namespace_dir, mirror) {
            (Some(dir), _) => load_namespace_dir(&dir)?,
            (None, Some(mirror)) => vec![RegistryHost::registry_itself(mirror)],
            (None, None) => match hosts_dir.as_ref().map(HostsDir::default_dir).transpose()? {
                Some(Some(dir)) => load_namespace_dir(&dir)?,
                _ => Vec::new(),
            },
        };
        match hosts.last_mut() {
            Some(server) if server.host.is_empty() => {
                let itself = RegistryHost::registry_itself(registry);
                server.scheme = itself.scheme;
                server.host = itself.host;
                // override_path without a server keeps an empty API root: containerd's
                // default host always has /v2.
                server.path = itself.path;
            }
            Some(_) => {}
            None => hosts.push(RegistryHost::registry_itself(registry)),
        }
        for host in &mut hosts {
            if self.is_listed_insecure(&host.host) {
                host.skip_verify = Some(true);
                host.scheme = HostScheme::Http;
            }
        }
        Ok(hosts)
    }

    fn is_listed_insecure(&self, host: &str) -> bool {
        self.config
            .insecure_registries
            .iter()
            .any(|listed| listed.trim_end_matches('/') == host)
    }

    /// The registry of `reference` itself, for pushes (mirrors are for pulls), with
    /// `insecure_registries` applied.
    fn push_host(&self, reference: &Reference) -> RegistryHost {
        let mut host = RegistryHost::registry_itself(&reference.registry);
        if self.is_listed_insecure(&host.host) {
            host.skip_verify = Some(true);
            host.scheme = HostScheme::Http;
        }
        host
    }

    /// Fetches the manifest of `reference`, picking the linux/amd64 image of an index, from
    /// the first of its hosts that may resolve it (a tag needs `resolve`, a digest `pull`)
    /// and has it. A host that fails is logged and the next one tried; the error returned is
    /// the most telling one (a refusal over a 404 over an unreachable host), as containerd's.
    pub async fn resolve(&self, reference: &Reference) -> Result<ResolvedImage, RegistryError> {
        let hosts = self.hosts_for(&reference.registry)?;
        let by_tag = reference.digest.is_none();
        let candidates: Vec<&RegistryHost> = hosts
            .iter()
            .filter(|h| h.capabilities.pull && (!by_tag || h.capabilities.resolve))
            .collect();
        if candidates.is_empty() {
            return Err(RegistryError::NoHost {
                registry: reference.registry.clone(),
                operation: if by_tag { "resolve a tag" } else { "pull" },
                why: format!("its hosts are {}", host_urls(&hosts)),
            });
        }
        let mut failed: Vec<&RegistryHost> = Vec::new();
        let mut best: Option<RegistryError> = None;
        for (index, host) in candidates.iter().enumerate() {
            let last = index + 1 == candidates.len();
            let endpoint = self.endpoint(host, &reference.registry);
            match self.resolve_at(&endpoint, reference, last).await {
                Ok((descriptor, manifest, manifest_bytes)) => {
                    let mut blob_hosts: Vec<RegistryHost> = hosts
                        .iter()
                        .filter(|h| h.capabilities.pull && !failed.contains(h))
                        .cloned()
                        .collect();
                    blob_hosts.extend(failed.iter().map(|h| (*h).clone()));
                    return Ok(ResolvedImage {
                        source: reference.clone(),
                        served_by: host.url(),
                        blob_hosts,
                        descriptor,
                        manifest,
                        manifest_bytes,
                    });
                }
                Err(error) => {
                    if !last {
                        tracing::warn!(
                            "registry host {} failed for {reference}: {error}; trying the next host, {}",
                            host.url(),
                            candidates[index + 1].url()
                        );
                    }
                    failed.push(host);
                    best = Some(more_telling(best, error));
                }
            }
        }
        Err(best.unwrap_or_else(|| RegistryError::NoHost {
            registry: reference.registry.clone(),
            operation: "pull",
            why: "none answered".to_string(),
        }))
    }

    fn endpoint<'a>(&self, host: &'a RegistryHost, registry: &'a str) -> Endpoint<'a> {
        let itself = RegistryHost::registry_itself(registry);
        Endpoint {
            host,
            namespace: (host.host != itself.host).then_some(registry),
        }
    }

    /// The retry policy for a host: the whole policy for the last one, one attempt before.
    fn policy_for(&self, last: bool) -> RetryPolicy {
        if last {
            self.config.retry.clone()
        } else {
            RetryPolicy {
                attempts: 1,
                ..self.config.retry.clone()
            }
        }
    }

    async fn resolve_at(
        &self,
        endpoint: &Endpoint<'_>,
        reference: &Reference,
        last: bool,
    ) -> Result<(Descriptor, ImageManifest, Bytes), RegistryError> {
        let retry = self.policy_for(last);
        let selector = reference.manifest_selector().to_string();
        let (content_type, body) = self
            .fetch_manifest(endpoint, reference, &selector, &retry)
            .await?;
        if let Some(pinned) = &reference.digest {
            verify_digest(&format!("manifest of {reference}"), pinned, &body)?;
        }
        Ok(match ManifestDocument::parse(&content_type, &body)? {
            ManifestDocument::Image(manifest) => (
                descriptor_of(&content_type, &manifest, &body),
                manifest,
                body,
            ),
            ManifestDocument::Index(index) => {
                let chosen = index.pick_platform().cloned().ok_or_else(|| {
                    RegistryError::NoMatchingPlatform {
                        reference: reference.to_string(),
                    }
                })?;
                let (content_type, body) = self
                    .fetch_manifest(endpoint, reference, &chosen.digest, &retry)
                    .await?;
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
        })
    }

    async fn fetch_manifest(
        &self,
        endpoint: &Endpoint<'_>,
        reference: &Reference,
        selector: &str,
        retry: &RetryPolicy,
    ) -> Result<(String, Bytes), RegistryError> {
        let what = format!("manifest {}:{selector}", reference.repository);
        let path = format!("/{}/manifests/{selector}", reference.repository);
        let response = self
            .send(
                endpoint,
                &reference.repository,
                "pull",
                &what,
                retry,
                |client, base| {
                    client
                        .get(format!("{}{path}", base.api))
                        .header(ACCEPT, manifest::ACCEPTED_MANIFESTS)
                },
            )
            .await?;
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
            .unwrap_or_default();
        let body = read_document(&endpoint.host.host, &what, response).await?;
        Ok((content_type, body))
    }

    /// Fetches and verifies a small blob (an image config) whole, from the image's blob
    /// hosts in order.
    pub async fn fetch_document(
        &self,
        image: &ResolvedImage,
        descriptor: &Descriptor,
    ) -> Result<Bytes, RegistryError> {
        let what = format!("blob {}", descriptor.digest);
        self.on_blob_hosts(image, &what, |endpoint, retry| {
            let what = what.clone();
            async move {
                let response = self
                    .blob_response(&endpoint, image, descriptor, &retry)
                    .await?;
                let body = read_document(&endpoint.host.host, &what, response).await?;
                verify_digest(&what, &descriptor.digest, &body)?;
                Ok(body)
            }
        })
        .await
    }

    /// Opens a blob for streaming, from the first of the image's blob hosts that serves it;
    /// the returned reader checks size and sha256 at the end.
    pub async fn fetch_blob(
        &self,
        image: &ResolvedImage,
        descriptor: &Descriptor,
    ) -> Result<BlobReader, RegistryError> {
        let what = format!("blob {}", descriptor.digest);
        self.on_blob_hosts(image, &what, |endpoint, retry| async move {
            let response = self
                .blob_response(&endpoint, image, descriptor, &retry)
                .await?;
            Ok(BlobReader {
                host: endpoint.host.host.clone(),
                response,
                hasher: Sha256::new(),
                received: 0,
                expected: descriptor.clone(),
            })
        })
        .await
    }

    /// Runs `attempt` on each blob host in turn until one succeeds.
    async fn on_blob_hosts<'a, T, F, Fut>(
        &self,
        image: &'a ResolvedImage,
        what: &str,
        attempt: F,
    ) -> Result<T, RegistryError>
    where
        F: Fn(Endpoint<'a>, RetryPolicy) -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let mut best: Option<RegistryError> = None;
        for (index, host) in image.blob_hosts.iter().enumerate() {
            let last = index + 1 == image.blob_hosts.len();
            let endpoint = self.endpoint(host, &image.source.registry);
            match attempt(endpoint, self.policy_for(last)).await {
                Ok(value) => return Ok(value),
                Err(error) => {
                    if !last {
                        tracing::warn!(
                            "registry host {} failed for {what} of {}: {error}; trying the next host, {}",
                            host.url(),
                            image.source,
                            image.blob_hosts[index + 1].url()
                        );
                    }
                    best = Some(more_telling(best, error));
                }
            }
        }
        Err(best.unwrap_or_else(|| RegistryError::NoHost {
            registry: image.source.registry.clone(),
            operation: "pull",
            why: "no host has the pull capability".to_string(),
        }))
    }

    async fn blob_response(
        &self,
        endpoint: &Endpoint<'_>,
        image: &ResolvedImage,
        descriptor: &Descriptor,
        retry: &RetryPolicy,
    ) -> Result<Response, RegistryError> {
        let what = format!("blob {}", descriptor.digest);
        let repository = &image.source.repository;
        let path = format!("/{repository}/blobs/{}", descriptor.digest);
        self.send(
            endpoint,
            repository,
            "pull",
            &what,
            retry,
            |client, base| client.get(format!("{}{path}", base.api)),
        )
        .await
    }

    /// Sends a request with retries, authenticating when the registry challenges it.
    async fn send(
        &self,
        endpoint: &Endpoint<'_>,
        repository: &str,
        actions: &str,
        what: &str,
        retry: &RetryPolicy,
        build: impl Fn(&reqwest::Client, &Bases) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        retry
            .run(what, RegistryError::is_retryable, || {
                self.send_once(endpoint, repository, actions, what, &build)
            })
            .await
    }

    async fn send_once(
        &self,
        endpoint: &Endpoint<'_>,
        repository: &str,
        actions: &str,
        what: &str,
        build: &impl Fn(&reqwest::Client, &Bases) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let host = endpoint.host.host.as_str();
        let scope = format!("repository:{repository}:{actions}");
        let cache_key = (host.to_string(), scope.clone());
        let mut response = self.send_authorized(endpoint, &cache_key, build).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            let header = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let authorization = self.authorize(endpoint, &scope, &header).await?;
            self.lock_authorizations()
                .insert(cache_key.clone(), authorization);
            response = self.send_authorized(endpoint, &cache_key, build).await?;
        }
        check_status(host, what, response).await
    }

    async fn send_authorized(
        &self,
        endpoint: &Endpoint<'_>,
        cache_key: &(String, String),
        build: &impl Fn(&reqwest::Client, &Bases) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let host = endpoint.host.host.as_str();
        let authorization = self.lock_authorizations().get(cache_key).cloned();
        let decorate = |mut request: RequestBuilder| {
            for (name, values) in &endpoint.host.headers {
                // A challenge answered replaces the file's own Authorization.
                if authorization.is_some() && name.eq_ignore_ascii_case(AUTHORIZATION.as_str()) {
                    continue;
                }
                for value in values {
                    request = request.header(name.as_str(), value.as_str());
                }
            }
            if let Some(value) = &authorization {
                request = request.header(AUTHORIZATION, value);
            }
            if let Some(namespace) = endpoint.namespace {
                request = request.query(&[("ns", namespace)]);
            }
            request
        };
        let client = self.http_client(&endpoint.tls_key(), host)?;
        let plain = || async {
            let bases = Bases::of(endpoint, false);
            decorate(build(&client, &bases))
                .send()
                .await
                .map_err(|e| transport_error(host, e))
        };
        match endpoint.transport() {
            Transport::Http => plain().await,
            Transport::HttpsThenHttp if self.answers_plain_http(host) => plain().await,
            transport => {
                let bases = Bases::of(endpoint, true);
                let result = decorate(build(&client, &bases)).send().await;
                match result {
                    // Docker's rule for insecure registries: HTTPS, else plain HTTP.
                    Err(error) if transport == Transport::HttpsThenHttp && error.is_connect() => {
                        let response = plain().await?;
                        self.lock_plain_hosts().insert(host.to_string(), true);
                        Ok(response)
                    }
                    result => result.map_err(|e| transport_error(host, e)),
                }
            }
        }
    }

    /// Answers a 401 challenge with basic credentials or a bearer token.
    async fn authorize(
        &self,
        endpoint: &Endpoint<'_>,
        scope: &str,
        header: &str,
    ) -> Result<String, RegistryError> {
        let host = endpoint.host.host.as_str();
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
                let token = self
                    .fetch_token(endpoint, &realm, service.as_deref(), &scope)
                    .await?;
                Ok(format!("Bearer {token}"))
            }
            None => Err(RegistryError::UnsupportedChallenge {
                host: host.to_string(),
                header: header.to_string(),
            }),
        }
    }

    /// Asks the token server, with the TLS of the host that sent the challenge (containerd
    /// authorizes with the host's own client too).
    async fn fetch_token(
        &self,
        endpoint: &Endpoint<'_>,
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
            .http_client(&endpoint.tls_key(), &endpoint.host.host)?
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

    /// The HTTP client for a TLS configuration, made on first use; `host` names the host in
    /// errors.
    fn http_client(&self, key: &TlsKey, host: &str) -> Result<reqwest::Client, RegistryError> {
        if let Some(client) = self.lock_clients().get(key) {
            return Ok(client.clone());
        }
        let mut config = if key.skip_verify {
            tls::unverified_config().map_err(RegistryError::Tls)?
        } else {
            let mut roots = self.roots.clone();
            for ca in &key.ca {
                let extra =
                    tls::roots_from_bundle(ca).map_err(|error| RegistryError::CaBundle {
                        path: ca.clone(),
                        why: format!("(the ca of registry host {host}) {error}"),
                    })?;
                roots.roots.extend(extra.roots);
            }
            tls::verified_config(roots).map_err(RegistryError::Tls)?
        };
        if let Some(certificate) = &key.client {
            config.client_auth_cert_resolver = Arc::new(client_certificate(certificate, host)?);
        }
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(config)
            .connect_timeout(key.dial_timeout.unwrap_or(CONNECT_TIMEOUT))
            .build()
            .map_err(RegistryError::Client)?;
        self.lock_clients().insert(key.clone(), client.clone());
        Ok(client)
    }

    fn answers_plain_http(&self, host: &str) -> bool {
        self.lock_plain_hosts().get(host).copied().unwrap_or(false)
    }

    fn lock_authorizations(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), String>> {
        // The maps hold plain values: a panic elsewhere cannot leave them half-updated.
        self.authorizations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn lock_plain_hosts(&self) -> std::sync::MutexGuard<'_, HashMap<String, bool>> {
        self.plain_http_hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn lock_clients(&self) -> std::sync::MutexGuard<'_, HashMap<TlsKey, reqwest::Client>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where a request goes: the host's origin (`scheme://host`, what a relative `Location` is
/// relative to) and its API root (`origin` + `/v2`, or the overridden path).
struct Bases {
    origin: String,
    api: String,
}

impl Bases {
    fn of(endpoint: &Endpoint<'_>, https: bool) -> Bases {
        let api = endpoint.base(https);
        let origin = api
            .strip_suffix(endpoint.host.path.as_str())
            .unwrap_or(&api)
            .to_string();
        Bases { origin, api }
    }
}

fn host_urls(hosts: &[RegistryHost]) -> String {
    hosts
        .iter()
        .map(|h| {
            let capabilities = [
                (h.capabilities.pull, "pull"),
                (h.capabilities.resolve, "resolve"),
                (h.capabilities.push, "push"),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
            .join(",");
            format!("{} ({capabilities})", h.url())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// containerd's choice of the error to report when every host failed: an HTTP refusal over
/// a 404 over a connection failure; the first of equals.
fn more_telling(best: Option<RegistryError>, next: RegistryError) -> RegistryError {
    let rank = |error: &RegistryError| match error {
        RegistryError::Unreachable { .. }
        | RegistryError::TlsHandshake { .. }
        | RegistryError::Transfer { .. } => 1,
        RegistryError::NotFound { .. } => 2,
        _ => 3,
    };
    match best {
        Some(best) if rank(&best) >= rank(&next) => best,
        _ => next,
    }
}

/// A fixed client certificate, offered whenever the server asks for one.
#[derive(Debug)]
struct FixedClientCertificate(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedClientCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn client_certificate(
    certificate: &ClientCertificate,
    host: &str,
) -> Result<FixedClientCertificate, RegistryError> {
    let failed = |path: &Path, why: String| RegistryError::ClientCertificate {
        host: host.to_string(),
        path: path.to_path_buf(),
        why,
    };
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&certificate.certificate)
            .map_err(|e| failed(&certificate.certificate, format!("cannot be read: {e}")))?
            .collect::<Result<_, _>>()
            .map_err(|e| failed(&certificate.certificate, format!("is not valid PEM: {e}")))?;
    if chain.is_empty() {
        return Err(failed(
            &certificate.certificate,
            "holds no certificate".to_string(),
        ));
    }
    let key_path = certificate.key.as_ref().unwrap_or(&certificate.certificate);
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| failed(key_path, format!("holds no usable private key: {e}")))?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| failed(key_path, format!("holds a key rustls cannot use: {e}")))?;
    Ok(FixedClientCertificate(Arc::new(CertifiedKey::new(
        chain,
        signing_key,
    ))))
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

async fn read_document(
    host: &str,
    what: &str,
    mut response: Response,
) -> Result<Bytes, RegistryError> {
    let transfer = |detail: String| RegistryError::Transfer {
        host: host.to_string(),
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
