//! Finding the kernel: a kernel directory, or a Debian `linux-image-*.deb` read natively.
//!
//! A .deb is an `ar` archive whose `data.tar.*` holds `boot/vmlinuz-<ver>`,
//! `boot/config-<ver>` and `lib/modules/<ver>/` (`usr/lib/modules/` on newer releases).
//! Unpacking ~70 MB of xz takes seconds, so the kernel's files are extracted once into a
//! cache directory keyed by the package's sha256 and used as a kernel directory afterwards:
//!
//! - `$BOOTKIT_KERNEL_CACHE/<sha256>/` when that variable is set, else
//! - `<directory of the .deb>/extracted/<sha256>/` (with the default config:
//!   `.cache/kernel/extracted/<sha256>/` at the repository root, next to the package).
//!
//! Extraction goes to a temporary directory renamed into place, so an interrupted build
//! never leaves a half-extracted cache entry behind.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use bootkit_common::compress;
use sha2::{Digest, Sha256};

use crate::config::KernelSource;
use crate::dirs::{dir_entries, scratch_dir_in};
use crate::error::{BuildError, Result};
use crate::progress::Progress;

/// A kernel laid out on disk, ready to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelTree {
    /// The kernel image (`boot/vmlinuz-<version>`).
    pub vmlinuz: PathBuf,
    /// `.../lib/modules/<version>`.
    pub modules_dir: PathBuf,
    /// The kernel release (`uname -r`), the name of its modules directory.
    pub version: String,
    /// The kernel's build config (`boot/config-<ver>`, `config` or `.config`), if present.
    pub config: Option<PathBuf>,
    /// Where to keep the module tree's name -> path index ([`crate::modules::select_with_index`]): set
    /// for a kernel in the package cache, whose files never change once extracted; `None`
    /// for a kernel directory of the user's, which is scanned every time.
    pub module_index: Option<PathBuf>,
}

/// The module index file in a cache entry (a dot file: not part of the kernel's files).
pub const MODULE_INDEX: &str = ".bootkit-module-index";

const DEB_HINT: &str = "run scripts/setup.sh to fetch the kernel package, or point [kernel] deb/dir at an existing kernel";

/// Open the kernel an image config names, extracting a .deb into the cache if needed.
pub fn open(source: &KernelSource, progress: &Progress) -> Result<KernelTree> {
    match source {
        KernelSource::Dir(dir) => open_dir(dir),
        KernelSource::Deb(deb) => {
            let dir = extract_deb(deb, progress)?;
            let mut tree = open_dir(&dir)?;
            tree.module_index = Some(dir.join(MODULE_INDEX));
            Ok(tree)
        }
    }
}

/// Open a kernel directory: `vmlinuz` or `boot/vmlinuz-<ver>`, plus `lib/modules/<ver>`
/// or `usr/lib/modules/<ver>`.
pub fn open_dir(dir: &Path) -> Result<KernelTree> {
    if !dir.is_dir() {
        return Err(BuildError::Missing {
            what: "kernel directory",
            path: dir.to_path_buf(),
            hint: DEB_HINT.into(),
        });
    }
    let fail = |reason: String| BuildError::Kernel {
        path: dir.to_path_buf(),
        reason,
    };
    let modules_root = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|sub| dir.join(sub))
        .find(|path| path.is_dir())
        .ok_or_else(|| fail("no lib/modules/<version>/ directory".into()))?;
    let versions = list_dirs(&modules_root)?;
    let version = match versions.as_slice() {
        [only] => only.clone(),
        [] => return Err(fail(format!("{} is empty", modules_root.display()))),
        many => {
            // Several module trees: the one with a matching boot/vmlinuz-<ver> is ours.
            let matching: Vec<&String> = many
                .iter()
                .filter(|ver| dir.join(format!("boot/vmlinuz-{ver}")).is_file())
                .collect();
            match matching.as_slice() {
                [only] => (*only).clone(),
                _ => {
                    return Err(fail(format!(
                        "several module trees ({}) and no single boot/vmlinuz-<version> to choose one",
                        many.join(", ")
                    )));
                }
            }
        }
    };
    let vmlinuz = [
        dir.join("vmlinuz"),
        dir.join(format!("boot/vmlinuz-{version}")),
    ]
    .into_iter()
    .find(|path| path.is_file())
    .ok_or_else(|| fail(format!("no vmlinuz or boot/vmlinuz-{version}")))?;
    let config = [
        dir.join(format!("boot/config-{version}")),
        dir.join("config"),
        dir.join(".config"),
    ]
    .into_iter()
    .find(|path| path.is_file());
    Ok(KernelTree {
        vmlinuz,
        modules_dir: modules_root.join(&version),
        version,
        config,
        module_index: None,
    })
}

