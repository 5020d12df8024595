//! Where the CLI's commands go: a provisioner database on this host (`--db`), or a running
//! provisioner's admin REST API (`--server URL`, or a context saved by `provisioner login`,
//! as `kubectl config use-context` and `maas login` do).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use provisioner::store::{
    Hardware, HardwareSpec, LogLine, Node, NodeDetail, Profile, Registered, Registration,
    RegistrationSpec, Revocation, Store, StoreError, TemplateRecord, Workflow,
};
use provisioner::tinkerbell::convert::{ApplyReport, apply_document, nothing_applied};
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::output::Output;

/// How long one API request may take before the CLI gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The flags that say where the records are; global, so they go before or after the
/// subcommand.
#[derive(Args, Clone, Default)]
pub struct Target {
    /// The provisioner's SQLite database on this host. Only `serve` creates it if missing;
    /// every other command needs it to exist.
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "server")]
    pub db: Option<PathBuf>,
    /// A running provisioner's admin API (e.g. https://prov.lab:8443), instead of --db.
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// The admin token for --server (`provisioner init` writes it to DIR/admin-token).
    #[arg(
        long,
        global = true,
        env = "BOOTKIT_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// PEM CA that signed the server's certificate (`provisioner init`'s DIR/ca.pem);
    /// default: the system's CA bundle.
    #[arg(long, global = true, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// PEM client certificate for --server instead of a token (`provisioner init`'s
    /// DIR/admin.pem).
    #[arg(long, global = true, value_name = "PEM", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The private key of --client-cert (DIR/admin-key.pem).
    #[arg(long, global = true, value_name = "PEM", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// A context saved by `provisioner login`, instead of the current one.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
}

/// A saved server: what `provisioner login` checked and wrote.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SavedContext {
    /// The admin API's base URL.
    pub server: String,
    /// The admin token, if the context uses one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The server's CA (absolute path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// The client certificate (absolute path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's key (absolute path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
}

/// `~/.config/bootkit/provisioner.toml`.
#[derive(Serialize, Deserialize, Default, Debug)]
struct Config {
    /// The context commands use without --db, --server or --context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    current: Option<String>,
    #[serde(default)]
    contexts: BTreeMap<String, SavedContext>,
}

/// `provisioner login URL`.
#[derive(Args)]
#[command(after_help = "Examples:
  provisioner login https://prov.lab:8443 --ca /etc/provisioner/ca.pem --token \"$(cat /etc/provisioner/admin-token)\"
  provisioner login https://prov.lab:8443 --name lab --ca ca.pem --client-cert admin.pem --client-key admin-key.pem
  provisioner node list        # now against https://prov.lab:8443")]
pub struct LoginArgs {
    /// The admin API's base URL (https://HOST:PORT, or http:// on loopback).
    url: String,
    /// The context's name (default: the URL's host).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
}

/// `provisioner context ...`.
#[derive(Subcommand)]
pub enum ContextCommand {
    /// The saved contexts; `*` marks the current one.
    #[command(after_help = "Example:\n  provisioner context list")]
    List,
    /// Make NAME the context every command uses without --db or --server.
    #[command(after_help = "Example:\n  provisioner context use lab")]
    Use {
        /// A context saved by `provisioner login`.
        name: String,
    },
    /// Forget a saved context (its token too).
    #[command(after_help = "Example:\n  provisioner context delete lab")]
    Delete {
        /// A context saved by `provisioner login`.
        name: String,
    },
}

/// The CLI's config file: `$XDG_CONFIG_HOME/bootkit/provisioner.toml`, or under
/// `~/.config` when XDG_CONFIG_HOME is not set (the XDG base directory rules).
fn config_path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context(
            "neither XDG_CONFIG_HOME nor HOME is set: the CLI cannot find its config file \
             (set HOME, or give --server URL each time)",
        )?)
        .join(".config"),
    };
    Ok(base.join("bootkit").join("provisioner.toml"))
}

