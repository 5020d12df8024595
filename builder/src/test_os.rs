//! The EMT-like test OS image: what the installer writes in tests, made locally so no test
//! downloads a real OS image.
//!
//! A GPT disk laid out like Edge Microvisor Toolkit's images:
//!
//! | # | name              | content                                                        |
//! |---|-------------------|----------------------------------------------------------------|
//! | 1 | `esp`             | FAT, `\EFI\BOOT\BOOTX64.EFI`: a UKI of the kernel + a tiny initramfs |
//! | 2 | `rootfs`          | ext4, label `rootfs`: os-release, passwd, group, shadow, hostname ... |
//! | 3 | `edge_persistent` | ext4, label `edge_persistent`, empty                           |
//!
//! The UKI's initramfs is busybox and an `/init` script that prints the marker line on the
//! console and powers off: booting the installed disk proves the installer wrote it right.
//! On a BIOS machine the protective MBR's boot code ([`crate::bios_boot`]) prints the same
//! line on COM1 and halts.
//!
//! Published as `NAME.raw` (sparse), `NAME.raw.gz`, `NAME.raw.zst`, `NAME.raw.xz` (each with
//! a `.sha256sum`) and `NAME.raw.bmap`. The same inputs and `SOURCE_DATE_EPOCH` give the same
//! bytes.

use bootkit_common::error_chain;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;

use bootkit_common::layout::INIT;
use uuid::Uuid;

use crate::bios_boot;
use crate::config::{CompressionKind, KernelSource, Program, SecureBootConfig};
use crate::cpio::compress_cpio;
use crate::dirs::scratch_dir_in;
use crate::disk_image::{
    ESP_TYPE, LINUX_DATA_TYPE, PartitionSpec, PlacedPartition, assemble, derived_guid,
};
use crate::error::{BuildError, Result};
use crate::fs_image::{
    Ext4Options, FatFile, image_epoch, make_ext4, make_fat, set_tree_times, volume_id,
};
use crate::kernel;
use crate::progress::Progress;
use crate::publish::{Published, compress_file, sibling, write_sha256sum};
use crate::reproducible::source_date_epoch;
use crate::rootfs::add_program;
use crate::tree::{Source, Tree};
use crate::uki::{ESP_LOADER, UkiInputs, build_uki, sign_uki};

/// The UKI's kernel command line.
pub const CMDLINE: &str = "console=ttyS0 quiet";
/// Partition names, as EMT names them.
pub const PARTITION_NAMES: [&str; 3] = ["esp", "rootfs", "edge_persistent"];
/// Space left free in the rootfs for what the installer writes into it (users, network,
/// cloud-init), and in the persistent partition.
const ROOTFS_HEADROOM: u64 = 24 << 20;
const PERSISTENT_HEADROOM: u64 = 8 << 20;

/// What the test OS image is made of.
#[derive(Debug, Clone)]
pub struct TestOsSpec {
    /// Debian's `linux-image-*.deb`.
    pub kernel_deb: PathBuf,
    /// A static busybox (Debian's busybox-static).
    pub busybox: PathBuf,
    /// The line the image prints on the console when it boots.
    pub marker: String,
    /// File names start with it: `NAME.raw`, `NAME.raw.gz` ...
    pub name: String,
    /// The systemd EFI stub.
    pub stub: PathBuf,
}

/// The files made.
#[derive(Debug, Clone)]
pub struct TestOsOutput {
    /// The raw disk image.
    pub raw: PathBuf,
    /// `NAME.raw.gz`, `.zst`, `.xz`, in [`Published::ALL`]'s order.
    pub compressed: Vec<PathBuf>,
    /// The `.sha256sum` of each compressed file, same order.
    pub sha256sums: Vec<PathBuf>,
    /// The block map of the raw image.
    pub bmap: PathBuf,
    /// Where each partition is on the disk.
    pub partitions: Vec<PlacedPartition>,
}

/// Build the test OS image into `out_dir`. Outputs are made in a scratch directory there
/// and moved into place together at the end.
pub fn build_test_os(
    spec: &TestOsSpec,
    out_dir: &Path,
    progress: &Progress,
) -> Result<TestOsOutput> {
    build_signed_test_os(spec, None, out_dir, progress)
}