fn list_dirs(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in dir_entries(dir)? {
        let entry = entry?;
        if entry.path().is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Where a .deb's kernel files are (or will be) extracted.
pub fn cache_root(deb: &Path) -> PathBuf {
    match std::env::var_os("BOOTKIT_KERNEL_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => deb.parent().unwrap_or(Path::new(".")).join("extracted"),
    }
}

/// Extract a kernel package into the cache (once) and return the kernel directory.
pub fn extract_deb(deb: &Path, progress: &Progress) -> Result<PathBuf> {
    if !deb.is_file() {
        return Err(BuildError::Missing {
            what: "kernel package",
            path: deb.to_path_buf(),
            hint: DEB_HINT.into(),
        });
    }
    let root = cache_root(deb);
    // Hashing 70 MB costs seconds in a debug build; a stamp named after the file's size,
    // mtime and inode remembers the digest of a package already seen.
    let stamp = root.join(".stamps").join(stat_key(deb)?);
    if let Ok(digest) = fs::read_to_string(&stamp) {
        let target = root.join(digest.trim());
        if !digest.trim().is_empty() && target.is_dir() {
            return Ok(target);
        }
    }
    let digest = sha256_file(deb, progress)?;
    let target = root.join(&digest);
    if target.is_dir() {
        write_stamp(&stamp, &digest);
        return Ok(target);
    }
    fs::create_dir_all(&root).map_err(BuildError::io(format!(
        "create kernel cache directory {}",
        root.display()
    )))?;
    let staging = scratch_dir_in(&root, ".extracting-")?;
    let task = progress.task(&format!("extracting kernel from {}", deb.display()), None);
    unpack_deb(deb, staging.path())?;
    task.finish();
    let staged = staging.keep();
    if let Err(err) = fs::rename(&staged, &target) {
        // Another build extracted the same package meanwhile: theirs is as good as ours.
        let _ = fs::remove_dir_all(&staged);
        if !target.is_dir() {
            return Err(BuildError::io(format!(
                "move kernel cache into {}",
                target.display()
            ))(err));
        }
    }
    write_stamp(&stamp, &digest);
    Ok(target)
}

fn stat_key(path: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).map_err(BuildError::io(format!("stat {}", path.display())))?;
    Ok(format!(
        "{}-{}.{}-{}",
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ino()
    ))
}

/// Best effort: without the stamp the next build just hashes the package again.
fn write_stamp(stamp: &Path, digest: &str) {
    if let Some(dir) = stamp.parent() {
        let _ = fs::create_dir_all(dir).and_then(|()| fs::write(stamp, digest));
    }
}

pub(crate) fn sha256_file(path: &Path, progress: &Progress) -> Result<String> {
    let what = || format!("read {}", path.display());
    let mut file = File::open(path).map_err(BuildError::io(what()))?;
    let size = file.metadata().map(|meta| meta.len()).ok();
    let task = progress.task(&format!("hashing {}", path.display()), size);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(BuildError::io(what()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        task.inc(n as u64);
    }
    task.finish();
    Ok(hex::encode(hasher.finalize()))
}

/// Unpack the kernel's files (vmlinuz, config, module tree) from a .deb into `dest`.
fn unpack_deb(deb: &Path, dest: &Path) -> Result<()> {
    let fail = |reason: String| BuildError::Archive {
        archive: deb.to_path_buf(),
        reason,
    };
    let file = File::open(deb).map_err(BuildError::io(format!("read {}", deb.display())))?;
    let mut archive = ar::Archive::new(BufReader::new(file));
    while let Some(entry) = archive.next_entry() {
        let entry = entry.map_err(|err| fail(format!("not a valid .deb (ar) archive: {err}")))?;
        if entry.header().identifier().starts_with(b"data.tar") {
            // Saturating: no machine has more than u32::MAX threads.
            let threads = std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
            let (_, data) = compress::parallel_decoder(BufReader::new(entry), threads)
                .map_err(|err| fail(format!("data.tar: {err}")))?;
            return unpack_kernel_files(data, dest).map_err(|err| match err {
                BuildError::Archive { reason, .. } => fail(format!("data.tar: {reason}")),
                other => other,
            });
        }
    }
    Err(fail("no data.tar member: is this a Debian package?".into()))
}

/// Whether a path inside the package belongs to the kernel we need.
fn wanted(path: &str) -> bool {
    path.starts_with("boot/vmlinuz-")
        || path.starts_with("boot/config-")
        || path.starts_with("lib/modules/")
        || path.starts_with("usr/lib/modules/")
}

fn unpack_kernel_files(data: Box<dyn Read + '_>, dest: &Path) -> Result<()> {
    let mut tar = tar::Archive::new(data);
    let bad = |reason: String| BuildError::Archive {
        archive: dest.to_path_buf(),
        reason,
    };
    let entries = tar.entries().map_err(|err| bad(err.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|err| bad(err.to_string()))?;
        let path = entry
            .path()
            .map_err(|err| bad(err.to_string()))?
            .into_owned();
        // Only plain relative components: a package must not write outside the cache.
        if path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(bad(format!("unsafe path {}", path.display())));
        }
        let relative: PathBuf = path
            .components()
            .filter(|c| *c != Component::CurDir)
            .collect();
        if !wanted(&relative.to_string_lossy()) {
            continue;
        }
        let out = dest.join(&relative);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            fs::create_dir_all(&out)
                .map_err(BuildError::io(format!("create {}", out.display())))?;
        } else if kind.is_file() {
            if let Some(parent) = out.parent() {
                fs::create_dir_all(parent)
                    .map_err(BuildError::io(format!("create {}", parent.display())))?;
            }
            let mut file =
                File::create(&out).map_err(BuildError::io(format!("create {}", out.display())))?;
            io::copy(&mut entry, &mut file)
                .map_err(BuildError::io(format!("extract {}", relative.display())))?;
        }
        // Symlinks (build/, source/ into kernel headers) are not needed to build images.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"x").unwrap();
    }

    #[test]
    fn opens_both_directory_layouts() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("vmlinuz"));
        fs::create_dir_all(dir.path().join("lib/modules/6.1.0-test")).unwrap();
        let tree = open_dir(dir.path()).unwrap();
        assert_eq!(tree.version, "6.1.0-test");
        assert_eq!(tree.vmlinuz, dir.path().join("vmlinuz"));

        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("boot/vmlinuz-6.9"));
        touch(&dir.path().join("boot/config-6.9"));
        fs::create_dir_all(dir.path().join("usr/lib/modules/6.9")).unwrap();
        fs::create_dir_all(dir.path().join("usr/lib/modules/6.8")).unwrap();
        let tree = open_dir(dir.path()).unwrap();
        assert_eq!(tree.version, "6.9");
        assert_eq!(tree.modules_dir, dir.path().join("usr/lib/modules/6.9"));
        assert_eq!(tree.config, Some(dir.path().join("boot/config-6.9")));
    }

    #[test]
    fn missing_deb_says_how_to_fetch_it() {
        let err = extract_deb(Path::new("/nonexistent/linux.deb"), &Progress::hidden())
            .expect_err("missing deb");
        assert!(err.to_string().contains("scripts/setup.sh"), "{err}");
    }

    #[test]
    fn reads_a_deb_into_the_cache_once() {
        let dir = tempfile::tempdir().unwrap();
        let deb = dir.path().join("linux-image-test.deb");
        write_fake_deb(&deb);
        let kernel_dir = extract_deb(&deb, &Progress::hidden()).unwrap();
        assert!(kernel_dir.starts_with(dir.path().join("extracted")));
        let tree = open_dir(&kernel_dir).unwrap();
        assert_eq!(tree.version, "6.1.0-t");
        assert_eq!(fs::read(&tree.vmlinuz).unwrap(), b"kernel image");
        assert!(tree.modules_dir.join("kernel/a.ko").is_file());
        assert!(!kernel_dir.join("usr/share/doc").exists());
        // Second time: served from the cache.
        assert_eq!(extract_deb(&deb, &Progress::hidden()).unwrap(), kernel_dir);
    }

    fn write_fake_deb(path: &Path) {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data) in [
            ("./boot/vmlinuz-6.1.0-t", &b"kernel image"[..]),
            ("./lib/modules/6.1.0-t/kernel/a.ko", b"module"),
            ("./usr/share/doc/x", b"doc"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            tar.append_data(&mut header, name, data).unwrap();
        }
        let data = zstd::encode_all(&tar.into_inner().unwrap()[..], 1).unwrap();
        let mut deb = ar::Builder::new(File::create(path).unwrap());
        deb.append(
            &ar::Header::new(b"debian-binary".to_vec(), 4),
            &b"2.0\n"[..],
        )
        .unwrap();
        deb.append(
            &ar::Header::new(b"data.tar.zst".to_vec(), data.len() as u64),
            &data[..],
        )
        .unwrap();
    }
}
