//! The worker's configuration, compatible with HookOS and EMT: kernel command line keys
//! (`grpc_authority=…`, as Smee's iPXE script passes them), device discovery's env file
//! (`/run/bootkit/device-discovery.env`: `WORKER_ID`, the node credential's
//! `TINKERBELL_CLIENT_CERT`/`TINKERBELL_CLIENT_KEY`) over them, environment variables
//! (tink-worker's `TINKERBELL_GRPC_AUTHORITY`, `ID`, …) over both, and a few flags of our own.
//! The layers, their value rules and the one boolean parser are `bootkit_common::layered_config`.

use std::fmt;
use std::path::{Path, PathBuf};

use agent_channel::ClientIdentity;
use bootkit_common::checksum::Sha256Digest;
use bootkit_common::layered_config::{InvalidSetting, Layer, Origin, Setting, boolean_or};

/// The flags of `tink-worker` (the rest comes from the command line and the environment).
#[derive(Debug, Clone, clap::Args)]
pub struct Flags {
    /// Which workflow protocol to speak: `auto` tries the current one and falls back to the
    /// legacy one when the server does not implement it.
    #[arg(long, value_enum, default_value_t = ProtocolChoice::Auto)]
    pub protocol: ProtocolChoice,
    /// containerd's gRPC socket.
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    pub containerd_socket: PathBuf,
    /// containerd namespace for images and containers.
    #[arg(long, default_value = "tinkerbell")]
    pub namespace: String,
    /// Keep each action's container, task and snapshot after it ran (for debugging).
    #[arg(long)]
    pub keep_containers: bool,
    /// An action's `command` replaces the image's whole argument list, entrypoint included
    /// (EMT's worker), instead of only its CMD (tink-agent).
    #[arg(long)]
    pub emt_args: bool,
    /// Device discovery's env file (the node's worker id and credential files); a missing
    /// file configures nothing, as on a HookOS-style boot without device discovery.
    #[arg(long, default_value = DISCOVERY_ENV_FILE)]
    pub discovery_env_file: PathBuf,
}

/// Where device discovery writes its env file.
pub const DISCOVERY_ENV_FILE: &str = "/run/bootkit/device-discovery.env";

impl Default for Flags {
    fn default() -> Self {
        Flags {
            protocol: ProtocolChoice::Auto,
            containerd_socket: PathBuf::from("/run/containerd/containerd.sock"),
            namespace: "tinkerbell".to_string(),
            keep_containers: false,
            emt_args: false,
            discovery_env_file: PathBuf::from(DISCOVERY_ENV_FILE),
        }
    }
}

/// The workflow protocol `--protocol` asks for (see [`crate::protocol`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtocolChoice {
    /// The current protocol, switching to the legacy one for good when the server answers
    /// UNIMPLEMENTED.
    Auto,
    /// Only Tinkerbell's current protocol (`GetAction`).
    Current,
    /// Only the legacy protocol of tink v0.9–v0.12 (`GetWorkflowContexts`).
    Legacy,
}

/// How the worker reaches the workflow service.
pub use agent_channel::ServerTls;

/// A value that must never reach a log: Debug and Display print a marker instead.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it (an Authorization header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where and how action images are pulled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    /// `containerd_registry_config_path` (tink-agent's `--containerd-registry-config-path`):
    /// containerd's certs.d directory of `hosts.toml` files (mirrors, CA, client certificates
    /// and headers per registry); [`bootkit_oci::hosts::DEFAULT_HOSTS_DIR`] by default. A
    /// directory that does not exist configures nothing.
    pub hosts_dir: PathBuf,
    /// `docker_registry`: the registry images are pulled through (`host[:port]`).
    pub mirror: Option<String>,
    /// `registry_username`: the registry user; only used together with `password`.
    pub username: Option<String>,
    /// `registry_password`: the registry user's password; only used together with `username`.
    pub password: Option<Secret>,
    /// Registries (`host[:port]`) reached without certificate checks, or over plain HTTP.
    pub insecure: Vec<String>,
}

