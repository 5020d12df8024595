//! Registry hosts as containerd configures them: a `certs.d` directory with one
//! `hosts.toml` per registry namespace (containerd's `docs/hosts.md`, read by containerd's
//! `ctr --hosts-dir`, the CRI plugin's `config_path` and Tinkerbell's tink-agent
//! `--containerd-registry-config-path`). Each file lists the hosts an image of that namespace
//! is pulled from, in order (mirrors first, then `server`), with their capabilities, CA
//! files, client certificates, `skip_verify`, headers and `override_path`.
//!
//! Differences from containerd, on purpose: a `hosts.toml` that does not parse or holds a
//! value of the wrong type is refused with the file and the key named (containerd logs it
//! and silently falls back to the directory's certificate files); an unknown key is logged as
//! a warning (containerd ignores it). containerd's special case for `localhost` registries
//! (HTTPS without verification, then HTTP) is not copied: list them in
//! `insecure_registries` or give them a `hosts.toml`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::RegistryError;
use crate::reference::api_host_of;

/// Where containerd, and tink-agent by default, look for registry host configuration.
pub const DEFAULT_HOSTS_DIR: &str = "/etc/containerd/certs.d";

/// The namespace directory used when no other matches (containerd's fallback).
const DEFAULT_NAMESPACE_DIR: &str = "_default";

/// The file of a namespace directory.
const HOSTS_FILE: &str = "hosts.toml";

/// What a host may be asked to do (containerd's host capabilities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Capabilities {
    /// Fetch manifests and blobs by digest.
    pub pull: bool,
    /// Turn a tag into a digest: trusted hosts only (a public mirror should not have it).
    pub resolve: bool,
    /// Accept uploads.
    pub push: bool,
}

impl Capabilities {
    /// Every capability: what a host without a `capabilities` key has.
    pub const ALL: Capabilities = Capabilities {
        pull: true,
        resolve: true,
        push: true,
    };
}

/// How a host is spoken to: its URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostScheme {
    /// `https://`.
    Https,
    /// `http://`: plain HTTP, unless the host also has TLS settings (`ca`, `client`,
    /// `skip_verify`) and its port is not 80: then HTTPS is tried first and plain HTTP is the
    /// fallback, as containerd does.
    Http,
}

/// A client certificate for TLS client authentication.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientCertificate {
    /// The certificate chain (PEM).
    pub certificate: PathBuf,
    /// The private key (PEM); `None`: the key is in the certificate's file.
    pub key: Option<PathBuf>,
}

/// One host an image is pulled from: a mirror, or the namespace's `server`.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryHost {
    /// `https` or `http`.
    pub scheme: HostScheme,
    /// `host[:port]`; empty for the `server` entry of a file that names no server (the
    /// registry of the image itself is meant).
    pub host: String,
    /// The API root path: `/v2` (with any path the URL had in front of it), or the URL's path
    /// as written when `override_path` is set.
    pub path: String,
    /// What the host may be asked for.
    pub capabilities: Capabilities,
    /// CA files trusted for this host, on top of the system's (or the configured) bundle.
    pub ca: Vec<PathBuf>,
    /// Client certificates offered to this host (the first is used).
    pub client: Vec<ClientCertificate>,
    /// `skip_verify`: `Some(true)` accepts any server certificate.
    pub skip_verify: Option<bool>,
    /// Headers sent with every request to this host (name, values); for example
    /// `Authorization` for a registry's own credentials.
    pub headers: BTreeMap<String, Vec<String>>,
    /// `dial_timeout`: how long a connection attempt may take.
    pub dial_timeout: Option<Duration>,
}

/// Header values can be credentials (`Authorization`): Debug shows the names only.
impl fmt::Debug for RegistryHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryHost")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("path", &self.path)
            .field("capabilities", &self.capabilities)
            .field("ca", &self.ca)
            .field("client", &self.client)
            .field("skip_verify", &self.skip_verify)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("dial_timeout", &self.dial_timeout)
            .finish()
    }
}

