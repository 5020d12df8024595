//! Reaping: collect the exit status of every child that has ended, ours or an orphan
//! reparented to us (we are PID 1, or a child subreaper).
//!
//! Only `waitpid(-1, WNOHANG)` is used, never a wait on one pid: a wait on a specific child
//! would race with this loop for the same status. Reaping and spawning both happen on the
//! supervisor's thread, so std's own internal wait (when exec fails inside `Command::spawn`)
//! cannot race with it either.

use std::fmt;

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// At most this many children are reaped per call, so one call is bounded even if children
/// keep exiting; the next SIGCHLD (or the next tick) continues.
const MAX_REAPED_PER_CALL: usize = 4096;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this status.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    pub fn is_success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Code(code) => write!(f, "exited with status {code}"),
            ExitStatus::Signal(signal) => match nix::sys::signal::Signal::try_from(signal) {
                Ok(name) => write!(f, "killed by signal {signal} ({name})"),
                Err(_) => write!(f, "killed by signal {signal}"),
            },
        }
    }
}

/// Reap every child that has ended, without blocking. Returns their pids and statuses.
pub fn reap_exited() -> Vec<(i32, ExitStatus)> {
    let mut reaped = Vec::new();
    for _ in 0..MAX_REAPED_PER_CALL {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => {
                reaped.push((pid.as_raw(), ExitStatus::Code(code)))
            }
            Ok(WaitStatus::Signaled(pid, signal, _core)) => {
                reaped.push((pid.as_raw(), ExitStatus::Signal(signal as i32)))
            }
            // Nothing more has ended (StillAlive), or only stop/continue reports: done for now.
            Ok(_) => break,
            Err(Errno::EINTR) => continue,
            // ECHILD: no children at all. Anything else cannot happen with these arguments.
            Err(_) => break,
        }
    }
    reaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_well() {
        assert_eq!(ExitStatus::Code(1).to_string(), "exited with status 1");
        assert_eq!(
            ExitStatus::Signal(9).to_string(),
            "killed by signal 9 (SIGKILL)"
        );
        assert!(ExitStatus::Code(0).is_success());
        assert!(!ExitStatus::Signal(15).is_success());
    }
}
