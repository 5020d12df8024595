//! Built-in targets: points of the boot that the init reaches itself (the network is online,
//! the clock is set, the NBD devices are attached). Services name them in `after` and
//! `requires` like services; the supervisor sees one reached when its file appears, and
//! failed when its failure file appears (or when its timeout passes first).
//!
//! A thread that is to reach targets says so ([`Targets::owe`], or [`Targets::owe_for`] for a
//! thread started elsewhere): if it panics (the panic hook calls
//! [`Targets::fail_owed_by_this_thread`]) or ends before reaching them, they fail at once, so
//! the services that require them are given up with a line saying why instead of waiting for
//! the timeout.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::{self, ThreadId};
use std::time::Duration;

use crate::supervisor::{self, Target};

const DIR: &str = "/run/bootkit/targets";

/// The first address is up (static or leased), with DNS, host name and routes set.
pub const NETWORK_ONLINE: &str = "network-online";
/// The clock has been set from NTP (or there is no NTP server to set it from).
pub const TIME_SYNC: &str = "time-sync";
/// Every `bootkit.nbd=` device is attached (or there are none).
pub const NBD: &str = "nbd";

/// How long a target may take before the services that require it are given up.
const TIMEOUTS: [(&str, Duration); 3] = [
    (NETWORK_ONLINE, Duration::from_secs(120)),
    (TIME_SYNC, Duration::from_secs(180)),
    (NBD, Duration::from_secs(180)),
];

/// The targets the supervisor offers to services.
pub fn all() -> Vec<Target> {
    TIMEOUTS
        .iter()
        .map(|(name, timeout)| Target {
            name: name.to_string(),
            reached_file: global().reached_file(name),
            timeout: *timeout,
        })
        .collect()
}

/// The init's targets, under /run/bootkit/targets.
pub fn global() -> &'static Targets {
    static TARGETS: OnceLock<Targets> = OnceLock::new();
    TARGETS.get_or_init(|| Targets::at(DIR))
}

/// Mark `name` reached: services waiting for it start.
pub fn reach(name: &str) {
    global().reach(name);
}

/// How a target ended: once reached or failed, it stays so for the rest of the boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its file is written: the services that wait for it start.
    Reached,
    /// Its failure file is written: the services that require it are not started.
    Failed,
}

#[derive(Default)]
struct State {
    outcomes: BTreeMap<String, Outcome>,
    /// By thread: the targets it is to reach (`ThreadId` has no order, hence a hash map).
    owed: HashMap<ThreadId, BTreeSet<String>>,
}

/// The targets' files in one directory, and which thread owes which target.
pub struct Targets {
    dir: PathBuf,
    state: Mutex<State>,
}

impl Targets {
    /// The targets whose files are in `dir` (created when the first one is written).
    pub fn at(dir: impl Into<PathBuf>) -> Targets {
        Targets {
            dir: dir.into(),
            state: Mutex::new(State::default()),
        }
    }

    fn reached_file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A lock that a panic elsewhere cannot make unusable: the state stays consistent, since
    /// nothing in it panics while the lock is held.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `name` was reached or failed, if either.
    #[cfg(test)]
    pub fn outcome(&self, name: &str) -> Option<Outcome> {
        self.state().outcomes.get(name).copied()
    }

    /// The calling thread is the one to reach `names`: they fail if it panics, or if it ends
    /// (the guard is dropped) before reaching them.
    pub fn owe(&self, names: &[&str]) -> Owed<'_> {
        self.owe_for(thread::current().id(), names);
        Owed {
            targets: self,
            not_send: PhantomData,
        }
    }

    /// The running thread `thread` is the one to reach `names`: they fail if it panics. No
    /// guard: for a thread started by other code, which lives as long as PID 1.
    pub fn owe_for(&self, thread: ThreadId, names: &[&str]) {
        let mut state = self.state();
        // One already reached (the thread may be quicker than its registration) is not owed.
        let open: Vec<String> = names
            .iter()
            .filter(|name| !state.outcomes.contains_key(**name))
            .map(|name| name.to_string())
            .collect();
        state.owed.entry(thread).or_default().extend(open);
    }

    /// Mark `name` reached: services waiting for it start. A failed target stays failed.
    pub fn reach(&self, name: &str) {
        let mut state = self.state();
        for owed in state.owed.values_mut() {
            owed.remove(name);
        }
        match state.outcomes.get(name) {
            Some(Outcome::Reached) => return,
            Some(Outcome::Failed) => {
                drop(state);
                crate::warn!(
                    "bootkit",
                    "target {name} reached after it failed: the services that require it stay \
                     stopped; reboot to start them"
                );
                return;
            }
            None => {}
        }
        state.outcomes.insert(name.to_string(), Outcome::Reached);
        drop(state);
        let file = self.reached_file(name);
        let written = fs::create_dir_all(&self.dir).and_then(|()| fs::write(&file, b""));
        match written {
            Ok(()) => crate::info!("bootkit", "target {name} reached"),
            Err(err) => crate::error!(
                "bootkit",
                "cannot mark target {name} reached ({}: {err}): services waiting for it will time out",
                file.display()
            ),
        }
    }

    /// Mark `name` failed because of `reason`: the services that require it are not started.
    /// A target already reached or failed stays as it is.
    pub fn fail(&self, name: &str, reason: &str) {
        let mut state = self.state();
        for owed in state.owed.values_mut() {
            owed.remove(name);
        }
        if state.outcomes.contains_key(name) {
            return;
        }
        state.outcomes.insert(name.to_string(), Outcome::Failed);
        drop(state);
        crate::error!(
            "bootkit",
            "target {name} failed: {reason}; the services that require it will not start"
        );
        let file = supervisor::target_failed_file(&self.reached_file(name));
        let written = fs::create_dir_all(&self.dir).and_then(|()| fs::write(&file, reason));
        if let Err(err) = written {
            crate::error!(
                "bootkit",
                "cannot mark target {name} failed ({}: {err}): services waiting for it will \
                 time out instead",
                file.display()
            );
        }
    }

    /// Fail every target the calling thread still owes, because of `reason`.
    pub fn fail_owed_by_this_thread(&self, reason: &str) {
        let owed = self.state().owed.remove(&thread::current().id());
        // Outside the lock: fail() takes it again.
        for name in owed.unwrap_or_default() {
            self.fail(&name, reason);
        }
    }
}

