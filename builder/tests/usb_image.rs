//! The USB installer stick, made and customized, checked with sfdisk, sgdisk, blkid, mtools,
//! debugfs and (as root) the kernel's ext4 and the installer's own reader.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bootkit_builder::Progress;
use bootkit_builder::uki::{DEFAULT_STUB, UkiInputs, build_uki, os_release};
use bootkit_builder::usb::{UsbInputs, build_usb};
use bootkit_builder::usb_customize::{CustomizeInputs, Customized, customize_usb};
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
        fs::write(
            &install_config,
            "hostname = \"edge\"\n[disk]\nprefer = \"smallest\"\n",
        )
        .unwrap();
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

    fs::write(&inputs.install_config, "[disk]\ndevce = \"/dev/sda\"\n").unwrap();
    let err = build_usb(&inputs.usb(), &image, &Progress::hidden()).unwrap_err();
    assert!(
        err.to_string()
            .contains("my-install.toml: line 2: `disk.devce`: unknown field `devce`"),
        "{err}"
    );

    fs::write(&inputs.install_config, "").unwrap();
    fs::write(&inputs.bmap, "<bmap>").unwrap();
    let err = build_usb(&inputs.usb(), &image, &Progress::hidden()).unwrap_err();
    assert!(err.to_string().contains("os.raw.bmap"), "{err}");
    assert!(!image.exists());
}

/// `len` random bytes: an OS image that does not compress or leave holes, so takes room.
fn incompressible(len: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(len);
    fs::File::open("/dev/urandom")
        .unwrap()
        .take(len as u64)
        .read_to_end(&mut data)
        .unwrap();
    data
}

/// A second OS image of `len` bytes, `new.raw`, with its published checksum file.
fn new_os_image(dir: &Path, len: usize) -> PathBuf {
    let path = dir.join("new.raw");
    let data = incompressible(len);
    fs::write(&path, &data).unwrap();
    fs::write(
        dir.join("new.raw.sha256sum"),
        format!("{}  new.raw\n", sha256_hex(&data)),
    )
    .unwrap();
    path
}

fn customize(
    stick: &Path,
    inputs: &CustomizeInputs<'_>,
    output: Option<&Path>,
) -> Result<Customized, bootkit_builder::BuildError> {
    customize_usb(stick, inputs, output, &Progress::hidden())
}

/// What `sgdisk -p` prints for partition `number`: its line of the table.
fn sgdisk_line(image: &Path, number: u32) -> String {
    let table = run("sgdisk", &["-p", image.to_str().unwrap()]);
    table
        .lines()
        .find(|line| line.split_whitespace().next() == Some(&number.to_string()))
        .unwrap_or_else(|| panic!("no partition {number}: {table}"))
        .to_string()
}

#[test]
fn customizing_a_stick_puts_the_new_config_and_os_image_on_it_and_grows_it() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = Inputs::new(dir.path());
    let stick = dir.path().join("usb.img");
    build_usb(&inputs.usb(), &stick, &Progress::hidden()).unwrap();
    let stick_before = fs::read(&stick).unwrap();
    let config = dir.path().join("site.toml");
    fs::write(&config, "hostname = \"site-7\"\n").unwrap();
    // Larger than the data partition's free space: the image must grow.
    let os_image = new_os_image(dir.path(), 48 << 20);

    let out = dir.path().join("site-usb.img");
    let done = customize(
        &stick,
        &CustomizeInputs {
            install_config: Some(&config),
            os_image: Some(&os_image),
            ..CustomizeInputs::default()
        },
        Some(&out),
    )
    .unwrap();

    assert!(
        fs::read(&stick).unwrap() == stick_before,
        "--output must leave the stick"
    );
    assert_eq!(done.image, out);
    assert!(done.grown_by >= 16 << 20, "{done:?}");
    let mut removed = done.removed.clone();
    removed.sort();
    assert_eq!(
        removed,
        [
            "install.toml",
            "os.raw.bmap",
            "os.raw.gz",
            "os.raw.gz.sha256sum"
        ]
    );

    // The partition table, read by sgdisk: valid, the data partition grown over the new room.
    let verified = run("sgdisk", &["-v", out.to_str().unwrap()]);
    assert!(verified.contains("No problems found"), "{verified}");
    assert!(sgdisk_line(&out, 1).ends_with(USB_ESP_NAME));
    assert!(sgdisk_line(&out, 2).ends_with(USB_DATA_LABEL));
    let found = partitions(&out);
    assert_eq!(found[1].size, partitions(&stick)[1].size + done.grown_by);
    assert_eq!(
        fs::metadata(&out).unwrap().len(),
        found[1].offset + found[1].size + (1 << 20)
    );

    // The ESP is the stick's, untouched.
    let copied = dir.path().join("copied.efi");
    run(
        "mcopy",
        &[
            "-i",
            &common::mtools_image(&out, &found[0]),
            "::/EFI/BOOT/BOOTX64.EFI",
            copied.to_str().unwrap(),
        ],
    );
    assert!(fs::read(&copied).unwrap() == fs::read(&inputs.efi).unwrap());

    let listing = run("debugfs", &["-R", "ls /", &e2fs_image(&out, &found[1])]);
    assert!(
        !listing.contains("os.raw"),
        "the old image stays: {listing}"
    );
    assert_eq!(data_file(&out, "install.toml"), fs::read(&config).unwrap());
    assert!(data_file(&out, "new.raw") == fs::read(&os_image).unwrap());
    assert_eq!(
        data_file(&out, "new.raw.sha256sum"),
        fs::read(dir.path().join("new.raw.sha256sum")).unwrap()
    );
    run("e2fsck", &["-fn", &e2fs_image(&out, &found[1])]);
}

