//! What the USB installer does once the install is done and its log is saved: power off,
//! reboot or start the installed system by kexec, as the install config's `after` says (EMT
//! Standalone always reboots), through the system's own commands (`bootkit_common::power`).
//!
//! For kexec the installed system's kernel is loaded before the log is saved ([`prepare`]),
//! so the log says which kernel or why none; the init's reboot then starts it instead of
//! going through the firmware (init/src/power.rs).

use bootkit_common::error_chain;
use bootkit_common::power::PowerAction;

use crate::config::AfterInstall;
use crate::kexec::{BootFiles, KexecError};
use crate::progress::Progress;

/// For `after = "kexec"`, loads the installed system's kernel with `load`; when that is
/// impossible, says why and turns the kexec into a reboot through the firmware. Other
/// values are returned as they are, without calling `load`.
pub fn prepare(
    after: AfterInstall,
    load: impl FnOnce() -> Result<BootFiles, KexecError>,
    progress: &Progress,
) -> AfterInstall {
    if after != AfterInstall::Kexec {
        return after;
    }
    match load() {
        Ok(files) => {
            progress.note(&format!(
                "kexec: loaded the installed system's kernel from {}, command line `{}`",
                files.origin, files.cmdline
            ));
            AfterInstall::Kexec
        }
        Err(error) => {
            progress.note(&format!(
                "kexec is not possible: {}; rebooting through the firmware instead",
                error_chain(&error)
            ));
            AfterInstall::Reboot
        }
    }
}

/// Ask the init to power off, reboot or kexec; a failure is reported and leaves the machine
/// up.
pub fn after_install(after: AfterInstall, progress: &Progress) {
    let Some(action) = power_action(after) else {
        progress.note("install done; staying up (after = \"none\")");
        return;
    };
    let command = action.command();
    let how = if after == AfterInstall::Kexec {
        ", which starts the loaded kernel by kexec"
    } else {
        ""
    };
    progress.note(&format!(
        "install done; running `{command}`{how} (after = \"{}\")",
        after_value(after)
    ));
    if let Err(error) = action.request() {
        progress.note(&format!(
            "warning: `{command}` failed: {error}; power the machine down by hand"
        ));
    }
}

/// A kexec is a reboot once the kernel is loaded: the init starts a loaded kernel when asked
/// to reboot.
fn power_action(after: AfterInstall) -> Option<PowerAction> {
    match after {
        AfterInstall::Poweroff => Some(PowerAction::Poweroff),
        AfterInstall::Reboot | AfterInstall::Kexec => Some(PowerAction::Reboot),
        AfterInstall::None => None,
    }
}

/// `after` as the install config spells it.
fn after_value(after: AfterInstall) -> &'static str {
    match after {
        AfterInstall::Poweroff => "poweroff",
        AfterInstall::Reboot => "reboot",
        AfterInstall::Kexec => "kexec",
        AfterInstall::None => "none",
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
        assert_eq!(
            power_action(AfterInstall::Kexec).map(PowerAction::command),
            Some("reboot")
        );
        assert_eq!(power_action(AfterInstall::None), None);
    }

    #[test]
    fn the_install_config_asks_for_kexec_by_name() {
        let config =
            crate::config::parse("after = \"kexec\"\n", std::path::Path::new("install.toml"))
                .unwrap();
        assert_eq!(config.after, AfterInstall::Kexec);
        assert_eq!(after_value(config.after), "kexec");
    }

    fn loaded() -> Result<BootFiles, KexecError> {
        Ok(BootFiles {
            origin: r"\EFI\BOOT\BOOTX64.EFI (UKI)".into(),
            kernel: b"MZ".to_vec(),
            initrd: Vec::new(),
            cmdline: "console=ttyS0".into(),
        })
    }

    #[test]
    fn kexec_stays_a_kexec_once_the_kernel_is_loaded() {
        let progress = Progress::hidden();
        assert_eq!(
            prepare(AfterInstall::Kexec, loaded, &progress),
            AfterInstall::Kexec
        );
    }

    #[test]
    fn kexec_falls_back_to_a_reboot_when_no_kernel_is_found_or_it_is_refused() {
        let progress = Progress::hidden();
        let no_kernel = || {
            Err(KexecError::NoKernel {
                loader: r"\EFI\BOOT\BOOTX64.EFI".into(),
            })
        };
        assert_eq!(
            prepare(AfterInstall::Kexec, no_kernel, &progress),
            AfterInstall::Reboot
        );
        let refused = || {
            Err(KexecError::Refused {
                origin: "systemd-boot entry emt.conf".into(),
                source: std::io::Error::from_raw_os_error(libc::EKEYREJECTED),
            })
        };
        assert_eq!(
            prepare(AfterInstall::Kexec, refused, &progress),
            AfterInstall::Reboot
        );
    }

    #[test]
    fn other_after_values_load_nothing() {
        let progress = Progress::hidden();
        for after in [
            AfterInstall::Poweroff,
            AfterInstall::Reboot,
            AfterInstall::None,
        ] {
            let load = || -> Result<BootFiles, KexecError> {
                panic!("after = {after:?} must not load a kernel")
            };
            assert_eq!(prepare(after, load, &progress), after);
        }
    }
}