fn load_config(path: &Path) -> anyhow::Result<Config> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).with_context(|| {
            format!(
                "{} is not a valid provisioner CLI config; fix it or delete it and run \
                 `provisioner login` again",
                path.display()
            )
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(error) => Err(error).with_context(|| format!("reading {} failed", path.display())),
    }
}

/// Writes the config with mode 0600 (it holds tokens), through a temporary file so that a
/// crash never leaves half a file.
fn save_config(path: &Path, config: &Config) -> anyhow::Result<()> {
    let dir = path.parent().context("the config path has no directory")?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the directory {} failed", dir.display()))?;
    let text = toml::to_string(config).context("writing the config as TOML failed")?;
    let temporary = path.with_extension("toml.new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("creating {} failed", temporary.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {} failed", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("replacing {} failed", path.display()))
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving the path {}", path.display()))
}

/// `provisioner login`: checks that the server answers with these credentials, then saves
/// them as a context and makes it the current one.
pub fn login(target: &Target, args: &LoginArgs, out: &Output) -> anyhow::Result<()> {
    let saved = SavedContext {
        server: args.url.trim_end_matches('/').to_string(),
        token: target.token.clone(),
        ca: target.ca.as_deref().map(absolute).transpose()?,
        client_cert: target.client_cert.as_deref().map(absolute).transpose()?,
        client_key: target.client_key.as_deref().map(absolute).transpose()?,
    };
    anyhow::ensure!(
        saved.token.is_some() || saved.client_cert.is_some(),
        "login needs a credential: give --token TOKEN (or BOOTKIT_ADMIN_TOKEN), or \
         --client-cert and --client-key (`provisioner init` writes both)"
    );
    let remote = Remote::new(&saved)?;
    remote
        .get::<Vec<Node>>(&["nodes"])
        .with_context(|| format!("logging in to {} failed; nothing was saved", saved.server))?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => remote.base.host_str().unwrap_or("default").to_string(),
    };
    let path = config_path()?;
    let mut config = load_config(&path)?;
    config.contexts.insert(name.clone(), saved);
    config.current = Some(name.clone());
    save_config(&path, &config)?;
    out.done(&format!(
        "logged in to {}: context {name} saved in {} and made current",
        remote.base,
        path.display()
    ))
}

/// `provisioner context ...`.
pub fn context(command: &ContextCommand, out: &Output) -> anyhow::Result<()> {
    let path = config_path()?;
    let mut config = load_config(&path)?;
    match command {
        ContextCommand::List => {
            if out.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "current": config.current,
                        "contexts": config.contexts.iter().map(|(name, saved)| {
                            serde_json::json!({ "name": name, "server": saved.server })
                        }).collect::<Vec<_>>(),
                    })
                );
                return Ok(());
            }
            let width = config.contexts.keys().map(String::len).max().unwrap_or(4);
            println!("  {:width$}  SERVER", "NAME");
            for (name, saved) in &config.contexts {
                let mark = if config.current.as_ref() == Some(name) {
                    "*"
                } else {
                    " "
                };
                println!("{mark} {name:width$}  {}", saved.server);
            }
            Ok(())
        }
        ContextCommand::Use { name } => {
            known_context(&config, name, &path)?;
            config.current = Some(name.clone());
            save_config(&path, &config)?;
            out.done(&format!("context {name} is now current"))
        }
        ContextCommand::Delete { name } => {
            known_context(&config, name, &path)?;
            config.contexts.remove(name);
            if config.current.as_ref() == Some(name) {
                config.current = None;
            }
            save_config(&path, &config)?;
            out.done(&format!("context {name} deleted"))
        }
    }
}

fn known_context<'a>(
    config: &'a Config,
    name: &str,
    path: &Path,
) -> anyhow::Result<&'a SavedContext> {
    config.contexts.get(name).with_context(|| {
        let known: Vec<&str> = config.contexts.keys().map(String::as_str).collect();
        let hint = provisioner::hints::did_you_mean(name, known.iter().copied());
        format!(
            "no context {name} in {}{hint}; saved: {} (`provisioner login URL --name {name}` adds it)",
            path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )
    })
}

