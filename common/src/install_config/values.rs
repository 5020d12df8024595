//! The install config's checked values: each type refuses a malformed value as it is parsed,
//! so the error names the key and line that hold it.

use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;
use serde::Deserialize;

/// The most UTF-16 code units a GPT partition name holds (the entry's name field is 72 bytes).
pub const GPT_NAME_MAX_UNITS: usize = 36;

/// A GPT partition name: 1 to [`GPT_NAME_MAX_UNITS`] UTF-16 code units.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PartitionName(String);

impl FromStr for PartitionName {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Self::try_from(text.to_string())
    }
}

impl TryFrom<String> for PartitionName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        if name.is_empty() || name.encode_utf16().count() > GPT_NAME_MAX_UNITS {
            return Err(format!(
                "partition name {name:?} must be 1 to 36 characters (GPT's limit)"
            ));
        }
        Ok(Self(name))
    }
}

impl PartitionName {
    /// The name as written in the config.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartitionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A GPT partition type GUID (`0FC63DAF-8483-4772-8E79-3D69D8477DE4`), never the nil GUID
/// (which marks an unused entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PartitionType(uuid::Uuid);

impl PartitionType {
    /// Linux filesystem data, the type of an added partition that names none.
    pub const LINUX_FILESYSTEM: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

    /// The type in the mixed-endian byte order a GPT entry stores.
    pub fn gpt_bytes(self) -> [u8; 16] {
        self.0.to_bytes_le()
    }

    /// [`Self::LINUX_FILESYSTEM`].
    pub fn linux_filesystem() -> Self {
        Self(uuid::Uuid::from_u128(
            0x0FC63DAF_8483_4772_8E79_3D69D8477DE4,
        ))
    }
}

impl FromStr for PartitionType {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Self::try_from(text.to_string())
    }
}

impl TryFrom<String> for PartitionType {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        match uuid::Uuid::parse_str(text.trim()) {
            Ok(guid) if !guid.is_nil() => Ok(Self(guid)),
            _ => Err(format!(
                "type_guid {text:?} is not a partition type GUID (like {})",
                Self::LINUX_FILESYSTEM
            )),
        }
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

        impl FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, String> {
                Self::try_from(text.to_string())
            }
        }

        impl $name {
            /// The value as written in the config.
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
checked_string!(
    /// One kernel command-line argument (`quiet`, `key=value`, `key="a b"`), as
    /// `--append-karg`/`--delete-karg` take it.
    KernelArg,
    check_kernel_arg
);
checked_string!(
    /// What follows `console=` (`ttyS0,115200n8`, `tty0`), as `--console` takes it.
    ConsoleSpec,
    check_console_spec
);

fn check_kernel_arg(arg: &str) -> Result<(), String> {
    let words = crate::cmdline::split_words(arg);
    if words.len() != 1 || arg.chars().any(char::is_control) || arg.matches('"').count() % 2 == 1 {
        return Err(format!(
            "kernel argument {arg:?} is not one argument: give one word such as \"quiet\" or \
             \"key=value\" (quote a value with spaces: key=\"a b\"), one per option or list entry"
        ));
    }
    Ok(())
}

fn check_console_spec(spec: &str) -> Result<(), String> {
    for prefix in ["console=", "/dev/"] {
        if spec.starts_with(prefix) {
            return Err(format!(
                "console {spec:?} must not start with {prefix:?}: give what follows console=, \
                 such as \"ttyS0,115200n8\" or \"tty0\""
            ));
        }
    }
    let (device, options) = spec.split_once(',').unwrap_or((spec, ""));
    let letters = device.trim_end_matches(|c: char| c.is_ascii_digit());
    let device_ok = !letters.is_empty()
        && letters.len() < device.len()
        && letters.chars().all(|c| c.is_ascii_alphabetic());
    let options_ok = options
        .chars()
        .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase());
    if !device_ok || !options_ok {
        return Err(format!(
            "console {spec:?} is not a console device with optional settings, such as \
             \"ttyS0,115200n8\", \"ttyAMA0\" or \"tty0\" (the kernel's console= syntax)"
        ));
    }
    Ok(())
}

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
        http::Uri::from_str(url).map_err(|error| format!("proxy {url:?}: {error}; {usage}"))?;
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

/// An IP address with its prefix length (`192.168.1.10/24`): the host's address and its
/// subnet in one value, as networkd's `Address=` takes it.
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

/// `sha256 = "..."`: 64 hex digits, kept lowercase.
pub(super) fn deserialize_sha256<'de, D: serde::Deserializer<'de>>(
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

/// `[disk] device = "..."`: an absolute device path, so that it never depends on the
/// directory the installer runs in.
pub(super) fn deserialize_device<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<std::path::PathBuf>, D::Error> {
    let device = String::deserialize(deserializer)?;
    if !device.starts_with('/') {
        return Err(serde::de::Error::custom(format!(
            "device {device:?} must be an absolute device path such as \"/dev/nvme0n1\" or \
             \"/dev/disk/by-id/...\""
        )));
    }
    Ok(Some(device.into()))
}
