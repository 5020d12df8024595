//! The install config (`install.toml`): which disk, which image, the partition layout, and what
//! to set up in the installed system. It replaces the configuration half of EMT Standalone's
//! install-os.sh. Everything is checked when the file is loaded, so an invalid config stops
//! the installer before it touches a disk.
//!
//! Top-level keys (`hostname`, `after`) must come before the first `[section]`, as TOML wants.
//! Every key is optional; unknown keys are errors (a typo must not be silently ignored).
//!
//! ```toml
//! hostname = "edge-01"          # /etc/hostname and the 127.0.1.1 line of /etc/hosts
//! after = "reboot"              # "poweroff" (default), "reboot" or "none"
//!
//! [disk]                        # an explicit disk, or the automatic choice's policy
//! device = "/dev/disk/by-id/nvme-SAMSUNG_0123"
//! prefer = "smallest"           # or "largest"
//! min_size_bytes = 64000000000
//!
//! [image]                       # relative paths are relative to this file's directory
//! file = "edge-microvisor-toolkit.raw.gz"
//! sha256_file = "edge-microvisor-toolkit.raw.gz.sha256sum"   # or sha256 = "64 hex digits"
//! bmap = "edge-microvisor-toolkit.raw.bmap"
//!
//! [layout]                      # changes to the written partition table (see gpt.rs)
//! grow = 3
//!
//! [system]
//! rootfs_partition = "rootfs"   # GPT name of the root filesystem; default: rootfs, rootfs_a, root
//!
//! [[users]]
//! name = "edge"
//! password_hash = "$6$salt$..."  # a crypt(3) hash (mkpasswd -m sha-512), never a clear password
//! ssh_authorized_keys = ["ssh-ed25519 AAAAC3Nza... edge@laptop"]
//! sudo = true                   # member of `sudo` or `wheel`, whichever the system has
//! groups = ["docker"]           # groups that must exist in the installed system
//!
//! [proxy]                       # /etc/environment and /etc/profile.d/proxy.sh
//! http = "http://proxy.example.com:3128"
//! https = "http://proxy.example.com:3128"
//! no_proxy = "localhost,127.0.0.1,.example.com"
//!
//! [network]                     # one static interface, as a systemd-networkd .network file
//! mac = "52:54:00:12:34:56"     # or interface = "enp1s0" (globs allowed), exactly one
//! address = "192.168.1.10/24"
//! gateway = "192.168.1.1"
//! dns = ["192.168.1.1", "9.9.9.9"]
//!
//! [cloud_init]                  # NoCloud seed in /var/lib/cloud/seed/nocloud
//! user_data_file = "user-data.yaml"   # or user_data = """#cloud-config ..."""
//! meta_data = "instance-id: edge-01"
//!
//! [boot]                        # the UEFI boot entry
//! label = "Edge Microvisor Toolkit"
//! loader = '\EFI\BOOT\BOOTX64.EFI'
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::IpNet;
use serde::Deserialize;

use crate::disk::SelectPolicy;
use crate::gpt::Layout;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the install config {path}; check the path and its permissions")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("install config {path} is invalid (fix the key shown below and run again)")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("install config {path}: `{field}`: {reason}")]
    Invalid {
        path: PathBuf,
        field: String,
        reason: String,
    },
    #[error(
        "install config {path}: `{field}` names {file}, which cannot be read; \
         relative paths are taken from the config file's directory"
    )]
    ReadReferenced {
        path: PathBuf,
        field: &'static str,
        file: PathBuf,
        source: std::io::Error,
    },
}

/// The whole install config. Absent sections mean "leave as is" (or the default noted).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallConfig {
    #[serde(default)]
    pub hostname: Option<Hostname>,
    #[serde(default)]
    pub after: AfterInstall,
    #[serde(default)]
    pub disk: DiskConfig,
    #[serde(default)]
    pub image: ImageConfig,
    #[serde(default)]
    pub layout: Layout,
    #[serde(default)]
    pub system: SystemConfig,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub proxy: Option<Proxy>,
    #[serde(default)]
    pub network: Option<StaticNetwork>,
    #[serde(default)]
    pub cloud_init: Option<CloudInit>,
    #[serde(default)]
    pub boot: BootEntry,
}