/// The records a command works on: a database file, or a server's API.
pub enum Backend {
    /// `--db PATH` on this host.
    Local(Store),
    /// `--server URL` or a saved context.
    Remote(Remote),
}

/// Opens what `target` names. A database is opened only if it exists: a misspelt path
/// must not become a new, empty database that lists no nodes.
pub fn open(target: &Target) -> anyhow::Result<Backend> {
    if let Some(db) = &target.db {
        return open_existing(db).map(Backend::Local);
    }
    let saved =
        match &target.server {
            Some(server) => SavedContext {
                server: server.clone(),
                token: None,
                ca: None,
                client_cert: None,
                client_key: None,
            },
            None => {
                let path = config_path()?;
                let config = load_config(&path)?;
                let name = target.context.as_ref().or(config.current.as_ref()).context(
                "no --db and no --server: give --db PATH (the provisioner's database on this \
                 host), --server URL (a running provisioner), or save a server once with \
                 `provisioner login URL --token TOKEN`",
            )?;
                known_context(&config, name, &path)?.clone()
            }
        };
    // Flags given now win over what the context saved.
    let saved = SavedContext {
        token: target.token.clone().or(saved.token),
        ca: target.ca.clone().or(saved.ca),
        client_cert: target.client_cert.clone().or(saved.client_cert),
        client_key: target.client_key.clone().or(saved.client_key),
        server: saved.server,
    };
    Ok(Backend::Remote(Remote::new(&saved)?))
}

/// The database at `db`, which must exist already.
pub fn open_existing(db: &Path) -> anyhow::Result<Store> {
    anyhow::ensure!(
        db.exists(),
        "the database {} does not exist: check the --db path; `provisioner serve --db {}` \
         creates a new one (or give --server URL to use a running provisioner)",
        db.display(),
        db.display()
    );
    Store::open(db).with_context(|| format!("opening the database {}", db.display()))
}

/// A provisioner's admin REST API.
pub struct Remote {
    base: Url,
    http: Client,
    token: Option<String>,
}

/// What the API answers on an error: `{"error": "..."}`.
#[derive(Deserialize)]
struct ApiError {
    error: String,
}

/// A request the API refused or could not answer.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The server answered with an error status.
    #[error("{server} answered {status}: {message}")]
    Status {
        /// The admin API's URL.
        server: String,
        /// The HTTP status.
        status: StatusCode,
        /// The API's error message.
        message: String,
    },
}

