//! Finding the rootfs archive in the initramfs and opening it as a decompressed stream.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use bootkit_common::compress::{self, Compression};
use bootkit_common::layout::ROOTFS_ARCHIVE_NAMES;

use super::RootfsError;

/// Big reads keep the decompressors and the syscall count efficient.
const READ_BUFFER: usize = 256 * 1024;

pub fn find_archive(explicit: Option<&Path>) -> Result<PathBuf, RootfsError> {
    find_archive_in(Path::new("/"), explicit)
}

/// `explicit` if given (it must exist), else the first of [`ROOTFS_ARCHIVE_NAMES`] under `base`.
pub fn find_archive_in(base: &Path, explicit: Option<&Path>) -> Result<PathBuf, RootfsError> {
    if let Some(path) = explicit {
        return check_explicit(path);
    }
    let candidates: Vec<PathBuf> = ROOTFS_ARCHIVE_NAMES
        .iter()
        .map(|name| base.join(name))
        .collect();
    match candidates.iter().find(|path| path.is_file()) {
        Some(found) => Ok(found.clone()),
        None => Err(RootfsError::ArchiveNotFound {
            looked_for: candidates,
        }),
    }
}

fn check_explicit(path: &Path) -> Result<PathBuf, RootfsError> {
    let invalid = |source| RootfsError::ExplicitArchive {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(invalid)?;
    if !metadata.is_file() {
        return Err(invalid(std::io::Error::other("it is not a regular file")));
    }
    Ok(path.to_path_buf())
}

/// An archive opened for streaming: the tar bytes, whatever the compression on disk.
pub struct OpenedArchive {
    pub format: Compression,
    /// Size of the (compressed) file on disk.
    pub size: u64,
    pub tar: Box<dyn Read>,
}

pub fn open(path: &Path) -> Result<OpenedArchive, RootfsError> {
    let fail = |source| RootfsError::OpenArchive {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(fail)?;
    let size = file.metadata().map_err(fail)?.len();
    let (format, tar) =
        compress::decoder(BufReader::with_capacity(READ_BUFFER, file)).map_err(fail)?;
    Ok(OpenedArchive { format, size, tar })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_existing_name_wins_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rootfs.tar"), b"").unwrap();
        assert_eq!(
            find_archive_in(dir.path(), None).unwrap(),
            dir.path().join("rootfs.tar")
        );
        std::fs::write(dir.path().join("rootfs.tar.zst"), b"").unwrap();
        assert_eq!(
            find_archive_in(dir.path(), None).unwrap(),
            dir.path().join("rootfs.tar.zst")
        );
        std::fs::write(dir.path().join("rootfs.tar.gz"), b"").unwrap();
        assert_eq!(
            find_archive_in(dir.path(), None).unwrap(),
            dir.path().join("rootfs.tar.gz")
        );
    }

    #[test]
    fn a_missing_archive_names_every_place_looked() {
        let dir = tempfile::tempdir().unwrap();
        let err = find_archive_in(dir.path(), None).unwrap_err().to_string();
        for name in ROOTFS_ARCHIVE_NAMES {
            assert!(
                err.contains(&dir.path().join(name).display().to_string()),
                "{err}"
            );
        }
        assert!(err.contains("bootkit.rootfs="), "{err}");
    }

    #[test]
    fn an_explicit_archive_must_exist_and_be_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("custom.tar");
        let err = find_archive_in(dir.path(), Some(&missing))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("custom.tar") && err.contains("bootkit.rootfs="),
            "{err}"
        );
        let err = find_archive_in(dir.path(), Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
        std::fs::write(&missing, b"").unwrap();
        assert_eq!(
            find_archive_in(dir.path(), Some(&missing)).unwrap(),
            missing
        );
    }

    #[test]
    fn the_format_comes_from_the_content_not_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rootfs.tar.gz");
        std::fs::write(&path, zstd::encode_all(&b"plain tar bytes"[..], 1).unwrap()).unwrap();
        let mut opened = open(&path).unwrap();
        assert_eq!(opened.format, Compression::Zstd);
        let mut content = Vec::new();
        opened.tar.read_to_end(&mut content).unwrap();
        assert_eq!(content, b"plain tar bytes");
    }
}