/// Targets the calling thread owes; dropped, it fails those not reached yet.
#[must_use = "the targets fail as soon as this guard is dropped"]
pub struct Owed<'a> {
    targets: &'a Targets,
    /// Bound to the thread that owes the targets.
    not_send: PhantomData<*const ()>,
}

impl Owed<'_> {
    /// The thread stops trying: fail the targets it has not reached yet, because of `reason`.
    pub fn give_up(self, reason: &str) {
        self.targets.fail_owed_by_this_thread(reason);
    }
}

impl Drop for Owed<'_> {
    fn drop(&mut self) {
        let reason = format!(
            "thread {} ended before reaching it",
            thread::current().name().unwrap_or("<unnamed>")
        );
        self.targets.fail_owed_by_this_thread(&reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The reason in `name`'s failure file in `dir`, if it has one.
    fn failure_reason(dir: &Path, name: &str) -> Option<String> {
        fs::read_to_string(supervisor::target_failed_file(&dir.join(name))).ok()
    }

    #[test]
    fn a_reached_target_has_its_file_and_cannot_fail_afterwards() {
        let dir = tempfile::tempdir().unwrap();
        let targets = Targets::at(dir.path().join("targets"));
        targets.reach(NETWORK_ONLINE);
        assert!(dir.path().join("targets").join(NETWORK_ONLINE).exists());
        targets.fail(NETWORK_ONLINE, "too late");
        assert_eq!(targets.outcome(NETWORK_ONLINE), Some(Outcome::Reached));
        assert!(failure_reason(&dir.path().join("targets"), NETWORK_ONLINE).is_none());
    }

    #[test]
    fn a_failed_target_says_why_and_is_not_reached_later() {
        let dir = tempfile::tempdir().unwrap();
        let targets = Targets::at(dir.path());
        targets.fail(TIME_SYNC, "the clock thread stopped");
        targets.reach(TIME_SYNC);
        assert_eq!(targets.outcome(TIME_SYNC), Some(Outcome::Failed));
        assert!(!dir.path().join(TIME_SYNC).exists());
        assert_eq!(
            failure_reason(dir.path(), TIME_SYNC).as_deref(),
            Some("the clock thread stopped")
        );
    }

    #[test]
    fn a_thread_that_ends_fails_what_it_did_not_reach() {
        let dir = tempfile::tempdir().unwrap();
        let targets = Targets::at(dir.path());
        thread::scope(|scope| {
            scope.spawn(|| {
                let _owed = targets.owe(&[NETWORK_ONLINE, NBD]);
                targets.reach(NETWORK_ONLINE);
            });
        });
        assert_eq!(targets.outcome(NETWORK_ONLINE), Some(Outcome::Reached));
        assert_eq!(targets.outcome(NBD), Some(Outcome::Failed));
        let reason = failure_reason(dir.path(), NBD).unwrap();
        assert!(reason.contains("ended before reaching it"), "{reason}");
    }

    #[test]
    fn a_thread_that_gives_up_fails_what_it_did_not_reach_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let targets = Targets::at(dir.path());
        thread::scope(|scope| {
            scope.spawn(|| {
                let owed = targets.owe(&[NETWORK_ONLINE, TIME_SYNC]);
                targets.reach(TIME_SYNC);
                owed.give_up("cannot talk to the kernel's network stack");
            });
        });
        assert_eq!(targets.outcome(NETWORK_ONLINE), Some(Outcome::Failed));
        assert_eq!(targets.outcome(TIME_SYNC), Some(Outcome::Reached));
        assert_eq!(
            failure_reason(dir.path(), NETWORK_ONLINE).as_deref(),
            Some("cannot talk to the kernel's network stack")
        );
    }

    #[test]
    fn a_target_owed_by_another_thread_fails_when_that_thread_fails_it() {
        let dir = tempfile::tempdir().unwrap();
        let targets = &Targets::at(dir.path());
        thread::scope(|scope| {
            let (go, wait) = std::sync::mpsc::channel::<()>();
            let worker = scope.spawn(move || {
                let _ = wait.recv();
                targets.fail_owed_by_this_thread("thread nbd0 panicked");
            });
            targets.owe_for(worker.thread().id(), &[NBD]);
            go.send(()).unwrap();
        });
        assert_eq!(targets.outcome(NBD), Some(Outcome::Failed));
    }

    #[test]
    fn another_threads_failure_leaves_this_threads_targets_alone() {
        let dir = tempfile::tempdir().unwrap();
        let targets = Targets::at(dir.path());
        let _owed = targets.owe(&[NETWORK_ONLINE]);
        thread::scope(|scope| {
            scope.spawn(|| targets.fail_owed_by_this_thread("boom"));
        });
        assert_eq!(targets.outcome(NETWORK_ONLINE), None);
    }
}
