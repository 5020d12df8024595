//! Reading sysfs attribute files: optional ones (which vary by driver) and the ones the kernel
//! writes for every block device.

use std::fs;
use std::path::Path;
use std::str::FromStr;

use super::BlockDevError;

/// An attribute, trimmed; `None` when absent or empty (attributes vary by driver).
pub(super) fn optional(dir: &Path, relative: &str) -> Option<String> {
    let text = fs::read_to_string(dir.join(relative)).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// An attribute every block device has: its absence is an error.
pub(super) fn required(dir: &Path, relative: &str) -> Result<String, BlockDevError> {
    let path = dir.join(relative);
    fs::read_to_string(&path)
        .map(|text| text.trim().to_string())
        .map_err(|source| BlockDevError::Read { path, source })
}

/// A decimal attribute every block device has (`size`, `queue/logical_block_size`).
pub(super) fn number<T: FromStr>(dir: &Path, relative: &str) -> Result<T, BlockDevError> {
    let text = required(dir, relative)?;
    text.parse().map_err(|_| BlockDevError::Parse {
        path: dir.join(relative),
        content: text,
    })
}

/// A `0`/`1` attribute every block device has (`removable`, `ro`).
pub(super) fn flag(dir: &Path, relative: &str) -> Result<bool, BlockDevError> {
    Ok(number::<u8>(dir, relative)? != 0)
}

/// `MAJOR:MINOR` from the `dev` attribute of a disk or partition directory.
pub(super) fn device_number(dir: &Path) -> Result<(u32, u32), BlockDevError> {
    let text = required(dir, "dev")?;
    text.split_once(':')
        .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)))
        .ok_or(BlockDevError::Parse {
            path: dir.join("dev"),
            content: text,
        })
}

/// The last component of a symlink's target: `device/subsystem` names the bus this way.
pub(super) fn link_name(path: &Path) -> Option<String> {
    let target = fs::read_link(path).ok()?;
    Some(target.file_name()?.to_str()?.to_string())
}
