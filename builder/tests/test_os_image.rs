//! The EMT-like test OS image, checked with the tools a user would use: sfdisk, blkid,
//! mtools, debugfs, sha256sum, bmaptool.

mod common;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use bootkit_builder::Progress;
use bootkit_builder::test_os::{TestOsOutput, TestOsSpec, build_test_os};
use bootkit_builder::uki::{DEFAULT_STUB, read_layout};
use bootkit_common::bmap::Bmap;
use bootkit_common::compress::decode_all;
use common::{ESP_TYPE, LINUX_DATA_TYPE, Partition, ext4_cat, label, partitions, run};
use sha2::{Digest, Sha256};

const MARKER: &str = "BOOTKIT-TEST-OS: it's up";

fn spec() -> TestOsSpec {
    TestOsSpec {
        kernel_deb: common::kernel_deb(),
        busybox: "/bin/busybox".into(),
        marker: MARKER.into(),
        name: "emt-test".into(),
        stub: DEFAULT_STUB.into(),
    }
}

/// Built once for all the tests of this file.
fn image() -> &'static (tempfile::TempDir, TestOsOutput) {
    static IMAGE: OnceLock<(tempfile::TempDir, TestOsOutput)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = build_test_os(&spec(), dir.path(), &Progress::hidden()).unwrap();
        (dir, out)
    })
}

fn raw() -> &'static Path {
    &image().1.raw
}

fn partition(name: &str) -> Partition {
    partitions(raw())
        .into_iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no partition named {name}"))
}

#[test]
fn three_partitions_named_and_typed_like_emt() {
    let found = partitions(raw());
    let summary = common::names_and_types(&found);
    assert_eq!(
        summary,
        [
            ("esp", ESP_TYPE),
            ("rootfs", LINUX_DATA_TYPE),
            ("edge_persistent", LINUX_DATA_TYPE)
        ]
    );
    for p in &found {
        assert_eq!(p.offset % (1 << 20), 0, "{} not MiB aligned", p.name);
    }
    assert_eq!(label(raw(), &found[1]), "rootfs");
    assert_eq!(label(raw(), &found[2]), "edge_persistent");
    let size = fs::metadata(raw()).unwrap().len();
    assert!(
        size <= 96 << 20,
        "the test image should stay small: {size} bytes"
    );
}

#[test]
fn the_esp_holds_a_uki_that_prints_the_marker() {
    let esp = partition("esp");
    let image = common::mtools_image(raw(), &esp);
    let listing = run("mdir", &["-i", &image, "::/EFI/BOOT"]);
    assert!(listing.contains("BOOTX64  EFI"), "{listing}");
    let dir = tempfile::tempdir().unwrap();
    let uki = dir.path().join("BOOTX64.EFI");
    run(
        "mcopy",
        &[
            "-i",
            &image,
            "::/EFI/BOOT/BOOTX64.EFI",
            uki.to_str().unwrap(),
        ],
    );
    let layout = read_layout(&uki).unwrap();
    let file = fs::read(&uki).unwrap();
    let section = |name: &str| {
        let s = layout.section(name).unwrap_or_else(|| panic!("no {name}"));
        let start = usize::try_from(s.file_offset).unwrap();
        file[start..start + usize::try_from(s.virtual_size).unwrap()].to_vec()
    };
    assert_eq!(section(".cmdline"), b"console=ttyS0 quiet");
    assert!(
        String::from_utf8(section(".osrel"))
            .unwrap()
            .contains("ID=emt")
    );
    assert_eq!(&section(".linux")[0x202..0x206], b"HdrS", "not a bzImage");

    let cpio = decode_all(&section(".initrd")).unwrap();
    let entries = cpio_entries(&cpio);
    let init = &entries.iter().find(|(name, _)| name == "init").unwrap().1;
    let init = String::from_utf8_lossy(init);
    assert!(
        init.contains(r"echo 'BOOTKIT-TEST-OS: it'\''s up'"),
        "{init}"
    );
    assert!(init.contains("poweroff -f"), "{init}");
    let busybox = &entries
        .iter()
        .find(|(name, _)| name == "bin/busybox")
        .unwrap()
        .1;
    assert_eq!(busybox, &fs::read("/bin/busybox").unwrap());
    assert!(entries.iter().any(|(name, _)| name == "dev/console"));
}