impl RegistryHost {
    /// The host of `registry` itself (`https://`, every capability, `/v2`); Docker Hub's API
    /// host for `docker.io`.
    pub fn registry_itself(registry: &str) -> RegistryHost {
        RegistryHost {
            scheme: HostScheme::Https,
            host: api_host_of(registry).to_string(),
            path: "/v2".to_string(),
            capabilities: Capabilities::ALL,
            ca: Vec::new(),
            client: Vec::new(),
            skip_verify: None,
            headers: BTreeMap::new(),
            dial_timeout: None,
        }
    }

    /// Whether the host has TLS settings of its own (containerd's "explicit TLS").
    pub fn has_tls_settings(&self) -> bool {
        !self.ca.is_empty() || !self.client.is_empty() || self.skip_verify.is_some()
    }

    /// `scheme://host/path`, for log lines and errors.
    pub fn url(&self) -> String {
        let scheme = match self.scheme {
            HostScheme::Https => "https",
            HostScheme::Http => "http",
        };
        format!("{scheme}://{}{}", self.host, self.path)
    }
}

/// A `certs.d` directory: one subdirectory per registry namespace (`docker.io`,
/// `registry.local:5000` or `registry.local_5000_`, `_default`), each with a `hosts.toml` or
/// Docker-style certificate files (`*.crt` CAs, `*.cert` + `*.key` client pairs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsDir {
    root: PathBuf,
}

impl HostsDir {
    /// The directory at `root` (it need not exist: then nothing is configured).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HostsDir { root: root.into() }
    }

    /// The directory's path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The namespace directory for `registry` (as an image reference writes it, `docker.io`
    /// for Docker Hub), in containerd's order: `host_port_`, `host:port`, then `_default`
    /// unless `with_default` is false. `None` when none exists.
    pub fn namespace_dir(
        &self,
        registry: &str,
        with_default: bool,
    ) -> Result<Option<PathBuf>, RegistryError> {
        let mut candidates = Vec::new();
        if let Some((host, port)) = registry.rsplit_once(':')
            && !host.is_empty()
        {
            candidates.push(format!("{host}_{port}_"));
        }
        candidates.push(registry.to_string());
        if with_default {
            candidates.push(DEFAULT_NAMESPACE_DIR.to_string());
        }
        for name in candidates {
            let path = self.root.join(&name);
            match std::fs::metadata(&path) {
                Ok(_) => return Ok(Some(path)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(RegistryError::HostsDir {
                        path,
                        why: error.to_string(),
                    });
                }
            }
        }
        Ok(None)
    }

    /// The `_default` namespace directory, if it exists.
    pub fn default_dir(&self) -> Result<Option<PathBuf>, RegistryError> {
        let path = self.root.join(DEFAULT_NAMESPACE_DIR);
        match std::fs::metadata(&path) {
            Ok(_) => Ok(Some(path)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(RegistryError::HostsDir {
                path,
                why: error.to_string(),
            }),
        }
    }
}

/// The hosts of a namespace directory: its `hosts.toml`, or (when it has none, or an empty
/// one) its Docker-style certificate files as one `server` entry. The last entry is the
/// `server` one; its `host` is empty when the file names no server.
pub fn load_namespace_dir(dir: &Path) -> Result<Vec<RegistryHost>, RegistryError> {
    let file = dir.join(HOSTS_FILE);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return Err(RegistryError::HostsDir {
                path: file,
                why: error.to_string(),
            });
        }
    };
    if text.trim().is_empty() {
        return load_cert_files(dir);
    }
    parse_hosts_toml(&text, dir, &file)
}

