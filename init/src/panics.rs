//! PID 1 hears every panic. A panic on any of its threads (network, NBD, module loading,
//! service output) is logged through the init's logger, with the thread, the place and the
//! message, and fails the targets that thread was to reach, so the services that require
//! them are given up with a clear line instead of waiting for a target that never comes.
//! The boot stages' own panics also reach `bootkit.on_error` through [`crate::boot`].

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::panic::{self, PanicHookInfo};

use crate::targets::{self, Targets};

/// One panic, as it is logged and given as the reason its thread's targets failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanicReport {
    /// The thread's name (`network`, `nbd0`, `modules`, `<service>-stdout`, `main` for the
    /// boot stages and the supervisor), or `<unnamed>`.
    pub thread: String,
    /// `file:line:column` in the bootkit's source.
    pub location: String,
    /// The text the panic was raised with.
    pub message: String,
}

impl fmt::Display for PanicReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "thread {} panicked at {}: {}",
            self.thread, self.location, self.message
        )
    }
}

impl PanicReport {
    fn from_hook(info: &PanicHookInfo<'_>) -> PanicReport {
        PanicReport {
            thread: std::thread::current()
                .name()
                .unwrap_or("<unnamed>")
                .to_string(),
            location: info.location().map_or_else(
                || "an unknown place".to_string(),
                |location| location.to_string(),
            ),
            message: payload_message(info.payload()),
        }
    }
}

thread_local! {
    /// The last panic on this thread, for a caller that caught it (the boot stages).
    static LAST: Cell<Option<PanicReport>> = const { Cell::new(None) };
}

/// Replace the standard hook, which writes to stderr and knows nothing of targets. Called
/// first thing in PID 1, before any thread starts.
pub fn install() {
    panic::set_hook(Box::new(|info| on_panic(info, targets::global())));
}

/// The last panic on the calling thread since it was last asked, if any.
pub fn take_last_on_this_thread() -> Option<PanicReport> {
    LAST.try_with(Cell::take).ok().flatten()
}

/// What the hook does: nothing in here may panic (a panic in the hook aborts the process,
/// and for PID 1 that is a kernel panic).
fn on_panic(info: &PanicHookInfo<'_>, targets: &Targets) {
    let report = PanicReport::from_hook(info);
    crate::error!("bootkit", "{report}");
    targets.fail_owed_by_this_thread(&report.to_string());
    // try_with: a thread whose locals are being destroyed has no LAST, and must not panic.
    let _ = LAST.try_with(|last| last.set(Some(report)));
}

/// The text a panic was raised with (`panic!("...")` gives a `&str` or a `String`).
pub fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::{NBD, NETWORK_ONLINE, Outcome};

    #[test]
    fn a_panic_on_a_thread_fails_the_targets_it_owes_and_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let targets: &'static Targets = Box::leak(Box::new(Targets::at(dir.path())));
        // Process-wide: other tests' panics pass through it too, and fail nothing of theirs,
        // since no other test thread owes a target of this instance.
        let previous = panic::take_hook();
        panic::set_hook(Box::new(|info| on_panic(info, targets)));
        let died = std::thread::Builder::new()
            .name("network".to_string())
            .spawn(|| {
                let _owed = targets.owe(&[NETWORK_ONLINE, NBD]);
                targets.reach(NBD);
                panic!("no lease: {}", 42);
            })
            .unwrap()
            .join();
        let caught = std::thread::spawn(|| {
            let outcome = panic::catch_unwind(|| panic!("caught"));
            (outcome.is_err(), take_last_on_this_thread())
        })
        .join();
        panic::set_hook(previous);
        assert!(died.is_err());
        assert_eq!(targets.outcome(NETWORK_ONLINE), Some(Outcome::Failed));
        assert_eq!(targets.outcome(NBD), Some(Outcome::Reached));
        // Failed by the hook, before the guard's drop could: the reason is the panic.
        let reason = std::fs::read_to_string(dir.path().join("network-online.failed")).unwrap();
        assert!(
            reason.starts_with("thread network panicked at init/src/panics.rs:")
                && reason.ends_with(": no lease: 42"),
            "{reason}"
        );
        let (panicked, last) = caught.unwrap();
        assert!(panicked);
        let last = last.expect("the hook kept the caught panic for its thread");
        assert_eq!(
            (last.thread.as_str(), last.message.as_str()),
            ("<unnamed>", "caught")
        );
        assert!(last.location.starts_with("init/src/panics.rs:"), "{last:?}");
    }

    #[test]
    fn a_panic_message_is_its_text() {
        assert_eq!(payload_message(&"static text"), "static text");
        assert_eq!(payload_message(&String::from("formatted")), "formatted");
        assert_eq!(payload_message(&7_u32), "a panic without a message");
    }
}
