//! `build`: image config in, `vmlinuz` + `initramfs` + `cmdline` + `manifest.json` out.
//!
//! Everything is computed in memory first and each output is written to a temporary file
//! renamed into place, so a failed build never leaves a half-written file; manifest.json is
//! written last and so only describes complete outputs.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::compress::{Encoder, NoFlush};
use crate::config::ImageConfig;
use crate::cpio::write_newc;
use crate::error::{BuildError, Result};
use crate::initramfs::{RootfsArchive, check_init, initramfs_tree};
use crate::manifest::{FileDigest, Manifest, RootfsDigest};
use crate::progress::Progress;
use crate::{kernel, modules, rootfs};

/// The files a build wrote.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    pub vmlinuz: PathBuf,
    pub initramfs: PathBuf,
    pub cmdline: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
}

/// Build an image into `out_dir` (created if needed), reporting progress on stderr
/// (a bar on a terminal, plain lines otherwise).
pub fn build(config: &ImageConfig, out_dir: &Path) -> Result<BuildOutput> {
    build_with(config, out_dir, &Progress::auto())
}

/// [`build`] with the caller's choice of progress reporting.
pub fn build_with(
    config: &ImageConfig,
    out_dir: &Path,
    progress: &Progress,
) -> Result<BuildOutput> {
    let epoch = source_date_epoch()?;
    check_init(&config.init.binary)?;
    let kernel = kernel::open(&config.kernel.source()?, progress)?;
    progress.note(&format!("kernel {}", kernel.version));

    let modules = modules::select(&kernel.modules_dir, &config.kernel.modules)?;
    for name in &modules.builtin_requested {
        progress.note(&format!(
            "module {name} is built into the kernel: nothing to ship"
        ));
    }
    progress.note(&format!(
        "{} modules: {}",
        modules.included.len(),
        modules.included.join(" ")
    ));

    let task = progress.task("building the rootfs archive", None);
    let added = rootfs::added_tree(config)?;
    let rootfs_kind = config.compression.rootfs;
    let rootfs_data =
        rootfs::write_archive(&added, config.rootfs.archive.as_deref(), rootfs_kind, epoch)?;
    task.finish();
    let rootfs_digest = RootfsDigest {
        name: rootfs_kind.tar_name().to_string(),
        compression: format!("{rootfs_kind:?}").to_lowercase(),
        digest: FileDigest::of(&rootfs_data),
    };

    let task = progress.task("building the initramfs", None);
    let archive = RootfsArchive {
        name: rootfs_kind.tar_name(),
        data: rootfs_data,
    };
    let tree = initramfs_tree(config, &kernel.version, &modules, archive)?;
    let initramfs = compress_cpio(&tree, config, epoch)?;
    task.finish();

    let vmlinuz = fs::read(&kernel.vmlinuz)
        .map_err(BuildError::io(format!("read {}", kernel.vmlinuz.display())))?;
    let cmdline = format!("{}\n", config.cmdline.trim());

    fs::create_dir_all(out_dir).map_err(BuildError::io(format!(
        "create output directory {}",
        out_dir.display()
    )))?;
    let mut outputs = BTreeMap::new();
    for (name, data) in [
        ("vmlinuz", &vmlinuz[..]),
        ("initramfs", &initramfs[..]),
        ("cmdline", cmdline.as_bytes()),
    ] {
        write_atomic(&out_dir.join(name), data)?;
        outputs.insert(name.to_string(), FileDigest::of(data));
    }
    let manifest = Manifest {
        config: config
            .source
            .as_ref()
            .map(|path| path.display().to_string())
            .unwrap_or_else(|| "(built in memory)".into()),
        kernel_version: kernel.version.clone(),
        outputs,
        modules: modules.included.clone(),
        modules_builtin: modules.builtin_requested.clone(),
        rootfs: rootfs_digest,
        source_date_epoch: epoch,
    };
    let manifest_path = out_dir.join("manifest.json");
    let json = manifest
        .to_json()
        .map_err(|err| BuildError::Config(format!("cannot serialise the manifest: {err}")))?;
    write_atomic(&manifest_path, json.as_bytes())?;
    progress.note(&format!(
        "wrote {} (initramfs {} bytes, rootfs {} bytes)",
        out_dir.display(),
        manifest.outputs["initramfs"].size,
        manifest.rootfs.digest.size
    ));
    Ok(BuildOutput {
        vmlinuz: out_dir.join("vmlinuz"),
        initramfs: out_dir.join("initramfs"),
        cmdline: out_dir.join("cmdline"),
        manifest_path,
        manifest,
    })
}

