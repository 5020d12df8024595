//! An interactive shell on the console: the emergency shell after a fatal error, and the
//! shell of `bootkit.mode=shell`.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};

pub const SHELL: &str = "/bin/sh";

/// Whether the current root has a shell to offer.
pub fn available() -> bool {
    Path::new(SHELL).exists()
}

/// Start `/bin/sh` on the console as the leader of a new session with the console as its
/// controlling terminal, so job control and ctrl-c work in it.
pub fn spawn_on_console() -> io::Result<Child> {
    let mut command = Command::new(SHELL);
    command.arg("-l").env("PS1", "bootkit# ");
    // SAFETY: only async-signal-safe calls, touching only the child's own state.
    unsafe {
        command.pre_exec(|| {
            // PID 1 blocks the signals its supervisor waits for; the shell must not inherit that.
            crate::supervisor::reset_signals_in_child()?;
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 1);
            Ok(())
        });
    }
    command.spawn()
}
