//! The install config (`install.toml`, [`crate::layout::INSTALL_CONFIG_NAME`] on the USB
//! stick): which disk, which image, the partition layout, and what to set up in the installed
//! system. It replaces the configuration half of EMT Standalone's install-os.sh.
//!
//! This is the schema only: types, defaults and checks, no file access. The builder checks a
//! stick's config with [`parse`] when it makes the stick, and the installer parses it again
//! before it touches a disk, so a typo fails the build, naming the line and key, instead of
//! the install on site.
//!
//! Top-level keys (`hostname`, `after`) must come before the first `[section]`, as TOML wants.
//! Every key is optional; unknown keys are errors (a typo must not be silently ignored).
//!
//! ```toml
//! hostname = "edge-01"          # /etc/hostname and the 127.0.1.1 line of /etc/hosts
//! copy_network = true           # the bootkit's network (ip= ...) as networkd files
//! after = "reboot"              # "poweroff" (default), "reboot", "kexec" or "none"
//!
//! [disk]                        # an explicit disk, or the automatic choice's policy
//! device = "/dev/disk/by-id/nvme-SAMSUNG_0123"
//! prefer = "smallest"           # or "largest"
//! min_size_bytes = 64000000000
//! save_partlabel = ["edge_persistent"]   # keep these partitions (globs allowed) across a reinstall
//! save_partindex = ["6-7"]      # and these partition numbers (N or N-M)
//! preserve_on_error = false     # true: on failure leave the disk as it is (default: clear its tables)
//!
//! [image]                       # relative paths are relative to this file's directory
//! file = "edge-microvisor-toolkit.raw.gz"
//! sha256_file = "edge-microvisor-toolkit.raw.gz.sha256sum"   # or sha256 = "64 hex digits"
//! bmap = "edge-microvisor-toolkit.raw.bmap"
//! require_checksum = true       # refuse an image without a published sha256 (default false)
//! fetch_retries = 10            # resumes of a broken download of an image URL, or "infinite"
//!
//! [layout]                      # changes to the written partition table
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
//! append_karg = ["intel_iommu=on"]     # the installed system's kernel command line, edited in
//! delete_karg = ["quiet"]              # its boot loader entries (loader/entries/*.conf)
//! console = ["ttyS0,115200n8", "tty0"] # replaces its console= arguments
//! ```

mod values;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use crate::mac::MacAddr;
use crate::toml_parse::{self, TomlError};

pub use values::{
    AuthorizedKey, Cidr, ConsoleSpec, CryptHash, GPT_NAME_MAX_UNITS, Hostname, InterfaceName,
    KernelArg, NoProxy, PartitionName, PartitionType, ProxyUrl, UserName,
};

/// A problem a check that spans several keys found: the dotted key it is about and why.
type Problem = (String, String);

/// Parse and check an install config's text: the first problem is named with its line,
/// column and key. Relative paths are left as written (see
/// [`InstallConfig::resolve_relative_paths`]), and `[cloud_init] user_data_file` is not read.
pub fn parse(text: &str) -> Result<InstallConfig, TomlError> {
    let config: InstallConfig = toml_parse::parse(text)?;
    config
        .validate()
        .map_err(|(key, reason)| toml_parse::error_at_key(text, &key, reason))?;
    Ok(config)
}

/// The whole install config. Absent sections mean "leave as is" (or the default noted).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallConfig {
    /// The installed system's host name.
    #[serde(default)]
    pub hostname: Option<Hostname>,
    /// What the installer does when it is done.
    #[serde(default)]
    pub after: AfterInstall,
    /// Write the network the bootkit came up with into the installed system
    /// (`--copy-network`).
    #[serde(default)]
    pub copy_network: bool,
    /// `[disk]`: which disk to install to.
    #[serde(default)]
    pub disk: DiskConfig,
    /// `[image]`: the OS image and its checks.
    #[serde(default)]
    pub image: ImageConfig,
    /// `[layout]`: changes to the written partition table.
    #[serde(default)]
    pub layout: Layout,
    /// `[system]`: facts about the image.
    #[serde(default)]
    pub system: SystemConfig,
    /// `[[users]]`: logins to create or update.
    #[serde(default)]
    pub users: Vec<User>,
    /// `[proxy]`: the installed system's proxy environment.
    #[serde(default)]
    pub proxy: Option<Proxy>,
    /// `[network]`: a static address.
    #[serde(default)]
    pub network: Option<StaticNetwork>,
    /// `[cloud_init]`: a NoCloud seed.
    #[serde(default)]
    pub cloud_init: Option<CloudInit>,
    /// `[boot]`: the UEFI boot entry.
    #[serde(default)]
    pub boot: BootEntry,
}

