//! What the USB installer does once the install is done and its log is saved: power off or
//! reboot as the install config's `after` says (EMT Standalone always reboots).
//!
//! The request goes through the system's own `poweroff`/`reboot` commands: in the bootkit they
//! are the init's applets, which stop the services in order; under systemd or busybox init
//! they do the right thing there too. Signalling PID 1 directly would tie the installer to
//! one init's signal convention.

use std::process::Command;

use crate::config::AfterInstall;
use crate::progress::Progress;

/// Ask the init to power off or reboot; a failure is reported and leaves the machine up.
pub fn after_install(after: AfterInstall, progress: &Progress) {
    let Some(command) = command_for(after) else {
        progress.note("install done; staying up (after = \"none\")");
        return;
    };
    progress.note(&format!(
        "install done; running `{command}` (after = \"{command}\")"
    ));
    match Command::new(command).status() {
        Ok(status) if status.success() => {}
        Ok(status) => progress.note(&format!(
            "warning: `{command}` exited with {status}; power the machine down by hand"
        )),
        Err(error) => progress.note(&format!(
            "warning: cannot run `{command}`: {error}; power the machine down by hand"
        )),
    }
}

fn command_for(after: AfterInstall) -> Option<&'static str> {
    match after {
        AfterInstall::Poweroff => Some("poweroff"),
        AfterInstall::Reboot => Some("reboot"),
        AfterInstall::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_after_value_names_its_command() {
        assert_eq!(command_for(AfterInstall::Poweroff), Some("poweroff"));
        assert_eq!(command_for(AfterInstall::Reboot), Some("reboot"));
        assert_eq!(command_for(AfterInstall::None), None);
    }
}
