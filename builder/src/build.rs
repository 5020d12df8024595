//! `build`: image config in, `vmlinuz` + `initramfs` + `cmdline` + `manifest.json` out.
//!
//! The rootfs archive and the initramfs's first segment are built and compressed at the
//! same time, on two threads (each its own zstd stream with fixed parameters, so the bytes
//! do not depend on which finishes first or on the machine's core count), while a third
//! thread copies vmlinuz. Each output goes to a temporary file in the output directory,
//! synced, and all are renamed into place only once every one is complete, so a failed build
//! never leaves a half-written file; manifest.json is written last and so only describes
//! complete outputs.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Instant;

use crate::config::{ImageConfig, UsbConfig};
use crate::cpio::{compress_cpio, write_newc_from};
use crate::error::{BuildError, Result};
use crate::initramfs::{
    RootfsArchive, check_init, initramfs_tree, rootfs_segment_tree, separate_rootfs_segment,
};
use crate::manifest::{FileDigest, Manifest, RootfsDigest};
use crate::progress::Progress;
use crate::reproducible::{Staged, source_date_epoch, write_atomic};
use crate::tree::Tree;
use crate::uki::{DEFAULT_STUB, UkiInputs, build_uki, os_release, sign_uki};
use crate::usb::{UsbOutput, build_usb};
use crate::{kernel, modules, rootfs};

/// The files a build wrote.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    /// The kernel, copied from the kernel package.
    pub vmlinuz: PathBuf,
    /// The initramfs (cpio segments: init, modules, rootfs).
    pub initramfs: PathBuf,
    /// The kernel command line file.
    pub cmdline: PathBuf,
    /// Where the manifest was written.
    pub manifest_path: PathBuf,
    /// What was built, with digests.
    pub manifest: Manifest,
    /// What the `[usb]` section made, when there is one.
    pub usb: Option<UsbOutput>,
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
    let cpio_epoch = cpio_mtime(epoch)?;
    check_init(&config.init.binary)?;
    let kernel = kernel::open(&config.kernel.source()?, progress)?;
    progress.note(&format!("kernel {}", kernel.version));

    let modules = modules::select_with_index(
        &kernel.modules_dir,
        &config.kernel.all_modules(),
        kernel.module_index.as_deref(),
    )?;
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

    fs::create_dir_all(out_dir).map_err(BuildError::io(format!(
        "create output directory {}",
        out_dir.display()
    )))?;
    let task = progress.task("building the rootfs archive and the initramfs", None);
    let (vmlinuz, archives) = thread::scope(|scope| {
        // vmlinuz needs nothing from the rest: copy it while the archives are built.
        let vmlinuz = scope.spawn(|| {
            let data = fs::read(&kernel.vmlinuz)
                .map_err(BuildError::io(format!("read {}", kernel.vmlinuz.display())))?;
            Staged::write(out_dir.join("vmlinuz"), &data)
        });
        let archives = if separate_rootfs_segment(&config.compression) {
            let rootfs = scope.spawn(|| build_rootfs(config, epoch));
            let first = build_first_segment(config, &kernel.version, &modules, None, cpio_epoch);
            let BuiltRootfs {
                archive,
                digest,
                summary,
            } = join(rootfs)?;
            let first = first?;
            let second = rootfs_segment_tree(archive)?;
            // Inode numbers go on from the first segment's.
            let next_ino = u32::try_from(first.entries + 1).map_err(|_| {
                BuildError::Config("more initramfs entries than a cpio archive can number".into())
            })?;
            let image = append_plain_segment(first.data, &second, cpio_epoch, next_ino)?;
            Archives {
                rootfs: summary,
                rootfs_digest: digest,
                first: first.summary,
                image,
            }
        } else {
            let BuiltRootfs {
                archive,
                digest,
                summary,
            } = build_rootfs(config, epoch)?;
            let first =
                build_first_segment(config, &kernel.version, &modules, Some(archive), cpio_epoch)?;
            Archives {
                rootfs: summary,
                rootfs_digest: digest,
                first: first.summary,
                image: first.data,
            }
        };
        Ok::<_, BuildError>((join(vmlinuz), archives))
    })?;
    task.finish();
    let vmlinuz = vmlinuz?;
    progress.note(&archives.rootfs.line("rootfs archive"));
    progress.note(
        &archives
            .first
            .line(if separate_rootfs_segment(&config.compression) {
                "initramfs, first segment (the rootfs archive follows uncompressed)"
            } else {
                "initramfs"
            }),
    );

    let rootfs_kind = config.compression.rootfs;
    let rootfs_digest = RootfsDigest {
        name: rootfs_kind.tar_name().to_string(),
        compression: format!("{rootfs_kind:?}").to_lowercase(),
        digest: archives.rootfs_digest,
    };
    let cmdline = format!("{}\n", config.cmdline.trim());
    let staged = [
        ("vmlinuz", vmlinuz),
        (
            "initramfs",
            Staged::write(out_dir.join("initramfs"), &archives.image)?,
        ),
        (
            "cmdline",
            Staged::write(out_dir.join("cmdline"), cmdline.as_bytes())?,
        ),
    ];
    let mut outputs = BTreeMap::new();
    for (name, output) in staged {
        outputs.insert(name.to_string(), output.persist()?);
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
    let usb = match &config.usb {
        Some(usb) => Some(build_usb_outputs(usb, config, out_dir, progress)?),
        None => {
            if config.secure_boot.is_some() {
                progress.note(
                    "[secure_boot] signs nothing here: without a [usb] section the build makes no EFI binary (make a signed UKI with `bootkit-build uki --sign-key KEY --sign-cert CERT`)",
                );
            }
            None
        }
    };
    Ok(BuildOutput {
        vmlinuz: out_dir.join("vmlinuz"),
        initramfs: out_dir.join("initramfs"),
        cmdline: out_dir.join("cmdline"),
        manifest_path,
        manifest,
        usb,
    })
}