impl InstallConfig {
    /// Reads and validates the config; relative paths in it become relative to its directory,
    /// and `[cloud_init] user_data_file` is read into `user_data`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::parse(&text, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_relative_paths(base);
        config.read_user_data_file(path)?;
        Ok(config)
    }

    /// Parses and validates config text; `path` is only used in error messages. Relative
    /// paths are left as written.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        config
            .validate()
            .map_err(|(field, reason)| ConfigError::Invalid {
                path: path.to_owned(),
                field,
                reason,
            })?;
        Ok(config)
    }

    /// True when the config asks for changes inside the installed system's root filesystem.
    pub fn configures_system(&self) -> bool {
        self.hostname.is_some()
            || !self.users.is_empty()
            || self.proxy.is_some()
            || self.network.is_some()
            || self.cloud_init.is_some()
    }

    /// Checks that span several keys; single values are checked as they are parsed.
    fn validate(&self) -> Result<(), (String, String)> {
        self.image.validate()?;
        let mut seen = BTreeSet::new();
        for (index, user) in self.users.iter().enumerate() {
            if !seen.insert(user.name.as_str()) {
                return Err((
                    format!("users[{index}].name"),
                    format!(
                        "user {} is listed twice; merge the two [[users]] entries",
                        user.name
                    ),
                ));
            }
        }
        if let Some(proxy) = &self.proxy
            && proxy.http.is_none()
            && proxy.https.is_none()
            && proxy.no_proxy.is_none()
        {
            return Err((
                "proxy".into(),
                "the section is empty: give http, https or no_proxy, or remove [proxy]".into(),
            ));
        }
        if let Some(network) = &self.network {
            network.validate()?;
        }
        if let Some(cloud_init) = &self.cloud_init {
            cloud_init.validate()?;
        }
        self.boot.validate()
    }

    fn resolve_relative_paths(&mut self, base: &Path) {
        let image = &mut self.image;
        for path in [&mut image.file, &mut image.sha256_file, &mut image.bmap]
            .into_iter()
            .flatten()
        {
            *path = base.join(&*path);
        }
        if let Some(file) = self
            .cloud_init
            .as_mut()
            .and_then(|c| c.user_data_file.as_mut())
        {
            *file = base.join(&*file);
        }
    }

    fn read_user_data_file(&mut self, config_path: &Path) -> Result<(), ConfigError> {
        let Some(cloud_init) = self.cloud_init.as_mut() else {
            return Ok(());
        };
        let Some(file) = &cloud_init.user_data_file else {
            return Ok(());
        };
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::ReadReferenced {
            path: config_path.to_owned(),
            field: "cloud_init.user_data_file",
            file: file.clone(),
            source,
        })?;
        check_user_data(&text).map_err(|reason| ConfigError::Invalid {
            path: config_path.to_owned(),
            field: "cloud_init.user_data_file".into(),
            reason: format!("{}: {reason}", file.display()),
        })?;
        cloud_init.user_data = Some(text);
        Ok(())
    }
}

/// What the installer does once the image is written, verified and configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterInstall {
    #[default]
    Poweroff,
    Reboot,
    None,
}

/// `[disk]`: an explicit `device`, or the policy of the automatic choice.
///
/// Deserialized from a table by hand because `SelectPolicy` rejects unknown keys and serde's
/// `flatten` cannot be combined with that.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "toml::Table")]
pub struct DiskConfig {
    /// A device path (`/dev/nvme0n1`, `/dev/disk/by-id/...`); overrides the automatic choice.
    pub device: Option<PathBuf>,
    pub policy: SelectPolicy,
}

impl TryFrom<toml::Table> for DiskConfig {
    type Error = String;