impl RegistryConfig {
    /// The registry settings alone, which need no workflow server: what `tink-worker pull`
    /// and `run-once` use, and the registry part of [`Config::from_sources`].
    pub fn from_sources(sources: &Sources) -> RegistryConfig {
        RegistryConfig {
            hosts_dir: sources.text(&REGISTRY_CONFIG_PATH).map_or_else(
                || PathBuf::from(bootkit_oci::hosts::DEFAULT_HOSTS_DIR),
                PathBuf::from,
            ),
            mirror: sources.text(&DOCKER_REGISTRY),
            username: sources.text(&REGISTRY_USERNAME),
            password: sources.text(&REGISTRY_PASSWORD).map(Secret),
            insecure: sources
                .text(&INSECURE_REGISTRIES)
                .map(|list| comma_list(&list))
                .unwrap_or_default(),
        }
    }

    /// The registry client's configuration: the mirror, the insecure registries, the
    /// credentials (when both user and password are given) and the hosts directory.
    pub fn client_config(&self) -> bootkit_oci::RegistryConfig {
        let credentials = match (&self.username, &self.password) {
            (Some(username), Some(password)) => Some(bootkit_oci::Credentials {
                username: username.clone(),
                password: password.expose().to_string(),
            }),
            _ => None,
        };
        bootkit_oci::RegistryConfig {
            mirror: self.mirror.clone(),
            insecure_registries: self.insecure.clone(),
            credentials,
            hosts_dir: Some(self.hosts_dir.clone()),
            ..bootkit_oci::RegistryConfig::default()
        }
    }
}

/// Proxy URLs may carry `user:password@`; Debug shows them without it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `HTTP_PROXY` (or `http_proxy`): the proxy URL for plain HTTP.
    pub http: Option<String>,
    /// `HTTPS_PROXY` (or `https_proxy`): the proxy URL for HTTPS.
    pub https: Option<String>,
    /// `NO_PROXY` (or `no_proxy`): the hosts reached without a proxy, as the variable writes
    /// them (comma-separated, not parsed).
    pub no_proxy: Option<String>,
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("http", &self.http.as_deref().map(without_credentials))
            .field("https", &self.https.as_deref().map(without_credentials))
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

/// `http://user:secret@proxy:3128` as `http://<redacted>@proxy:3128`.
fn without_credentials(url: &str) -> String {
    let host_start = url.find("://").map_or(0, |scheme_end| scheme_end + 3);
    match url[host_start..].rfind('@') {
        Some(at) => format!(
            "{}<redacted>{}",
            &url[..host_start],
            &url[host_start + at..]
        ),
        None => url.to_string(),
    }
}

/// The worker's whole configuration, from [`Config::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The workflow service, `host:port`.
    pub grpc_authority: String,
    /// The id the worker asks for work under (`worker_id`, `WORKER_ID` or `ID`); without one,
    /// the MAC address of the first network interface that has a real one.
    pub worker_id: String,
    /// `tinkerbell_tls`, `tinkerbell_insecure_tls`, `tinkerbell_ca_sha256` and `tinkerbell_ca`:
    /// TLS is on and verified unless they say otherwise; the pin wins over the CA file.
    pub tls: ServerTls,
    /// `tinkerbell_client_cert` and `tinkerbell_client_key`: the node credential presented in
    /// every TLS handshake (None: no client certificate).
    pub client_identity: Option<ClientIdentity>,
    /// The registry settings for action images.
    pub registry: RegistryConfig,
    /// The HTTP proxy settings.
    pub proxy: ProxyConfig,
    /// [`Flags::protocol`].
    pub protocol: ProtocolChoice,
    /// [`Flags::containerd_socket`].
    pub containerd_socket: PathBuf,
    /// [`Flags::namespace`].
    pub namespace: String,
    /// [`Flags::keep_containers`].
    pub keep_containers: bool,
    /// [`Flags::emt_args`].
    pub emt_args: bool,
}

/// Why the worker's configuration cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is in neither the environment nor the kernel command line.
    #[error(
        "{what} is not set: pass {cmdline}=… on the kernel command line or set {env} in the environment"
    )]
    Missing {
        /// What the setting is, in words.
        what: &'static str,
        /// Its kernel command line key.
        cmdline: &'static str,
        /// Its (first) environment variable.
        env: &'static str,
    },
    /// A value that means nothing for its setting, named with where it came from.
    #[error(transparent)]
    Invalid(#[from] InvalidSetting),
    /// Device discovery's env file exists but cannot be read.
    #[error("cannot read {}; fix its permissions or pass another --discovery-env-file", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// One setting: its kernel command line key and its environment names (earlier names win).
struct Key {
    cmdline: &'static str,
    env: &'static [&'static str],
}