/// `bootkit.efi` from the outputs just written, signed when the config has a
/// `[secure_boot]` key, then `usb.img` booting it (its `\EFI\BOOT\BOOTX64.EFI` is that
/// same file, so signed as well).
fn build_usb_outputs(
    usb: &UsbConfig,
    config: &ImageConfig,
    out_dir: &Path,
    progress: &Progress,
) -> Result<UsbOutput> {
    let efi = out_dir.join("bootkit.efi");
    build_uki(
        &UkiInputs {
            stub: Path::new(DEFAULT_STUB),
            kernel: &out_dir.join("vmlinuz"),
            initrd: &out_dir.join("initramfs"),
            cmdline: &config.cmdline,
            os_release: &os_release("bootkit", "bootkit", env!("CARGO_PKG_VERSION")),
        },
        &efi,
    )?;
    match &config.secure_boot {
        Some(signing) => {
            sign_uki(&efi, signing)?;
            progress.note(&format!(
                "wrote {}, signed with {}",
                efi.display(),
                signing.sign_cert.display()
            ));
        }
        None => progress.note(&format!("wrote {}", efi.display())),
    }
    let image = out_dir.join("usb.img");
    build_usb(&usb.inputs(&efi), &image, progress)?;
    Ok(UsbOutput { efi, image })
}

/// Wait for a thread of the build; its panic goes on in the caller.
fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// What building one archive took, for the log.
struct Summary {
    size: usize,
    millis: u128,
}

impl Summary {
    fn of(data: &[u8], started: Instant) -> Summary {
        Summary {
            size: data.len(),
            millis: started.elapsed().as_millis(),
        }
    }

    fn line(&self, what: &str) -> String {
        format!("{what}: {} bytes in {} ms", self.size, self.millis)
    }
}

struct Archives {
    rootfs: Summary,
    rootfs_digest: FileDigest,
    first: Summary,
    /// The initramfs file: the first segment, then the rootfs archive's when separate.
    image: Vec<u8>,
}

struct BuiltRootfs {
    archive: RootfsArchive,
    digest: FileDigest,
    summary: Summary,
}

fn build_rootfs(config: &ImageConfig, epoch: u64) -> Result<BuiltRootfs> {
    let started = Instant::now();
    let added = rootfs::added_tree(config)?;
    let kind = config.compression.rootfs;
    let data = rootfs::write_archive(&added, config.rootfs.archive.as_deref(), kind, epoch)?;
    Ok(BuiltRootfs {
        summary: Summary::of(&data, started),
        digest: FileDigest::of(&data),
        archive: RootfsArchive { kind, data },
    })
}

