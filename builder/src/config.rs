//! The image config: what goes into a bootkit image.
//!
//! An image config is a TOML file. Every relative path in it is resolved against the
//! directory of the config file itself (not the current directory), so a config builds the
//! same image wherever `bootkit-build` runs from. Unknown keys are errors: a typo must not
//! silently drop a file from the image.
//!
//! ```toml
//! [kernel]
//! # Either a Debian kernel package (read natively, never installed on the host) ...
//! deb = "../.cache/kernel/linux-image-amd64.deb"
//! # ... or a directory holding `vmlinuz` + `lib/modules/<version>/`, or
//! # `boot/vmlinuz-<version>` + `lib/modules/<version>/` (or `usr/lib/modules/<version>/`).
//! # dir = "path/to/kernel"
//! # Modules put into the initramfs with everything they depend on, and loaded at boot
//! # (listed in /etc/modules-load.d/bootkit.conf). Built-in ones are noted and skipped.
//! modules = ["virtio_pci", "virtio_net", "virtio_blk", "nbd"]
//!
//! [init]
//! # The init binary: /init in the initramfs and /usr/bin/bootkit in the rootfs.
//! binary = "../target/x86_64-unknown-linux-gnu/release/bootkit"
//! # Symlinks /usr/sbin/<name> -> /usr/bin/bootkit in the rootfs (multicall applets).
//! applets = ["poweroff", "reboot", "halt"]
//!
//! [rootfs]
//! # Optional: an existing rootfs tarball (gzip, zstd, xz or plain; detected by magic).
//! # Entries below ./boot and ./tmp are dropped, as EMT's generate-bootkit-initramfs.sh does;
//! # the other entries keep their own metadata.
//! archive = "path/to/rootfs.tar.gz"
//! # Optional: a directory of service definitions (*.toml) -> /etc/bootkit/services/.
//! services = "qemu-test/services"
//!
//! # Host programs, copied with the shared libraries they need (ELF interpreter + DT_NEEDED).
//! [[rootfs.programs]]
//! src = "/bin/busybox"
//! dest = "/bin/busybox"                 # optional, defaults to src
//! links = ["sh", "echo", "cat"]         # optional symlinks next to dest, pointing at it
//!
//! # Host directories copied recursively (files, directories, symlinks).
//! [[rootfs.directories]]
//! src = "files"
//! dest = "/"
//!
//! # Files injected last, over everything else (proxy config, environment file, CA certs).
//! [[overlay]]
//! dest = "/etc/environment"
//! content = "http_proxy=http://proxy:3128\n"   # or src = "file"
//! mode = 0o644                                  # optional (default: 0o644, or src's mode)
//!
//! [initramfs]
//! # Optional extra programs in the initramfs itself (an emergency shell before the rootfs
//! # exists); same fields as rootfs.programs.
//! programs = [{ src = "/bin/busybox", links = ["sh"] }]
//!
//! [compression]
//! initramfs = "zstd"   # zstd (default) | gzip | none
//! rootfs = "zstd"      # zstd (default) | gzip | none
//!
//! # The kernel command line, written to <out>/cmdline.
//! cmdline = "console=ttyS0 root=tmpfs rootflags=mode=0755 quiet"
//!
//! # Optional: also make <out>/bootkit.efi (a UKI of this image) and <out>/usb.img, the
//! # USB installer stick (see `bootkit_builder::usb`).
//! [usb]
//! os_image = "../out/emt-test/emt-test.raw.gz"
//! sha256_file = "../out/emt-test/emt-test.raw.gz.sha256sum"  # optional
//! bmap = "../out/emt-test/emt-test.raw.bmap"                 # optional
//! install_config = "usb/install.toml"
//! ```
//!
//! Note that TOML puts top-level keys (`cmdline`) before the first table, or they belong
//! to that table: write `cmdline = ...` at the top of the file.

use std::fs;
use std::path::{Path, PathBuf};

use bootkit_common::layout::{ROOTFS_ARCHIVE_GZIP, ROOTFS_ARCHIVE_PLAIN, ROOTFS_ARCHIVE_ZSTD};
use bootkit_common::toml_parse::{self, TomlError};

use serde::{Deserialize, Serialize};

use crate::error::BuildError;

