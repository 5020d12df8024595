//! What can go wrong reading block devices from sysfs.

use std::io;
use std::path::PathBuf;

/// A sysfs file that could not be read, or that holds what the kernel never writes there.
#[derive(Debug, thiserror::Error)]
pub enum BlockDevError {
    /// A file or directory under sysfs could not be read (is sysfs mounted, is the device
    /// still there?).
    #[error("cannot read {}", path.display())]
    Read {
        /// The file or directory that failed.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// An attribute's text is not what the kernel writes there (a number, `MAJOR:MINOR`).
    #[error("unexpected content in {}: `{content}`", path.display())]
    Parse {
        /// The attribute file.
        path: PathBuf,
        /// Its text, trimmed.
        content: String,
    },
}
