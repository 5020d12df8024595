//! The USB installer stick, checked with sfdisk, blkid, mtools and debugfs.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use bootkit_builder::Progress;
use bootkit_builder::uki::{DEFAULT_STUB, UkiInputs, build_uki, os_release};
use bootkit_builder::usb::{UsbInputs, build_usb};
use bootkit_common::layout::{USB_DATA_LABEL, USB_ESP_NAME};
use common::{ESP_TYPE, LINUX_DATA_TYPE, e2fs_image, label, partitions, run};
use sha2::{Digest, Sha256};

/// A bootkit UKI, an OS image as published (.raw.gz + .sha256sum + .bmap) and an install
/// config, in `dir`.
struct Inputs {
    efi: PathBuf,
    os_image: PathBuf,
    sha256_file: PathBuf,
    bmap: PathBuf,
    install_config: PathBuf,
}

impl Inputs {
    fn new(dir: &Path) -> Inputs {
        fs::write(dir.join("vmlinuz"), vec![0x5a; 200_000]).unwrap();
        fs::write(dir.join("initramfs"), vec![0xa5; 100_000]).unwrap();
        let efi = dir.join("bootkit.efi");
        build_uki(
            &UkiInputs {
                stub: Path::new(DEFAULT_STUB),
                kernel: &dir.join("vmlinuz"),
                initrd: &dir.join("initramfs"),
                cmdline: "console=ttyS0 bootkit.mode=standalone",
                os_release: &os_release("bootkit", "bootkit", "0.1.0"),
            },
            &efi,
        )
        .unwrap();
        let raw = dir.join("os.raw");
        let mut image = vec![0u8; 3 << 20];
        image[..4096].fill(0x11);
        image[(2 << 20)..(2 << 20) + 4096].fill(0x22);
        fs::write(&raw, &image).unwrap();
        let bmap = dir.join("os.raw.bmap");
        fs::write(&bmap, bootkit_common::bmap::create(&raw).unwrap()).unwrap();
        let os_image = dir.join("os.raw.gz");
        let mut gz = flate2::write::GzEncoder::new(
            fs::File::create(&os_image).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(&image).unwrap();
        gz.finish().unwrap();
        let sha256_file = dir.join("os.raw.gz.sha256sum");
        fs::write(
            &sha256_file,
            checksum_line(&sha256_hex(&fs::read(&os_image).unwrap())),
        )
        .unwrap();
        let install_config = dir.join("my-install.toml");
        fs::write(&install_config, "[install]\ndisk = \"auto\"\n").unwrap();
        Inputs {
            efi,
            os_image,
            sha256_file,
            bmap,
            install_config,
        }
    }

    fn usb(&self) -> UsbInputs<'_> {
        UsbInputs {
            efi: &self.efi,
            os_image: &self.os_image,
            sha256_file: Some(&self.sha256_file),
            bmap: Some(&self.bmap),
            install_config: &self.install_config,
        }
    }
}