const GRPC_AUTHORITY: Key = Key {
    cmdline: "grpc_authority",
    env: &["TINKERBELL_GRPC_AUTHORITY"],
};
const WORKER_ID: Key = Key {
    cmdline: "worker_id",
    env: &["WORKER_ID", "ID"],
};
const TLS: Key = Key {
    cmdline: "tinkerbell_tls",
    env: &["TINKERBELL_TLS"],
};
const INSECURE_TLS: Key = Key {
    cmdline: "tinkerbell_insecure_tls",
    env: &["TINKERBELL_INSECURE_TLS"],
};
const CA_BUNDLE: Key = Key {
    cmdline: "tinkerbell_ca",
    env: &["TINKERBELL_CA_CERT"],
};
const CA_SHA256: Key = Key {
    cmdline: "tinkerbell_ca_sha256",
    env: &["TINKERBELL_CA_SHA256"],
};
const CLIENT_CERT: Key = Key {
    cmdline: "tinkerbell_client_cert",
    env: &["TINKERBELL_CLIENT_CERT"],
};
const CLIENT_KEY: Key = Key {
    cmdline: "tinkerbell_client_key",
    env: &["TINKERBELL_CLIENT_KEY"],
};
const DOCKER_REGISTRY: Key = Key {
    cmdline: "docker_registry",
    env: &["DOCKER_REGISTRY"],
};
const REGISTRY_USERNAME: Key = Key {
    cmdline: "registry_username",
    env: &["REGISTRY_USERNAME"],
};
const REGISTRY_PASSWORD: Key = Key {
    cmdline: "registry_password",
    env: &["REGISTRY_PASSWORD"],
};
const INSECURE_REGISTRIES: Key = Key {
    cmdline: "insecure_registries",
    env: &["INSECURE_REGISTRIES"],
};
const REGISTRY_CONFIG_PATH: Key = Key {
    cmdline: "containerd_registry_config_path",
    env: &[
        "CONTAINERD_REGISTRY_CONFIG_PATH",
        "AGENT_CONTAINERD_REGISTRY_CONFIG_PATH",
    ],
};
const HTTP_PROXY: Key = Key {
    cmdline: "HTTP_PROXY",
    env: &["HTTP_PROXY", "http_proxy"],
};
const HTTPS_PROXY: Key = Key {
    cmdline: "HTTPS_PROXY",
    env: &["HTTPS_PROXY", "https_proxy"],
};
const NO_PROXY: Key = Key {
    cmdline: "NO_PROXY",
    env: &["NO_PROXY", "no_proxy"],
};

/// Where the kernel command line is read from.
const PROC_CMDLINE: &str = "/proc/cmdline";

/// The kernel command line, device discovery's env file and the environment, looked up with
/// the environment winning over the env file, and the env file over the command line.
pub struct Sources {
    cmdline: Layer,
    discovery: Layer,
    env: Layer,
}

impl Sources {
    /// `cmdline` is the text of /proc/cmdline; later words win over earlier ones, as the
    /// kernel's own parameters do.
    pub fn new(cmdline: &str, env: impl IntoIterator<Item = (String, String)>) -> Self {
        Sources {
            cmdline: Layer::from_cmdline(Path::new(PROC_CMDLINE), cmdline),
            discovery: Layer::empty(Origin::EnvFile(PathBuf::from(DISCOVERY_ENV_FILE))),
            env: Layer::from_env(env),
        }
    }

    /// Adds device discovery's env file `path` with the text `text` (its keys are the
    /// environment's names).
    #[must_use]
    pub fn with_discovery_env_file(mut self, path: &Path, text: &str) -> Self {
        self.discovery = Layer::from_env_file(path, text);
        self
    }

    /// This process's /proc/cmdline (empty when unreadable, as in a container), device
    /// discovery's env file `discovery_env_file` (empty when missing) and environment.
    pub fn live(discovery_env_file: &Path) -> Result<Self, ConfigError> {
        let cmdline = std::fs::read_to_string(PROC_CMDLINE).unwrap_or_default();
        let discovery =
            Layer::read(discovery_env_file, Layer::from_env_file).map_err(|source| {
                ConfigError::Unreadable {
                    path: discovery_env_file.to_path_buf(),
                    source,
                }
            })?;
        let mut sources = Sources::new(&cmdline, std::env::vars());
        sources.discovery = discovery;
        Ok(sources)
    }