    fn try_from(mut table: toml::Table) -> Result<Self, String> {
        let device = match table.remove("device") {
            Some(toml::Value::String(device)) if device.starts_with('/') => {
                Some(PathBuf::from(device))
            }
            Some(other) => {
                return Err(format!(
                    "[disk] device must be an absolute device path such as \"/dev/nvme0n1\", \
                     not a {}",
                    other.type_str()
                ));
            }
            None => None,
        };
        let policy = table.clone().try_into().map_err(|error: toml::de::Error| {
            // The table has lost its spans: name the key by finding the one that fails alone.
            let key = table
                .into_iter()
                .find(|(key, value)| {
                    toml::Table::from_iter([(key.clone(), value.clone())])
                        .try_into::<SelectPolicy>()
                        .is_err()
                })
                .map_or_else(String::new, |(key, _)| format!(" {key}"));
            format!("[disk]{key}: {}", error.message())
        })?;
        Ok(Self { device, policy })
    }
}

/// `[image]`: where the OS image and its checksum and block map are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    pub file: Option<PathBuf>,
    /// The sha256 of the file as published (the compressed bytes), 64 lowercase hex digits.
    #[serde(default, deserialize_with = "deserialize_sha256")]
    pub sha256: Option<String>,
    /// A `sha256sum` file (`HEX  name` lines) with a line for the image.
    pub sha256_file: Option<PathBuf>,
    /// A bmaptool block map of the uncompressed image.
    pub bmap: Option<PathBuf>,
}

impl ImageConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        if self.sha256.is_some() && self.sha256_file.is_some() {
            return Err((
                "image.sha256".into(),
                "give either sha256 or sha256_file, not both".into(),
            ));
        }
        Ok(())
    }
}

fn deserialize_sha256<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let hex = String::deserialize(deserializer)?.to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(serde::de::Error::custom(format!(
            "sha256 {hex:?} is not 64 hexadecimal digits (the first word of a sha256sum line)"
        )));
    }
    Ok(Some(hex))
}

/// `[system]`: facts about the image that the installer cannot guess.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemConfig {
    /// GPT partition name of the root filesystem to configure.
    pub rootfs_partition: Option<PartitionName>,
}

/// A GPT partition name: at most 36 UTF-16 code units.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PartitionName(String);

impl TryFrom<String> for PartitionName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        if name.is_empty() || name.encode_utf16().count() > 36 {
            return Err(format!(
                "partition name {name:?} must be 1 to 36 characters (GPT's limit)"
            ));
        }
        Ok(Self(name))
    }
}

impl PartitionName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Defines a string newtype that is checked by `$check` when parsed from the config.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                $check(&value)?;
                Ok(Self(value))
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_string!(
    /// A host name: dot-separated labels of letters, digits and `-` (RFC 1123), at most 64
    /// characters (Linux's limit).
    Hostname,
    check_hostname
);
checked_string!(
    /// A user or group name as useradd accepts it by default: `[a-z_][a-z0-9_-]*`, at most 32.
    UserName,
    check_user_name
);
checked_string!(
    /// A crypt(3) password hash (`$6$...`, `$y$...`), written to /etc/shadow as is.
    CryptHash,
    check_crypt_hash
);
checked_string!(
    /// One authorized_keys line (options allowed), parsed as an OpenSSH public key.
    AuthorizedKey,
    check_authorized_key
);
checked_string!(
    /// A proxy URL with a scheme and a host (`http://proxy:3128`).
    ProxyUrl,
    check_proxy_url
);
checked_string!(
    /// A `no_proxy` list: comma-separated hosts, domains and addresses.
    NoProxy,
    check_no_proxy
);
checked_string!(
    /// A network interface name, or a networkd glob such as `en*`.
    InterfaceName,
    check_interface_name
);

fn check_hostname(name: &str) -> Result<(), String> {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.len() > 64 || !name.split('.').all(label_ok) {
        return Err(format!(
            "hostname {name:?} is not valid: use letters, digits and '-' (not first or last) in \
             dot-separated labels, at most 64 characters"
        ));
    }
    Ok(())
}

fn check_user_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest_ok =
        bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !first_ok || !rest_ok || name.len() > 32 {
        return Err(format!(
            "name {name:?} is not a valid user or group name: start with a lowercase letter or \
             '_', then lowercase letters, digits, '_' or '-', at most 32 characters"
        ));
    }
    Ok(())
}