struct FirstSegment {
    data: Vec<u8>,
    /// Entries in it: the next segment numbers its inodes from here on.
    entries: usize,
    summary: Summary,
}

fn build_first_segment(
    config: &ImageConfig,
    kernel_version: &str,
    modules: &modules::ModuleSet,
    rootfs: Option<RootfsArchive>,
    epoch: u32,
) -> Result<FirstSegment> {
    let started = Instant::now();
    let tree = initramfs_tree(config, kernel_version, modules, rootfs)?;
    let data = compress_cpio(&tree, config.compression.initramfs, epoch)?;
    Ok(FirstSegment {
        summary: Summary::of(&data, started),
        entries: tree.len(),
        data,
    })
}

/// newc stores 32-bit mtimes; an epoch past 2106 is a configuration mistake.
fn cpio_mtime(epoch: u64) -> Result<u32> {
    u32::try_from(epoch).map_err(|_| {
        BuildError::Config(format!(
            "SOURCE_DATE_EPOCH {epoch} does not fit a cpio mtime"
        ))
    })
}

/// Append `tree` to an image as an uncompressed newc segment, numbering its inodes from
/// `first_ino`. The kernel only takes a cpio header at a 4-byte-aligned offset of the image
/// and skips the zeros before it (init/initramfs.c: `unpack_to_rootfs`).
fn append_plain_segment(
    mut image: Vec<u8>,
    tree: &Tree,
    epoch: u32,
    first_ino: u32,
) -> Result<Vec<u8>> {
    image.resize(image.len().next_multiple_of(4), 0);
    write_newc_from(tree, image, epoch, first_ino)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CompressionKind, KernelConfig, Overlay, Program, UsbConfig};
    use crate::inspect::{inspect, render};
    use crate::modules::tests::fake_tree;
    use bootkit_common::compress::Compression;

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
                shipped_modules: vec![],
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
        // Two segments: zstd, then the rootfs archive alone, uncompressed.
        let kinds: Vec<Compression> = listing.segments.iter().map(|s| s.0).collect();
        assert_eq!(kinds, [Compression::Zstd, Compression::None]);
        let second: Vec<&str> = listing.segments[1]
            .1
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(second, ["rootfs.tar.zst"]);
        assert_eq!(
            listing.segments[1].1[0].size, manifest.rootfs.digest.size,
            "the rootfs archive is stored as built, not compressed again"
        );
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
        assert!(!entries.iter().any(|e| e.name.starts_with("rootfs.tar")));
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

    /// The segments the kernel will see: where each starts, its inode numbers.
    #[test]
    fn segments_are_aligned_and_inode_numbers_unique() {
        let root = tempfile::tempdir().unwrap();
        let config = fake_image(root.path());
        let out = build_with(&config, &root.path().join("out"), &Progress::hidden()).unwrap();
        let image = fs::read(&out.initramfs).unwrap();
        let frame = zstd::zstd_safe::find_frame_compressed_size(&image).unwrap();
        let second_at = frame.next_multiple_of(4);
        assert!(image[frame..second_at].iter().all(|b| *b == 0));
        assert!(image[second_at..].starts_with(b"070701"));
        assert_eq!(image.len() % 4, 0);
        let first = zstd::stream::decode_all(&image[..frame]).unwrap();
        let mut inodes = Vec::new();
        for segment in [&first[..], &image[second_at..]] {
            let mut rest = segment;
            loop {
                let mut reader = cpio::newc::Reader::new(rest).unwrap();
                if reader.entry().is_trailer() {
                    assert!(reader.finish().unwrap().is_empty(), "data after a trailer");
                    break;
                }
                inodes.push((reader.entry().ino(), reader.entry().name().to_string()));
                std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
                rest = reader.finish().unwrap();
            }
        }
        let (last_ino, last_name) = inodes.last().unwrap().clone();
        assert_eq!(last_name, "rootfs.tar.zst");
        let numbers: Vec<u32> = inodes.iter().map(|(ino, _)| *ino).collect();
        assert_eq!(numbers, (1..=last_ino).collect::<Vec<_>>());
    }

    #[test]
    fn gzip_and_plain_compression_are_honoured() {
        use CompressionKind::{Gzip, None as Plain, Zstd};
        for (initramfs, rootfs, segments, rootfs_name) in [
            (Gzip, Plain, &[Compression::Gzip][..], "rootfs.tar"),
            (
                Gzip,
                Zstd,
                &[Compression::Gzip, Compression::None][..],
                "rootfs.tar.zst",
            ),
            (Plain, Gzip, &[Compression::None][..], "rootfs.tar.gz"),
            (Zstd, Plain, &[Compression::Zstd][..], "rootfs.tar"),
        ] {
            let root = tempfile::tempdir().unwrap();
            let mut config = fake_image(root.path());
            config.compression.initramfs = initramfs;
            config.compression.rootfs = rootfs;
            let out = build_with(&config, &root.path().join("out"), &Progress::hidden()).unwrap();
            let listing = inspect(&out.initramfs).unwrap();
            let kinds: Vec<Compression> = listing.segments.iter().map(|s| s.0).collect();
            assert_eq!(kinds, segments, "{initramfs:?} / {rootfs:?}");
            assert_eq!(
                listing.rootfs.as_ref().map(|r| r.0.as_str()),
                Some(rootfs_name)
            );
            let holding_init = &listing.segments[0].1;
            assert!(holding_init.iter().any(|e| e.name == "init"));
        }
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
    fn shipped_modules_are_in_the_image_but_not_loaded_at_boot() {
        let root = tempfile::tempdir().unwrap();
        let mut config = fake_image(root.path());
        config.kernel.shipped_modules.push("unused".into());
        let out = build_with(&config, &root.path().join("out"), &Progress::hidden()).unwrap();
        let listing = inspect(&out.initramfs).unwrap();
        let entries = &listing.segments[0].1;
        let find = |name: &str| entries.iter().find(|e| e.name == name);
        assert!(
            find("lib/modules/6.1.0-fake/kernel/drivers/unused.ko").is_some(),
            "the shipped module is in the image"
        );
        let conf = find("etc/modules-load.d/bootkit.conf").expect("the load list");
        assert_eq!(
            conf.size,
            "virtio_net\nnbd\nvirtio\n".len() as u64,
            "only the loaded modules are in the load list"
        );
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

    #[test]
    fn a_usb_section_adds_the_uki_and_the_stick() {
        use crate::uki::read_layout;
        let root = tempfile::tempdir().unwrap();
        let mut config = fake_image(root.path());
        config.cmdline = "console=ttyS0 bootkit.mode=standalone".into();
        let os_image = root.path().join("os.raw.gz");
        fs::write(&os_image, b"pretend OS image").unwrap();
        let install_config = root.path().join("install.toml");
        fs::write(&install_config, "hostname = \"edge\"\n").unwrap();
        config.usb = Some(UsbConfig {
            os_image,
            sha256_file: None,
            bmap: None,
            install_config,
        });
        let out = build_with(&config, &root.path().join("out"), &Progress::hidden()).unwrap();
        let usb = out.usb.expect("the [usb] outputs");
        assert_eq!(usb.image, root.path().join("out/usb.img"));
        let efi = fs::read(&usb.efi).unwrap();
        let layout = read_layout(&usb.efi).unwrap();
        let section = |name: &str| {
            let s = layout.section(name).unwrap();
            let start = usize::try_from(s.file_offset).unwrap();
            &efi[start..start + usize::try_from(s.virtual_size).unwrap()]
        };
        assert_eq!(
            section(".cmdline"),
            b"console=ttyS0 bootkit.mode=standalone"
        );
        assert_eq!(section(".linux"), fs::read(&out.vmlinuz).unwrap());
        assert_eq!(section(".initrd"), fs::read(&out.initramfs).unwrap());
        // The stick's ESP (partition 1, at 1 MiB) boots this UKI; the rest of its layout is
        // tested in tests/usb_image.rs.
        let copied = root.path().join("copied.efi");
        crate::tools::MCOPY
            .run(
                [
                    "-i".into(),
                    format!("{}@@1M", usb.image.display()),
                    "::/EFI/BOOT/BOOTX64.EFI".into(),
                    copied.display().to_string(),
                ],
                &[],
                "read the stick's ESP",
            )
            .unwrap();
        assert!(fs::read(&copied).unwrap() == efi);
    }
}