    /// An empty value counts as unset (`ID=` in a unit file should not make an empty worker id).
    fn get(&self, key: &Key) -> Option<Setting> {
        self.env
            .get_first(key.env)
            .or_else(|| self.discovery.get_first(key.env))
            .or_else(|| self.cmdline.get(key.cmdline))
    }

    fn text(&self, key: &Key) -> Option<String> {
        self.get(key).map(|found| found.value)
    }

    fn flag(&self, key: &Key, default: bool) -> Result<bool, ConfigError> {
        Ok(boolean_or(self.get(key), default)?)
    }
}

fn missing(what: &'static str, key: &Key) -> ConfigError {
    ConfigError::Missing {
        what,
        cmdline: key.cmdline,
        env: key.env[0],
    }
}

impl Config {
    /// The configuration of this process: flags, the environment, /proc/cmdline and /sys (for
    /// the worker id fallback).
    pub fn load(flags: Flags) -> Result<Config, ConfigError> {
        let sources = Sources::live(&flags.discovery_env_file)?;
        Config::from_sources(flags, &sources, Path::new("/sys"))
    }

    /// The configuration from explicit sources; `sys` is where /sys is (a prepared tree in tests).
    pub fn from_sources(
        flags: Flags,
        sources: &Sources,
        sys: &Path,
    ) -> Result<Config, ConfigError> {
        Ok(Config {
            grpc_authority: grpc_authority(sources)?,
            worker_id: worker_id(sources, sys)?,
            tls: server_tls(sources)?,
            client_identity: client_identity(sources)?,
            registry: RegistryConfig::from_sources(sources),
            proxy: ProxyConfig {
                http: sources.text(&HTTP_PROXY),
                https: sources.text(&HTTPS_PROXY),
                no_proxy: sources.text(&NO_PROXY),
            },
            protocol: flags.protocol,
            containerd_socket: flags.containerd_socket,
            namespace: flags.namespace,
            keep_containers: flags.keep_containers,
            emt_args: flags.emt_args,
        })
    }
}

fn grpc_authority(sources: &Sources) -> Result<String, ConfigError> {
    let found = sources
        .get(&GRPC_AUTHORITY)
        .ok_or_else(|| missing("the workflow server address", &GRPC_AUTHORITY))?;
    let port = found
        .value
        .rsplit_once(':')
        .filter(|(host, _)| !host.is_empty() && !host.contains("://"))
        .and_then(|(_, port)| port.parse::<u16>().ok());
    match port {
        Some(_) => Ok(found.value),
        None => Err(found
            .invalid("expected host:port, for example tink.example.com:42113")
            .into()),
    }
}

/// HookOS falls back to the MAC address when Smee passes no worker id: the same here, with the
/// first hardware interface the kernel created.
fn worker_id(sources: &Sources, sys: &Path) -> Result<String, ConfigError> {
    if let Some(id) = sources.text(&WORKER_ID) {
        return Ok(id);
    }
    bootkit_hwinfo::network_interfaces(sys)
        .into_iter()
        .find_map(|interface| {
            interface
                .mac
                .filter(|mac| !bootkit_common::identity::is_placeholder(mac))
        })
        .ok_or_else(|| {
            missing(
                "the worker id (and no network interface has a MAC to use instead)",
                &WORKER_ID,
            )
        })
}

fn server_tls(sources: &Sources) -> Result<ServerTls, ConfigError> {
    if !sources.flag(&TLS, true)? {
        return Ok(ServerTls::Plaintext);
    }
    if sources.flag(&INSECURE_TLS, false)? {
        return Ok(ServerTls::InsecureSkipVerify);
    }
    if let Some(found) = sources.get(&CA_SHA256) {
        return match Sha256Digest::parse(&found.value) {
            Ok(digest) => Ok(ServerTls::Pinned {
                ca_sha256: digest.0,
            }),
            Err(_) => Err(found
                .invalid("expected the 64 hex digits of the site CA certificate's SHA-256 (sha256sum of its DER)")
                .into()),
        };
    }
    Ok(ServerTls::Verified {
        ca_bundle: sources.text(&CA_BUNDLE).map(PathBuf::from),
    })
}