fn cpio_entries(mut data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut entries = Vec::new();
    loop {
        let mut reader = cpio::newc::Reader::new(data).unwrap();
        if reader.entry().is_trailer() {
            return entries;
        }
        let name = reader.entry().name().to_string();
        let mut body = Vec::new();
        reader.read_to_end(&mut body).unwrap();
        entries.push((name, body));
        data = reader.finish().unwrap();
    }
}

#[test]
fn the_rootfs_is_an_emt_like_tree() {
    let rootfs = partition("rootfs");
    let os_release = ext4_cat(raw(), &rootfs, "/etc/os-release");
    assert!(
        os_release.contains("NAME=\"Edge Microvisor Toolkit\""),
        "{os_release}"
    );
    assert!(os_release.contains("ID=emt\n"), "{os_release}");
    assert!(ext4_cat(raw(), &rootfs, "/etc/passwd").starts_with("root:x:0:0:"));
    assert!(ext4_cat(raw(), &rootfs, "/etc/shadow").starts_with("root:"));
    assert!(ext4_cat(raw(), &rootfs, "/etc/group").starts_with("root:x:0:"));
    assert_eq!(ext4_cat(raw(), &rootfs, "/etc/hostname"), "emt-test\n");
    let fs_image = common::e2fs_image(raw(), &rootfs);
    let shadow = run("debugfs", &["-R", "stat /etc/shadow", &fs_image]);
    assert!(shadow.contains("Mode:  0600"), "{shadow}");
    let top = run("debugfs", &["-R", "ls /", &fs_image]);
    for dir in ["etc", "usr", "home", "root", "boot", "var"] {
        assert!(top.contains(dir), "no /{dir}: {top}");
    }
    // Both ext4 filesystems are clean.
    for p in [&rootfs, &partition("edge_persistent")] {
        run("e2fsck", &["-fn", &common::e2fs_image(raw(), p)]);
    }
}

#[test]
fn every_compressed_copy_is_the_raw_image_and_matches_its_checksum_file() {
    let (dir, out) = image();
    let raw_bytes = fs::read(raw()).unwrap();
    for (packed, sums) in out.compressed.iter().zip(&out.sha256sums) {
        let data = fs::read(packed).unwrap();
        assert!(
            decode_all(&data).unwrap() == raw_bytes,
            "{}",
            packed.display()
        );
        let line = fs::read_to_string(sums).unwrap();
        let name = packed.file_name().unwrap().to_string_lossy();
        assert_eq!(
            line,
            format!("{}  {name}\n", hex::encode(Sha256::digest(&data)))
        );
    }
    let names: Vec<String> = out
        .sha256sums
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "emt-test.raw.gz.sha256sum",
            "emt-test.raw.zst.sha256sum",
            "emt-test.raw.xz.sha256sum"
        ]
    );
    let mut check = std::process::Command::new("sha256sum");
    check.arg("-c").args(&names).current_dir(dir.path());
    assert!(check.status().unwrap().success(), "sha256sum -c failed");
}

#[test]
fn the_bmap_maps_every_byte_that_is_not_zero() {
    let out = &image().1;
    let bmap = Bmap::parse(&fs::read_to_string(&out.bmap).unwrap()).unwrap();
    let raw_bytes = fs::read(raw()).unwrap();
    assert_eq!(bmap.image_size, raw_bytes.len() as u64);
    let mut mapped = vec![false; raw_bytes.len()];
    for range in bmap.byte_ranges() {
        let start = usize::try_from(range.offset).unwrap();
        let end = usize::try_from(range.offset + range.length).unwrap();
        let bytes = &raw_bytes[start..end];
        assert_eq!(
            range.checksum.as_deref(),
            Some(hex::encode(Sha256::digest(bytes)).as_str())
        );
        mapped[start..end].fill(true);
    }
    let unmapped_data = raw_bytes
        .iter()
        .zip(&mapped)
        .filter(|(byte, mapped)| **byte != 0 && !**mapped)
        .count();
    assert_eq!(
        unmapped_data, 0,
        "bytes holding data outside the bmap's ranges"
    );
    // Each partition's filesystem start (superblock / boot sector) is mapped.
    for p in partitions(raw()) {
        assert!(
            mapped[usize::try_from(p.offset).unwrap()],
            "{} start not mapped",
            p.name
        );
    }
    // bmaptool itself accepts it and copies the image.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.raw");
    run(
        "bmaptool",
        &[
            "copy",
            "--bmap",
            out.bmap.to_str().unwrap(),
            raw().to_str().unwrap(),
            copy.to_str().unwrap(),
        ],
    );
    assert!(
        fs::read(&copy).unwrap() == raw_bytes,
        "bmaptool's copy differs"
    );
}

