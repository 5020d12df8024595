//! What the node does when a workflow has ended: nothing, reboot or power off.
//!
//! Two ways to ask, both honoured: the `/worker/reboot` file convention of tink's
//! workers (an action creates the file through its `/worker` mount), and an action
//! environment entry `TINK_WORKER_AFTER=reboot|poweroff`. The request is carried out
//! only after the last report of the workflow was acknowledged, and by the system's own
//! `reboot`/`poweroff` commands: in the bootkit those are the init's applets, which stop
//! the services in order, sync and unmount before the kernel reboots.

use std::io;
use std::path::Path;

pub use bootkit_common::power::PowerAction;

/// The action environment key that asks for a power action at the end of the workflow.
pub const AFTER_ENV_KEY: &str = "TINK_WORKER_AFTER";
use crate::worker_dir::REBOOT_FILE;

/// The request an action's environment (`K=V` entries) makes, if any.
pub fn requested_by_environment(environment: &[String]) -> Option<PowerAction> {
    environment.iter().find_map(|entry| {
        let value = entry.strip_prefix(AFTER_ENV_KEY)?.strip_prefix('=')?;
        match value.trim().to_ascii_lowercase().as_str() {
            "reboot" => Some(PowerAction::Reboot),
            "poweroff" | "shutdown" => Some(PowerAction::Poweroff),
            _ => None,
        }
    })
}

/// Takes the `/worker/reboot` request if an action left one: the file is removed so that
/// the request is carried out once, not again by the next boot's worker if /worker
/// survives (it does not in the bootkit, where /worker is in RAM, but it may elsewhere).
pub fn take_reboot_file(worker_dir: &Path) -> io::Result<Option<PowerAction>> {
    match std::fs::remove_file(worker_dir.join(REBOOT_FILE)) {
        Ok(()) => Ok(Some(PowerAction::Reboot)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Carries out a power action; the worker's tests use a fake that records it.
pub trait PowerControl {
    /// Starts the reboot or power off.
    fn perform(&mut self, action: PowerAction) -> io::Result<()>;
}

/// Runs the system's `reboot` or `poweroff` command.
pub struct SystemPower;

impl PowerControl for SystemPower {
    fn perform(&mut self, action: PowerAction) -> io::Result<()> {
        action.request()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|entry| entry.to_string()).collect()
    }

    #[test]
    fn environment_asks_for_reboot_or_poweroff_and_ignores_other_values() {
        assert_eq!(
            requested_by_environment(&env(&["A=1", "TINK_WORKER_AFTER=reboot"])),
            Some(PowerAction::Reboot)
        );
        assert_eq!(
            requested_by_environment(&env(&["TINK_WORKER_AFTER=poweroff"])),
            Some(PowerAction::Poweroff)
        );
        assert_eq!(
            requested_by_environment(&env(&["TINK_WORKER_AFTER=kexec"])),
            None
        );
        assert_eq!(
            requested_by_environment(&env(&["TINK_WORKER_AFTERWARDS=reboot"])),
            None
        );
    }

    #[test]
    fn reboot_file_is_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(take_reboot_file(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join(REBOOT_FILE), "").unwrap();
        assert_eq!(
            take_reboot_file(dir.path()).unwrap(),
            Some(PowerAction::Reboot)
        );
        assert_eq!(take_reboot_file(dir.path()).unwrap(), None);
    }
}
