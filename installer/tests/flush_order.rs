//! The order in which `bootkit-install` makes an image bootable, as strace sees the real
//! binary's system calls on a loop device: the body is flushed (fsync) before the held-back
//! first MiB (protective MBR and primary GPT) is written, and flushed again after it. Needs
//! root (loop devices) and strace.

use std::path::PathBuf;
use std::process::Command;

mod support;

use support::{IMAGE_BYTES, LoopDevice, MIB, gpt_image, used_disk};

/// One traced system call on the disk: `pwrite64` with its offset, or `fsync`.
#[derive(Debug, PartialEq)]
enum Call {
    Write { offset: u64 },
    Flush,
}

/// The calls on `device` in an `strace -y` log, in order: `-y` names each descriptor's path,
/// as in `pwrite64(3</dev/loop0>, "..."..., 1048576, 0) = 1048576`.
fn calls_on(log: &str, device: &str) -> Vec<Call> {
    let on_device = format!("<{device}>");
    log.lines()
        .filter(|line| line.contains(&on_device))
        .filter_map(|line| {
            // strace -f puts the thread id first; the call's name starts after it.
            let call = &line[line.find(|c: char| c.is_ascii_alphabetic())?..];
            if call.starts_with("fsync(") || call.starts_with("fdatasync(") {
                Some(Call::Flush)
            } else if call.starts_with("pwrite64(") {
                // The offset is the last argument: `..., length, offset) = result`.
                let arguments = call.rsplit_once(") =")?.0;
                let offset = arguments.rsplit_once(", ")?.1.trim().parse().ok()?;
                Some(Call::Write { offset })
            } else {
                None
            }
        })
        .collect()
}

#[test]
#[ignore = "needs root: writes an image to a loop device under strace"]
fn the_body_is_flushed_before_the_partition_table_is_written_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let image = gpt_image(dir.path());
    let device = LoopDevice::attach(&used_disk(dir.path(), IMAGE_BYTES));
    let log = dir.path().join("strace.log");
    let output = Command::new("strace")
        .args(["-f", "-y", "-e", "trace=pwrite64,fsync,fdatasync", "-o"])
        .arg(&log)
        .arg(PathBuf::from(env!("CARGO_BIN_EXE_bootkit-install")))
        .arg("--image")
        .arg(&image)
        .arg("--disk")
        .arg(&device.path)
        .output()
        .expect("strace runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        std::fs::read(&device.path).unwrap() == std::fs::read(&image).unwrap(),
        "the disk holds the image"
    );

    let log = std::fs::read_to_string(&log).unwrap();
    let calls = calls_on(&log, &device.path.display().to_string());
    // The head is the last write at byte 0 (the first ones zero the old partition table).
    let head = calls
        .iter()
        .rposition(|call| *call == Call::Write { offset: 0 })
        .expect("the first MiB is written");
    let last_body = calls
        .iter()
        .rposition(|call| matches!(call, Call::Write { offset } if *offset >= MIB))
        .expect("the body is written");
    assert!(
        last_body < head,
        "the body is written before the head: {calls:?}"
    );
    assert!(
        calls[last_body..head].contains(&Call::Flush),
        "a flush between the body's last write and the head: {:?}",
        &calls[last_body..]
    );
    assert!(
        calls[head..].contains(&Call::Flush),
        "a flush after the head: {:?}",
        &calls[head..]
    );
}
