//! Reading sysfs/procfs attribute files, where "absent" and "empty" mean the same thing.

use std::path::{Path, PathBuf};

/// The trimmed text of an attribute file, or None when it is missing, unreadable or blank.
pub(crate) fn text(path: &Path) -> Option<String> {
    let raw = std::fs::read_to_string(path).ok()?;
    let trimmed = raw.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// A decimal number attribute (for example `size` or `queue/rotational`).
pub(crate) fn number(path: &Path) -> Option<u64> {
    text(path)?.parse().ok()
}

/// The entries of a directory, sorted by name so reports are stable; empty when unreadable.
pub(crate) fn entries(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(read_dir) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut entries: Vec<(String, PathBuf)> = read_dir
        .filter_map(Result::ok)
        .filter_map(|entry| Some((entry.file_name().into_string().ok()?, entry.path())))
        .collect();
    entries.sort();
    entries
}

/// The last component of a symlink's target (a `driver` link names its driver this way).
pub(crate) fn link_name(path: &Path) -> Option<String> {
    let target = std::fs::read_link(path).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// Whether a class entry (a /sys/block or /sys/class/net symlink) points into
/// /sys/devices/virtual: loop, zram, device-mapper, bridges and veths are not hardware.
pub(crate) fn is_virtual(class_entry: &Path) -> bool {
    std::fs::read_link(class_entry)
        .map(|target| target.to_string_lossy().contains("/virtual/"))
        .unwrap_or(false)
}
