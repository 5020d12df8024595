//! Whether the firmware booted this system with Secure Boot on, read from efivarfs, for the
//! installer's log: an install that later fails to boot on a Secure Boot machine is then
//! explained by the first lines of the log.
//!
//! The UEFI global variable `SecureBoot` holds one byte, 1 when the firmware enforces
//! signatures, 0 otherwise; efivarfs shows it as 4 attribute bytes followed by that byte.

use std::fmt;
use std::io;
use std::path::Path;

use crate::efi::{GLOBAL, variable_path};

/// The firmware's Secure Boot state as far as this system can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecureBootState {
    /// `SecureBoot` is 1: the firmware only runs signed EFI binaries.
    On,
    /// `SecureBoot` is 0, or the firmware has no such variable (no Secure Boot support).
    Off,
    /// The state cannot be read; the reason says why.
    Unknown(String),
}

impl fmt::Display for SecureBootState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecureBootState::On => write!(f, "Secure Boot: on"),
            SecureBootState::Off => write!(f, "Secure Boot: off"),
            SecureBootState::Unknown(why) => write!(f, "Secure Boot: unknown ({why})"),
        }
    }
}

/// Reads `SecureBoot` from the efivarfs mounted at `efivars` (normally [`crate::efi::EFIVARS`]).
pub fn state(efivars: &Path) -> SecureBootState {
    let path = variable_path(efivars, "SecureBoot", GLOBAL);
    match std::fs::read(&path) {
        Ok(bytes) => match bytes.get(4..) {
            Some([1]) => SecureBootState::On,
            Some([0]) => SecureBootState::Off,
            _ => SecureBootState::Unknown(format!(
                "{} holds {} bytes, expected 4 attribute bytes and a 0 or 1",
                path.display(),
                bytes.len()
            )),
        },
        // The firmware exposes variables but not this one: it does not implement Secure
        // Boot. An empty directory is the sysfs mount point with efivarfs not mounted.
        Err(error) if error.kind() == io::ErrorKind::NotFound && has_entries(efivars) => {
            SecureBootState::Off
        }
        Err(error) => SecureBootState::Unknown(format!(
            "cannot read {}: {error}; booted without UEFI, or efivarfs is not mounted",
            path.display()
        )),
    }
}

fn has_entries(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_variable(bytes: &[u8]) -> SecureBootState {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(format!("SecureBoot-{GLOBAL}")), bytes).expect("write");
        state(dir.path())
    }

    #[test]
    fn reads_the_data_byte_after_the_attributes() {
        // What efivarfs shows on OVMF: attributes BOOTSERVICE_ACCESS | RUNTIME_ACCESS (6).
        assert_eq!(with_variable(&[6, 0, 0, 0, 1]), SecureBootState::On);
        assert_eq!(with_variable(&[6, 0, 0, 0, 0]), SecureBootState::Off);
        assert_eq!(
            with_variable(&[6, 0, 0, 0, 1]).to_string(),
            "Secure Boot: on"
        );
    }

    #[test]
    fn a_malformed_variable_or_missing_efivarfs_is_unknown() {
        assert!(matches!(
            with_variable(&[6, 0, 0, 0]),
            SecureBootState::Unknown(_)
        ));
        let dir = tempfile::tempdir().expect("temp dir");
        // efivarfs not mounted: its mount point is an empty directory.
        let unknown = state(dir.path()).to_string();
        assert!(
            unknown.starts_with("Secure Boot: unknown (cannot read"),
            "{unknown}"
        );
        // Mounted, other variables, no SecureBoot: firmware without Secure Boot.
        std::fs::write(
            dir.path().join(format!("BootOrder-{GLOBAL}")),
            [7, 0, 0, 0, 0, 0],
        )
        .expect("write");
        assert_eq!(state(dir.path()), SecureBootState::Off);
    }
}
