//! The install config applied to a real installed disk, and the USB data partition used for
//! real: GPT disk images made with sgdisk, ext4 filesystems made with mkfs.ext4 -d, attached
//! as loop devices, mounted by the installer, and read back with debugfs (a second opinion
//! that does not go through the installer's own mount code). Needs root.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use bootkit_installer::config;
use bootkit_installer::configure::{self, ConfigureError};
use bootkit_installer::copy_network;
use bootkit_installer::disk::partition_path;
use bootkit_installer::kargs;
use bootkit_installer::usbdata::{self, DataPartition, InstallLog};
use sha2::{Digest, Sha256};

mod support;

use support::run;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOE3HJ1I2lJEauppYxcHbbWDcN3QHj89p1BmuWQNG3IV edge@laptop";

/// A partition of a test disk image: GPT name, size in MiB (0: the rest), type code.
struct PartitionSpec {
    name: &'static str,
    size_mib: u64,
    type_code: &'static str,
}

impl PartitionSpec {
    /// An 8 MiB EFI system partition.
    fn esp(name: &'static str) -> Self {
        Self {
            name,
            size_mib: 8,
            type_code: "ef00",
        }
    }

    /// A Linux filesystem partition.
    fn linux(name: &'static str, size_mib: u64) -> Self {
        Self {
            name,
            size_mib,
            type_code: "8300",
        }
    }
}