fn compress_cpio(tree: &crate::tree::Tree, config: &ImageConfig, epoch: u64) -> Result<Vec<u8>> {
    // newc stores 32-bit mtimes; an epoch past 2106 is a configuration mistake.
    let epoch = u32::try_from(epoch).map_err(|_| {
        BuildError::Config(format!(
            "SOURCE_DATE_EPOCH {epoch} does not fit a cpio mtime"
        ))
    })?;
    let encoder = Encoder::new(config.compression.initramfs, Vec::new())
        .map_err(BuildError::io("start compressor"))?;
    let NoFlush(encoder) = write_newc(tree, NoFlush(encoder), epoch)?;
    encoder
        .finish()
        .map_err(BuildError::io("compress the initramfs"))
}

/// SOURCE_DATE_EPOCH (reproducible-builds.org), or 0.
pub fn source_date_epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.trim().is_empty() => value.trim().parse().map_err(|_| {
            BuildError::Config(format!(
                "SOURCE_DATE_EPOCH={value:?} is not a number of seconds since 1970"
            ))
        }),
        _ => Ok(0),
    }
}

/// Write a file so that it is either complete or absent: temporary file, then rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let what = || format!("write {}", path.display());
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(BuildError::io(what()))?;
    file.write_all(data).map_err(BuildError::io(what()))?;
    file.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(BuildError::io(what()))?;
    file.as_file().sync_all().map_err(BuildError::io(what()))?;
    file.persist(path)
        .map_err(|err| BuildError::io(what())(err.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CompressionKind, KernelConfig, Overlay, Program};
    use crate::inspect::{inspect, render};
    use crate::modules::tests::fake_tree;

    /// A config over a fake kernel dir (tiny vmlinuz, modinfo-bearing fake modules).
    fn fake_image(root: &Path) -> ImageConfig {
        let kernel = root.join("kernel");
        fake_tree(&kernel);
        fs::write(kernel.join("vmlinuz"), b"not really a kernel").unwrap();
        let init = root.join("bootkit");
        fs::write(&init, b"\x7fELF pretend init").unwrap();
        let services = root.join("services");
        fs::create_dir(&services).unwrap();
        fs::write(
            services.join("hello.toml"),
            "command = \"/bin/sh\"\nargs = [\"-c\", \"echo hello\"]\nrestart = \"never\"\n",
        )
        .unwrap();
        fs::write(services.join("README"), "not a service").unwrap();
        let mut config = ImageConfig {
            kernel: KernelConfig {
                dir: Some(kernel),
                deb: None,
                modules: vec!["virtio_net".into(), "nbd".into(), "virtio".into()],
            },
            cmdline: "console=ttyS0 quiet".into(),
            ..ImageConfig::default()
        };
        config.init.binary = init;
        config.init.applets = vec!["poweroff".into()];
        config.rootfs.services = Some(services);
        config.rootfs.programs.push(Program {
            src: "/bin/busybox".into(),
            dest: None,
            links: vec!["sh".into()],
        });
        config.initramfs.programs.push(Program {
            src: "/bin/busybox".into(),
            dest: Some("/bin/busybox".into()),
            links: vec!["sh".into()],
        });
        config
            .overlay
            .push(Overlay::inline("/etc/environment", "A=1\n"));
        config
            .overlay
            .push(Overlay::inline("/etc/environment", "A=2\n"));
        config
    }

    fn read_outputs(dir: &Path) -> Vec<Vec<u8>> {
        ["vmlinuz", "initramfs", "cmdline", "manifest.json"]
            .iter()
            .map(|name| fs::read(dir.join(name)).unwrap())
            .collect()
    }

    #[test]
    fn full_build_is_reproducible_and_complete() {
        let root = tempfile::tempdir().unwrap();
        let config = fake_image(root.path());
        let first = build_with(&config, &root.path().join("out1"), &Progress::hidden()).unwrap();
        build_with(&config, &root.path().join("out2"), &Progress::hidden()).unwrap();
        assert_eq!(
            read_outputs(&root.path().join("out1")),
            read_outputs(&root.path().join("out2")),
            "two builds of the same inputs differ"
        );

        let manifest = &first.manifest;
        assert_eq!(manifest.kernel_version, "6.1.0-fake");
        assert_eq!(
            manifest.modules,
            ["failover", "nbd", "net_failover", "virtio_net"]
        );
        assert_eq!(manifest.modules_builtin, ["virtio"]);
        assert_eq!(manifest.rootfs.name, "rootfs.tar.zst");
        let initramfs = fs::read(&first.initramfs).unwrap();
        assert_eq!(manifest.outputs["initramfs"], FileDigest::of(&initramfs));
        assert_eq!(
            fs::read_to_string(&first.cmdline).unwrap(),
            "console=ttyS0 quiet\n"
        );
        let json: Manifest =
            serde_json::from_slice(&fs::read(&first.manifest_path).unwrap()).unwrap();
        assert_eq!(&json, manifest);

        let listing = inspect(&first.initramfs).unwrap();
        assert_eq!(listing.segments.len(), 1);
        let entries = &listing.segments[0].1;
        let find = |name: &str| {
            entries
                .iter()
                .find(|e| e.name == name)
                .unwrap_or_else(|| panic!("{name} missing from the initramfs"))
        };
        assert_eq!(find("init").mode, 0o100755);
        assert_eq!(find("dev/console").mode, 0o020600);
        assert_eq!(find("dev/console").detail.as_deref(), Some("5,1"));
        for dir in ["dev", "proc", "sys", "run", "newroot"] {
            assert_eq!(find(dir).mode, 0o040755, "{dir}");
        }
        find("rootfs.tar.zst");
        find("lib/modules/6.1.0-fake/kernel/drivers/net/virtio_net.ko");
        find("lib/modules/6.1.0-fake/kernel/net/core/failover.ko");
        assert!(!entries.iter().any(|e| e.name.ends_with("unused.ko")));
        for index in ["dep", "alias", "builtin", "order"] {
            find(&format!("lib/modules/6.1.0-fake/modules.{index}"));
        }
        find("etc/modules-load.d/bootkit.conf");
        assert_eq!(find("bin/sh").detail.as_deref(), Some("busybox"));
        // Parents come before children, and every entry is stamped with epoch 0, uid 0.
        for (i, entry) in entries.iter().enumerate() {
            if let Some((parent, _)) = entry.name.rsplit_once('/') {
                let at = entries.iter().position(|e| e.name == parent).unwrap();
                assert!(at < i, "{parent} after {}", entry.name);
            }
            assert_eq!((entry.uid, entry.gid), (0, 0));
        }

        let (name, rootfs) = listing.rootfs.as_ref().expect("rootfs listed");
        assert_eq!(name, "rootfs.tar.zst");
        let rootfs_entry = |path: &str| rootfs.iter().find(|e| e.name == path);
        assert!(rootfs_entry("usr/bin/bootkit").is_some());
        assert_eq!(
            rootfs_entry("usr/sbin/poweroff").and_then(|e| e.detail.as_deref()),
            Some("/usr/bin/bootkit")
        );
        assert!(rootfs_entry("etc/bootkit/services/hello.toml").is_some());
        assert!(rootfs_entry("etc/bootkit/services/README").is_none());
        assert!(rootfs_entry("bin/busybox").is_some());
        assert_eq!(
            rootfs
                .iter()
                .filter(|e| e.name == "etc/environment")
                .count(),
            1
        );
        assert_eq!(rootfs_entry("etc/environment").map(|e| e.size), Some(4));

        let text = render(&listing);
        assert!(text.contains(" init\n"), "{text}");
        assert!(
            text.contains("usr/sbin/poweroff -> /usr/bin/bootkit"),
            "{text}"
        );

        // What the init will read back: modules.dep and the modules-load list.
        let dep = fs::read_to_string(
            root.path()
                .join("kernel/lib/modules/6.1.0-fake")
                .join("modules.dep"),
        );
        assert!(
            dep.is_err(),
            "the fake kernel dir has no modules.dep of its own"
        );
    }

    #[test]
    fn gzip_and_plain_compression_are_honoured() {
        let root = tempfile::tempdir().unwrap();
        let mut config = fake_image(root.path());
        config.compression.initramfs = CompressionKind::Gzip;
        config.compression.rootfs = CompressionKind::None;
        let out = build_with(&config, &root.path().join("out"), &Progress::hidden()).unwrap();
        let data = fs::read(&out.initramfs).unwrap();
        assert_eq!(&data[..2], &[0x1f, 0x8b]);
        let listing = inspect(&out.initramfs).unwrap();
        assert_eq!(
            listing.rootfs.as_ref().map(|r| r.0.as_str()),
            Some("rootfs.tar")
        );
    }

    #[test]
    fn a_failed_build_writes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let mut config = fake_image(root.path());
        config.kernel.modules.push("no_such_module".into());
        let out = root.path().join("out");
        let err = build_with(&config, &out, &Progress::hidden()).unwrap_err();
        assert!(err.to_string().contains("no_such_module"), "{err}");
        assert!(!out.exists() || fs::read_dir(&out).unwrap().next().is_none());
    }

    #[test]
    fn a_missing_init_says_how_to_build_it() {
        let root = tempfile::tempdir().unwrap();
        let mut config = fake_image(root.path());
        config.init.binary = root.path().join("nope");
        let err = build_with(&config, &root.path().join("out"), &Progress::hidden()).unwrap_err();
        assert!(
            err.to_string()
                .contains("cargo build --release -p bootkit-init"),
            "{err}"
        );
    }
}