/// A whole image config. Build one in code or read it with [`ImageConfig::load`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    /// `[kernel]`: the kernel and the modules to ship.
    pub kernel: KernelConfig,
    /// `[init]`: the bootkit binary and its applets.
    pub init: InitConfig,
    /// `[rootfs]`: what the root filesystem holds.
    #[serde(default)]
    pub rootfs: RootfsConfig,
    /// `[[overlay]]`: files put into the rootfs last, in order.
    #[serde(default)]
    pub overlay: Vec<Overlay>,
    /// `[initramfs]`: extra programs in the initramfs itself.
    #[serde(default)]
    pub initramfs: InitramfsConfig,
    /// `[compression]`: how the initramfs and the rootfs archive are compressed.
    #[serde(default)]
    pub compression: CompressionConfig,
    /// The kernel command line.
    #[serde(default)]
    pub cmdline: String,
    /// The USB installer stick to make as well (`usb.img`, with the image as a UKI).
    pub usb: Option<UsbConfig>,
    /// `[secure_boot]`: sign the EFI binaries made (`bootkit.efi`, the stick's
    /// `\EFI\BOOT\BOOTX64.EFI`) with this key.
    #[serde(default)]
    pub secure_boot: Option<SecureBootConfig>,
    /// Where the config was read from (for the manifest); not part of the TOML.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// The USB installer stick: the image (as a UKI on the ESP) and, on the `BOOTKIT-DATA`
/// partition, the OS image to install with its checksum, bmap and install config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsbConfig {
    /// The OS image as published (`.raw.gz`, `.raw.zst`, `.raw.xz` or `.raw`).
    pub os_image: PathBuf,
    /// Its `sha256sum` file; defaults to `<os_image>.sha256sum` when that exists, else the
    /// builder writes one.
    pub sha256_file: Option<PathBuf>,
    /// The bmap of the uncompressed image, if there is one.
    pub bmap: Option<PathBuf>,
    /// The installer's config, copied as `install.toml`.
    pub install_config: PathBuf,
}

/// `[secure_boot]`: the db key (or a vendor's) every EFI binary of the build is signed
/// with, Authenticode (see [`crate::secure_boot`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecureBootConfig {
    /// The PEM private key, e.g. `db.key` of `bootkit-build keys`.
    pub sign_key: PathBuf,
    /// Its PEM certificate, e.g. `db.crt`.
    pub sign_cert: PathBuf,
}

/// Where the kernel comes from, and which modules to ship.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelConfig {
    /// A Debian `linux-image-*.deb`.
    pub deb: Option<PathBuf>,
    /// A kernel directory (see the module docs for the layouts accepted).
    pub dir: Option<PathBuf>,
    /// Modules to ship and load at boot, with their dependencies (names as modprobe takes them).
    #[serde(default)]
    pub modules: Vec<String>,
    /// Modules to ship, with their dependencies, but load only when the command line asks for
    /// what they drive (`bonding` for dracut's `bond=`).
    #[serde(default)]
    pub shipped_modules: Vec<String>,
}

/// The kernel source once `deb` / `dir` have been checked: exactly one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    /// A Debian kernel package.
    Deb(PathBuf),
    /// An unpacked kernel directory.
    Dir(PathBuf),
}

impl KernelConfig {
    /// Every module the image ships: the loaded ones, then the shipped-only ones.
    pub fn all_modules(&self) -> Vec<String> {
        let mut all = self.modules.clone();
        all.extend(
            self.shipped_modules
                .iter()
                .filter(|name| !self.modules.contains(name))
                .cloned(),
        );
        all
    }

    /// The one source set; an error when neither or both of `deb` and `dir` are.
    pub fn source(&self) -> Result<KernelSource, BuildError> {
        match (&self.deb, &self.dir) {
            (Some(deb), None) => Ok(KernelSource::Deb(deb.clone())),
            (None, Some(dir)) => Ok(KernelSource::Dir(dir.clone())),
            _ => Err(BuildError::Config(
                "[kernel] needs exactly one of `deb` (a linux-image .deb) or `dir` (a kernel directory)"
                    .into(),
            )),
        }
    }
}

/// `[init]`: the bootkit binary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitConfig {
    /// The init binary: `/init` in the initramfs, `/usr/bin/bootkit` in the rootfs.
    pub binary: PathBuf,
    /// Names linked as `/usr/sbin/<name>` -> `/usr/bin/bootkit` in the rootfs.
    #[serde(default)]
    pub applets: Vec<String>,
}

/// `[rootfs]`: the root filesystem's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootfsConfig {
    /// An existing rootfs tarball to start from.
    pub archive: Option<PathBuf>,
    /// Host programs copied with their shared libraries.
    #[serde(default)]
    pub programs: Vec<Program>,
    /// Host directories copied recursively.
    #[serde(default)]
    pub directories: Vec<Directory>,
    /// A directory of `*.toml` service definitions, installed in `/etc/bootkit/services/`.
    pub services: Option<PathBuf>,
}

