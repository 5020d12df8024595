//! Directories: listing them with errors that name them, and scratch directories for a
//! step's intermediate files.

use std::fs::{self, DirEntry, FileType};
use std::path::Path;

use tempfile::TempDir;

use crate::error::{BuildError, Result};

/// A directory named `prefix…` inside `dir`, removed with everything in it when dropped.
/// Callers pass the output's own directory, so that finished files can be moved into place
/// with a rename, which only works within one filesystem.
pub(crate) fn scratch_dir_in(dir: &Path, prefix: &str) -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(dir)
        .map_err(BuildError::io(format!(
            "create a directory in {}",
            dir.display()
        )))
}

/// The entries of `dir`, read one by one; every error names the directory.
pub(crate) fn dir_entries(dir: &Path) -> Result<impl Iterator<Item = Result<DirEntry>> + '_> {
    let listing = fs::read_dir(dir).map_err(BuildError::io(format!("list {}", dir.display())))?;
    Ok(listing.map(move |entry| entry.map_err(BuildError::io(format!("list {}", dir.display())))))
}

/// What `entry` is (without following a symlink); the error names its path.
pub(crate) fn entry_type(entry: &DirEntry) -> Result<FileType> {
    entry
        .file_type()
        .map_err(BuildError::io(format!("stat {}", entry.path().display())))
}
