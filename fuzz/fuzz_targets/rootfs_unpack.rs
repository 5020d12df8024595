//! Fuzzes the init's rootfs unpacker (`bootkit_init::rootfs::unpack`) with arbitrary bytes as
//! the archive: whatever they are (tar, gzip, zstd or xz by magic bytes), the unpack must end
//! in stats or an error, without a panic or a hang, and must write nothing outside its target.
//!
//! Each input is written to a file and unpacked for real into a fresh directory, on a small
//! tmpfs of its own as on a booting machine (so an archive that claims huge files ends in the
//! "no space" error rather than filling the host's disk); about 2,000 inputs a second.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// The tmpfs that every input is unpacked on: a directory holding `archive`, the target
/// directory `root` and a `canary` file beside it that no unpack may touch.
struct Scratch {
    base: PathBuf,
}

fn scratch() -> &'static Scratch {
    static SCRATCH: OnceLock<Scratch> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        let base = match private_tmpfs() {
            Ok(base) => base,
            // Without root: a plain directory of this process's own.
            Err(_) => {
                let base = std::env::temp_dir()
                    .join(format!("bootkit-fuzz-rootfs-{}", std::process::id()));
                std::fs::create_dir_all(&base).expect("create the scratch directory");
                base
            }
        };
        std::fs::write(base.join("canary"), b"untouched").expect("write the canary");
        Scratch { base }
    })
}

/// As root: a 64 MiB tmpfs like the init's new root, mounted in a mount namespace of this
/// thread's own (the thread libFuzzer runs inputs on), so that it vanishes when the process
/// ends instead of staying mounted on the host, and runs side by side cannot see each other's.
fn private_tmpfs() -> rustix::io::Result<PathBuf> {
    use rustix::mount::{MountFlags, MountPropagationFlags, mount, mount_change};
    let base = std::env::temp_dir().join("bootkit-fuzz-rootfs");
    std::fs::create_dir_all(&base).map_err(|_| rustix::io::Errno::IO)?;
    // SAFETY: unsharing the mount namespace touches no memory; it only changes which mounts
    // this thread sees, and nothing else in this process depends on the host's.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS)? };
    mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )?;
    mount(
        "tmpfs",
        &base,
        "tmpfs",
        MountFlags::empty(),
        c"size=64m,mode=0755",
    )?;
    Ok(base)
}

fn canary_untouched(base: &Path) -> bool {
    std::fs::read(base.join("canary")).is_ok_and(|content| content == b"untouched")
        && std::fs::read_dir(base).is_ok_and(|entries| entries.count() == 3)
}

fuzz_target!(|data: &[u8]| {
    let scratch = scratch();
    let archive = scratch.base.join("archive");
    let root = scratch.base.join("root");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir(&root).expect("create the target directory");
    std::fs::write(&archive, data).expect("write the archive");

    match bootkit_init::rootfs::unpack(&archive, &root) {
        Ok(stats) => {
            let _ = format!("{:?}", stats);
        }
        // The init shows errors with Display before it stops.
        Err(error) => {
            let _ = error.to_string();
        }
    }

    assert!(
        canary_untouched(&scratch.base),
        "the unpack wrote outside its target directory"
    );
    let _ = std::fs::remove_dir_all(&root);
});