/// A host program copied with its shared libraries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    /// The program's host path.
    pub src: PathBuf,
    /// Absolute path in the image; defaults to `src`.
    pub dest: Option<String>,
    /// Symlinks created in dest's directory, pointing at dest (busybox applets).
    #[serde(default)]
    pub links: Vec<String>,
}

/// A host directory copied recursively.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    /// The host directory.
    pub src: PathBuf,
    /// Absolute path in the image.
    pub dest: String,
}

/// A file injected into the rootfs after everything else.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overlay {
    /// Absolute path in the rootfs.
    pub dest: String,
    /// A host file to copy; give this or `content`.
    pub src: Option<PathBuf>,
    /// The file's text; give this or `src`.
    pub content: Option<String>,
    /// Permission bits; absent: `src`'s mode, or 0o644 for `content`.
    pub mode: Option<u32>,
}

impl Overlay {
    /// An overlay with inline content (what tests and callers usually want).
    pub fn inline(dest: &str, content: &str) -> Overlay {
        Overlay {
            dest: dest.to_string(),
            content: Some(content.to_string()),
            ..Overlay::default()
        }
    }
}

/// `[initramfs]`: what the initramfs holds besides the init, modules and rootfs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitramfsConfig {
    /// Host programs copied with their shared libraries (an emergency shell, say).
    #[serde(default)]
    pub programs: Vec<Program>,
}

/// A compression choice for an output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionKind {
    /// zstd (the default).
    #[default]
    Zstd,
    /// gzip, for loaders and consumers without zstd.
    Gzip,
    /// Not compressed.
    None,
}

impl CompressionKind {
    /// The suffix of a tar archive in this compression (`tar.zst`, `tar.gz`, `tar`).
    pub fn tar_name(self) -> &'static str {
        match self {
            CompressionKind::Zstd => ROOTFS_ARCHIVE_ZSTD,
            CompressionKind::Gzip => ROOTFS_ARCHIVE_GZIP,
            CompressionKind::None => ROOTFS_ARCHIVE_PLAIN,
        }
    }
}

/// `[compression]`: one choice per output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionConfig {
    /// The initramfs's first cpio segment (zstd by default).
    #[serde(default)]
    pub initramfs: CompressionKind,
    /// The rootfs archive (zstd by default).
    #[serde(default)]
    pub rootfs: CompressionKind,
}

