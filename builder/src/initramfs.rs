//! The initramfs layout the init expects (changing it means changing the init). Every path
//! is at the top of the kernel's rootfs once it has unpacked the image:
//!
//! ```text
//! /init                                  the init binary (0755)
//! /rootfs.tar.zst | .tar.gz | .tar       the rootfs archive (name by its compression)
//! /lib/modules/<version>/<path>.ko*      the selected modules at their usual paths
//! /lib/modules/<version>/modules.dep     depmod format, for the subset
//! /lib/modules/<version>/modules.alias   from the subset's modinfo alias= fields
//! /lib/modules/<version>/modules.builtin the kernel's, whole
//! /lib/modules/<version>/modules.order   the subset, in the kernel's order
//! /etc/modules-load.d/bootkit.conf       [kernel] modules, one per line
//! /dev/console                           char 5:1, so the kernel can open the console
//!                                        before devtmpfs is mounted
//! /dev /proc /sys /run /newroot          empty mount points
//! + [initramfs] programs and their libraries
//! ```
//!
//! The image file is one or two newc segments back to back; the kernel unpacks them in turn
//! into the same root (Documentation/driver-api/early-userspace/buffer-format.rst):
//!
//! 1. compressed as `[compression] initramfs` says: everything above but the rootfs archive;
//! 2. uncompressed, from a 4-byte-aligned offset: `/rootfs.tar.zst` (or `.tar.gz`) alone.
//!
//! A compressed rootfs archive does not shrink when compressed again, so putting it in the
//! first segment only costs build time (and boot time: the kernel would decompress it once
//! more for nothing). When the rootfs archive or the initramfs is uncompressed, a single
//! segment holds everything. Inode numbers go on counting from the first segment into the
//! second, so no two entries of the image share one.

use std::path::Path;

use bootkit_common::layout::{INIT, MODULES_LOAD_CONF};

use crate::config::{CompressionConfig, CompressionKind, ImageConfig};
use crate::error::Result;
use crate::modules::ModuleSet;
use crate::rootfs::add_program;
use crate::tree::{Source, Tree};

/// The rootfs archive as it goes into the initramfs.
#[derive(Debug)]
pub struct RootfsArchive {
    /// Its compression, which names it: `rootfs.tar.zst`, `rootfs.tar.gz` or `rootfs.tar`.
    pub kind: CompressionKind,
    /// The archive's bytes.
    pub data: Vec<u8>,
}

/// Whether the rootfs archive gets a segment of its own: when it is compressed and the
/// initramfs too.
pub fn separate_rootfs_segment(compression: &CompressionConfig) -> bool {
    compression.rootfs != CompressionKind::None && compression.initramfs != CompressionKind::None
}

impl RootfsArchive {
    fn add_to(self, tree: &mut Tree) -> Result<()> {
        let path = format!("/{}", self.kind.tar_name());
        tree.add_file(&path, Source::Bytes(self.data), 0o644)
    }
}

/// The first segment: everything the init needs, and the rootfs archive when given (a
/// single-segment image); `None` leaves it for [`rootfs_segment_tree`].
pub fn initramfs_tree(
    config: &ImageConfig,
    kernel_version: &str,
    modules: &ModuleSet,
    rootfs: Option<RootfsArchive>,
) -> Result<Tree> {
    let mut tree = Tree::new();
    for dir in ["/dev", "/proc", "/sys", "/run", "/newroot"] {
        tree.add_dir(dir, 0o755)?;
    }
    tree.add_char_device("/dev/console", 5, 1, 0o600)?;
    for program in &config.initramfs.programs {
        add_program(&mut tree, program)?;
    }
    add_modules(&mut tree, kernel_version, modules, &config.kernel.modules)?;
    if let Some(rootfs) = rootfs {
        rootfs.add_to(&mut tree)?;
    }
    // Last, so that no program can take /init's place.
    tree.add_file(INIT, Source::Host(config.init.binary.clone()), 0o755)?;
    Ok(tree)
}

/// The second segment: the rootfs archive alone, at the top.
pub fn rootfs_segment_tree(rootfs: RootfsArchive) -> Result<Tree> {
    let mut tree = Tree::new();
    rootfs.add_to(&mut tree)?;
    Ok(tree)
}

fn add_modules(
    tree: &mut Tree,
    version: &str,
    modules: &ModuleSet,
    requested: &[String],
) -> Result<()> {
    let base = format!("/lib/modules/{version}");
    tree.add_dir(&base, 0o755)?;
    for (relative, host) in &modules.files {
        tree.add_file(
            &format!("{base}/{relative}"),
            Source::Host(host.clone()),
            0o644,
        )?;
    }
    for (name, text) in [
        ("modules.dep", &modules.modules_dep),
        ("modules.alias", &modules.modules_alias),
        ("modules.builtin", &modules.modules_builtin),
        ("modules.order", &modules.modules_order),
    ] {
        tree.add_file(
            &format!("{base}/{name}"),
            Source::Bytes(text.clone().into_bytes()),
            0o644,
        )?;
    }
    let mut conf = String::new();
    for name in requested {
        conf.push_str(name);
        conf.push('\n');
    }
    tree.add_file(MODULES_LOAD_CONF, Source::Bytes(conf.into_bytes()), 0o644)?;
    Ok(())
}

/// The init binary is the one input every image needs; say so before doing any work.
pub fn check_init(binary: &Path) -> Result<()> {
    if binary.is_file() {
        Ok(())
    } else {
        Err(crate::rootfs::missing_init(binary))
    }
}