/// Docker's certificate layout: `*.crt` are CAs, `*.cert` client certificates with their
/// `*.key` beside them (or the key inside the `.cert`). Files are taken in name order.
fn load_cert_files(dir: &Path) -> Result<Vec<RegistryHost>, RegistryError> {
    let unreadable = |error: std::io::Error| RegistryError::HostsDir {
        path: dir.to_path_buf(),
        why: error.to_string(),
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|kind| !kind.is_dir()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    // An empty host: the registry itself, filled in by the caller.
    let mut server = RegistryHost::registry_itself("");
    for name in &names {
        if name.ends_with(".crt") {
            server.ca.push(dir.join(name));
        }
        if let Some(stem) = name.strip_suffix(".cert") {
            let key = dir.join(format!("{stem}.key"));
            server.client.push(ClientCertificate {
                certificate: dir.join(name),
                key: key.exists().then_some(key),
            });
        }
    }
    Ok(vec![server])
}

/// Parses a `hosts.toml` as containerd does: the `[host."URL"]` tables in the order the file
/// lists them, then the top level (`server` and its settings) as the last entry. Relative
/// paths are taken from `base_dir`; `file` names the file in errors.
pub fn parse_hosts_toml(
    text: &str,
    base_dir: &Path,
    file: &Path,
) -> Result<Vec<RegistryHost>, RegistryError> {
    let document = DeTable::parse(text).map_err(|error| RegistryError::HostsFile {
        file: file.to_path_buf(),
        key: String::new(),
        why: format!(
            "it is not valid TOML{}: {}",
            error
                .span()
                .map(|span| format!(" (line {})", line_of(text, span.start)))
                .unwrap_or_default(),
            error.message().trim()
        ),
    })?;
    let parser = Parser {
        text,
        base_dir,
        file,
    };
    let top = document.get_ref();
    let mut hosts = Vec::new();
    if let Some(host_tables) = top.get("host") {
        let tables = host_tables
            .get_ref()
            .as_table()
            .ok_or_else(|| parser.invalid("host", host_tables, "must be a table of host URLs"))?;
        let mut ordered: Vec<(&Spanned<std::borrow::Cow<'_, str>>, &Spanned<DeValue<'_>>)> =
            tables.iter().collect();
        // The map is sorted by name; the file's order is the order of the keys' positions.
        ordered.sort_by_key(|(key, _)| key.span().start);
        for (url, value) in ordered {
            let key = format!("host.\"{}\"", url.get_ref());
            let table = value.get_ref().as_table().ok_or_else(|| {
                parser.invalid(&key, value, "must be a table ([host.\"https://…\"])")
            })?;
            hosts.push(parser.host(Some(url.get_ref()), &key, table)?);
        }
    }
    let server = match top.get("server") {
        Some(value) => Some(
            value
                .get_ref()
                .as_str()
                .ok_or_else(|| parser.invalid("server", value, "must be a string (a URL)"))?,
        ),
        None => None,
    };
    let mut root = top.clone();
    root.remove("host");
    root.remove("server");
    hosts.push(parser.host(server.filter(|s| !s.is_empty()), "", &root)?);
    Ok(hosts)
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

struct Parser<'a> {
    text: &'a str,
    base_dir: &'a Path,
    file: &'a Path,
}

impl Parser<'_> {
    fn invalid(&self, key: &str, value: &Spanned<DeValue<'_>>, why: &str) -> RegistryError {
        RegistryError::HostsFile {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            why: format!("(line {}) {why}", line_of(self.text, value.span().start)),
        }
    }

    fn path(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// One host: `url` is the `[host."URL"]` name or the `server` (None: no server named);
    /// `prefix` is the table's key for errors (empty for the top level).
    fn host(
        &self,
        url: Option<&str>,
        prefix: &str,
        table: &DeTable<'_>,
    ) -> Result<RegistryHost, RegistryError> {
        let name = |key: &str| match prefix {
            "" => key.to_string(),
            prefix => format!("{prefix}.{key}"),
        };
        let override_path = match table.get("override_path") {
            Some(value) => value.get_ref().as_bool().ok_or_else(|| {
                self.invalid(&name("override_path"), value, "must be true or false")
            })?,
            None => false,
        };
        // An empty host until the URL names one: the registry itself.
        let mut host = RegistryHost::registry_itself("");
        if let Some(url) = url {
            let key = if prefix.is_empty() { "server" } else { prefix };
            let (scheme, host_name, path) =
                split_url(url).map_err(|why| RegistryError::HostsFile {
                    file: self.file.to_path_buf(),
                    key: key.to_string(),
                    why: format!("{url:?} {why}"),
                })?;
            host.scheme = scheme;
            host.host = host_name;
            host.path = api_path(&path, override_path);
        } else if override_path {
            host.path = String::new();
        }
        for (key, value) in table.iter() {
            let key_name = name(key.get_ref());
            match key.get_ref().as_ref() {
                "capabilities" => host.capabilities = self.capabilities(&key_name, value)?,
                "ca" => host.ca = self.paths(&key_name, value)?,
                "client" => host.client = self.client(&key_name, value)?,
                "skip_verify" => {
                    host.skip_verify =
                        Some(value.get_ref().as_bool().ok_or_else(|| {
                            self.invalid(&key_name, value, "must be true or false")
                        })?);
                }
                "header" => host.headers = self.headers(&key_name, value)?,
                "dial_timeout" => {
                    let text = value.get_ref().as_str().ok_or_else(|| {
                        self.invalid(&key_name, value, "must be a duration string such as \"1s\"")
                    })?;
                    host.dial_timeout = Some(parse_go_duration(text).ok_or_else(|| {
                        self.invalid(
                            &key_name,
                            value,
                            &format!(
                                "{text:?} is not a duration such as \"500ms\", \"3s\" or \"1m\""
                            ),
                        )
                    })?);
                }
                "override_path" => {}
                other => tracing::warn!(
                    "{}: unknown key {key_name:?} ignored ({other} is not one of capabilities, ca, client, skip_verify, header, override_path, dial_timeout)",
                    self.file.display()
                ),
            }
        }
        Ok(host)
    }

    fn capabilities(
        &self,
        key: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<Capabilities, RegistryError> {
        let list = value.get_ref().as_array().ok_or_else(|| {
            self.invalid(key, value, "must be a list such as [\"pull\", \"resolve\"]")
        })?;
        // An empty list means every capability, as containerd reads it.
        if list.is_empty() {
            return Ok(Capabilities::ALL);
        }
        let mut capabilities = Capabilities {
            pull: false,
            resolve: false,
            push: false,
        };
        for item in list {
            match item
                .get_ref()
                .as_str()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("pull") => capabilities.pull = true,
                Some("resolve") => capabilities.resolve = true,
                Some("push") => capabilities.push = true,
                // Referrers (OCI 1.1) are never asked for by this client.
                Some("referrers") => {}
                _ => {
                    return Err(self.invalid(
                        key,
                        item,
                        "holds an unknown capability: use \"pull\", \"resolve\", \"push\" or \"referrers\"",
                    ));
                }
            }
        }
        Ok(capabilities)
    }

    /// A string or a list of strings, as paths.
    fn paths(
        &self,
        key: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<Vec<PathBuf>, RegistryError> {
        let why = "must be a path or a list of paths";
        match value.get_ref() {
            DeValue::String(path) => Ok(vec![self.path(path)]),
            DeValue::Array(list) => list
                .iter()
                .map(|item| {
                    item.get_ref()
                        .as_str()
                        .map(|path| self.path(path))
                        .ok_or_else(|| self.invalid(key, item, why))
                })
                .collect(),
            _ => Err(self.invalid(key, value, why)),
        }
    }

    /// A path, a list of paths, or a list of [certificate, key] pairs (`""`: the key is in
    /// the certificate's file).
    fn client(
        &self,
        key: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<Vec<ClientCertificate>, RegistryError> {
        let why = "must be a path, a list of paths or a list of [certificate, key] pairs";
        let single = |path: &str| ClientCertificate {
            certificate: self.path(path),
            key: None,
        };
        match value.get_ref() {
            DeValue::String(path) => Ok(vec![single(path)]),
            DeValue::Array(list) => list
                .iter()
                .map(|item| match item.get_ref() {
                    DeValue::String(path) => Ok(single(path)),
                    DeValue::Array(pair) => match pair.as_ref() {
                        [certificate, key_file] => {
                            match (certificate.get_ref().as_str(), key_file.get_ref().as_str()) {
                                (Some(certificate), Some(key_file)) => Ok(ClientCertificate {
                                    certificate: self.path(certificate),
                                    key: (!key_file.is_empty()).then(|| self.path(key_file)),
                                }),
                                _ => Err(self.invalid(key, item, why)),
                            }
                        }
                        _ => Err(self.invalid(key, item, why)),
                    },
                    _ => Err(self.invalid(key, item, why)),
                })
                .collect(),
            _ => Err(self.invalid(key, value, why)),
        }
    }

    fn headers(
        &self,
        key: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<BTreeMap<String, Vec<String>>, RegistryError> {
        let table = value
            .get_ref()
            .as_table()
            .ok_or_else(|| self.invalid(key, value, "must be a table of header names"))?;
        let mut headers = BTreeMap::new();
        for (name, values) in table.iter() {
            let header_key = format!("{key}.{}", name.get_ref());
            let why = "must be a string or a list of strings";
            let list = match values.get_ref() {
                DeValue::String(text) => vec![text.to_string()],
                DeValue::Array(list) => list
                    .iter()
                    .map(|item| {
                        item.get_ref()
                            .as_str()
                            .map(str::to_string)
                            .ok_or_else(|| self.invalid(&header_key, item, why))
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(self.invalid(&header_key, values, why)),
            };
            if reqwest::header::HeaderName::from_bytes(name.get_ref().as_bytes()).is_err() {
                return Err(self.invalid(&header_key, values, "is not a valid HTTP header name"));
            }
            if list
                .iter()
                .any(|v| reqwest::header::HeaderValue::from_str(v).is_err())
            {
                return Err(self.invalid(
                    &header_key,
                    values,
                    "holds a value that is not a valid HTTP header value (control characters?)",
                ));
            }
            headers.insert(name.get_ref().to_string(), list);
        }
        Ok(headers)
    }
}

/// `https://host[:port][/path]` into its parts; a URL without a scheme is `https://`
/// (containerd's rule for `server`).
fn split_url(url: &str) -> Result<(HostScheme, String, String), &'static str> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (HostScheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (HostScheme::Http, rest)
    } else if url.contains("://") {
        return Err("has a scheme other than https:// or http://");
    } else {
        (HostScheme::Https, url)
    };
    let (host, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, ""),
    };
    if host.is_empty() || host.contains(['@', '?', '#', ' ']) {
        return Err("is not a URL of the form https://host[:port][/path]");
    }
    Ok((scheme, host.to_string(), path.to_string()))
}

/// containerd's API root: the URL's path (cleaned) with `/v2` appended unless it ends so or
/// `override_path` says the path is the API root as written.
fn api_path(path: &str, override_path: bool) -> String {
    let clean: Vec<&str> = path
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    let clean = if clean.is_empty() {
        String::new()
    } else {
        format!("/{}", clean.join("/"))
    };
    if override_path || clean.ends_with("/v2") {
        clean
    } else {
        format!("{clean}/v2")
    }
}

/// Go's `time.ParseDuration` for the forms a timeout is written in: decimal numbers with
/// `ns`, `us`, `ms`, `s`, `m` or `h`, one or more (`1m30s`).
fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut any = false;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * seconds;
        any = true;
    }
    any.then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_api_paths_follow_containerd() {
        assert_eq!(api_path("", false), "/v2");
        assert_eq!(api_path("/us", false), "/us/v2");
        assert_eq!(api_path("/v2/namespaceprefix", true), "/v2/namespaceprefix");
        assert_eq!(api_path("", true), "");
        assert_eq!(api_path("/x/v2/", false), "/x/v2");
        assert_eq!(
            split_url("registry.example.com:5000").unwrap(),
            (
                HostScheme::Https,
                "registry.example.com:5000".into(),
                String::new()
            )
        );
        assert!(split_url("ftp://x").is_err());
        assert!(split_url("https:///v2").is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("3s"), Some(Duration::from_secs(3)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("3"), None);
        assert_eq!(parse_go_duration("soon"), None);
    }
}