/// Makes a 64 MiB GPT disk image with these partitions (1 MiB aligned, like sgdisk's default).
fn gpt_image(path: &Path, partitions: &[PartitionSpec]) {
    File::create(path).unwrap().set_len(64 << 20).unwrap();
    let mut args = Vec::new();
    for (index, spec) in partitions.iter().enumerate() {
        let n = index + 1;
        let size = match spec.size_mib {
            0 => "0".to_owned(),
            mib => format!("+{mib}M"),
        };
        args.push(format!("--new={n}:0:{size}"));
        args.push(format!("--typecode={n}:{}", spec.type_code));
        args.push(format!("--change-name={n}:{}", spec.name));
    }
    args.push(path.to_str().unwrap().to_owned());
    run(
        "sgdisk",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
}

/// Byte offset and length of partition `number` in a GPT disk image.
fn partition_range(image: &Path, number: u32) -> (u64, u64) {
    let gpt = gptman::GPT::find_from(&mut File::open(image).unwrap()).unwrap();
    let range = gpt.get_partition_byte_range(number).unwrap();
    (*range.start(), range.end() - range.start() + 1)
}

/// Fills partition `number` of the image with an ext4 filesystem holding `content`'s files.
fn mkfs_ext4_in(image: &Path, number: u32, label: &str, content: &Path) {
    let (offset, length) = partition_range(image, number);
    let offset = format!("offset={offset}");
    let size = format!("{}k", length / 1024);
    let (image, content) = (image.to_str().unwrap(), content.to_str().unwrap());
    run(
        "mkfs.ext4",
        &[
            "-q", "-F", "-L", label, "-E", &offset, "-d", content, image, &size,
        ],
    );
}

/// A disk image attached as a loop device, with a device node for each partition: the
/// kernel's own (`losetup -P`) when it reads partition tables, or else (a kernel without
/// CONFIG_EFI_PARTITION, like some CI VMs) a loop device over the partition's byte range with
/// its node made where the kernel would put it. Everything is detached and removed on drop.
struct LoopDisk {
    device: PathBuf,
    partition_loops: Vec<PathBuf>,
    made_nodes: Vec<PathBuf>,
}

impl LoopDisk {
    fn attach(image: &Path) -> Self {
        let image_arg = image.to_str().unwrap();
        let device = run("losetup", &["--find", "--show", "--partscan", image_arg]);
        let mut disk = Self {
            device: PathBuf::from(device.trim()),
            partition_loops: Vec::new(),
            made_nodes: Vec::new(),
        };
        let gpt = gptman::GPT::find_from(&mut File::open(image).unwrap()).unwrap();
        let numbers: Vec<u32> = gpt
            .iter()
            .filter(|(_, p)| p.is_used())
            .map(|(n, _)| n)
            .collect();
        for number in numbers {
            let node = partition_path(&disk.device, number);
            let devname = node.file_name().unwrap();
            if Path::new("/sys/class/block").join(devname).exists() {
                continue;
            }
            // A node without a kernel partition behind it was made for an earlier holder of
            // this loop device's name: stale now that the name is ours.
            let _ = std::fs::remove_file(&node);
            let (offset, length) = partition_range(image, number);
            let (offset, length) = (offset.to_string(), length.to_string());
            let args = [
                "--find",
                "--show",
                "--offset",
                &offset,
                "--sizelimit",
                &length,
                image_arg,
            ];
            let partition_loop = PathBuf::from(run("losetup", &args).trim());
            disk.partition_loops.push(partition_loop.clone());
            let rdev = std::fs::metadata(&partition_loop).unwrap().rdev();
            let (major, minor) = (libc::major(rdev), libc::minor(rdev));
            let node_arg = node.to_str().unwrap();
            run(
                "mknod",
                &[node_arg, "b", &major.to_string(), &minor.to_string()],
            );
            disk.made_nodes.push(node);
        }
        disk
    }

    fn partition(&self, number: u32) -> PathBuf {
        partition_path(&self.device, number)
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        for node in &self.made_nodes {
            let _ = std::fs::remove_file(node);
        }
        for device in self.partition_loops.iter().chain([&self.device]) {
            let _ = Command::new("losetup").arg("-d").arg(device).status();
        }
    }
}

/// A file of an ext4 filesystem as debugfs reads it.
fn debugfs_cat(device: &Path, path: &str) -> String {
    run(
        "debugfs",
        &["-R", &format!("cat {path}"), device.to_str().unwrap()],
    )
}

/// (type, permission bits, uid, gid) of a file, from debugfs's `stat`.
fn debugfs_stat(device: &Path, path: &str) -> (String, u32, u32, u32) {
    let stat = run(
        "debugfs",
        &["-R", &format!("stat {path}"), device.to_str().unwrap()],
    );
    let after = |key: &str| -> &str {
        stat.split_whitespace()
            .skip_while(|word| *word != key)
            .nth(1)
            .unwrap_or_else(|| panic!("no {key} in debugfs stat of {path}: {stat}"))
    };
    (
        after("Type:").to_owned(),
        u32::from_str_radix(after("Mode:"), 8).unwrap(),
        after("User:").parse().unwrap(),
        after("Group:").parse().unwrap(),
    )
}

fn is_mounted(device: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let device = device.to_str().unwrap();
    mounts
        .lines()
        .any(|line| line.split(' ').next() == Some(device))
}

/// The root filesystem of a minimal installed system, as mkfs.ext4 -d input.
fn minimal_system(dir: &Path) {
    let files = [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"),
        ("etc/group", "root:x:0:\nwheel:x:10:\ndocker:x:999:\n"),
        ("etc/shadow", "root:*:19000:0:99999:7:::\n"),
        ("etc/hosts", "127.0.0.1\tlocalhost\n"),
        ("usr/bin/bash", ""),
    ];
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    std::fs::set_permissions(dir.join("etc/shadow"), PermissionsExt::from_mode(0o600)).unwrap();
    // EMT is usr-merged: /bin is a symlink, which must resolve inside the installed root.
    std::os::unix::fs::symlink("usr/bin", dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("home")).unwrap();
}

fn emt_like_disk(dir: &Path) -> PathBuf {
    let image = dir.join("disk.img");
    gpt_image(
        &image,
        &[
            PartitionSpec::esp("esp"),
            PartitionSpec::linux("rootfs", 32),
            PartitionSpec::linux("edge_persistent", 0),
        ],
    );
    let system = dir.join("system");
    minimal_system(&system);
    mkfs_ext4_in(&image, 2, "rootfs", &system);
    image
}

#[test]
#[ignore = "needs root: loop devices and mounts"]
fn install_config_is_applied_to_the_rootfs_partition_of_the_installed_disk() {
    let work = tempfile::tempdir().unwrap();
    let image = emt_like_disk(work.path());
    std::fs::write(
        work.path().join("user-data"),
        "#cloud-config\nruncmd: [touch, /ok]\n",
    )
    .unwrap();
    let config_path = work.path().join("install.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"
hostname = "edge-07"
[[users]]
name = "edge"
ssh_authorized_keys = ["{KEY}"]
sudo = true
groups = ["docker"]
[proxy]
https = "http://proxy.example.com:3128"
[network]
interface = "enp1s0"
address = "10.1.2.3/16"
gateway = "10.1.0.1"
dns = ["10.1.0.53"]
[cloud_init]
user_data_file = "user-data"
"#
        ),
    )
    .unwrap();
    let config = config::load(&config_path).unwrap();
    let disk = LoopDisk::attach(&image);
    let rootfs = disk.partition(2);

    let changes = configure::configure_disk(&config, &disk.device, &[]).unwrap();
    let changed: Vec<&str> = changes.iter().map(|change| change.path.as_str()).collect();
    for expected in [
        "/etc/hostname",
        "/etc/passwd",
        "/home/edge/.ssh/authorized_keys",
    ] {
        assert!(
            changed.contains(&expected),
            "{expected} not among {changed:?}"
        );
    }
    assert!(!is_mounted(&rootfs), "the rootfs is left mounted");

    assert_eq!(debugfs_cat(&rootfs, "/etc/hostname"), "edge-07\n");
    assert_eq!(
        debugfs_cat(&rootfs, "/etc/hosts"),
        "127.0.0.1\tlocalhost\n127.0.1.1\tedge-07\n"
    );
    assert!(
        debugfs_cat(&rootfs, "/etc/passwd").ends_with("edge:x:1000:1000::/home/edge:/bin/bash\n")
    );
    let group = debugfs_cat(&rootfs, "/etc/group");
    assert!(
        group.contains("wheel:x:10:edge\n") && group.contains("docker:x:999:edge\n"),
        "{group}"
    );
    assert!(debugfs_cat(&rootfs, "/etc/shadow").contains("\nedge:*:"));
    assert_eq!(
        debugfs_stat(&rootfs, "/etc/shadow").1,
        0o600,
        "existing mode kept"
    );
    let private_dir = ("directory".to_owned(), 0o700, 1000, 1000);
    assert_eq!(debugfs_stat(&rootfs, "/home/edge"), private_dir);
    assert_eq!(debugfs_stat(&rootfs, "/home/edge/.ssh"), private_dir);
    let keys = "/home/edge/.ssh/authorized_keys";
    let private_file = ("regular".to_owned(), 0o600, 1000, 1000);
    assert_eq!(debugfs_stat(&rootfs, keys), private_file);
    assert_eq!(debugfs_cat(&rootfs, keys), format!("{KEY}\n"));
    assert!(
        debugfs_cat(&rootfs, "/etc/environment")
            .contains("HTTPS_PROXY=http://proxy.example.com:3128\n")
    );
    assert_eq!(
        debugfs_cat(&rootfs, "/etc/systemd/network/10-bootkit-static.network"),
        "# Written by bootkit-install from the install config's [network] section.\n\
         [Match]\nName=enp1s0\n\n[Network]\nAddress=10.1.2.3/16\nGateway=10.1.0.1\nDNS=10.1.0.53\n"
    );
    let seed = "/var/lib/cloud/seed/nocloud";
    assert_eq!(
        debugfs_cat(&rootfs, &format!("{seed}/user-data")),
        "#cloud-config\nruncmd: [touch, /ok]\n"
    );
    assert!(debugfs_cat(&rootfs, &format!("{seed}/meta-data")).starts_with("instance-id: "));

    let again = configure::configure_disk(&config, &disk.device, &[]).unwrap();
    assert!(again.is_empty(), "a second run changed {again:?}");
    let passwd = debugfs_cat(&rootfs, "/etc/passwd");
    assert_eq!(
        passwd.lines().filter(|l| l.starts_with("edge:")).count(),
        1,
        "{passwd}"
    );
}