/// [`build_test_os`], with the loader on its ESP (`\EFI\BOOT\BOOTX64.EFI`) signed by
/// `signing` when given, so that the installed system boots under Secure Boot on a machine
/// trusting that key.
pub fn build_signed_test_os(
    spec: &TestOsSpec,
    signing: Option<&SecureBootConfig>,
    out_dir: &Path,
    progress: &Progress,
) -> Result<TestOsOutput> {
    check_marker(&spec.marker)?;
    check_name(&spec.name)?;
    let bios_code = bios_boot::boot_code(&spec.marker)?;
    let epoch = source_date_epoch()?;
    let kernel = kernel::open(&KernelSource::Deb(spec.kernel_deb.clone()), progress)?;
    progress.note(&format!("test OS image: kernel {}", kernel.version));
    fs::create_dir_all(out_dir).map_err(BuildError::io(format!(
        "create output directory {}",
        out_dir.display()
    )))?;
    let scratch = scratch_dir_in(out_dir, ".test-os-")?;
    let work = Work {
        dir: scratch.path(),
        seed: format!("bootkit test-os-image {}", spec.name),
        epoch,
    };

    let uki = work.marker_uki(spec, &kernel.vmlinuz)?;
    if let Some(signing) = signing {
        sign_uki(&uki, signing)?;
        progress.note(&format!(
            "test OS image: loader signed with {}",
            signing.sign_cert.display()
        ));
    }
    let task = progress.task("making the test OS filesystems", None);
    let filesystems = work.filesystems(spec, &uki)?;
    task.finish();
    let raw = work.dir.join(format!("{}.raw", spec.name));
    let partitions = assemble(
        &raw,
        derived_guid(&work.seed, "disk"),
        &filesystems.map(|(name, type_guid, image)| PartitionSpec {
            name: name.to_string(),
            type_guid,
            unique_guid: derived_guid(&work.seed, name),
            image,
        }),
    )?;
    bios_boot::install(&raw, &bios_code)?;

    let task = progress.task(
        "compressing the test OS image (gz, zst, xz) and its bmap",
        None,
    );
    publish(&raw)?;
    task.finish();
    let output = move_outputs(&raw, out_dir, partitions)?;
    progress.note(&format!("test OS image: wrote {}", output.raw.display()));
    Ok(output)
}

/// The scratch directory, and what makes the build's GUIDs and times.
struct Work<'a> {
    dir: &'a Path,
    seed: String,
    epoch: u64,
}

impl Work<'_> {
    /// The UKI booting the marker initramfs.
    fn marker_uki(&self, spec: &TestOsSpec, vmlinuz: &Path) -> Result<PathBuf> {
        let initrd = self.dir.join("initramfs");
        let image = marker_initramfs(&spec.busybox, &spec.marker, self.epoch)?;
        fs::write(&initrd, image).map_err(BuildError::io(format!("write {}", initrd.display())))?;
        let uki = self.dir.join("BOOTX64.EFI");
        build_uki(
            &UkiInputs {
                stub: &spec.stub,
                kernel: vmlinuz,
                initrd: &initrd,
                cmdline: CMDLINE,
                os_release: &os_release(&spec.name),
            },
            &uki,
        )?;
        Ok(uki)
    }

    /// The three filesystem images with their partitions' names and types.
    fn filesystems(
        &self,
        spec: &TestOsSpec,
        uki: &Path,
    ) -> Result<[(&'static str, Uuid, PathBuf); 3]> {
        let esp = self.dir.join("esp.img");
        make_fat(
            &esp,
            "ESP",
            volume_id(derived_guid(&self.seed, "esp-volume")),
            &[FatFile {
                dest: ESP_LOADER,
                source: uki,
            }],
            2 << 20,
            self.epoch,
        )?;
        let rootfs_tree = self.dir.join("rootfs");
        stage_rootfs(
            &rootfs_tree,
            &spec.name,
            &os_release(&spec.name),
            &spec.marker,
        )?;
        let rootfs = self.ext4(&rootfs_tree, PARTITION_NAMES[1], ROOTFS_HEADROOM)?;
        let persistent_tree = self.dir.join("persistent");
        fs::create_dir(&persistent_tree).map_err(BuildError::io(format!(
            "create {}",
            persistent_tree.display()
        )))?;
        let persistent = self.ext4(&persistent_tree, PARTITION_NAMES[2], PERSISTENT_HEADROOM)?;
        Ok([
            (PARTITION_NAMES[0], ESP_TYPE, esp),
            (PARTITION_NAMES[1], LINUX_DATA_TYPE, rootfs),
            (PARTITION_NAMES[2], LINUX_DATA_TYPE, persistent),
        ])
    }

    /// An ext4 image of `tree`, labelled `label` (as its partition is named).
    fn ext4(&self, tree: &Path, label: &str, headroom: u64) -> Result<PathBuf> {
        set_tree_times(tree, self.epoch)?;
        let image = self.dir.join(format!("{label}.img"));
        make_ext4(
            &image,
            tree,
            &Ext4Options {
                label,
                uuid: derived_guid(&self.seed, &format!("{label}-fs")),
                headroom,
                epoch: self.epoch,
            },
        )?;
        Ok(image)
    }
}

