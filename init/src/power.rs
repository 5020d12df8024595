//! How the machine ends: power off, reboot or halt. PID 1 does the last steps itself (stop
//! stray processes, sync, unmount, reboot(2)); the `poweroff`, `reboot` and `halt` commands
//! only ask PID 1 to do them, by signal.
//!
//! A reboot starts the kernel loaded for kexec when there is one (the installer's
//! `after = "kexec"` loads the installed system's with `kexec_file_load`), and goes through
//! the firmware when there is none or it cannot start: loading a kernel is the request, as
//! with Debian's kexec-tools and GNU Shepherd's `reboot --kexec`, so every way of asking for
//! a reboot (the command, the workflow's end, busybox's `reboot`) asks for the same thing.

use std::fs;
use std::thread;
use std::time::Duration;

use nix::sys::reboot::{RebootMode, reboot};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, sync};

/// What the user (or a fatal error) asked the machine to do at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Poweroff,
    Reboot,
    Halt,
}

impl PowerAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerAction::Poweroff => "poweroff",
            PowerAction::Reboot => "reboot",
            PowerAction::Halt => "halt",
        }
    }

    /// The command name that asks for this action (`poweroff`, `reboot`, `halt`).
    pub fn from_command(name: &str) -> Option<PowerAction> {
        match name {
            "poweroff" => Some(PowerAction::Poweroff),
            "reboot" => Some(PowerAction::Reboot),
            "halt" => Some(PowerAction::Halt),
            _ => None,
        }
    }

    /// The signal that asks PID 1 for this action: busybox init's convention (SIGUSR2
    /// poweroff, SIGTERM reboot, SIGUSR1 halt), so that busybox's own `poweroff`, `reboot` and
    /// `halt` in a rootfs ask for the same thing as ours.
    pub fn signal(self) -> Signal {
        match self {
            PowerAction::Poweroff => Signal::SIGUSR2,
            PowerAction::Reboot => Signal::SIGTERM,
            PowerAction::Halt => Signal::SIGUSR1,
        }
    }

    /// The reboot(2) modes to try, in order: the kexec kernel first when one is loaded,
    /// then the firmware, so a kernel that cannot start still leaves a rebooting machine.
    fn reboot_modes(self, kexec_loaded: bool) -> &'static [RebootMode] {
        match self {
            PowerAction::Poweroff => &[RebootMode::RB_POWER_OFF],
            PowerAction::Reboot if kexec_loaded => &[RebootMode::RB_KEXEC, RebootMode::RB_AUTOBOOT],
            PowerAction::Reboot => &[RebootMode::RB_AUTOBOOT],
            PowerAction::Halt => &[RebootMode::RB_HALT_SYSTEM],
        }
    }
}

/// "1" while a kernel is loaded for kexec (by `kexec_file_load` or `kexec -l`).
const KEXEC_LOADED: &str = "/sys/kernel/kexec_loaded";

fn kexec_loaded() -> bool {
    fs::read_to_string(KEXEC_LOADED).is_ok_and(|text| text.trim() == "1")
}

/// What the console says just before reboot(2) in this mode.
fn describe(action: PowerAction, mode: RebootMode) -> &'static str {
    if mode == RebootMode::RB_KEXEC {
        "reboot: starting the kernel loaded for kexec"
    } else {
        action.as_str()
    }
}

/// Time stray processes get between SIGTERM and SIGKILL at the very end.
const STRAY_GRACE: Duration = Duration::from_millis(500);

/// Let ctrl-alt-del reach PID 1 as SIGINT instead of resetting the machine at once.
pub fn disable_ctrl_alt_del() {
    if let Err(err) = nix::sys::reboot::set_cad_enabled(false) {
        crate::warn!("init", "cannot disable the ctrl-alt-del reset: {err}");
    }
}

/// The end of PID 1: stop whatever still runs, sync, unmount, and power off, reboot or halt.
/// Never returns: if the kernel refuses, PID 1 waits forever rather than exit (an exiting
/// PID 1 is a kernel panic).
pub fn finish(action: PowerAction) -> ! {
    crate::info!(
        "bootkit",
        "{}: stopping remaining processes",
        action.as_str()
    );
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    thread::sleep(STRAY_GRACE);
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    sync();
    // Read while /sys is still mounted.
    let modes = action.reboot_modes(kexec_loaded());
    unmount_all();
    sync();
    for &mode in modes {
        let what = describe(action, mode);
        crate::info!("bootkit", "{what}");
        let Err(err) = reboot(mode);
        crate::error!("bootkit", "the kernel refused ({what}): {err}");
    }
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

/// Unmount everything but the root, deepest first. Failures do not matter at this point (the
/// data is synced and the filesystems are in RAM), so busy mounts are detached.
fn unmount_all() {
    let Ok(mounts) = fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let mut targets: Vec<&str> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter(|target| *target != "/")
        .collect();
    targets.reverse();
    for target in targets {
        let target = target.replace("\\040", " ");
        let _ = rustix::mount::unmount(target.as_str(), rustix::mount::UnmountFlags::DETACH);
    }
}

/// The `poweroff` / `reboot` / `halt` commands: ask PID 1, or with `-f` do it at once.
pub fn request(action: PowerAction, args: &[String]) -> i32 {
    let force = args.iter().any(|arg| arg == "-f" || arg == "--force");
    if let Some(unknown) = args
        .iter()
        .find(|arg| !matches!(arg.as_str(), "-f" | "--force"))
    {
        eprintln!(
            "{}: unknown option {unknown}; usage: {} [-f]",
            action.as_str(),
            action.as_str()
        );
        return 2;
    }
    if force {
        sync();
        for &mode in action.reboot_modes(kexec_loaded()) {
            let Err(err) = reboot(mode);
            eprintln!(
                "{}: the kernel refused: {err} (are you root?)",
                describe(action, mode)
            );
        }
        return 1;
    }
    match kill(Pid::from_raw(1), action.signal()) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!(
                "{}: cannot signal PID 1: {err} (are you root? use -f to {} without the init)",
                action.as_str(),
                action.as_str()
            );
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_command_has_its_own_signal() {
        let actions =
            ["poweroff", "reboot", "halt"].map(|name| PowerAction::from_command(name).unwrap());
        assert_eq!(
            actions.map(PowerAction::signal),
            [Signal::SIGUSR2, Signal::SIGTERM, Signal::SIGUSR1]
        );
        assert_eq!(PowerAction::from_command("shutdown"), None);
    }

    #[test]
    fn a_reboot_starts_a_loaded_kexec_kernel_and_falls_back_to_the_firmware() {
        assert_eq!(
            PowerAction::Reboot.reboot_modes(true),
            [RebootMode::RB_KEXEC, RebootMode::RB_AUTOBOOT]
        );
        assert_eq!(
            PowerAction::Reboot.reboot_modes(false),
            [RebootMode::RB_AUTOBOOT]
        );
        // Powering off or halting never starts another kernel.
        assert_eq!(
            PowerAction::Poweroff.reboot_modes(true),
            [RebootMode::RB_POWER_OFF]
        );
        assert_eq!(
            PowerAction::Halt.reboot_modes(true),
            [RebootMode::RB_HALT_SYSTEM]
        );
    }

    #[test]
    fn unknown_options_are_refused_before_anything_happens() {
        assert_eq!(request(PowerAction::Poweroff, &["--now".to_string()]), 2);
    }
}