#[test]
fn a_disk_without_a_root_partition_is_refused_naming_the_partitions_it_has() {
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("disk.img");
    gpt_image(
        &image,
        &[PartitionSpec::esp("esp"), PartitionSpec::linux("data", 0)],
    );
    let config = config::parse("hostname = \"edge\"", Path::new("install.toml")).unwrap();
    let error = configure::configure_disk(&config, &image, &[]).unwrap_err();
    assert!(
        matches!(error, ConfigureError::NoRootPartition { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("\"esp\"")
            && message.contains("\"data\"")
            && message.contains("rootfs_partition"),
        "{message}"
    );

    let named = config::parse(
        "hostname = \"edge\"\n[system]\nrootfs_partition = \"data\"",
        Path::new("install.toml"),
    )
    .unwrap();
    assert_eq!(
        configure::find_root_partition(&image, named.system.rootfs_partition.as_ref()).unwrap(),
        2
    );
}

/// A sysfs tree with the disk's partitions only (`block/<disk>/<partition>/`, as the shared
/// partition walk reads them), so that other loop devices on the machine (other tests, other
/// sticks) cannot interfere. Each uevent file is the kernel's own when the kernel made the
/// partition, else written in the kernel's format.
fn fake_sysfs(disk: &LoopDisk, names: &[(u32, &str)], with_partname: bool) -> tempfile::TempDir {
    let sys = tempfile::tempdir().unwrap();
    let disk_name = disk.device.file_name().unwrap();
    for &(number, name) in names {
        let node = disk.partition(number);
        let devname = node.file_name().unwrap().to_str().unwrap().to_owned();
        let real = Path::new("/sys/class/block").join(&devname).join("uevent");
        let rdev = std::fs::metadata(&node).unwrap().rdev();
        let uevent = std::fs::read_to_string(real).unwrap_or_else(|_| {
            format!(
                "MAJOR={}\nMINOR={}\nDEVNAME={devname}\nDEVTYPE=partition\nPARTN={number}\nPARTNAME={name}\n",
                libc::major(rdev),
                libc::minor(rdev)
            )
        });
        let uevent: String = uevent
            .lines()
            .filter(|line| with_partname || !line.starts_with("PARTNAME="))
            .map(|line| format!("{line}\n"))
            .collect();
        let dir = sys.path().join("block").join(disk_name).join(&devname);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("uevent"), uevent).unwrap();
        std::fs::write(dir.join("partition"), format!("{number}\n")).unwrap();
        let dev = format!("{}:{}\n", libc::major(rdev), libc::minor(rdev));
        std::fs::write(dir.join("dev"), dev).unwrap();
        for attribute in ["start", "size"] {
            std::fs::write(dir.join(attribute), "0\n").unwrap();
        }
    }
    sys
}

#[test]
#[ignore = "needs root: loop devices and mounts"]
fn usb_data_partition_is_found_its_media_discovered_and_the_log_copied_back() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&vec![0x5a; 1 << 20]).unwrap();
    let compressed = gz.finish().unwrap();
    let sha256 = hex::encode(Sha256::digest(&compressed));
    std::fs::write(data.join("emt.raw.gz"), &compressed).unwrap();
    std::fs::write(
        data.join("emt.raw.gz.sha256sum"),
        format!("{sha256}  emt.raw.gz\n"),
    )
    .unwrap();
    std::fs::write(
        data.join("emt.raw.bmap"),
        "<?xml version=\"1.0\" ?>\n<bmap version=\"2.0\"/>\n",
    )
    .unwrap();
    std::fs::write(
        data.join("install.toml"),
        "hostname = \"edge-usb\"\n[image]\nfile = \"emt.raw.gz\"\n",
    )
    .unwrap();

    let image = work.path().join("usb.img");
    gpt_image(
        &image,
        &[
            PartitionSpec::esp("ESP"),
            PartitionSpec::linux("BOOTKIT-DATA", 0),
        ],
    );
    mkfs_ext4_in(&image, 2, "BOOTKIT-DATA", &data);
    let disk = LoopDisk::attach(&image);
    let partition = disk.partition(2);
    assert!(
        std::fs::metadata(&partition)
            .unwrap()
            .file_type()
            .is_block_device()
    );

    let names = [(1, "ESP"), (2, "BOOTKIT-DATA")];
    let by_name = fake_sysfs(&disk, &names, true);
    let found = usbdata::find_data_partition(by_name.path(), Path::new("/dev")).unwrap();
    assert_eq!(found.as_deref(), Some(partition.as_path()));
    let by_label = fake_sysfs(&disk, &names, false);
    let found = usbdata::find_data_partition(by_label.path(), Path::new("/dev")).unwrap();
    assert_eq!(
        found.as_deref(),
        Some(partition.as_path()),
        "found by the ext4 label"
    );

    let log = InstallLog::create(&work.path().join("install.log")).unwrap();
    log.line("bootkit-install: writing emt.raw.gz to /dev/vda");
    let log_name = {
        let mounted = DataPartition::mount(&partition).unwrap();
        let media = mounted.media().unwrap();
        assert_eq!(media.image, mounted.path().join("emt.raw.gz"));
        assert_eq!(media.sha256.as_deref(), Some(sha256.as_str()));
        assert_eq!(media.bmap, Some(mounted.path().join("emt.raw.bmap")));
        let config = config::load(&media.config.unwrap()).unwrap();
        assert_eq!(config.image.file, Some(mounted.path().join("emt.raw.gz")));
        assert_eq!(config.hostname.unwrap().as_str(), "edge-usb");
        log.line("bootkit-install: failed: checksum mismatch");
        let saved = mounted.finish(&log).unwrap();
        let name = saved.to_str().unwrap().to_owned();
        assert!(
            name.starts_with("bootkit-install-") && name.ends_with("Z.log"),
            "{name}"
        );
        name
    };
    assert!(
        !is_mounted(&partition),
        "the data partition is left mounted"
    );

    let listing = run("debugfs", &["-R", "ls -l /", partition.to_str().unwrap()]);
    assert!(listing.contains(&log_name), "{log_name} not in {listing}");
    assert_eq!(
        debugfs_cat(&partition, &format!("/{log_name}")),
        "bootkit-install: writing emt.raw.gz to /dev/vda\nbootkit-install: failed: checksum mismatch\n"
    );
}