/// Move the raw image and what [`publish`] made of it from the scratch directory into
/// `out_dir`.
fn move_outputs(
    raw: &Path,
    out_dir: &Path,
    partitions: Vec<PlacedPartition>,
) -> Result<TestOsOutput> {
    let moved = |file: &Path| out_dir.join(file.file_name().unwrap_or_default());
    let mut made = vec![raw.to_path_buf(), sibling(raw, "bmap")];
    for format in Published::ALL {
        let packed = sibling(raw, format.suffix());
        made.push(sibling(&packed, "sha256sum"));
        made.push(packed);
    }
    for file in &made {
        let target = moved(file);
        fs::rename(file, &target).map_err(BuildError::io(format!("write {}", target.display())))?;
    }
    let raw = moved(raw);
    let compressed: Vec<PathBuf> = Published::ALL
        .iter()
        .map(|format| sibling(&raw, format.suffix()))
        .collect();
    Ok(TestOsOutput {
        sha256sums: compressed
            .iter()
            .map(|file| sibling(file, "sha256sum"))
            .collect(),
        compressed,
        bmap: sibling(&raw, "bmap"),
        raw,
        partitions,
    })
}

/// Compress `raw` in every published format (in parallel) with their checksum files, and
/// write its bmap next to it.
fn publish(raw: &Path) -> Result<()> {
    let bmap = sibling(raw, "bmap");
    thread::scope(|scope| {
        let jobs: Vec<_> = Published::ALL
            .map(|format| {
                scope.spawn(move || {
                    let packed = sibling(raw, format.suffix());
                    compress_file(raw, &packed, format)?;
                    write_sha256sum(&packed, &Progress::hidden())
                })
            })
            .into();
        let xml = bootkit_common::bmap::create(raw).map_err(|err| BuildError::DiskImage {
            path: raw.to_path_buf(),
            reason: format!("cannot make its bmap: {err}", err = error_chain(&err)),
        })?;
        fs::write(&bmap, xml).map_err(BuildError::io(format!("write {}", bmap.display())))?;
        for job in jobs {
            job.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        }
        Ok(())
    })
}

/// The initramfs: busybox, and an /init that prints the marker and powers off.
fn marker_initramfs(busybox: &Path, marker: &str, epoch: u64) -> Result<Vec<u8>> {
    let mut tree = Tree::new();
    for dir in ["/dev", "/proc", "/sys"] {
        tree.add_dir(dir, 0o755)?;
    }
    // The kernel opens /dev/console for /init's output before anything is mounted.
    tree.add_char_device("/dev/console", 5, 1, 0o600)?;
    add_program(
        &mut tree,
        &Program {
            src: busybox.to_path_buf(),
            dest: Some("/bin/busybox".into()),
            links: vec!["sh".into()],
        },
    )?;
    tree.add_file(INIT, Source::Bytes(init_script(marker).into_bytes()), 0o755)?;
    let epoch = u32::try_from(image_epoch(epoch)).map_err(|_| {
        BuildError::Config(format!(
            "SOURCE_DATE_EPOCH {epoch} does not fit a cpio mtime"
        ))
    })?;
    compress_cpio(&tree, CompressionKind::Zstd, epoch)
}