impl InstallConfig {
    /// True when the config asks for changes inside the installed system's root filesystem.
    pub fn configures_system(&self) -> bool {
        self.hostname.is_some()
            || !self.users.is_empty()
            || self.proxy.is_some()
            || self.network.is_some()
            || self.cloud_init.is_some()
    }

    /// Makes the relative paths of `[image]` and `[cloud_init] user_data_file` relative to
    /// `base`, the config file's directory (the rule the config's users are told).
    pub fn resolve_relative_paths(&mut self, base: &Path) {
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

    /// Checks that span several keys; single values are checked as they are parsed.
    fn validate(&self) -> Result<(), Problem> {
        self.image.validate()?;
        self.layout
            .check()
            .map_err(|problem| (problem.key(), problem.to_string()))?;
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
}

/// What the installer does once the image is written, verified and configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterInstall {
    /// Power the machine off (the default: a stick left in must not install again).
    #[default]
    Poweroff,
    /// Reboot into the installed system.
    Reboot,
    /// Start the installed system's kernel by kexec, skipping the firmware; a reboot when
    /// that kernel cannot be found or the running kernel refuses it.
    Kexec,
    /// Stay in the bootkit.
    None,
}

/// `[disk]`: an explicit `device`, or the policy of the automatic choice.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "RawDisk")]
pub struct DiskConfig {
    /// A device path (`/dev/nvme0n1`, `/dev/disk/by-id/...`); overrides the automatic choice.
    pub device: Option<PathBuf>,
    /// How the installer chooses a disk when `device` is absent.
    pub policy: SelectPolicy,
    /// Partitions of the disk's current table to keep (`save_partlabel`, `save_partindex`).
    pub save: SavePartitions,
    /// Leave the disk as the failure left it instead of clearing its partition tables
    /// (`--preserve-on-error`), to look at it.
    pub preserve_on_error: bool,
}

/// `[disk]` as written: one flat table, read through serde (not by hand) so that an unknown
/// or wrong key is named with its line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisk {
    #[serde(default, deserialize_with = "values::deserialize_device")]
    device: Option<PathBuf>,
    #[serde(default)]
    prefer: SizePreference,
    #[serde(default)]
    min_size_bytes: Option<u64>,
    #[serde(default)]
    save_partlabel: Vec<String>,
    #[serde(default)]
    save_partindex: Vec<IndexRange>,
    #[serde(default)]
    preserve_on_error: bool,
}

impl From<RawDisk> for DiskConfig {
    fn from(raw: RawDisk) -> Self {
        Self {
            device: raw.device,
            policy: SelectPolicy {
                prefer: raw.prefer,
                min_size_bytes: raw.min_size_bytes,
            },
            save: SavePartitions {
                labels: raw.save_partlabel,
                indexes: raw.save_partindex,
            },
            preserve_on_error: raw.preserve_on_error,
        }
    }
}

/// How the installer picks a disk when none is named (`[disk]` in the install config).
#[derive(Debug, Clone, Default)]
pub struct SelectPolicy {
    /// Which of the eligible disks wins. EMT Standalone picks the smallest.
    pub prefer: SizePreference,
    /// Disks smaller than this (in bytes) are not eligible, even when the image fits.
    pub min_size_bytes: Option<u64>,
}

/// Which of the eligible disks the automatic choice takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizePreference {
    /// The smallest disk the image fits on (EMT Standalone's rule).
    #[default]
    Smallest,
    /// The largest disk.
    Largest,
}

/// `[image]`: where the OS image and its checksum and block map are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    /// The OS image (raw, or gzip/zstd/xz compressed).
    pub file: Option<PathBuf>,
    /// The sha256 of the file as published (the compressed bytes), 64 lowercase hex digits.
    #[serde(default, deserialize_with = "values::deserialize_sha256")]
    pub sha256: Option<String>,
    /// A `sha256sum` file (`HEX  name` lines) with a line for the image.
    pub sha256_file: Option<PathBuf>,
    /// A bmaptool block map of the uncompressed image.
    pub bmap: Option<PathBuf>,
    /// Refuse to install an image without a published checksum (`sha256`, `sha256_file`, or
    /// an `IMAGE.sha256sum`/`IMAGE.sha256` beside the image); the installer's
    /// `--require-checksum`.
    #[serde(default)]
    pub require_checksum: bool,
    /// How often a broken or stalled download of an image URL is resumed (`--fetch-retries`).
    #[serde(default)]
    pub fetch_retries: Option<FetchRetries>,
}

/// How often a broken download is resumed: a count, or `infinite` (coreos-installer's
/// `--fetch-retries N|infinite`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchRetries {
    /// At most this many resumes.
    Count(u32),
    /// Until the download completes.
    Infinite,
}

impl FetchRetries {
    /// The most resumes the downloader may make.
    pub fn max_resumes(self) -> u32 {
        match self {
            FetchRetries::Count(count) => count,
            FetchRetries::Infinite => u32::MAX,
        }
    }
}