#[test]
#[ignore = "needs root: loop devices and mounts"]
fn kernel_arguments_and_console_go_into_the_loader_entries_in_boot() {
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("disk.img");
    // No ESP: this host's kernel may lack vfat; the ESP's entries are edited the same way
    // (kargs' unit tests edit a directory standing in for the mounted ESP).
    gpt_image(&image, &[PartitionSpec::linux("rootfs", 32)]);
    let entry = "title Edge Microvisor Toolkit\nlinux /vmlinuz\ninitrd /initrd.img\n\
                 options root=PARTLABEL=rootfs console=tty0 quiet\n";
    let system = work.path().join("system");
    minimal_system(&system);
    std::fs::create_dir_all(system.join("boot/loader/entries")).unwrap();
    std::fs::write(system.join("boot/loader/entries/grub.conf"), entry).unwrap();
    mkfs_ext4_in(&image, 1, "rootfs", &system);

    let disk = LoopDisk::attach(&image);
    let mut config = config::parse(
        "[boot]\nappend_karg = [\"intel_iommu=on\"]\ndelete_karg = [\"quiet\"]\n\
         console = [\"ttyS0,115200n8\"]\n",
        Path::new("install.toml"),
    )
    .unwrap();
    // A flag's argument is added to the config's, as --append-karg does.
    config.boot.append_karg.push("rd.debug".parse().unwrap());
    let changes = kargs::apply(&config, &disk.device, 512).unwrap();
    let changed: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        changed,
        ["/boot/loader/entries/grub.conf (kernel command line)"]
    );
    assert_eq!(
        debugfs_cat(&disk.partition(1), "/boot/loader/entries/grub.conf"),
        "title Edge Microvisor Toolkit\nlinux /vmlinuz\ninitrd /initrd.img\n\
         options root=PARTLABEL=rootfs console=ttyS0,115200n8 intel_iommu=on rd.debug\n"
    );
    // Again: nothing left to change.
    assert!(kargs::apply(&config, &disk.device, 512).unwrap().is_empty());
}