#[test]
fn a_new_install_config_alone_is_put_in_place_without_growing() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = Inputs::new(dir.path());
    let stick = dir.path().join("usb.img");
    build_usb(&inputs.usb(), &stick, &Progress::hidden()).unwrap();
    let len = fs::metadata(&stick).unwrap().len();
    let config = dir.path().join("site.toml");
    fs::write(
        &config,
        "hostname = \"site-8\"\n[disk]\nprefer = \"largest\"\n",
    )
    .unwrap();

    let done = customize(
        &stick,
        &CustomizeInputs {
            install_config: Some(&config),
            ..CustomizeInputs::default()
        },
        None,
    )
    .unwrap();

    assert_eq!(
        (done.grown_by, done.removed.as_slice()),
        (0, &["install.toml".to_string()][..])
    );
    assert_eq!(fs::metadata(&stick).unwrap().len(), len);
    assert_eq!(
        data_file(&stick, "install.toml"),
        fs::read(&config).unwrap()
    );
    assert!(data_file(&stick, "os.raw.gz") == fs::read(&inputs.os_image).unwrap());
    assert_eq!(
        data_file(&stick, "os.raw.bmap"),
        fs::read(&inputs.bmap).unwrap()
    );
}

#[test]
fn a_small_os_image_replaces_the_old_one_in_place_with_its_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = Inputs::new(dir.path());
    let stick = dir.path().join("usb.img");
    build_usb(&inputs.usb(), &stick, &Progress::hidden()).unwrap();
    let len = fs::metadata(&stick).unwrap().len();
    let os_image = new_os_image(dir.path(), 2 << 20);
    // Without a checksum file beside it, one is written from the image.
    fs::remove_file(dir.path().join("new.raw.sha256sum")).unwrap();

    let done = customize(
        &stick,
        &CustomizeInputs {
            os_image: Some(&os_image),
            ..CustomizeInputs::default()
        },
        None,
    )
    .unwrap();

    assert_eq!(done.grown_by, 0);
    assert_eq!(fs::metadata(&stick).unwrap().len(), len);
    let data = partitions(&stick).remove(1);
    let listing = run("debugfs", &["-R", "ls /", &e2fs_image(&stick, &data)]);
    assert!(
        !listing.contains("os.raw"),
        "the old image stays: {listing}"
    );
    assert!(data_file(&stick, "new.raw") == fs::read(&os_image).unwrap());
    assert_eq!(
        String::from_utf8(data_file(&stick, "new.raw.sha256sum")).unwrap(),
        format!("{}  new.raw\n", sha256_hex(&fs::read(&os_image).unwrap()))
    );
    assert_eq!(
        data_file(&stick, "install.toml"),
        fs::read(&inputs.install_config).unwrap()
    );
    run("e2fsck", &["-fn", &e2fs_image(&stick, &data)]);
}