impl Remote {
    /// A client for `saved`, with its TLS trust and credential.
    pub fn new(saved: &SavedContext) -> anyhow::Result<Self> {
        let base = Url::parse(&saved.server).with_context(|| {
            format!(
                "--server {:?} is not a URL; give e.g. https://prov.lab:8443",
                saved.server
            )
        })?;
        anyhow::ensure!(
            matches!(base.scheme(), "http" | "https"),
            "--server {} is not http:// or https://",
            saved.server
        );
        let mut builder = Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("provisioner-cli/", env!("CARGO_PKG_VERSION")));
        if base.scheme() == "https" {
            builder = builder.use_preconfigured_tls(tls_config(saved)?);
        } else if saved.client_cert.is_some() {
            anyhow::bail!(
                "--client-cert needs an https:// --server: a certificate is presented in the TLS \
                 handshake, and {} is plain HTTP",
                saved.server
            );
        }
        let http = builder
            .build()
            .context("setting up the HTTP client failed")?;
        if saved.token.is_none() && saved.client_cert.is_none() {
            eprintln!(
                "provisioner: warning: no --token (BOOTKIT_ADMIN_TOKEN) or --client-cert for {}: \
                 the server will refuse unless it runs with --admin-insecure-no-auth",
                saved.server
            );
        }
        Ok(Self {
            base,
            http,
            token: saved.token.clone(),
        })
    }

    fn url(&self, segments: &[&str]) -> anyhow::Result<Url> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| anyhow::anyhow!("--server {} cannot take a path", self.base))?;
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        Ok(url)
    }

    fn request(&self, method: Method, segments: &[&str]) -> anyhow::Result<RequestBuilder> {
        let mut request = self.http.request(method, self.url(segments)?);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.trim());
        }
        Ok(request)
    }

    /// Sends `request` and returns the body of a success, or the API's error as a
    /// [`RemoteError`].
    fn send(&self, request: RequestBuilder) -> anyhow::Result<String> {
        let response = request.send().map_err(|error| {
            anyhow::anyhow!(
                "reaching {} failed: {} (check the URL, that `provisioner serve` runs there, \
                 and --ca for https)",
                self.base,
                bootkit_common::error_chain(&error)
            )
        })?;
        let status = response.status();
        let body = response
            .text()
            .with_context(|| format!("reading {}'s answer failed", self.base))?;
        if status.is_success() {
            return Ok(body);
        }
        let message = serde_json::from_str::<ApiError>(&body)
            .map(|error| error.error)
            .unwrap_or(body);
        let message = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => format!(
                "{message} (give the admin token with --token or BOOTKIT_ADMIN_TOKEN, or \
                 --client-cert/--client-key; `provisioner login` saves them)"
            ),
            _ => message,
        };
        Err(RemoteError::Status {
            server: self.base.to_string(),
            status,
            message,
        }
        .into())
    }

    fn parse<T: DeserializeOwned>(&self, body: &str) -> anyhow::Result<T> {
        serde_json::from_str(body).with_context(|| {
            format!(
                "{} answered something this CLI cannot read (another version?)",
                self.base
            )
        })
    }

    /// GET `/api/v1/SEGMENTS...` as `T`.
    pub fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> anyhow::Result<T> {
        let body = self.send(self.request(Method::GET, segments)?)?;
        self.parse(&body)
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<String>,
    ) -> anyhow::Result<T> {
        let mut request = self.request(method, segments)?;
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let body = self.send(request)?;
        self.parse(if body.is_empty() { "null" } else { &body })
    }

    /// DELETE `/api/v1/SEGMENTS...` (answered 204, no body).
    fn delete(&self, segments: &[&str]) -> anyhow::Result<()> {
        self.send(self.request(Method::DELETE, segments)?)?;
        Ok(())
    }
}

/// The rustls client configuration for `saved`: its CA (or the system's bundle) and its
/// client certificate, ring only as everywhere in the workspace.
fn tls_config(saved: &SavedContext) -> anyhow::Result<rustls::ClientConfig> {
    let bundle = match &saved.ca {
        Some(ca) => ca.clone(),
        None => agent_channel::tls::system_ca_bundle()
            .context(
                "no --ca and no system CA bundle: give --ca with the server's CA \
                 (`provisioner init`'s DIR/ca.pem)",
            )?
            .to_path_buf(),
    };
    let roots = agent_channel::tls::roots_from_bundle(&bundle)
        .with_context(|| format!("reading the CA bundle {} failed", bundle.display()))?;
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("setting up TLS failed")?
    .with_root_certificates(roots);
    Ok(match (&saved.client_cert, &saved.client_key) {
        (Some(cert), Some(key)) => {
            let (chain, key_der) = bootkit_common::tls_pin::load_client_identity(cert, key)
                .with_context(|| {
                    format!(
                        "reading the client certificate {} and key {} failed",
                        cert.display(),
                        key.display()
                    )
                })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .with_context(|| {
                    format!("the key {} does not fit {}", key.display(), cert.display())
                })?
        }
        _ => builder.with_no_client_auth(),
    })
}

/// The API's shape of a node's detail (see admin/nodes.rs).
#[derive(Deserialize)]
struct ApiNodeDetail {
    #[serde(flatten)]
    node: Node,
    workflow: Option<provisioner::store::Workflow>,
    timeline: Vec<provisioner::store::Event>,
    #[serde(default)]
    attributes: Option<ApiAttributes>,
    #[serde(default)]
    credentials: Vec<provisioner::store::Credential>,
}

#[derive(Deserialize)]
struct ApiAttributes {
    #[serde(rename = "inBand")]
    in_band: serde_json::Value,
}

