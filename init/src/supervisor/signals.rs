//! The signals PID 1 handles, taken synchronously: they stay blocked in every thread, and the
//! supervisor's loop picks them up with `sigtimedwait`, whose timeout also drives its timers.
//!
//! Children must not inherit that mask: a service with SIGTERM blocked could never be stopped
//! gracefully. The mask survives fork and exec, and std's `Command` keeps it (it stopped
//! resetting it in Rust 1.66), so `reset_in_child` runs between fork and exec (see
//! `process::spawn`): it empties the mask and puts these signals back to their default
//! action. The integration tests check that a service's `SigBlk` is zero and that a plain
//! `sleep` dies of SIGTERM.

use std::time::Duration;

use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal};

use crate::power::PowerAction;

/// The signals the supervisor waits for.
const HANDLED: [Signal; 7] = [
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGPWR,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGHUP,
];

fn handled_set() -> SigSet {
    let mut set = SigSet::empty();
    for signal in HANDLED {
        set.add(signal);
    }
    set
}

/// Block the handled signals in the calling thread (and so in threads it starts later).
pub fn block() -> nix::Result<()> {
    handled_set().thread_block()
}

/// In a freshly forked child, before exec: unblock every signal and give the handled ones (and
/// SIGPIPE, which Rust programs ignore) their default action, so the service starts with the
/// signal handling any program expects.
///
/// Only async-signal-safe calls (sigemptyset, pthread_sigmask, signal) and no allocation: this
/// runs between fork and exec.
pub fn reset_in_child() -> std::io::Result<()> {
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
    for signal in HANDLED.into_iter().chain([Signal::SIGPIPE]) {
        // SAFETY: installing SIG_DFL runs no handler code, so it cannot break any invariant.
        unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) }?;
    }
    Ok(())
}

/// What a signal asks of the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A child ended: reap.
    ChildExited,
    /// Stop the services and end the machine this way.
    Shutdown(PowerAction),
    /// A signal with no meaning (yet), such as SIGHUP.
    Ignored(Signal),
}

/// What each signal means, by busybox init's convention: SIGUSR2 poweroff, SIGTERM reboot,
/// SIGUSR1 halt (what our `poweroff`, `reboot` and `halt` and busybox's send to PID 1);
/// SIGPWR (power failure) powers off; SIGINT is what the kernel sends on ctrl-alt-del once the
/// init disables CAD, so it reboots.
pub fn request_for(signal: Signal) -> Request {
    match signal {
        Signal::SIGCHLD => Request::ChildExited,
        Signal::SIGUSR2 | Signal::SIGPWR => Request::Shutdown(PowerAction::Poweroff),
        Signal::SIGTERM | Signal::SIGINT => Request::Shutdown(PowerAction::Reboot),
        Signal::SIGUSR1 => Request::Shutdown(PowerAction::Halt),
        other => Request::Ignored(other),
    }
}

/// Wait up to `timeout` for one of the handled signals. `Ok(None)` on timeout or interruption.
pub fn wait(timeout: Duration) -> nix::Result<Option<Signal>> {
    let set = handled_set();
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` is a valid initialized sigset_t, the info pointer may be null, and
    // `timeout` is a valid timespec that outlives the call.
    let signo = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &timeout) };
    if signo >= 0 {
        return Ok(Signal::try_from(signo).ok());
    }
    match nix::errno::Errno::last() {
        nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR => Ok(None),
        errno => Err(errno),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_map_to_power_actions() {
        use PowerAction::*;
        assert_eq!(request_for(Signal::SIGTERM), Request::Shutdown(Reboot));
        assert_eq!(request_for(Signal::SIGPWR), Request::Shutdown(Poweroff));
        assert_eq!(request_for(Signal::SIGUSR2), Request::Shutdown(Poweroff));
        assert_eq!(request_for(Signal::SIGINT), Request::Shutdown(Reboot));
        assert_eq!(request_for(Signal::SIGUSR1), Request::Shutdown(Halt));
        assert_eq!(request_for(Signal::SIGCHLD), Request::ChildExited);
        assert_eq!(
            request_for(Signal::SIGHUP),
            Request::Ignored(Signal::SIGHUP)
        );
    }
}
