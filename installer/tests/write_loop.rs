//! The write engine against real block devices: loop devices (`losetup -P`, needs root)
//! backed by files full of 0xAA garbage, as a used disk would be.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;

use bootkit_common::bmap::{self, Bmap};
use bootkit_installer::progress::Progress;
use bootkit_installer::verify::Sha256Digest;
use bootkit_installer::write::{Disk, WriteError, WriteOptions, WriteReport, write_image};
use sha2::{Digest, Sha256};

mod support;

use support::{GARBAGE, IMAGE_BYTES, LoopDevice, MIB, compressed, gpt_image, used_disk};

fn sha256_of(path: &Path) -> Sha256Digest {
    Sha256Digest(Sha256::digest(std::fs::read(path).unwrap()).into())
}

fn write(source: &Path, device: &Path, options: &WriteOptions) -> Result<WriteReport, WriteError> {
    let disk = Disk::open(device).expect("open the loop device");
    let length = std::fs::metadata(source).unwrap().len();
    let options = WriteOptions {
        source_length: Some(length),
        keep: options.keep.clone(),
        ..*options
    };
    write_image(
        File::open(source).unwrap(),
        &disk,
        &options,
        &mut Progress::hidden(),
    )
}

fn device_bytes(device: &Path) -> Vec<u8> {
    std::fs::read(device).unwrap()
}

/// No partition table left: the first and last MiB are zero and sfdisk finds no table.
fn assert_no_partition_table(device: &Path) {
    let bytes = device_bytes(device);
    let tail = bytes.len() - support::index(MIB);
    assert!(
        bytes[..support::index(MIB)].iter().all(|&b| b == 0),
        "first MiB not zeroed"
    );
    assert!(bytes[tail..].iter().all(|&b| b == 0), "last MiB not zeroed");
    let dump = Command::new("sfdisk")
        .arg("--dump")
        .arg(device)
        .output()
        .unwrap();
    assert!(
        !dump.status.success(),
        "sfdisk still finds a partition table: {}",
        String::from_utf8_lossy(&dump.stdout)
    );
}

#[test]
#[ignore = "needs root: loop devices"]
fn raw_gzip_zstd_and_xz_images_are_written_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let image = gpt_image(dir.path());
    let expected = std::fs::read(&image).unwrap();
    for format in ["raw", "gz", "zst", "xz"] {
        let source = compressed(&image, format);
        let backing = used_disk(dir.path(), IMAGE_BYTES);
        let device = LoopDevice::attach(&backing);
        let options = WriteOptions {
            expected_sha256: Some(sha256_of(&source)),
            ..Default::default()
        };
        let report = write(&source, &device.path, &options)
            .unwrap_or_else(|error| panic!("{format}: {error}"));
        assert_eq!(report.image_bytes, IMAGE_BYTES, "{format}");
        assert_eq!(
            report.compression.suffix(),
            if format == "raw" { "" } else { format }
        );
        assert!(
            device_bytes(&device.path) == expected,
            "{format}: disk differs from image"
        );
        let verify = Command::new("sgdisk")
            .arg("-v")
            .arg(&device.path)
            .output()
            .unwrap();
        let verdict = String::from_utf8_lossy(&verify.stdout);
        assert!(
            verdict.contains("No problems found"),
            "{format}: sgdisk -v: {verdict}"
        );
    }
}

#[test]
#[ignore = "needs root: loop devices"]
fn a_bmap_write_copies_only_the_mapped_ranges_and_checks_them() {
    let dir = tempfile::tempdir().unwrap();
    let image = gpt_image(dir.path());
    let bmap = Bmap::parse(&bmap::create(&image).unwrap()).unwrap();
    assert!(
        bmap.mapped_bytes() < IMAGE_BYTES / 2,
        "the test image should be sparse"
    );
    let source = compressed(&image, "zst");
    let backing = used_disk(dir.path(), 2 * IMAGE_BYTES);
    let device = LoopDevice::attach(&backing);
    let options = WriteOptions {
        expected_sha256: Some(sha256_of(&source)),
        bmap: Some(&bmap),
        ..Default::default()
    };
    let report = write(&source, &device.path, &options).unwrap();
    assert_eq!(report.ranges_verified, bmap.ranges.len());

    let expected = std::fs::read(&image).unwrap();
    let disk = device_bytes(&device.path);
    for range in bmap.byte_ranges() {
        let (start, end) = (
            support::index(range.offset),
            support::index(range.offset + range.length),
        );
        assert!(
            disk[start..end] == expected[start..end],
            "range at {start} differs"
        );
    }
    // Unmapped blocks past the held-back first MiB keep the old contents.
    let unmapped = 2 * support::index(MIB);
    assert!(
        !bmap
            .byte_ranges()
            .any(|r| r.offset <= unmapped as u64 && unmapped as u64 <= r.offset + r.length)
    );
    assert!(
        disk[unmapped..unmapped + 4096]
            .iter()
            .all(|&b| b == GARBAGE)
    );
    // The first MiB is the image's, whole.
    assert!(disk[..support::index(MIB)] == expected[..support::index(MIB)]);
}