/// The line of a published checksum file for os.raw.gz, as sha256sum writes it.
fn checksum_line(digest_hex: &str) -> String {
    format!("{digest_hex}  os.raw.gz\n")
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A file of the data partition, read with debugfs.
fn data_file(image: &Path, name: &str) -> Vec<u8> {
    let data = partitions(image).remove(1);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    run(
        "debugfs",
        &[
            "-R",
            &format!("dump /{name} {}", out.display()),
            &e2fs_image(image, &data),
        ],
    );
    fs::read(&out).unwrap_or_else(|err| panic!("{name} not on the data partition: {err}"))
}

#[test]
fn the_stick_boots_the_bootkit_and_carries_the_os_image() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = Inputs::new(dir.path());
    let image = dir.path().join("usb.img");
    build_usb(&inputs.usb(), &image, &Progress::hidden()).unwrap();

    let found = partitions(&image);
    let summary = common::names_and_types(&found);
    assert_eq!(
        summary,
        [(USB_ESP_NAME, ESP_TYPE), (USB_DATA_LABEL, LINUX_DATA_TYPE)]
    );
    assert!(found.iter().all(|p| p.offset % (1 << 20) == 0));
    assert_eq!(label(&image, &found[1]), "BOOTKIT-DATA");

    let esp = common::mtools_image(&image, &found[0]);
    let listing = run("mdir", &["-i", &esp, "::/EFI/BOOT"]);
    assert!(listing.contains("BOOTX64  EFI"), "{listing}");
    let copied = dir.path().join("copied.efi");
    run(
        "mcopy",
        &[
            "-i",
            &esp,
            "::/EFI/BOOT/BOOTX64.EFI",
            copied.to_str().unwrap(),
        ],
    );
    assert!(fs::read(&copied).unwrap() == fs::read(&inputs.efi).unwrap());

    let listing = run(
        "debugfs",
        &["-R", "ls -l /", &e2fs_image(&image, &found[1])],
    );
    for name in [
        "os.raw.gz",
        "os.raw.gz.sha256sum",
        "os.raw.bmap",
        "install.toml",
    ] {
        assert!(listing.contains(name), "{name} missing: {listing}");
    }
    assert!(data_file(&image, "os.raw.gz") == fs::read(&inputs.os_image).unwrap());
    assert_eq!(
        data_file(&image, "os.raw.gz.sha256sum"),
        fs::read(&inputs.sha256_file).unwrap()
    );
    assert_eq!(
        data_file(&image, "os.raw.bmap"),
        fs::read(&inputs.bmap).unwrap()
    );
    assert_eq!(
        data_file(&image, "install.toml"),
        fs::read(&inputs.install_config).unwrap()
    );
    run("e2fsck", &["-fn", &e2fs_image(&image, &found[1])]);
}

#[test]
fn without_a_checksum_file_one_is_written_from_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = Inputs::new(dir.path());
    fs::remove_file(&inputs.sha256_file).unwrap();
    let image = dir.path().join("usb.img");
    let usb = UsbInputs {
        sha256_file: None,
        bmap: None,
        ..inputs.usb()
    };
    build_usb(&usb, &image, &Progress::hidden()).unwrap();
    let sums = String::from_utf8(data_file(&image, "os.raw.gz.sha256sum")).unwrap();
    let digest = sha256_hex(&fs::read(&inputs.os_image).unwrap());
    assert_eq!(sums, checksum_line(&digest));
    let listing = run(
        "debugfs",
        &["-R", "ls /", &e2fs_image(&image, &partitions(&image)[1])],
    );
    assert!(!listing.contains("bmap"), "{listing}");
}

#[test]
fn the_published_checksum_file_next_to_the_image_is_checked_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = Inputs::new(dir.path());
    fs::write(&inputs.sha256_file, checksum_line(&"cd".repeat(32))).unwrap();
    let usb = UsbInputs {
        sha256_file: None,
        ..inputs.usb()
    };
    let err = build_usb(&usb, &dir.path().join("usb.img"), &Progress::hidden()).unwrap_err();
    assert!(err.to_string().contains("os.raw.gz.sha256sum"), "{err}");
}

#[test]
fn a_checksum_of_another_image_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = Inputs::new(dir.path());
    fs::write(&inputs.sha256_file, checksum_line(&"ab".repeat(32))).unwrap();
    let image = dir.path().join("usb.img");
    let err = build_usb(&inputs.usb(), &image, &Progress::hidden()).unwrap_err();
    assert!(
        err.to_string().contains("belongs to another image"),
        "{err}"
    );
    assert!(!image.exists(), "a refused stick must not be written");
}

#[test]
fn missing_or_broken_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = Inputs::new(dir.path());
    let image = dir.path().join("usb.img");

    let gone = dir.path().join("nowhere.toml");
    let usb = UsbInputs {
        install_config: &gone,
        ..inputs.usb()
    };
    let err = build_usb(&usb, &image, &Progress::hidden()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("install config") && text.contains("nowhere.toml"),
        "{text}"
    );

    fs::write(&inputs.install_config, "[install\n").unwrap();
    let err = build_usb(&inputs.usb(), &image, &Progress::hidden()).unwrap_err();
    assert!(err.to_string().contains("not valid TOML"), "{err}");

    fs::write(&inputs.install_config, "").unwrap();
    fs::write(&inputs.bmap, "<bmap>").unwrap();
    let err = build_usb(&inputs.usb(), &image, &Progress::hidden()).unwrap_err();
    assert!(err.to_string().contains("os.raw.bmap"), "{err}");
    assert!(!image.exists());
}