/// The same operations on either backend, with the store's types.
impl Backend {
    /// Every node.
    pub fn list_nodes(&self) -> anyhow::Result<Vec<Node>> {
        match self {
            Backend::Local(store) => Ok(store.list_nodes()?),
            Backend::Remote(remote) => remote.get(&["nodes"]),
        }
    }

    /// One node by id, MAC, serial or UUID.
    pub fn get_node(&self, key: &str) -> anyhow::Result<Node> {
        match self {
            Backend::Local(store) => Ok(store.get_node(key)?),
            Backend::Remote(_) => Ok(self.node_detail(key)?.node),
        }
    }

    /// A node's detail.
    pub fn node_detail(&self, key: &str) -> anyhow::Result<NodeDetail> {
        match self {
            Backend::Local(store) => Ok(store.node_detail(key)?),
            Backend::Remote(remote) => {
                let detail: ApiNodeDetail = remote.get(&["nodes", key])?;
                Ok(NodeDetail {
                    node: detail.node,
                    workflow: detail.workflow,
                    events: detail.timeline,
                    in_band: detail.attributes.map(|attributes| attributes.in_band),
                    credentials: detail.credentials,
                })
            }
        }
    }

    /// A node's log lines after `after`.
    pub fn node_logs(&self, id: &str, after: i64, limit: usize) -> anyhow::Result<Vec<LogLine>> {
        match self {
            Backend::Local(store) => Ok(store.node_logs(id, after, limit)?),
            Backend::Remote(remote) => {
                let request = remote
                    .request(Method::GET, &["nodes", id, "logs"])?
                    .query(&[("after", after.to_string()), ("limit", limit.to_string())]);
                let body = remote.send(request)?;
                remote.parse(&body)
            }
        }
    }

    /// Re-arms a node.
    pub fn reprovision(&self, key: &str) -> anyhow::Result<Node> {
        match self {
            Backend::Local(store) => Ok(store.reprovision(key)?),
            Backend::Remote(remote) => {
                remote.call(Method::POST, &["nodes", key, "reprovision"], None)
            }
        }
    }

    /// Revokes a node's credentials.
    pub fn revoke_node(&self, key: &str) -> anyhow::Result<Revocation> {
        match self {
            Backend::Local(store) => Ok(store.revoke_node(key)?),
            Backend::Remote(remote) => remote.call(Method::POST, &["nodes", key, "revoke"], None),
        }
    }

    /// Lets a node enroll once more.
    pub fn approve_enrollment(&self, key: &str) -> anyhow::Result<Revocation> {
        match self {
            Backend::Local(store) => Ok(store.approve_enrollment(key)?),
            Backend::Remote(remote) => {
                remote.call(Method::POST, &["nodes", key, "approve-enrollment"], None)
            }
        }
    }

    /// Registers one node.
    pub fn register(&self, spec: &RegistrationSpec) -> anyhow::Result<Registered> {
        match self {
            Backend::Local(store) => Ok(store.register(spec)?),
            Backend::Remote(remote) => {
                let body = serde_json::json!({
                    "serial": spec.serial,
                    "uuid": spec.uuid,
                    "mac": spec.mac,
                    "profile": spec.profile,
                    "hostname": spec.hostname,
                    "metadata": spec.metadata,
                });
                remote.call(Method::POST, &["registrations"], Some(body.to_string()))
            }
        }
    }

    /// Registers OEP's CSV, all rows or none.
    pub fn import_registrations(&self, csv: &str) -> anyhow::Result<Vec<Registered>> {
        match self {
            Backend::Local(store) => Ok(store.import_registrations(csv)?),
            Backend::Remote(remote) => {
                let request = remote
                    .request(Method::POST, &["registrations", "import"])?
                    .header(reqwest::header::CONTENT_TYPE, "text/csv")
                    .body(csv.to_string());
                let body = remote.send(request)?;
                remote.parse(&body)
            }
        }
    }

    /// Every registration.
    pub fn list_registrations(&self) -> anyhow::Result<Vec<Registration>> {
        match self {
            Backend::Local(store) => Ok(store.list_registrations()?),
            Backend::Remote(remote) => remote.get(&["registrations"]),
        }
    }