impl std::str::FromStr for FetchRetries {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "infinite" {
            return Ok(FetchRetries::Infinite);
        }
        text.parse().map(FetchRetries::Count).map_err(|_| {
            format!("{text:?} is not a number of retries: give a count such as 5, or infinite")
        })
    }
}

impl<'de> Deserialize<'de> for FetchRetries {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u32),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Count(count) => Ok(FetchRetries::Count(count)),
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Partition numbers `N` or `N-M` (inclusive) to keep across a reinstall
/// (coreos-installer's `--save-partindex`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexRange {
    /// The first number, from 1.
    pub first: u32,
    /// The last number, at least `first`.
    pub last: u32,
}

impl IndexRange {
    /// True when `number` lies in the range.
    pub fn contains(self, number: u32) -> bool {
        (self.first..=self.last).contains(&number)
    }
}

impl std::str::FromStr for IndexRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = || {
            format!(
                "{text:?} is not a partition number or range: give N or N-M with 1 <= N <= M, \
                 such as 5 or 5-7"
            )
        };
        let (first, last) = text.split_once('-').unwrap_or((text, text));
        let first: u32 = first.trim().parse().map_err(|_| invalid())?;
        let last: u32 = last.trim().parse().map_err(|_| invalid())?;
        if first == 0 || last < first {
            return Err(invalid());
        }
        Ok(Self { first, last })
    }
}

impl<'de> Deserialize<'de> for IndexRange {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u32),
            Text(String),
        }
        let text = match Raw::deserialize(deserializer)? {
            Raw::Number(number) => number.to_string(),
            Raw::Text(text) => text,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Partitions of the target disk's current table kept across a reinstall, such as EMT's
/// `edge_persistent`: their entries are carried into the new table and their data is not
/// written over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavePartitions {
    /// GPT partition names (PARTLABELs), shell globs allowed (`edge_*`).
    pub labels: Vec<String>,
    /// Partition numbers and ranges.
    pub indexes: Vec<IndexRange>,
}

impl SavePartitions {
    /// True when nothing is to be kept.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.indexes.is_empty()
    }
}

impl ImageConfig {
    fn validate(&self) -> Result<(), Problem> {
        if self.sha256.is_some() && self.sha256_file.is_some() {
            return Err((
                "image.sha256".into(),
                "give either sha256 or sha256_file, not both".into(),
            ));
        }
        Ok(())
    }
}

/// Changes to the written image's partition table (`[layout]` in the install config), such as
/// EMT's A/B layout: a second rootfs partition for updates and the persistent partition last.
///
/// Added partitions are 1 MiB aligned and follow each other in the order given. With `grow`
/// they sit at the end of the disk and the grown partition takes the space before them;
/// without it they follow the image's last partition. Only the last added partition may
/// omit its size, and then nothing can grow (both would want the free space).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// Partition number to grow into the free space left before the added partitions.
    #[serde(default)]
    pub grow: Option<u32>,
    /// Partitions added after the image's own, in order; at most the last may omit its size
    /// and take the rest of the disk.
    #[serde(default)]
    pub add: Vec<NewPartition>,
}

/// One partition `[layout] add` puts after the image's own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPartition {
    /// GPT partition name (PARTLABEL), e.g. `rootfs_b`.
    pub name: PartitionName,
    /// Size in MiB, never 0; absent: the rest of the disk.
    #[serde(default)]
    pub size_mib: Option<u64>,
    /// Partition type GUID; absent: Linux filesystem data.
    #[serde(default)]
    pub type_guid: Option<PartitionType>,
}

impl NewPartition {
    /// The partition's type: `type_guid`, or Linux filesystem data.
    pub fn partition_type(&self) -> PartitionType {
        self.type_guid
            .unwrap_or_else(PartitionType::linux_filesystem)
    }
}

/// A `[layout]` rule that holds whatever the disk: the installer checks the rules that need
/// the written partition table (which partition can grow, what fits) on the disk itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// An added partition has size 0.
    #[error("added partition `{name}` has size_mib = 0; give it a size or leave size_mib out")]
    ZeroSize {
        /// Its place in `add`.
        index: usize,
        /// The partition's name.
        name: String,
    },
    /// An added partition other than the last has no size.
    #[error(
        "added partition `{name}` has no size_mib: only the last added partition may take the \
         rest of the disk"
    )]
    SizeMissing {
        /// Its place in `add`.
        index: usize,
        /// The partition's name.
        name: String,
    },
    /// Both `grow` and an added partition without a size want the free space.
    #[error(
        "partition {grow} should grow and `{name}` should take the rest of the disk: only one \
         can have the free space; give `{name}` a size_mib or drop `grow`"
    )]
    GrowAndRest {
        /// The partition number `grow` names.
        grow: u32,
        /// The added partition without a size.
        name: String,
    },
}

