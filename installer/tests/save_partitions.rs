//! Partitions kept across a reinstall (`--save-partlabel`, `--save-partindex`, and the install
//! config's `[disk] save_partlabel`), `--preserve-on-error` and the positional destination,
//! checked on a loop device with sgdisk (gdisk) and sfdisk (util-linux), not with our own GPT
//! reader. Needs root (loop devices).

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;

use support::{IMAGE_BYTES, LoopDevice, MIB, compressed, gpt_image, index, random_bytes};

const DISK_BYTES: u64 = 32 * MIB;
/// The kept partition: sectors 40960..=57343 (20 MiB to 28 MiB), after the 8 MiB image.
const KEPT_START: u64 = 20 * MIB;
const KEPT_BYTES: u64 = 8 * MIB;

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bootkit-install"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn install(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .output()
        .expect("the installer runs")
}

/// A disk that held an earlier install: its own partitions and `edge_data` (number 5) at
/// 20 MiB with data that must survive; returns the data.
fn previously_installed_disk(dir: &Path, kept_start: u64) -> (PathBuf, Vec<u8>) {
    let path = dir.join("disk.img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(DISK_BYTES)
        .unwrap();
    let start = kept_start / 512;
    let end = start + KEPT_BYTES / 512 - 1;
    support::run(
        "sgdisk",
        &[
            "-n1:2048:+2M",
            "-t1:ef00",
            "-c1:old_esp",
            // Room for the old root before a kept partition at 4 MiB too.
            if kept_start >= 10 * MIB {
                "-n2:0:+6M"
            } else {
                "-n2:0:+1M"
            },
            "-c2:old_root",
            &format!("-n5:{start}:{end}"),
            "-c5:edge_data",
            path.to_str().unwrap(),
        ],
    );
    let data = random_bytes(index(KEPT_BYTES), 99);
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.write_all_at(&data, kept_start).unwrap();
    (path, data)
}

/// `sfdisk --dump` of the disk: one line per partition, with start, size and name.
fn sfdisk_lines(device: &Path) -> Vec<String> {
    support::run("sfdisk", &["--dump", device.to_str().unwrap()])
        .lines()
        .filter(|line| line.starts_with('/'))
        .map(str::to_string)
        .collect()
}

fn kept_data(device: &Path, start: u64) -> Vec<u8> {
    let disk = std::fs::read(device).unwrap();
    disk[index(start)..index(start + KEPT_BYTES)].to_vec()
}

#[test]
#[ignore = "needs root: writes images to loop devices"]
fn a_partition_kept_by_label_or_index_survives_the_install() {
    let dir = tempfile::tempdir().unwrap();
    let raw = gpt_image(dir.path());
    let image = compressed(&raw, "gz");
    for keep in [
        vec!["--save-partlabel", "edge_d*"],
        vec!["--save-partindex", "4-5"],
    ] {
        let (disk, data) = previously_installed_disk(dir.path(), KEPT_START);
        let device = LoopDevice::attach(&disk);
        let mut args = vec!["--image", image.to_str().unwrap()];
        args.extend(&keep);
        // The destination as coreos-installer takes it: positional.
        args.push(device.path.to_str().unwrap());
        let output = install(&args);
        let stderr = text(&output.stderr);
        assert!(output.status.success(), "{keep:?}: {stderr}");
        assert!(stderr.contains("kept partition 5 (edge_data)"), "{stderr}");

        let sgdisk = support::run("sgdisk", &["-p", device.path.to_str().unwrap()]);
        for name in ["esp", "rootfs", "edge_persistent", "edge_data"] {
            assert!(sgdisk.contains(name), "{keep:?}: {sgdisk}");
        }
        assert!(!sgdisk.contains("old_root"), "{sgdisk}");
        let lines = sfdisk_lines(&device.path);
        let kept = lines
            .iter()
            .find(|line| line.contains("name=\"edge_data\""))
            .unwrap_or_else(|| panic!("{lines:?}"));
        assert!(
            kept.contains("start=       40960, size=       16384"),
            "the kept partition moved: {kept}"
        );
        assert!(kept.contains("p5 :"), "{kept}");
        // sgdisk's own check of both headers and the entries.
        let verify = support::run("sgdisk", &["-v", device.path.to_str().unwrap()]);
        assert!(verify.contains("No problems found"), "{verify}");
        assert!(
            kept_data(&device.path, KEPT_START) == data,
            "kept data changed"
        );
        // The image's body (its tables are rewritten: the kept entry, the moved backup).
        let body = index(MIB)..index(IMAGE_BYTES - MIB);
        let disk_bytes = std::fs::read(&device.path).unwrap();
        assert!(disk_bytes[body.clone()] == std::fs::read(&raw).unwrap()[body]);
    }
}

#[test]
#[ignore = "needs root: writes images to loop devices"]
fn the_install_config_keeps_partitions_and_preserve_on_error_leaves_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let image = compressed(&gpt_image(dir.path()), "gz");
    let (disk, data) = previously_installed_disk(dir.path(), KEPT_START);
    let device = LoopDevice::attach(&disk);
    let config = dir.path().join("install.toml");
    std::fs::write(&config, "[disk]\nsave_partlabel = [\"edge_data\"]\n").unwrap();
    let output = install(&[
        "--image",
        image.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--disk",
        device.path.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        sfdisk_lines(&device.path)
            .iter()
            .any(|line| line.contains("start=       40960") && line.contains("edge_data"))
    );
    assert!(kept_data(&device.path, KEPT_START) == data);

    // A wrong checksum: by default the image's last MiB (its backup GPT) is cleared with
    // the disk's first and last MiB; with --preserve-on-error it stays for a look.
    let raw = std::fs::read(dir.path().join("os.raw")).unwrap();
    let image_tail = index(IMAGE_BYTES - MIB)..index(IMAGE_BYTES);
    for (preserve, kept) in [(false, false), (true, true)] {
        let mut args = vec![
            "--image",
            image.to_str().unwrap(),
            "--sha256",
            "0000000000000000000000000000000000000000000000000000000000000000",
            device.path.to_str().unwrap(),
        ];
        if preserve {
            args.push("--preserve-on-error");
        }
        let output = install(&args);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
        let written = std::fs::read(&device.path).unwrap();
        assert_eq!(
            written[image_tail.clone()] == raw[image_tail.clone()],
            kept,
            "--preserve-on-error {preserve}"
        );
        assert!(
            written[index(MIB)..index(IMAGE_BYTES - MIB)]
                == raw[index(MIB)..index(IMAGE_BYTES - MIB)]
        );
    }
}

#[test]
#[ignore = "needs root: writes images to loop devices"]
fn a_write_failing_part_way_leaves_the_kept_partition_in_a_table_tools_and_the_kernel_read() {
    let dir = tempfile::tempdir().unwrap();
    let image = std::fs::read(compressed(&gpt_image(dir.path()), "gz")).unwrap();
    // The stream ends inside the image's last data: its first 4 MiB chunk is on the disk
    // when reading the next one fails.
    let cut = dir.path().join("cut.raw.gz");
    std::fs::write(&cut, &image[..image.len() * 95 / 100]).unwrap();
    let (disk, data) = previously_installed_disk(dir.path(), KEPT_START);
    let device = LoopDevice::attach(&disk);
    let output = install(&[
        "--image",
        cut.to_str().unwrap(),
        "--save-partlabel",
        "edge_data",
        device.path.to_str().unwrap(),
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("kept partition 5 (edge_data) in a new partition table"),
        "{stderr}"
    );

    // sfdisk (libfdisk) accepts a GPT only behind a protective MBR, as the kernel does.
    let lines = sfdisk_lines(&device.path);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("p5 :")
            && lines[0].contains("start=       40960, size=       16384")
            && lines[0].contains("name=\"edge_data\""),
        "{lines:?}"
    );
    let verify = support::run("sgdisk", &["-v", device.path.to_str().unwrap()]);
    assert!(verify.contains("No problems found"), "{verify}");
    let name = device.path.file_name().unwrap().to_str().unwrap();
    assert!(
        Path::new(&format!("/sys/block/{name}/{name}p5")).exists(),
        "the kernel did not find partition 5 of {name}"
    );
    assert!(
        kept_data(&device.path, KEPT_START) == data,
        "kept data changed"
    );
}