/// Hand-written: the crypt crates verify passwords; none checks that a string merely has the
/// shape of a hash, which is all that is needed to refuse a clear-text password here.
fn check_crypt_hash(hash: &str) -> Result<(), String> {
    const KNOWN_METHODS: [&str; 9] = ["1", "2a", "2b", "2y", "5", "6", "7", "y", "gy"];
    let mut fields = hash.split('$');
    let well_formed = fields.next() == Some("")
        && fields.next().is_some_and(|id| KNOWN_METHODS.contains(&id))
        && hash.split('$').count() >= 4
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"./$=,".contains(&b));
    if !well_formed {
        return Err(
            "password_hash must be a crypt(3) hash such as the output of `mkpasswd -m sha-512` \
             or `openssl passwd -6` ($6$salt$hash), never a clear-text password"
                .into(),
        );
    }
    Ok(())
}

fn check_authorized_key(line: &str) -> Result<(), String> {
    if line.contains(['\n', '\r']) {
        return Err("ssh_authorized_keys: put each key in its own list item".into());
    }
    ssh_key::authorized_keys::Entry::from_str(line.trim())
        .map(|_| ())
        .map_err(|error| {
            let start: String = line.chars().take(30).collect();
            format!(
                "ssh_authorized_keys entry {start:?}... is not an OpenSSH public key line \
                 (\"ssh-ed25519 AAAA... comment\", the content of a .pub file): {error}"
            )
        })
}

fn check_proxy_url(url: &str) -> Result<(), String> {
    let usage = "write it as scheme://host:port, e.g. http://proxy.example.com:3128";
    let uri =
        hyper::Uri::from_str(url).map_err(|error| format!("proxy {url:?}: {error}; {usage}"))?;
    if uri.scheme().is_none() || uri.host().is_none_or(str::is_empty) {
        return Err(format!("proxy {url:?} has no scheme or host; {usage}"));
    }
    Ok(())
}

fn check_no_proxy(list: &str) -> Result<(), String> {
    if list.is_empty()
        || list
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'`$\\".contains(c))
    {
        return Err(format!(
            "no_proxy {list:?} must be a comma-separated list without spaces or quotes, \
             e.g. \"localhost,127.0.0.1,.example.com\""
        ));
    }
    Ok(())
}

fn check_interface_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 15
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == ':')
    {
        return Err(format!(
            "interface {name:?} is not an interface name (at most 15 characters, no spaces, \
             '/' or ':'; networkd globs such as \"en*\" are allowed)"
        ));
    }
    Ok(())
}

/// `[[users]]`: a login to create, or to update when the image already has it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: UserName,
    /// Absent: password login disabled (key-only); an existing user's password is kept.
    #[serde(default)]
    pub password_hash: Option<CryptHash>,
    #[serde(default)]
    pub ssh_authorized_keys: Vec<AuthorizedKey>,
    #[serde(default)]
    pub sudo: bool,
    /// Supplementary groups; each must exist in the installed system.
    #[serde(default)]
    pub groups: Vec<UserName>,
}

/// `[proxy]`: the proxy environment of the installed system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proxy {
    pub http: Option<ProxyUrl>,
    pub https: Option<ProxyUrl>,
    pub no_proxy: Option<NoProxy>,
}

/// `[network]`: a static address for one interface, matched by name or MAC address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticNetwork {
    pub interface: Option<InterfaceName>,
    pub mac: Option<MacAddress>,
    /// Address with prefix length (CIDR), e.g. `192.168.1.10/24`.
    pub address: Cidr,
    pub gateway: Option<IpAddr>,
    #[serde(default)]
    pub dns: Vec<IpAddr>,
}

