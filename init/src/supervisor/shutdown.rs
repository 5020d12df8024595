//! Stopping the services at shutdown: in the reverse of the order they started, each with
//! SIGTERM to its process group, a grace period (reaping meanwhile), then SIGKILL.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::services::Services;
use super::{deadline, process, reaper, signals};
use crate::{info, warn};

/// After SIGKILL, how long to wait for the process to be reaped before giving up on it (it may
/// be stuck in the kernel, in uninterruptible sleep).
const AFTER_KILL_WAIT: Duration = Duration::from_secs(2);

/// The longest single sleep while waiting, so a missed wake-up costs little.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// How long to wait, once every service is stopped, for their last output to be logged.
const OUTPUT_DRAIN_WAIT: Duration = Duration::from_secs(1);

/// Stop every running service, dependents first. Pending restarts are cancelled.
pub fn stop_all(services: &mut Services) {
    services.cancel_restarts();
    reap_into(services);
    for i in services.stop_order() {
        stop_one(services, i);
    }
    reap_into(services);
    let still_open = process::drain_output(OUTPUT_DRAIN_WAIT);
    if still_open > 0 {
        warn!(
            "supervisor",
            "{still_open} output pipe(s) of stopped services are still held open by other \
             processes: their last lines may be missing"
        );
    }
}

fn stop_one(services: &mut Services, i: usize) {
    let Some(pid) = services.running_pid(i) else {
        return;
    };
    let name = services.name(i).to_owned();
    let grace = services.stop_timeout(i);
    info!("supervisor", "stopping {name}");
    signal_group(pid, Signal::SIGTERM);
    if !wait_until_stopped(services, i, grace) {
        warn!(
            "supervisor",
            "{name} did not stop within {} ms of SIGTERM: sending SIGKILL",
            grace.as_millis()
        );
        signal_group(pid, Signal::SIGKILL);
        if !wait_until_stopped(services, i, AFTER_KILL_WAIT) {
            warn!(
                "supervisor",
                "{name} (pid {pid}) is still not gone {} ms after SIGKILL: leaving it",
                AFTER_KILL_WAIT.as_millis()
            );
            return;
        }
    }
    // Processes it left in its group (helpers, background jobs) would outlive it.
    signal_group(pid, Signal::SIGKILL);
    info!("supervisor", "stopped {name}");
}

/// Signal a service's process group (its pid is the group id). ESRCH means it is gone already.
fn signal_group(pgid: i32, signal: Signal) {
    let _ = killpg(Pid::from_raw(pgid), signal);
}

/// Reap until service `i`'s process has ended, or `timeout` passes. Returns whether it ended.
fn wait_until_stopped(services: &mut Services, i: usize, timeout: Duration) -> bool {
    let until = deadline::after(Instant::now(), timeout);
    loop {
        reap_into(services);
        if services.running_pid(i).is_none() {
            return true;
        }
        let now = Instant::now();
        if now >= until {
            return false;
        }
        wait_for_signal(until.saturating_duration_since(now).min(WAIT_SLICE));
    }
}

/// Sleep until a signal arrives or `timeout` passes. A second shutdown request while stopping
/// changes nothing: the services are already being stopped.
fn wait_for_signal(timeout: Duration) {
    match signals::wait(timeout) {
        Ok(Some(Signal::SIGCHLD)) | Ok(None) => {}
        Ok(Some(other)) => info!("supervisor", "already shutting down: ignoring {other}"),
        Err(_) => std::thread::sleep(timeout),
    }
}

fn reap_into(services: &mut Services) {
    let now = Instant::now();
    for (pid, status) in reaper::reap_exited() {
        services.on_exit(pid, status, now, true);
    }
}