#[test]
fn the_same_inputs_give_the_same_files() {
    let first = &image().1;
    let dir = tempfile::tempdir().unwrap();
    let second = build_test_os(&spec(), dir.path(), &Progress::hidden()).unwrap();
    let files = |out: &TestOsOutput| -> Vec<PathBuf> {
        let mut files = vec![out.raw.clone(), out.bmap.clone()];
        files.extend(out.compressed.iter().cloned());
        files
    };
    for (a, b) in files(first).iter().zip(files(&second)) {
        assert!(
            fs::read(a).unwrap() == fs::read(&b).unwrap(),
            "{} differs between two builds",
            a.file_name().unwrap().to_string_lossy()
        );
    }
}

/// Kills QEMU when the test ends, however it ends.
struct Vm(std::process::Child);

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Vm {
    /// QEMU with the serial console written to `log`, booting a copy of the image (in
    /// `dir`) on a virtio disk, with `firmware` arguments in front.
    fn boot(dir: &Path, firmware: &[String], log: &Path) -> Vm {
        let disk = dir.join("disk.raw");
        fs::copy(raw(), &disk).unwrap();
        Vm(std::process::Command::new("qemu-system-x86_64")
            .args(["-m", "512", "-nographic", "-no-reboot"])
            .args(firmware)
            .arg("-drive")
            .arg(format!("file={},format=raw,if=virtio", disk.display()))
            .stdin(std::process::Stdio::null())
            .stdout(fs::File::create(log).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("install qemu-system-x86"))
    }

    /// Polls until QEMU exits or `until` holds for the console, for at most `limit`.
    /// Returns whether QEMU exited, and the console.
    fn watch(
        &mut self,
        log: &Path,
        limit: Duration,
        until: impl Fn(&str) -> bool,
    ) -> (bool, String) {
        let started = std::time::Instant::now();
        loop {
            let exited = self.0.try_wait().unwrap().is_some();
            let console = String::from_utf8_lossy(&fs::read(log).unwrap()).into_owned();
            if exited || until(&console) || started.elapsed() > limit {
                return (exited, console);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn tail(console: &str) -> &str {
    let start = console.len().saturating_sub(2000);
    console.get(start..).unwrap_or(console)
}

/// The firmware finds the UKI through the removable-media path, the kernel boots the
/// initramfs, /init prints the marker and powers off.
#[test]
fn the_image_boots_under_uefi_and_prints_its_marker() {
    const BOOT_LIMIT: Duration = Duration::from_secs(180);
    let dir = tempfile::tempdir().unwrap();
    let vars = dir.path().join("vars.fd");
    let log = dir.path().join("console.log");
    fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars).expect("install ovmf");
    let firmware = [
        "-machine".to_string(),
        "q35".into(),
        "-drive".into(),
        "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
        "-drive".into(),
        format!("if=pflash,format=raw,file={}", vars.display()),
    ];
    let mut vm = Vm::boot(dir.path(), &firmware, &log);
    let (exited, console) = vm.watch(&log, BOOT_LIMIT, |_| false);
    assert!(
        exited,
        "the VM did not power off within {BOOT_LIMIT:?}: {}",
        tail(&console)
    );
    assert!(
        console.contains(MARKER),
        "no marker on the console: {}",
        tail(&console)
    );
    assert!(console.contains("reboot: Power down"), "{}", tail(&console));
}

/// SeaBIOS runs the protective MBR's boot code, which prints the marker on COM1 and halts
/// (the VM stays up: the test stops it once the line is there).
#[test]
fn the_image_boots_under_bios_and_prints_its_marker() {
    const BOOT_LIMIT: Duration = Duration::from_secs(60);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("console.log");
    let firmware = ["-machine".to_string(), "pc".into()];
    let mut vm = Vm::boot(dir.path(), &firmware, &log);
    let line = format!("{MARKER}\r\n");
    let (exited, console) = vm.watch(&log, BOOT_LIMIT, |console| console.contains(&line));
    assert!(
        console.contains(&line),
        "no marker line on COM1 within {BOOT_LIMIT:?} (QEMU exited: {exited}): {}",
        tail(&console)
    );
    assert!(
        !exited,
        "the boot code halts, it does not reset the machine"
    );
}

#[test]
fn a_multi_line_marker_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = spec();
    bad.marker = "one\ntwo".into();
    let err = build_test_os(&bad, dir.path(), &Progress::hidden()).unwrap_err();
    assert!(err.to_string().contains("one line"), "{err}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}