impl StaticNetwork {
    fn validate(&self) -> Result<(), (String, String)> {
        let invalid = |field: &str, reason: String| Err((format!("network.{field}"), reason));
        if self.interface.is_some() == self.mac.is_some() {
            return invalid(
                "interface",
                "give exactly one of interface (a name such as \"enp1s0\") or mac to choose \
                 the interface"
                    .into(),
            );
        }
        let net = self.address.0;
        if let IpNet::V4(v4) = net
            && v4.prefix_len() < 31
            && (v4.addr() == v4.network() || v4.addr() == v4.broadcast())
        {
            return invalid(
                "address",
                format!(
                    "{net} is the network or broadcast address of its subnet, not a host address"
                ),
            );
        }
        if let Some(gateway) = self.gateway {
            if gateway.is_ipv4() != net.addr().is_ipv4() {
                return invalid(
                    "gateway",
                    format!("gateway {gateway} and address {net} are not the same IP version"),
                );
            }
            // IPv6 gateways are often link-local (fe80::1), outside the address's subnet.
            if gateway.is_ipv4() && !net.contains(&gateway) {
                return invalid(
                    "gateway",
                    format!(
                        "gateway {gateway} is outside the subnet {} of address {net}; \
                         check the prefix length",
                        net.trunc()
                    ),
                );
            }
        }
        Ok(())
    }
}