impl ImageConfig {
    /// Read a config file and resolve its relative paths against the file's directory.
    pub fn load(path: &Path) -> Result<ImageConfig, BuildError> {
        let text = fs::read_to_string(path).map_err(BuildError::io(format!(
            "read image config {}",
            path.display()
        )))?;
        let mut config = ImageConfig::parse(&text).map_err(|err| match err {
            BuildError::Config(reason) => {
                BuildError::Config(format!("{}: {reason}", path.display()))
            }
            other => other,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parse config text; paths stay as written.
    pub fn parse(text: &str) -> Result<ImageConfig, BuildError> {
        toml_parse::parse(text).map_err(|error| {
            let hint = misplaced_top_level_key(text, &error)
                .map(|(key, header)| {
                    format!(
                        "; `{key}` is a top-level key, but it is written after the {header} \
                         header, so TOML puts it in that table: move it up, above the first \
                         `[table]` header of the file"
                    )
                })
                .unwrap_or_default();
            BuildError::Config(format!("{error}{hint}"))
        })
    }

    /// Make every relative host path absolute-ish by joining it to `base`. Image paths
    /// (`dest`) are never touched: they are paths inside the image.
    pub fn resolve_paths(&mut self, base: &Path) {
        let join = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        self.kernel.deb.iter_mut().for_each(join);
        self.kernel.dir.iter_mut().for_each(join);
        join(&mut self.init.binary);
        self.rootfs.archive.iter_mut().for_each(join);
        self.rootfs.services.iter_mut().for_each(join);
        for program in self
            .rootfs
            .programs
            .iter_mut()
            .chain(self.initramfs.programs.iter_mut())
        {
            join(&mut program.src);
        }
        for dir in &mut self.rootfs.directories {
            join(&mut dir.src);
        }
        for overlay in &mut self.overlay {
            overlay.src.iter_mut().for_each(join);
        }
        if let Some(usb) = &mut self.usb {
            join(&mut usb.os_image);
            usb.sha256_file.iter_mut().for_each(join);
            usb.bmap.iter_mut().for_each(join);
            join(&mut usb.install_config);
        }
        if let Some(secure_boot) = &mut self.secure_boot {
            join(&mut secure_boot.sign_key);
            join(&mut secure_boot.sign_cert);
        }
    }
}

/// The keys of an image config's top level (the fields of [`ImageConfig`]).
const TOP_LEVEL_KEYS: [&str; 9] = [
    "kernel",
    "init",
    "rootfs",
    "overlay",
    "initramfs",
    "compression",
    "cmdline",
    "usb",
    "secure_boot",
];

/// When `error` is an unknown key that is one of the top-level keys, written on a line of
/// its own under a table header (TOML then puts it in that table): the key and the header
/// as written (`[usb]`, `[[overlay]]`). A key inside an inline table (`{ ... }`) is not
/// misplaced by a header and gets no hint.
fn misplaced_top_level_key(text: &str, error: &TomlError) -> Option<(String, String)> {
    if !error.message.starts_with("unknown field") {
        return None;
    }
    let (table, key) = error.key.as_deref()?.rsplit_once('.')?;
    if !TOP_LEVEL_KEYS.contains(&key) {
        return None;
    }
    let line = text.lines().nth(error.line?.checked_sub(1)?)?;
    let before_key: String = line.chars().take(error.column?.checked_sub(1)?).collect();
    if !before_key.trim().is_empty() {
        return None;
    }
    // `rootfs.programs[0]` was opened by `[[rootfs.programs]]`, `usb` by `[usb]`.
    let header = match table.strip_suffix(']').and_then(|t| t.rsplit_once('[')) {
        Some((array, _index)) => format!("`[[{array}]]`"),
        None => format!("`[{table}]`"),
    };
    Some((key.to_owned(), header))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
cmdline = "console=ttyS0 quiet"
[kernel]
deb = "../.cache/kernel/linux-image-amd64.deb"
modules = ["virtio_net", "nbd"]
[init]
binary = "/abs/bootkit"
applets = ["poweroff"]
[rootfs]
archive = "rootfs.tar.gz"
services = "svc"
[[rootfs.programs]]
src = "/bin/busybox"
links = ["sh"]
[[rootfs.directories]]
src = "files"
dest = "/"
[[overlay]]
dest = "/etc/environment"
content = "A=b\n"
mode = 0o600
[[overlay]]
dest = "/etc/ca.pem"
src = "ca.pem"
[initramfs]
programs = [{ src = "/bin/busybox", links = ["sh"] }]
[compression]
initramfs = "gzip"
rootfs = "none"
[usb]
os_image = "os.raw.gz"
bmap = "/abs/os.raw.bmap"
install_config = "install.toml"
"#;

    #[test]
    fn parses_every_section() {
        let config = ImageConfig::parse(SAMPLE).expect("parse");
        assert_eq!(config.kernel.modules, ["virtio_net", "nbd"]);
        assert_eq!(config.init.applets, ["poweroff"]);
        assert_eq!(config.rootfs.programs[0].links, ["sh"]);
        assert_eq!(config.overlay[0].mode, Some(0o600));
        assert_eq!(config.overlay[0].content.as_deref(), Some("A=b\n"));
        assert_eq!(config.initramfs.programs.len(), 1);
        assert_eq!(config.compression.initramfs, CompressionKind::Gzip);
        assert_eq!(config.compression.rootfs, CompressionKind::None);
        assert_eq!(config.cmdline, "console=ttyS0 quiet");
    }

    #[test]
    fn compression_defaults_to_zstd() {
        let config =
            ImageConfig::parse("[kernel]\ndir = \"k\"\n[init]\nbinary = \"b\"\n").expect("parse");
        assert_eq!(config.compression.initramfs, CompressionKind::Zstd);
        assert_eq!(config.compression.rootfs, CompressionKind::Zstd);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let text = "[kernel]\ndir = \"k\"\nmodulez = []\n[init]\nbinary = \"b\"\n";
        let err = ImageConfig::parse(text).expect_err("unknown key must fail");
        assert!(err.to_string().contains("modulez"), "{err}");
        let text = "[kernel]\ndir = \"k\"\n[init]\nbinary = \"b\"\n[[overlay]]\ndest = \"/x\"\nsource = \"y\"\n";
        let err = ImageConfig::parse(text).expect_err("unknown overlay key must fail");
        assert!(err.to_string().contains("source"), "{err}");
    }

    #[test]
    fn a_top_level_key_after_a_table_says_to_move_it_up() {
        let text = "[kernel]\ndir = \"k\"\n[init]\nbinary = \"b\"\n[usb]\nos_image = \"os.raw.gz\"\n\
                    install_config = \"install.toml\"\ncmdline = \"console=ttyS0\"\n";
        let err = ImageConfig::parse(text).expect_err("cmdline in [usb] must fail");
        assert!(
            err.to_string().contains(
                "line 8: `usb.cmdline`: unknown field `cmdline`, expected one of `os_image`, \
                 `sha256_file`, `bmap`, `install_config` (column 1); `cmdline` is a top-level \
                 key, but it is written after the `[usb]` header, so TOML puts it in that \
                 table: move it up, above the first `[table]` header of the file"
            ),
            "{err}"
        );
        let text = "[kernel]\ndir = \"k\"\n[init]\nbinary = \"b\"\n[[rootfs.programs]]\n\
                    src = \"/bin/busybox\"\n  cmdline = \"quiet\"\n";
        let err = ImageConfig::parse(text).expect_err("cmdline in a program must fail");
        assert!(
            err.to_string().contains(
                "written after the `[[rootfs.programs]]` header, so TOML puts it in that table"
            ),
            "{err}"
        );
    }

    #[test]
    fn other_unknown_keys_get_no_move_hint() {
        for text in [
            // Not a top-level key.
            "[kernel]\ndir = \"k\"\nmodulez = []\n[init]\nbinary = \"b\"\n",
            // Inside an inline table, not under a header.
            "cmdline = \"\"\n[kernel]\ndir = \"k\"\n[init]\nbinary = \"b\"\n\
             [initramfs]\nprograms = [{ src = \"/bin/sh\", cmdline = \"x\" }]\n",
        ] {
            let err = ImageConfig::parse(text).expect_err("unknown key must fail");
            assert!(err.to_string().contains("unknown field"), "{err}");
            assert!(!err.to_string().contains("move it up"), "{err}");
        }
    }

    /// [`TOP_LEVEL_KEYS`] are exactly the keys a config with every section serializes to.
    #[test]
    fn the_top_level_keys_are_the_configs_fields() {
        let full = ImageConfig {
            usb: Some(UsbConfig::default()),
            secure_boot: Some(SecureBootConfig {
                sign_key: "db.key".into(),
                sign_cert: "db.crt".into(),
            }),
            ..ImageConfig::default()
        };
        let table = toml::Table::try_from(&full).expect("serialize");
        let mut keys: Vec<&str> = table.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut expected = TOP_LEVEL_KEYS;
        expected.sort_unstable();
        assert_eq!(keys, expected);
    }

    #[test]
    fn load_resolves_relative_paths_against_the_config_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("imageconfigs");
        fs::create_dir(&sub).expect("mkdir");
        let path = sub.join("image.toml");
        fs::write(&path, SAMPLE).expect("write");
        let config = ImageConfig::load(&path).expect("load");
        assert_eq!(
            config.kernel.deb.as_deref(),
            Some(sub.join("../.cache/kernel/linux-image-amd64.deb").as_path())
        );
        assert_eq!(config.init.binary, PathBuf::from("/abs/bootkit"));
        assert_eq!(config.rootfs.archive, Some(sub.join("rootfs.tar.gz")));
        assert_eq!(config.rootfs.services, Some(sub.join("svc")));
        assert_eq!(config.rootfs.directories[0].src, sub.join("files"));
        assert_eq!(config.rootfs.directories[0].dest, "/");
        assert_eq!(config.overlay[1].src, Some(sub.join("ca.pem")));
        let usb = config.usb.as_ref().expect("[usb]");
        assert_eq!(usb.os_image, sub.join("os.raw.gz"));
        assert_eq!(usb.sha256_file, None);
        assert_eq!(usb.bmap, Some(PathBuf::from("/abs/os.raw.bmap")));
        assert_eq!(usb.install_config, sub.join("install.toml"));
        assert_eq!(config.source.as_deref(), Some(path.as_path()));
    }

    #[test]
    fn kernel_needs_exactly_one_source() {
        let both = KernelConfig {
            deb: Some("a.deb".into()),
            dir: Some("k".into()),
            modules: vec![],
            shipped_modules: vec![],
        };
        assert!(both.source().is_err());
        assert!(KernelConfig::default().source().is_err());
    }
}