/// Both files or neither: a certificate without its key (or the reverse) is a mistake to
/// report, not a reason to connect without one.
fn client_identity(sources: &Sources) -> Result<Option<ClientIdentity>, ConfigError> {
    match (sources.get(&CLIENT_CERT), sources.get(&CLIENT_KEY)) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(ClientIdentity {
            cert_chain: PathBuf::from(cert.value),
            key: PathBuf::from(key.value),
        })),
        (Some(cert), None) => Err(cert
            .invalid("the client certificate needs its key too: set tinkerbell_client_key (TINKERBELL_CLIENT_KEY)")
            .into()),
        (None, Some(key)) => Err(key
            .invalid("the client key needs its certificate too: set tinkerbell_client_cert (TINKERBELL_CLIENT_CERT)")
            .into()),
    }
}

fn comma_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load(cmdline: &str, environment: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let no_sys = tempfile::tempdir().unwrap();
        Config::from_sources(
            Flags::default(),
            &Sources::new(cmdline, env(environment)),
            no_sys.path(),
        )
    }

    #[test]
    fn cmdline_keys_and_defaults() {
        let config = load(
            r#"quiet grpc_authority=10.0.0.1:42113 worker_id=m1 docker_registry=10.0.0.1:5000 insecure_registries="a:5000, b" registry_username=u"#,
            &[],
        )
        .unwrap();
        assert_eq!(config.grpc_authority, "10.0.0.1:42113");
        assert_eq!(config.worker_id, "m1");
        assert_eq!(
            config.tls,
            ServerTls::Verified { ca_bundle: None },
            "TLS is on by default"
        );
        assert_eq!(config.registry.mirror.as_deref(), Some("10.0.0.1:5000"));
        assert_eq!(config.registry.insecure, ["a:5000", "b"]);
        assert_eq!(config.registry.username.as_deref(), Some("u"));
        assert_eq!(config.registry.password, None);
        assert_eq!(
            config.registry.hosts_dir,
            Path::new("/etc/containerd/certs.d"),
            "containerd's and tink-agent's default"
        );
        assert_eq!(config.protocol, ProtocolChoice::Auto);
        assert_eq!(config.namespace, "tinkerbell");
        assert_eq!(
            config.containerd_socket,
            Path::new("/run/containerd/containerd.sock")
        );
        assert!(!config.keep_containers && !config.emt_args);
    }

    #[test]
    fn environment_overrides_cmdline_and_worker_id_beats_id() {
        let config = load(
            "grpc_authority=old:1 worker_id=from-cmdline tinkerbell_tls=true",
            &[
                ("TINKERBELL_GRPC_AUTHORITY", "new:42113"),
                ("ID", "from-id"),
                ("WORKER_ID", "from-worker-id"),
                ("TINKERBELL_TLS", "false"),
                ("HTTPS_PROXY", "http://proxy:3128"),
            ],
        )
        .unwrap();
        assert_eq!(config.grpc_authority, "new:42113");
        assert_eq!(config.worker_id, "from-worker-id");
        assert_eq!(config.tls, ServerTls::Plaintext);
        assert_eq!(config.proxy.https.as_deref(), Some("http://proxy:3128"));

        let config = load(
            "grpc_authority=a:1 worker_id=from-cmdline",
            &[("ID", "from-id"), ("WORKER_ID", "")],
        )
        .unwrap();
        assert_eq!(
            config.worker_id, "from-id",
            "an empty WORKER_ID counts as unset"
        );
    }

    #[test]
    fn the_registry_hosts_directory_is_set_as_tink_agent_sets_it() {
        let config = load(
            "grpc_authority=a:1 worker_id=w containerd_registry_config_path=/run/certs.d docker_registry=m:5000 insecure_registries=m:5000 registry_username=u registry_password=p",
            &[],
        )
        .unwrap();
        assert_eq!(config.registry.hosts_dir, Path::new("/run/certs.d"));
        let client = config.registry.client_config();
        assert_eq!(client.hosts_dir.as_deref(), Some(Path::new("/run/certs.d")));
        assert_eq!(client.mirror.as_deref(), Some("m:5000"));
        assert_eq!(client.insecure_registries, ["m:5000"]);
        assert_eq!(
            client.credentials.map(|c| (c.username, c.password)),
            Some(("u".to_string(), "p".to_string()))
        );
        // tink-agent's own variable (ff's AGENT_ prefix on its flag) works too.
        let config = load(
            "grpc_authority=a:1 worker_id=w",
            &[(
                "AGENT_CONTAINERD_REGISTRY_CONFIG_PATH",
                "/etc/agent/certs.d",
            )],
        )
        .unwrap();
        assert_eq!(config.registry.hosts_dir, Path::new("/etc/agent/certs.d"));
        assert_eq!(config.registry.client_config().credentials, None);
    }

    #[test]
    fn insecure_tls_and_ca_bundle() {
        let config = load(
            "grpc_authority=a:1 worker_id=w tinkerbell_insecure_tls=1",
            &[],
        )
        .unwrap();
        assert_eq!(config.tls, ServerTls::InsecureSkipVerify);
        let config = load(
            "grpc_authority=a:1 worker_id=w",
            &[("TINKERBELL_CA_CERT", "/etc/tink/ca.pem")],
        )
        .unwrap();
        assert_eq!(
            config.tls,
            ServerTls::Verified {
                ca_bundle: Some(PathBuf::from("/etc/tink/ca.pem"))
            }
        );
    }

    #[test]
    fn missing_and_bad_values_name_the_key() {
        let error = load("worker_id=w", &[]).unwrap_err().to_string();
        assert!(
            error.contains("grpc_authority") && error.contains("TINKERBELL_GRPC_AUTHORITY"),
            "{error}"
        );

        let error = load("grpc_authority=tink.example.com worker_id=w", &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("grpc_authority=\"tink.example.com\"") && error.contains("host:port"),
            "{error}"
        );

        let error = load(
            "grpc_authority=a:1 worker_id=w",
            &[("TINKERBELL_TLS", "maybe")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("TINKERBELL_TLS")
                && error.contains("environment")
                && error.contains("true or false"),
            "{error}"
        );

        let error = load("grpc_authority=a:1", &[]).unwrap_err().to_string();
        assert!(
            error.contains("worker_id") && error.contains("WORKER_ID"),
            "{error}"
        );
    }

    fn load_with_discovery(
        cmdline: &str,
        discovery: &str,
        environment: &[(&str, &str)],
    ) -> Result<Config, ConfigError> {
        let no_sys = tempfile::tempdir().unwrap();
        let sources = Sources::new(cmdline, env(environment))
            .with_discovery_env_file(Path::new(DISCOVERY_ENV_FILE), discovery);
        Config::from_sources(Flags::default(), &sources, no_sys.path())
    }

    #[test]
    fn the_client_credential_comes_from_the_environment_then_discovery_then_cmdline() {
        let base = "grpc_authority=a:1 worker_id=w";
        let identity = |cert: &str, key: &str| {
            Some(ClientIdentity {
                cert_chain: PathBuf::from(cert),
                key: PathBuf::from(key),
            })
        };
        let config = load(
            &format!("{base} tinkerbell_client_cert=/c.pem tinkerbell_client_key=/k.pem"),
            &[],
        )
        .unwrap();
        assert_eq!(config.client_identity, identity("/c.pem", "/k.pem"));
        // What device discovery writes wins over the command line.
        let discovery = "WORKER_ID=52:54:00:aa:bb:cc\nTINKERBELL_CLIENT_CERT=/run/bootkit/credentials/node.pem\nTINKERBELL_CLIENT_KEY=/run/bootkit/credentials/node-key.pem\n";
        let config = load_with_discovery(
            &format!("{base} tinkerbell_client_cert=/c.pem tinkerbell_client_key=/k.pem"),
            discovery,
            &[],
        )
        .unwrap();
        assert_eq!(
            config.client_identity,
            identity(
                "/run/bootkit/credentials/node.pem",
                "/run/bootkit/credentials/node-key.pem"
            )
        );
        assert_eq!(config.worker_id, "52:54:00:aa:bb:cc");
        // The process environment wins over both.
        let config = load_with_discovery(
            base,
            discovery,
            &[
                ("TINKERBELL_CLIENT_CERT", "/env.pem"),
                ("TINKERBELL_CLIENT_KEY", "/env-key.pem"),
            ],
        )
        .unwrap();
        assert_eq!(config.client_identity, identity("/env.pem", "/env-key.pem"));
        assert_eq!(load(base, &[]).unwrap().client_identity, None);
    }

    #[test]
    fn a_certificate_without_its_key_is_refused_naming_both() {
        let error = load(
            "grpc_authority=a:1 worker_id=w tinkerbell_client_cert=/c.pem",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("tinkerbell_client_cert") && error.contains("tinkerbell_client_key"),
            "{error}"
        );
    }

    #[test]
    fn the_ca_pin_is_read_as_hex_and_wins_over_the_ca_file() {
        let pin = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
        let config = load(
            &format!(
                "grpc_authority=a:1 worker_id=w tinkerbell_ca=/ca.pem tinkerbell_ca_sha256={pin}"
            ),
            &[],
        )
        .unwrap();
        let ServerTls::Pinned { ca_sha256 } = config.tls else {
            panic!("{:?}", config.tls)
        };
        assert_eq!(ca_sha256[..4], [0x9f, 0x86, 0xd0, 0x81]);
        assert_eq!(ca_sha256[31], 0x08);
        // tinkerbell_tls=false still means plaintext, pin or not.
        let config = load(
            &format!(
                "grpc_authority=a:1 worker_id=w tinkerbell_tls=false tinkerbell_ca_sha256={pin}"
            ),
            &[],
        )
        .unwrap();
        assert_eq!(config.tls, ServerTls::Plaintext);
    }

    #[test]
    fn a_bad_ca_pin_is_refused_with_its_origin() {
        for bad in [
            "abc",
            "zz86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        ] {
            let error = load(
                "grpc_authority=a:1 worker_id=w",
                &[("TINKERBELL_CA_SHA256", bad)],
            )
            .unwrap_err()
            .to_string();
            assert!(
                error.contains("TINKERBELL_CA_SHA256")
                    && error.contains("environment")
                    && error.contains("64 hex digits"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_missing_discovery_env_file_configures_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let sources = Sources::live(&dir.path().join("absent.env")).unwrap();
        assert!(sources.discovery.get("WORKER_ID").is_none());
        std::fs::create_dir(dir.path().join("a-directory")).unwrap();
        let Err(error) = Sources::live(&dir.path().join("a-directory")) else {
            panic!("a directory is not an env file")
        };
        assert!(error.to_string().contains("a-directory"), "{error}");
    }

    #[test]
    fn worker_id_falls_back_to_the_first_nic_mac() {
        let sys = tempfile::tempdir().unwrap();
        for (name, index, mac) in [
            ("eth1", "3", "52:54:00:00:00:02"),
            ("eth0", "2", "52:54:00:00:00:01"),
        ] {
            let dir = sys.path().join("devices/pci0000:00").join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("ifindex"), index).unwrap();
            std::fs::write(dir.join("address"), mac).unwrap();
            std::fs::create_dir_all(sys.path().join("class/net")).unwrap();
            std::os::unix::fs::symlink(&dir, sys.path().join("class/net").join(name)).unwrap();
        }
        let sources = Sources::new("grpc_authority=a:1", Vec::new());
        let config = Config::from_sources(Flags::default(), &sources, sys.path()).unwrap();
        assert_eq!(config.worker_id, "52:54:00:00:00:01");
    }

    #[test]
    fn flags_parse_with_their_defaults() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            flags: Flags,
        }
        let defaults = Cli::try_parse_from(["tink-worker"]).unwrap().flags;
        assert_eq!(defaults.protocol, ProtocolChoice::Auto);
        assert_eq!(
            defaults.containerd_socket,
            Flags::default().containerd_socket
        );
        assert_eq!(defaults.namespace, Flags::default().namespace);
        let flags = Cli::try_parse_from([
            "tink-worker",
            "--protocol",
            "legacy",
            "--keep-containers",
            "--emt-args",
        ])
        .unwrap()
        .flags;
        assert_eq!(flags.protocol, ProtocolChoice::Legacy);
        assert!(flags.keep_containers && flags.emt_args);
        let error = Cli::try_parse_from(["tink-worker", "--protocol", "v2"])
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("--protocol") && error.contains("auto"),
            "{error}"
        );
    }

    #[test]
    fn debug_output_redacts_the_registry_password_and_proxy_credentials() {
        let config = load(
            "grpc_authority=a:1 worker_id=w registry_password=hunter2-secret HTTPS_PROXY=http://bob:proxy-secret@proxy:3128",
            &[],
        )
        .unwrap();
        assert!(!format!("{config:?}").contains("proxy-secret"));
        assert!(format!("{config:?}").contains("http://<redacted>@proxy:3128"));
        assert_eq!(
            config.proxy.https.as_deref(),
            Some("http://bob:proxy-secret@proxy:3128")
        );
        assert_eq!(
            config.registry.password.as_ref().map(Secret::expose),
            Some("hunter2-secret")
        );
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2-secret"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }
}
