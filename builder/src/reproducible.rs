//! What keeps outputs reproducible and whole: the build's timestamp from SOURCE_DATE_EPOCH,
//! and outputs written to a temporary file and renamed into place only once complete.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{BuildError, Result};
use crate::manifest::FileDigest;

/// SOURCE_DATE_EPOCH (reproducible-builds.org), or 0.
pub fn source_date_epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.trim().is_empty() => value.trim().parse().map_err(|_| {
            BuildError::Config(format!(
                "SOURCE_DATE_EPOCH={value:?} is not a number of seconds since 1970"
            ))
        }),
        _ => Ok(0),
    }
}

/// Write a file so that it is either complete or absent: temporary file, then rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    Staged::write(path.to_path_buf(), data)?.persist()?;
    Ok(())
}

/// An output written in full (and synced) to a temporary file next to its final place,
/// waiting to be renamed there; dropped, it is deleted.
pub struct Staged {
    path: PathBuf,
    file: tempfile::NamedTempFile,
    digest: FileDigest,
}

impl Staged {
    /// Writes `data` to a temporary file beside `path` (mode 0644, synced).
    pub fn write(path: PathBuf, data: &[u8]) -> Result<Staged> {
        use std::os::unix::fs::PermissionsExt;
        let what = || format!("write {}", path.display());
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(BuildError::io(what()))?;
        file.write_all(data).map_err(BuildError::io(what()))?;
        file.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(BuildError::io(what()))?;
        file.as_file().sync_all().map_err(BuildError::io(what()))?;
        Ok(Staged {
            digest: FileDigest::of(data),
            path,
            file,
        })
    }

    /// Renames the file to its path; returns its digest.
    pub fn persist(self) -> Result<FileDigest> {
        let what = format!("write {}", self.path.display());
        self.file
            .persist(&self.path)
            .map_err(|err| BuildError::io(what)(err.error))?;
        Ok(self.digest)
    }
}