    /// Deletes a registration.
    pub fn delete_registration(&self, id: &str) -> anyhow::Result<()> {
        match self {
            Backend::Local(store) => Ok(store.delete_registration(id)?),
            Backend::Remote(remote) => remote.delete(&["registrations", id]),
        }
    }

    /// Creates a profile (its paths are files on the server's host).
    pub fn create_profile(
        &self,
        spec: &provisioner::store::ProfileSpec,
    ) -> anyhow::Result<Profile> {
        match self {
            Backend::Local(store) => Ok(store.create_profile(spec)?),
            Backend::Remote(remote) => {
                let body = serde_json::json!({
                    "name": spec.name,
                    "kernel": spec.kernel,
                    "initramfs": spec.initramfs,
                    "cmdline": spec.cmdline,
                    "template": spec.template,
                    "os_image": spec.os_image,
                    "os_image_sha256": spec.os_image_sha256,
                    "default": spec.default,
                });
                remote.call(Method::POST, &["profiles"], Some(body.to_string()))
            }
        }
    }

    /// Every profile.
    pub fn list_profiles(&self) -> anyhow::Result<Vec<Profile>> {
        match self {
            Backend::Local(store) => Ok(store.list_profiles()?),
            Backend::Remote(remote) => remote.get(&["profiles"]),
        }
    }

    /// One profile.
    pub fn get_profile(&self, name: &str) -> anyhow::Result<Profile> {
        match self {
            Backend::Local(store) => Ok(store.get_profile(name)?),
            Backend::Remote(remote) => remote.get(&["profiles", name]),
        }
    }

    /// Deletes a profile.
    pub fn delete_profile(&self, name: &str) -> anyhow::Result<()> {
        match self {
            Backend::Local(store) => Ok(store.delete_profile(name)?),
            Backend::Remote(remote) => remote.delete(&["profiles", name]),
        }
    }

    /// Sets (or clears) the default profile.
    pub fn set_default_profile(&self, name: Option<&str>) -> anyhow::Result<()> {
        match self {
            Backend::Local(store) => Ok(store.set_default_profile(name)?),
            Backend::Remote(remote) => {
                let body = serde_json::json!({ "name": name }).to_string();
                remote.call::<serde_json::Value>(
                    Method::PUT,
                    &["profiles", "default"],
                    Some(body),
                )?;
                Ok(())
            }
        }
    }

    /// Stores a template (Tinkerbell YAML), named `name` or by its own name.
    pub fn create_template(
        &self,
        data: &str,
        name: Option<&str>,
    ) -> anyhow::Result<TemplateRecord> {
        match self {
            Backend::Local(store) => Ok(store.create_template(data, name)?),
            Backend::Remote(remote) => {
                let body = serde_json::json!({ "name": name, "data": data });
                remote.call(Method::POST, &["templates"], Some(body.to_string()))
            }
        }
    }

    /// One template by id or name.
    pub fn get_template(&self, id: &str) -> anyhow::Result<TemplateRecord> {
        match self {
            Backend::Local(store) => Ok(store.get_template(id)?),
            Backend::Remote(remote) => remote.get(&["templates", id]),
        }
    }

    /// Every template.
    pub fn list_templates(&self) -> anyhow::Result<Vec<TemplateRecord>> {
        match self {
            Backend::Local(store) => Ok(store.list_templates()?),
            Backend::Remote(remote) => remote.get(&["templates"]),
        }
    }

    /// Deletes a template.
    pub fn delete_template(&self, id: &str) -> anyhow::Result<()> {
        match self {
            Backend::Local(store) => Ok(store.delete_template(id)?),
            Backend::Remote(remote) => remote.delete(&["templates", id]),
        }
    }

    /// Stores a machine.
    pub fn create_hardware(&self, spec: &HardwareSpec) -> anyhow::Result<Hardware> {
        match self {
            Backend::Local(store) => Ok(store.create_hardware(spec)?),
            Backend::Remote(remote) => {
                let body = serde_json::to_string(spec).context("writing the hardware as JSON")?;
                remote.call(Method::POST, &["hardware"], Some(body))
            }
        }
    }