impl LayoutError {
    /// The dotted key the problem is about, for the config file's error.
    pub fn key(&self) -> String {
        match self {
            LayoutError::ZeroSize { index, .. } | LayoutError::SizeMissing { index, .. } => {
                format!("layout.add[{index}].size_mib")
            }
            LayoutError::GrowAndRest { .. } => "layout.grow".into(),
        }
    }
}

impl Layout {
    /// Checks the rules between `grow` and `add` that hold on any disk: no size 0, only the
    /// last added partition may omit its size, and then nothing may grow.
    pub fn check(&self) -> Result<(), LayoutError> {
        let count = self.add.len();
        for (index, partition) in self.add.iter().enumerate() {
            let name = || partition.name.as_str().to_string();
            match partition.size_mib {
                Some(0) => {
                    return Err(LayoutError::ZeroSize {
                        index,
                        name: name(),
                    });
                }
                None if index + 1 < count => {
                    return Err(LayoutError::SizeMissing {
                        index,
                        name: name(),
                    });
                }
                None => {
                    if let Some(grow) = self.grow {
                        return Err(LayoutError::GrowAndRest { grow, name: name() });
                    }
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// `[system]`: facts about the image that the installer cannot guess.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemConfig {
    /// GPT partition name of the root filesystem to configure.
    pub rootfs_partition: Option<PartitionName>,
}

/// `[[users]]`: a login to create, or to update when the image already has it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The login name.
    pub name: UserName,
    /// Absent: password login disabled (key-only); an existing user's password is kept.
    #[serde(default)]
    pub password_hash: Option<CryptHash>,
    /// Lines of the user's `~/.ssh/authorized_keys`.
    #[serde(default)]
    pub ssh_authorized_keys: Vec<AuthorizedKey>,
    /// Whether the user may use sudo (member of `sudo` or `wheel`).
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
    /// `http_proxy`.
    pub http: Option<ProxyUrl>,
    /// `https_proxy`.
    pub https: Option<ProxyUrl>,
    /// `no_proxy`.
    pub no_proxy: Option<NoProxy>,
}

/// `[network]`: a static address for one interface, matched by name or MAC address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticNetwork {
    /// The interface by name (networkd globs allowed).
    pub interface: Option<InterfaceName>,
    /// The interface by MAC address.
    pub mac: Option<MacAddr>,
    /// Address with prefix length (CIDR), e.g. `192.168.1.10/24`.
    pub address: Cidr,
    /// The default route's gateway.
    pub gateway: Option<IpAddr>,
    /// DNS servers, in order.
    #[serde(default)]
    pub dns: Vec<IpAddr>,
}

impl StaticNetwork {
    fn validate(&self) -> Result<(), Problem> {
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

/// `[cloud_init]`: a NoCloud seed. Once the installer has loaded the config, `user_data`
/// holds the content, read from `user_data_file` when that was given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudInit {
    /// The user-data, inline.
    pub user_data: Option<String>,
    /// A file with the user-data, relative to the config's directory.
    pub user_data_file: Option<PathBuf>,
    /// Absent: an `instance-id` (and `local-hostname`) line is written for cloud-init.
    pub meta_data: Option<String>,
}

impl CloudInit {
    fn validate(&self) -> Result<(), Problem> {
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

/// Whether `text` is user-data cloud-init acts on: cloud-init silently ignores user-data
/// without a known header, so it is refused here. The error says what to write.
pub fn check_user_data(text: &str) -> Result<(), String> {
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

/// `[boot]`: the UEFI boot entry written for the installed system, and the kernel command
/// line of its boot loader entries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootEntry {
    /// The entry's name in the firmware's boot menu.
    #[serde(default = "BootEntry::default_label")]
    pub label: String,
    /// Loader path on the installed ESP, with backslashes as UEFI wants.
    #[serde(default = "BootEntry::default_loader")]
    pub loader: String,
    /// Kernel arguments added to the installed system's command line (`--append-karg`).
    #[serde(default)]
    pub append_karg: Vec<KernelArg>,
    /// Kernel arguments removed from it, matched word for word (`--delete-karg`).
    #[serde(default)]
    pub delete_karg: Vec<KernelArg>,
    /// Consoles that replace its `console=` arguments, in order (`--console`).
    #[serde(default)]
    pub console: Vec<ConsoleSpec>,
}

impl Default for BootEntry {
    fn default() -> Self {
        Self {
            label: Self::default_label(),
            loader: Self::default_loader(),
            append_karg: Vec::new(),
            delete_karg: Vec::new(),
            console: Vec::new(),
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

    fn validate(&self) -> Result<(), Problem> {
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

#[cfg(test)]
mod tests;