fn init_script(marker: &str) -> String {
    // Single quotes keep every character of the marker literal; a quote inside it is
    // closed, escaped and reopened.
    let quoted = marker.replace('\'', r"'\''");
    format!(
        "#!/bin/sh\n\
         # The test OS image's whole userspace: say it booted, then power off.\n\
         echo '{quoted}'\n\
         /bin/busybox poweroff -f\n"
    )
}

fn check_marker(marker: &str) -> Result<()> {
    if marker.trim().is_empty() || marker.chars().any(char::is_control) {
        return Err(BuildError::Config(format!(
            "marker {marker:?}: give one line of text, without control characters"
        )));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(BuildError::Config(format!(
            "image name {name:?}: use letters, digits, '-', '_' and '.' (it names the output files)"
        )))
    }
}

/// EMT's os-release fields, marked as the bootkit's test image.
fn os_release(name: &str) -> String {
    format!(
        "NAME=\"Edge Microvisor Toolkit\"\n\
         VERSION=\"3.0.20260101\"\n\
         ID=emt\n\
         VERSION_ID=\"3.0\"\n\
         PRETTY_NAME=\"Edge Microvisor Toolkit 3.0 (bootkit test image {name})\"\n\
         ANSI_COLOR=\"1;34\"\n\
         HOME_URL=\"https://github.com/open-edge-platform/edge-microvisor-toolkit\"\n\
         VARIANT_ID=bootkit-test\n\
         IMAGE_BUILD_DATE=20260101\n"
    )
}

/// The rootfs: the files an installer configures, and the marker.
fn stage_rootfs(root: &Path, name: &str, os_release: &str, marker: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let files: [(&str, String, u32); 8] = [
        ("etc/os-release", os_release.to_string(), 0o644),
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\n".into(),
            0o644,
        ),
        ("etc/group", "root:x:0:\nsudo:x:27:\n".into(), 0o644),
        // Root locked, as in EMT's images: the installer sets passwords.
        ("etc/shadow", "root:*:19000:0:99999:7:::\n".into(), 0o600),
        ("etc/hostname", format!("{name}\n"), 0o644),
        (
            "etc/fstab",
            "PARTLABEL=rootfs / ext4 defaults 0 1\n\
             PARTLABEL=esp /boot/efi vfat umask=0077 0 2\n\
             PARTLABEL=edge_persistent /opt ext4 defaults 0 2\n"
                .into(),
            0o644,
        ),
        ("etc/bootkit-test-marker", format!("{marker}\n"), 0o644),
        ("usr/lib/os-release", os_release.to_string(), 0o644),
    ];
    let dirs = [
        "boot/efi",
        "etc/cloud/cloud.cfg.d",
        "etc/sudoers.d",
        "etc/systemd/network",
        "home",
        "opt",
        "root",
        "tmp",
        "usr/bin",
        "var",
    ];
    let fail = |path: &Path| BuildError::io(format!("create {}", path.display()));
    for dir in dirs {
        let path = root.join(dir);
        fs::create_dir_all(&path).map_err(fail(&path))?;
    }
    for (relative, content, mode) in files {
        let path = root.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(fail(parent))?;
        }
        fs::write(&path, content).map_err(fail(&path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(fail(&path))?;
    }
    for (dir, mode) in [("root", 0o700), ("tmp", 0o1777)] {
        let path = root.join(dir);
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(fail(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_prints_the_marker_literally() {
        let script = init_script("it's $HOME `x`");
        assert!(script.contains(r"echo 'it'\''s $HOME `x`'"), "{script}");
        assert!(script.contains("poweroff -f"));
    }

    #[test]
    fn bad_markers_and_names_are_refused() {
        assert!(check_marker("two\nlines").is_err());
        assert!(check_marker("  ").is_err());
        assert!(check_marker("EMT-TEST-BOOTED ok").is_ok());
        assert!(check_name("../x").is_err());
        assert!(check_name("emt-test").is_ok());
    }
}
