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
    // SAFETY: setsid and ioctl are async-signal-safe and touch only the child's own state.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 1);
            Ok(())
        });
    }
    command.spawn()
}
