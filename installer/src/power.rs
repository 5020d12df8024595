//! What the USB installer does once the install is done and its log is saved: power off or
//! reboot as the install config's `after` says (EMT Standalone always reboots), through the
//! system's own commands (`bootkit_common::power`).

use bootkit_common::power::PowerAction;

use crate::config::AfterInstall;
use crate::progress::Progress;

/// Ask the init to power off or reboot; a failure is reported and leaves the machine up.
pub fn after_install(after: AfterInstall, progress: &Progress) {
    let Some(action) = power_action(after) else {
        progress.note("install done; staying up (after = \"none\")");
        return;
    };
    let command = action.command();
    progress.note(&format!(
        "install done; running `{command}` (after = \"{command}\")"
    ));
    if let Err(error) = action.request() {
        progress.note(&format!(
            "warning: `{command}` failed: {error}; power the machine down by hand"
        ));
    }
}

fn power_action(after: AfterInstall) -> Option<PowerAction> {
    match after {
        AfterInstall::Poweroff => Some(PowerAction::Poweroff),
        AfterInstall::Reboot => Some(PowerAction::Reboot),
        AfterInstall::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_after_value_names_its_power_action() {
        assert_eq!(
            power_action(AfterInstall::Poweroff).map(PowerAction::command),
            Some("poweroff")
        );
        assert_eq!(
            power_action(AfterInstall::Reboot).map(PowerAction::command),
            Some("reboot")
        );
        assert_eq!(power_action(AfterInstall::None), None);
    }
}