    /// One machine by id or MAC.
    pub fn get_hardware(&self, id: &str) -> anyhow::Result<Hardware> {
        match self {
            Backend::Local(store) => Ok(store.get_hardware(id)?),
            Backend::Remote(remote) => remote.get(&["hardware", id]),
        }
    }

    /// Every machine.
    pub fn list_hardware(&self) -> anyhow::Result<Vec<Hardware>> {
        match self {
            Backend::Local(store) => Ok(store.list_hardware()?),
            Backend::Remote(remote) => remote.get(&["hardware"]),
        }
    }

    /// Deletes a machine.
    pub fn delete_hardware(&self, id: &str) -> anyhow::Result<()> {
        match self {
            Backend::Local(store) => Ok(store.delete_hardware(id)?),
            Backend::Remote(remote) => remote.delete(&["hardware", id]),
        }
    }

    /// Runs template `template` on the machines of `hardware`.
    pub fn create_workflow(
        &self,
        template: &str,
        hardware: &BTreeMap<String, String>,
    ) -> anyhow::Result<Workflow> {
        match self {
            Backend::Local(store) => Ok(store.create_workflow(template, hardware)?),
            Backend::Remote(remote) => {
                let body = serde_json::json!({ "template": template, "hardware": hardware });
                remote.call(Method::POST, &["workflows"], Some(body.to_string()))
            }
        }
    }

    /// One workflow.
    pub fn get_workflow(&self, id: &str) -> anyhow::Result<Workflow> {
        match self {
            Backend::Local(store) => Ok(store.get_workflow(id)?),
            Backend::Remote(remote) => remote.get(&["workflows", id]),
        }
    }

    /// Every workflow.
    pub fn list_workflows(&self) -> anyhow::Result<Vec<Workflow>> {
        match self {
            Backend::Local(store) => Ok(store.list_workflows()?),
            Backend::Remote(remote) => remote.get(&["workflows"]),
        }
    }

    /// Deletes a workflow.
    pub fn delete_workflow(&self, id: &str) -> anyhow::Result<()> {
        match self {
            Backend::Local(store) => Ok(store.delete_workflow(id)?),
            Backend::Remote(remote) => remote.delete(&["workflows", id]),
        }
    }

    /// Applies Tinkerbell objects (YAML or JSON text), all checked before any is applied.
    pub fn apply_objects(&self, text: &str) -> anyhow::Result<ApplyReport> {
        match self {
            Backend::Local(store) => apply_document(store, text)
                .map_err(|errors| anyhow::anyhow!(nothing_applied(&errors))),
            Backend::Remote(remote) => {
                let request = remote
                    .request(Method::POST, &["objects", "apply"])?
                    .header(reqwest::header::CONTENT_TYPE, "application/yaml")
                    .body(text.to_string());
                let body = remote.send(request)?;
                remote.parse(&body)
            }
        }
    }

    /// The audit log since `since_ms`, at most `limit` entries.
    pub fn audit_log(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> anyhow::Result<Vec<provisioner::store::AuditEntry>> {
        match self {
            Backend::Local(store) => Ok(store.audit_log(since_ms, limit)?),
            Backend::Remote(remote) => {
                let request = remote.request(Method::GET, &["audit"])?.query(&[
                    ("since", since_ms.to_string()),
                    ("limit", limit.to_string()),
                ]);
                let body = remote.send(request)?;
                remote.parse(&body)
            }
        }
    }
}

/// Whether `error` says a `kind` (`node`, ...) was not found, locally or by the API.
pub fn is_not_found(error: &anyhow::Error, kind: &str) -> bool {
    if let Some(StoreError::NotFound { kind: found, .. }) = error.downcast_ref::<StoreError>() {
        return found.starts_with(kind);
    }
    matches!(
        error.downcast_ref::<RemoteError>(),
        Some(RemoteError::Status { status, message, .. })
            if *status == StatusCode::NOT_FOUND && message.starts_with(kind)
    )
}
