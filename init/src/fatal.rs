//! A fatal error is never a kernel panic: it is printed as one clear message (what failed, the
//! cause, what to check), and then `bootkit.on_error` decides what happens.

use std::fmt;
use std::thread;
use std::time::Duration;

use crate::cmdline::OnError;
use crate::power::{self, PowerAction};
use crate::shell;

/// An error the boot cannot go on from.
#[derive(Debug, Clone)]
pub struct Fatal {
    /// What failed, e.g. "cannot unpack the rootfs archive /rootfs.tar.gz".
    pub what: String,
    /// The cause, e.g. the underlying error.
    pub cause: String,
    /// What the user should check or do.
    pub check: String,
}

impl Fatal {
    pub fn new(
        what: impl Into<String>,
        cause: impl fmt::Display,
        check: impl Into<String>,
    ) -> Fatal {
        Fatal {
            what: what.into(),
            cause: cause.to_string(),
            check: check.into(),
        }
    }

    /// A fatal error caused by `error`: the cause is its whole chain ("what: why: errno"),
    /// since the typed errors leave their causes to `source()`.
    pub fn caused_by(
        what: impl Into<String>,
        error: &(dyn std::error::Error + 'static),
        check: impl Into<String>,
    ) -> Fatal {
        Fatal::new(what, bootkit_common::error_chain(error), check)
    }
}

/// Report `fatal` and follow the policy. Never returns.
pub fn handle(fatal: &Fatal, policy: OnError, delay: Duration) -> ! {
    crate::error!("bootkit", "FATAL: {}", fatal.what);
    crate::error!("bootkit", "  cause: {}", fatal.cause);
    crate::error!("bootkit", "  check: {}", fatal.check);
    let action = match policy {
        OnError::Shell if shell::available() => {
            run_emergency_shell();
            PowerAction::Poweroff
        }
        OnError::Shell => {
            crate::error!(
                "bootkit",
                "no {} in this image for an emergency shell",
                shell::SHELL
            );
            PowerAction::Poweroff
        }
        OnError::Reboot => PowerAction::Reboot,
        OnError::Poweroff => PowerAction::Poweroff,
        OnError::Halt => PowerAction::Halt,
    };
    crate::error!(
        "bootkit",
        "on_error={}: {} in {} s (bootkit.on_error= and bootkit.on_error_delay= change this)",
        policy.as_str(),
        action.as_str(),
        delay.as_secs()
    );
    thread::sleep(delay);
    power::finish(action)
}

fn run_emergency_shell() {
    crate::error!(
        "bootkit",
        "starting an emergency shell; exit it to power off"
    );
    match shell::spawn_on_console() {
        Ok(mut child) => {
            let _ = child.wait();
        }
        Err(err) => crate::error!("bootkit", "cannot start {}: {err}", shell::SHELL),
    }
}
