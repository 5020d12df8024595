//! Helpers shared by the installer's loop-device tests: a loop device that detaches itself,
//! a small GPT image in EMT's layout, its compressed forms, and a used disk full of garbage.

#![allow(dead_code)] // each test file uses its own subset

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const MIB: u64 = 1 << 20;
pub const IMAGE_BYTES: u64 = 8 * MIB;
pub const GARBAGE: u8 = 0xAA;

/// A byte count or offset on the disk as a slice index (panics where it does not fit a usize).
pub fn index(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap()
}

/// Runs a host tool; fails the test with its stderr if it fails; returns its stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} cannot run: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A loop device, detached when dropped (also when the test fails).
pub struct LoopDevice {
    pub path: PathBuf,
}

impl LoopDevice {
    pub fn attach(backing: &Path) -> LoopDevice {
        Self::attach_with_sectors(backing, 512)
    }

    /// A disk with `sector_size`-byte logical sectors (4096: a 4Kn disk).
    pub fn attach_with_sectors(backing: &Path, sector_size: u32) -> LoopDevice {
        let output = Command::new("losetup")
            .args(["--find", "--show", "--partscan"])
            .arg(format!("--sector-size={sector_size}"))
            .arg(backing)
            .output()
            .expect("losetup runs (util-linux)");
        assert!(
            output.status.success(),
            "losetup failed (these tests need root): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let path = String::from_utf8(output.stdout).unwrap().trim().to_string();
        LoopDevice { path: path.into() }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
    }
}

pub fn random_bytes(length: usize, seed: u64) -> Vec<u8> {
    // xorshift: incompressible enough, reproducible, no extra crate.
    let mut state = seed | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// An 8 MiB sparse GPT image in EMT's layout (esp, rootfs, edge_persistent) with random data
/// in each partition and holes between.
pub fn gpt_image(dir: &Path) -> PathBuf {
    let path = dir.join("os.raw");
    File::create(&path).unwrap().set_len(IMAGE_BYTES).unwrap();
    let status = Command::new("sgdisk")
        .args([
            "-n1:2048:+2M",
            "-t1:ef00",
            "-c1:esp",
            "-n2:0:+3M",
            "-c2:rootfs",
            "-n3:0:0",
            "-c3:edge_persistent",
        ])
        .arg(&path)
        .output()
        .expect("sgdisk runs (gdisk package)");
    assert!(
        status.status.success(),
        "sgdisk could not make the test image"
    );
    let file = File::options().write(true).open(&path).unwrap();
    for (offset, length, seed) in [
        (MIB, 300_000, 1),
        (3 * MIB + 4096, 700_000, 2),
        (6 * MIB, 65_536, 3),
    ] {
        file.write_all_at(&random_bytes(length, seed), offset)
            .unwrap();
    }
    path
}

pub fn compressed(image: &Path, format: &str) -> PathBuf {
    let data = std::fs::read(image).unwrap();
    let bytes = match format {
        "raw" => data,
        "gz" => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(&data).unwrap();
            encoder.finish().unwrap()
        }
        "zst" => zstd::encode_all(&data[..], 3).unwrap(),
        "xz" => {
            let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 1);
            encoder.write_all(&data).unwrap();
            encoder.finish().unwrap()
        }
        other => panic!("no such format {other}"),
    };
    let path = image.with_extension(format!("raw.{format}"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A file of `size` bytes of 0xAA, as a disk that held something else.
pub fn used_disk(dir: &Path, size: u64) -> PathBuf {
    let path = dir.join("disk.img");
    let file = File::create(&path).unwrap();
    let garbage = vec![GARBAGE; index(MIB)];
    for offset in (0..size).step_by(index(MIB)) {
        file.write_all_at(&garbage[..index((size - offset).min(MIB))], offset)
            .unwrap();
    }
    path
}