#[test]
#[ignore = "needs root: loop devices and mounts"]
fn kernel_arguments_for_an_image_without_loader_entries_are_refused_naming_where_it_looked() {
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("disk.img");
    gpt_image(&image, &[PartitionSpec::linux("rootfs", 32)]);
    let system = work.path().join("system");
    minimal_system(&system);
    mkfs_ext4_in(&image, 1, "rootfs", &system);
    let disk = LoopDisk::attach(&image);
    let config =
        config::parse("[boot]\nconsole = [\"ttyS0\"]\n", Path::new("install.toml")).unwrap();
    let message = kargs::apply(&config, &disk.device, 512)
        .unwrap_err()
        .to_string();
    for needle in [
        "looked for loader/entries/*.conf on its root filesystem (partition 1, /boot/loader/entries)",
        "UKI",
        "--console",
    ] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
}

#[test]
#[ignore = "needs root: loop devices and mounts"]
fn the_copied_network_is_written_into_the_installed_root_as_networkd_files() {
    let work = tempfile::tempdir().unwrap();
    let image = emt_like_disk(work.path());
    let disk = LoopDisk::attach(&image);
    let files = copy_network::from_running_system(
        "ip=10.0.0.5::10.0.0.1:255.255.255.0:edge:eth7:none nameserver=10.0.0.53",
        &fake_class_net(work.path()),
    )
    .unwrap();
    let config = config::parse("", Path::new("install.toml")).unwrap();
    let changes = configure::configure_disk(&config, &disk.device, &files).unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c.path == "/etc/systemd/network/20-bootkit-copied-1.network"),
        "{changes:?}"
    );
    let text = debugfs_cat(
        &disk.partition(2),
        "/etc/systemd/network/20-bootkit-copied-1.network",
    );
    assert!(
        text.contains(
            "[Match]\nMACAddress=52:54:00:12:34:57\n\n[Network]\nAddress=10.0.0.5/24\n\
             Gateway=10.0.0.1\nDNS=10.0.0.53\n"
        ),
        "{text}"
    );
    assert_eq!(
        debugfs_stat(
            &disk.partition(2),
            "/etc/systemd/network/20-bootkit-copied-1.network"
        ),
        ("regular".to_owned(), 0o644, 0, 0)
    );
}

/// A /sys/class/net with the bootkit's `eth7` at 52:54:00:12:34:57.
fn fake_class_net(dir: &Path) -> PathBuf {
    let class_net = dir.join("class-net");
    std::fs::create_dir_all(class_net.join("eth7")).unwrap();
    std::fs::write(class_net.join("eth7/address"), "52:54:00:12:34:57\n").unwrap();
    class_net
}