#[test]
#[ignore = "needs root: loop devices"]
fn a_checksum_mismatch_leaves_no_partition_table() {
    let dir = tempfile::tempdir().unwrap();
    let source = compressed(&gpt_image(dir.path()), "gz");
    let device = LoopDevice::attach(&used_disk(dir.path(), 2 * IMAGE_BYTES));
    let wrong = Sha256Digest([0x5a; 32]);
    let options = WriteOptions {
        expected_sha256: Some(wrong),
        ..Default::default()
    };
    let error = write(&source, &device.path, &options).unwrap_err();
    assert!(
        matches!(error, WriteError::Sha256Mismatch { .. }),
        "{error}"
    );
    assert!(error.to_string().contains(&wrong.to_hex()), "{error}");
    assert_no_partition_table(&device.path);
    // The image's own backup GPT (at the image's end, before the disk's) is gone too.
    let disk = device_bytes(&device.path);
    let image_tail = support::index(IMAGE_BYTES - MIB)..support::index(IMAGE_BYTES);
    assert!(disk[image_tail].iter().all(|&b| b == 0));
}

#[test]
#[ignore = "needs root: loop devices"]
fn a_truncated_compressed_image_fails_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["gz", "zst", "xz"] {
        let source = compressed(&gpt_image(dir.path()), format);
        let bytes = std::fs::read(&source).unwrap();
        std::fs::write(&source, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let device = LoopDevice::attach(&used_disk(dir.path(), 2 * IMAGE_BYTES));
        let error = write(&source, &device.path, &WriteOptions::default()).unwrap_err();
        assert!(
            matches!(error, WriteError::Read { .. }),
            "{format}: {error}"
        );
        assert!(error.to_string().contains("truncated"), "{format}: {error}");
        assert_no_partition_table(&device.path);
    }
}

#[test]
#[ignore = "needs root: loop devices"]
fn an_image_larger_than_the_disk_fails_before_or_while_writing() {
    let dir = tempfile::tempdir().unwrap();
    let image = gpt_image(dir.path());
    let small = IMAGE_BYTES / 2;

    // Raw: the size is known, so nothing is written and the disk keeps what it had.
    let device = LoopDevice::attach(&used_disk(dir.path(), small));
    let error = write(&image, &device.path, &WriteOptions::default()).unwrap_err();
    assert!(matches!(error, WriteError::DiskTooSmall { .. }), "{error}");
    assert!(device_bytes(&device.path).iter().all(|&b| b == GARBAGE));
    drop(device);

    // Compressed: found out while streaming; the partial image is made unbootable.
    let source = compressed(&image, "gz");
    let device = LoopDevice::attach(&used_disk(dir.path(), small));
    let error = write(&source, &device.path, &WriteOptions::default()).unwrap_err();
    assert!(matches!(error, WriteError::DiskTooSmall { .. }), "{error}");
    assert!(
        error.to_string().contains("larger than the disk"),
        "{error}"
    );
    assert_no_partition_table(&device.path);
}

#[test]
#[ignore = "needs root: loop devices"]
fn an_image_that_does_not_match_its_bmap_fails_and_names_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let image = gpt_image(dir.path());
    let bmap = Bmap::parse(&bmap::create(&image).unwrap()).unwrap();
    // The image changes after its bmap was made: one byte in the rootfs data.
    File::options()
        .write(true)
        .open(&image)
        .unwrap()
        .write_all_at(&[0], 3 * MIB + 8192)
        .unwrap();
    let device = LoopDevice::attach(&used_disk(dir.path(), IMAGE_BYTES));
    let options = WriteOptions {
        bmap: Some(&bmap),
        ..Default::default()
    };
    let error = write(&image, &device.path, &options).unwrap_err();
    assert!(matches!(error, WriteError::RangeMismatch { .. }), "{error}");
    assert!(error.to_string().contains("bytes 3149824.."), "{error}");
    assert_no_partition_table(&device.path);
}

#[test]
#[ignore = "needs root: loop devices"]
fn an_image_for_512_byte_sectors_is_refused_on_a_4k_disk_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let image = gpt_image(dir.path());
    let device = LoopDevice::attach_with_sectors(&used_disk(dir.path(), IMAGE_BYTES), 4096);
    let error = write(&image, &device.path, &WriteOptions::default()).unwrap_err();
    assert!(
        matches!(
            error,
            WriteError::SectorLayout {
                image_sector: 512,
                disk_sector: 4096
            }
        ),
        "{error}"
    );
    assert!(device_bytes(&device.path).iter().all(|&b| b == GARBAGE));
}

#[test]
#[ignore = "needs root: loop devices"]
fn an_interrupted_write_leaves_no_partition_table() {
    let dir = tempfile::tempdir().unwrap();
    let source = compressed(&gpt_image(dir.path()), "xz");
    let device = LoopDevice::attach(&used_disk(dir.path(), IMAGE_BYTES));
    // As if SIGINT arrived at once: the write stops at its first buffer.
    let cancel = AtomicBool::new(true);
    let options = WriteOptions {
        cancel: Some(&cancel),
        ..Default::default()
    };
    let error = write(&source, &device.path, &options).unwrap_err();
    assert!(matches!(error, WriteError::Interrupted), "{error}");
    assert_no_partition_table(&device.path);
}