/// An IP address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr(pub IpNet);

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        IpNet::from_str(&text).map(Self).map_err(|_| {
            format!(
                "address {text:?} is not an address with a prefix length, such as \
                 \"192.168.1.10/24\" or \"2001:db8::10/64\""
            )
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A MAC address, kept in networkd's form: six lowercase hex pairs separated by `:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct MacAddress(String);

impl TryFrom<String> for MacAddress {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let pairs: Vec<&str> = text.split([':', '-']).collect();
        let valid = pairs.len() == 6
            && pairs
                .iter()
                .all(|pair| pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit()));
        if !valid {
            return Err(format!(
                "mac {text:?} is not a MAC address such as \"52:54:00:12:34:56\""
            ));
        }
        Ok(Self(pairs.join(":").to_ascii_lowercase()))
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[cloud_init]`: a NoCloud seed. After [`InstallConfig::load`], `user_data` holds the
/// content, read from `user_data_file` when that was given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudInit {
    pub user_data: Option<String>,
    pub user_data_file: Option<PathBuf>,
    /// Absent: an `instance-id` (and `local-hostname`) line is written for cloud-init.
    pub meta_data: Option<String>,
}

impl CloudInit {
    fn validate(&self) -> Result<(), (String, String)> {
        match (&self.user_data, &self.user_data_file) {
            (Some(text), None) => {
                check_user_data(text).map_err(|reason| ("cloud_init.user_data".to_string(), reason))
            }
            (None, Some(_)) => Ok(()),
            _ => Err((
                "cloud_init.user_data".into(),
                "give exactly one of user_data (inline) or user_data_file".into(),
            )),
        }
    }
}

/// cloud-init silently ignores user-data without a known header, so catch that here.
fn check_user_data(text: &str) -> Result<(), String> {
    const HEADERS: [&str; 8] = [
        "#cloud-config",
        "#!",
        "#include",
        "#cloud-boothook",
        "#part-handler",
        "#cloud-config-archive",
        "## template: jinja",
        "Content-Type: multipart/",
    ];
    if !HEADERS.iter().any(|header| text.starts_with(header)) {
        return Err(
            "user-data must start with a cloud-init header such as \"#cloud-config\" or \"#!\" \
             on its first line, or cloud-init ignores it"
                .into(),
        );
    }
    Ok(())
}

/// `[boot]`: the UEFI boot entry written for the installed system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootEntry {
    #[serde(default = "BootEntry::default_label")]
    pub label: String,
    /// Loader path on the installed ESP, with backslashes as UEFI wants.
    #[serde(default = "BootEntry::default_loader")]
    pub loader: String,
}

impl Default for BootEntry {
    fn default() -> Self {
        Self {
            label: Self::default_label(),
            loader: Self::default_loader(),
        }
    }
}

impl BootEntry {
    fn default_label() -> String {
        "Edge Microvisor Toolkit".into()
    }

    fn default_loader() -> String {
        r"\EFI\BOOT\BOOTX64.EFI".into()
    }

    fn validate(&self) -> Result<(), (String, String)> {
        if self.label.is_empty() || self.label.chars().any(char::is_control) {
            return Err((
                "boot.label".into(),
                "the boot entry label must be a non-empty line of text".into(),
            ));
        }
        if !self.loader.starts_with('\\') || self.loader.contains('/') {
            return Err((
                "boot.loader".into(),
                format!(
                    "loader {:?} must be an absolute path on the ESP with backslashes, \
                     such as '\\EFI\\BOOT\\BOOTX64.EFI' (single quotes keep TOML from \
                     reading the backslashes as escapes)",
                    self.loader
                ),
            ));
        }
        Ok(())
    }
}

/// TOML shared by the tests of this module and of `configure`, so both read the same sections.
#[cfg(test)]
pub(crate) mod fixtures {
    pub const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOE3HJ1I2lJEauppYxcHbbWDcN3QHj89p1BmuWQNG3IV edge@laptop";

    /// An `edge` user (sudo, docker) with `KEY`, a proxy, and a static address on the NIC
    /// `mac` with the `dns` servers (a TOML array).
    pub fn edge_user_proxy_and_network(password_hash: &str, mac: &str, dns: &str) -> String {
        format!(
            r##"[[users]]
name = "edge"
password_hash = "{password_hash}"
ssh_authorized_keys = ["{KEY}"]
sudo = true
groups = ["docker"]
[proxy]
http = "http://proxy.example.com:3128"
no_proxy = "localhost,.example.com"
[network]
mac = "{mac}"
address = "192.168.1.10/24"
gateway = "192.168.1.1"
dns = {dns}
"##
        )
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{KEY, edge_user_proxy_and_network};
    use super::*;

    fn parse(text: &str) -> Result<InstallConfig, String> {
        InstallConfig::parse(text, Path::new("/media/install.toml"))
            .map_err(|e| bootkit_common::error_chain(&e))
    }

    fn parse_error(text: &str) -> String {
        match parse(text) {
            Ok(config) => panic!("config accepted but should not be: {config:?}"),
            Err(message) => message,
        }
    }

    #[test]
    fn full_example_is_accepted_and_typed() {
        let config = parse(&format!(
            r##"
hostname = "edge-01"
after = "reboot"
[disk]
device = "/dev/nvme0n1"
prefer = "largest"
[image]
file = "os.raw.gz"
sha256 = "{}"
[layout]
grow = 3
{}[cloud_init]
user_data = "#cloud-config\nruncmd: [true]\n"
[boot]
loader = '\EFI\Linux\emt.efi'
"##,
            "AB".repeat(32),
            edge_user_proxy_and_network(
                "$6$rounds=5000$salt$abcdefghijklmnopqrstuvwxyzABCDEFGHIJ./0123456789",
                "52-54-00-AB-cd-EF",
                r#"["192.168.1.1", "2001:db8::53"]"#,
            )
        ))
        .unwrap();
        assert_eq!(config.hostname.unwrap().as_str(), "edge-01");
        assert_eq!(config.after, AfterInstall::Reboot);
        assert_eq!(config.disk.device, Some(PathBuf::from("/dev/nvme0n1")));
        assert_eq!(
            config.disk.policy.prefer,
            crate::disk::SizePreference::Largest
        );
        assert_eq!(config.image.sha256, Some("ab".repeat(32)));
        assert_eq!(config.layout.grow, Some(3));
        assert_eq!(config.users[0].ssh_authorized_keys[0].as_str(), KEY);
        let network = config.network.unwrap();
        assert_eq!(network.mac.unwrap().to_string(), "52:54:00:ab:cd:ef");
        assert_eq!(network.address.to_string(), "192.168.1.10/24");
        assert_eq!(config.boot.label, "Edge Microvisor Toolkit");
        assert_eq!(config.boot.loader, r"\EFI\Linux\emt.efi");
    }

    #[test]
    fn empty_config_means_defaults_and_no_system_changes() {
        let config = parse("").unwrap();
        assert_eq!(config.after, AfterInstall::Poweroff);
        assert_eq!(config.boot.loader, r"\EFI\BOOT\BOOTX64.EFI");
        assert!(config.disk.device.is_none());
        assert!(!config.configures_system());
    }

    #[test]
    fn each_bad_value_is_refused_naming_its_key_and_the_file() {
        let cases = [
            ("hostname = \"bad_host\"", "hostname"),
            ("hostname = \"-edge\"", "hostname"),
            ("[[users]]\nname = \"Edge\"", "name"),
            (
                "[[users]]\nname = \"edge\"\npassword_hash = \"hunter2\"",
                "password_hash",
            ),
            (
                "[[users]]\nname = \"edge\"\nssh_authorized_keys = [\"ssh-rsa notbase64 x\"]",
                "ssh_authorized_keys",
            ),
            (
                "[[users]]\nname = \"edge\"\ngroups = [\"Bad Group\"]",
                "groups",
            ),
            (
                "[network]\ninterface = \"eth0\"\naddress = \"10.0.0.5\"",
                "address",
            ),
            (
                "[network]\ninterface = \"eth0\"\naddress = \"10.0.0.5/33\"",
                "address",
            ),
            (
                "[network]\nmac = \"52:54:00:12:34\"\naddress = \"10.0.0.5/24\"",
                "mac",
            ),
            (
                "[network]\ninterface = \"eth0\"\naddress = \"10.0.0.5/24\"\ngateway = \"10.0.1.1\"",
                "network.gateway",
            ),
            (
                "[network]\ninterface = \"eth0\"\naddress = \"10.0.0.5/24\"\ndns = [\"1.1.1\"]",
                "dns",
            ),
            ("[network]\naddress = \"10.0.0.5/24\"", "network.interface"),
            (
                "[network]\ninterface = \"eth0\"\naddress = \"10.0.0.0/24\"",
                "network.address",
            ),
            ("[proxy]\nhttp = \"proxy:3128\"", "http"),
            ("[proxy]\nno_proxy = \"a, b\"", "no_proxy"),
            ("[proxy]", "proxy"),
            (
                "[cloud_init]\nuser_data = \"runcmd: []\"",
                "cloud_init.user_data",
            ),
            ("[cloud_init]\nmeta_data = \"x\"", "cloud_init.user_data"),
            ("[image]\nsha256 = \"abc\"", "sha256"),
            ("[boot]\nloader = \"/EFI/BOOT/BOOTX64.EFI\"", "boot.loader"),
            ("after = \"halt\"", "after"),
            ("[disk]\ndevice = \"sda\"", "device"),
            ("[disk]\nprefer = \"fastest\"", "prefer"),
            ("[disk]\nsize = 5", "size"),
            ("[system]\nrootfs_partition = \"\"", "rootfs_partition"),
            ("hostnme = \"edge\"", "hostnme"),
            (
                "[[users]]\nname = \"a\"\n[[users]]\nname = \"a\"",
                "users[1].name",
            ),
        ];
        for (text, field) in cases {
            let message = parse_error(text);
            assert!(
                message.contains(field) && message.contains("/media/install.toml"),
                "error for {text:?} should name `{field}` and the file, got: {message}"
            );
        }
    }

    #[test]
    fn load_resolves_paths_against_the_config_directory_and_reads_user_data() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("user-data.yaml"),
            "#cloud-config\nhostname: x\n",
        )
        .unwrap();
        let path = dir.path().join("install.toml");
        std::fs::write(
            &path,
            "[image]\nfile = \"os.raw.gz\"\nbmap = \"/abs/os.raw.bmap\"\n\
             [cloud_init]\nuser_data_file = \"user-data.yaml\"\n",
        )
        .unwrap();
        let config = InstallConfig::load(&path).unwrap();
        assert_eq!(config.image.file, Some(dir.path().join("os.raw.gz")));
        assert_eq!(config.image.bmap, Some(PathBuf::from("/abs/os.raw.bmap")));
        let cloud_init = config.cloud_init.unwrap();
        assert_eq!(
            cloud_init.user_data.as_deref(),
            Some("#cloud-config\nhostname: x\n")
        );
    }

    #[test]
    fn load_names_a_missing_user_data_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("install.toml");
        std::fs::write(&path, "[cloud_init]\nuser_data_file = \"gone.yaml\"\n").unwrap();
        let message = InstallConfig::load(&path).unwrap_err().to_string();
        assert!(
            message.contains("cloud_init.user_data_file") && message.contains("gone.yaml"),
            "{message}"
        );
    }

    #[test]
    fn load_names_a_missing_config_file() {
        let message = InstallConfig::load(Path::new("/nonexistent/install.toml"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("/nonexistent/install.toml"), "{message}");
    }
}