#[test]
fn customizing_refuses_what_is_not_a_stick_and_a_broken_config() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = Inputs::new(dir.path());
    let config = &inputs.install_config;
    let just_config = CustomizeInputs {
        install_config: Some(config),
        ..CustomizeInputs::default()
    };

    let blank = dir.path().join("blank.img");
    fs::write(&blank, vec![0u8; 4 << 20]).unwrap();
    let err = customize(&blank, &just_config, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("blank.img is not a bootkit USB installer stick: looked for GPT partitions named BOOTKIT-ESP and BOOTKIT-DATA")
            && err.contains("found no GPT partition table"),
        "{err}"
    );

    let stick = dir.path().join("usb.img");
    build_usb(&inputs.usb(), &stick, &Progress::hidden()).unwrap();
    let before = fs::read(&stick).unwrap();
    fs::write(config, "[disk]\ndevce = \"/dev/sda\"\n").unwrap();
    let err = customize(&stick, &just_config, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("my-install.toml: line 2: `disk.devce`: unknown field `devce`"),
        "{err}"
    );

    let err = customize(&stick, &CustomizeInputs::default(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("give --install-config FILE, --os-image FILE, or both"),
        "{err}"
    );

    let os_image = new_os_image(dir.path(), 1 << 20);
    fs::write(
        dir.path().join("new.raw.sha256sum"),
        format!("{}  new.raw\n", "ab".repeat(32)),
    )
    .unwrap();
    let err = customize(
        &stick,
        &CustomizeInputs {
            os_image: Some(&os_image),
            ..CustomizeInputs::default()
        },
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("belongs to another image"), "{err}");
    assert!(
        fs::read(&stick).unwrap() == before,
        "a refused customization wrote the stick"
    );
}

/// A loop device of an image, detached on drop.
struct Loop(String);

impl Loop {
    fn attach(image: &Path, offset: Option<u64>) -> Loop {
        let mut args = vec!["--find", "--show", "--read-only"];
        let offset = offset.map(|offset| offset.to_string());
        if let Some(offset) = &offset {
            args.extend(["--offset", offset]);
        }
        let image = image.to_str().unwrap();
        args.push(image);
        Loop(run("losetup", &args).trim().to_string())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.0])
            .status();
    }
}

#[test]
#[ignore = "needs root: loop devices, mount"]
fn the_installer_finds_the_customized_media_and_a_device_stick_cannot_grow() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = Inputs::new(dir.path());
    let stick = dir.path().join("usb.img");
    build_usb(&inputs.usb(), &stick, &Progress::hidden()).unwrap();
    let config = dir.path().join("site.toml");
    fs::write(&config, "hostname = \"site-9\"\n").unwrap();
    let os_image = new_os_image(dir.path(), 48 << 20);
    let customized = CustomizeInputs {
        install_config: Some(&config),
        os_image: Some(&os_image),
        ..CustomizeInputs::default()
    };

    // Written to a device (a loop device here), the stick cannot grow.
    let device = Loop::attach(&stick, None);
    let err = customize(Path::new(&device.0), &customized, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the BOOTKIT-DATA partition has ")
            && err.contains(" MiB free, the files need 49 MiB: a stick on a device cannot grow"),
        "{err}"
    );
    drop(device);

    customize(&stick, &customized, None).unwrap();
    // The kernel's ext4 reads the partition, and the installer's own reader finds the media.
    let data = partitions(&stick).remove(1);
    let partition = Loop::attach(&stick, Some(data.offset));
    let mountpoint = dir.path().join("data");
    fs::create_dir(&mountpoint).unwrap();
    run(
        "mount",
        &["-o", "ro", &partition.0, mountpoint.to_str().unwrap()],
    );
    let media = bootkit_installer::usbdata::find_media(&mountpoint);
    let config_text = fs::read_to_string(mountpoint.join("install.toml"));
    run("umount", &[mountpoint.to_str().unwrap()]);
    let media = media.unwrap();
    assert_eq!(media.image, mountpoint.join("new.raw"));
    assert_eq!(
        media.sha256.as_deref(),
        Some(sha256_hex(&fs::read(&os_image).unwrap()).as_str())
    );
    assert_eq!(media.bmap, None);
    assert_eq!(media.config, Some(mountpoint.join("install.toml")));
    assert_eq!(config_text.unwrap(), "hostname = \"site-9\"\n");
}
