//! Asking the system to reboot or power off, through its own `reboot`/`poweroff` commands: in
//! the bootkit those are the init's applets, which stop the services in order, sync and
//! unmount; under systemd or busybox init they do the right thing there too. Signalling PID 1
//! directly would tie the callers (the installer, the worker) to one init's convention.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// What to ask the system for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// Restart the machine.
    Reboot,
    /// Turn the machine off.
    Poweroff,
}

impl PowerAction {
    /// The system command that carries it out.
    pub fn command(self) -> &'static str {
        match self {
            PowerAction::Reboot => "reboot",
            PowerAction::Poweroff => "poweroff",
        }
    }

    /// Runs the command; an error when it cannot start or exits unsuccessfully. The command
    /// gets a process group of its own: the init stops the caller's service (its whole
    /// group) as part of the very reboot the command asked for, and must not kill the
    /// command with it (it then reported "exited with signal 15" for a reboot that happened).
    pub fn request(self) -> io::Result<()> {
        let status = Command::new(self.command()).process_group(0).status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "`{}` exited with {status}",
                self.command()
            )))
        }
    }
}
