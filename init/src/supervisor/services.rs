//! The services being supervised and their state machine: when each starts, when it counts as
//! started for its dependents, and what happens when its process exits.
//!
//! Two states per service: its *progress* through the boot (waiting for dependencies,
//! starting until ready, started, or failed), which dependents and the ready report look at;
//! and its *process* (running, waiting to restart, or done), which the reaper updates.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bootkit_common::service_def::ServiceDef;

use super::order::Plan;
use super::reaper::ExitStatus;
use super::restart::{Backoff, should_restart};
use super::{deadline, process, readiness};
use crate::{error, info, warn};

/// The longest the supervisor's loop sleeps when nothing is due: an idle PID 1 wakes rarely.
const IDLE_WAKEUP: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Waiting for the services it is ordered after.
    Waiting,
    /// Started, but its readiness rule has not held yet; counted as started at `deadline`.
    Starting { deadline: Instant },
    /// Started and ready (or its readiness timed out): its dependents may start.
    Started,
    /// Will not start (a required service failed, or it could not be spawned).
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Process {
    NotStarted,
    Running { pid: i32, since: Instant },
    RestartAt(Instant),
    Done,
}

struct Service {
    def: ServiceDef,
    waits_for: Vec<usize>,
    requires: Vec<usize>,
    progress: Progress,
    process: Process,
    backoff: Backoff,
}

/// Every service planned to start in this boot mode, in dependency order.
pub struct Services {
    list: Vec<Service>,
    by_pid: HashMap<i32, usize>,
    /// Indices in the order they first started: shutdown goes through it backwards.
    start_order: Vec<usize>,
    base_env: Vec<(String, String)>,
    not_planned: usize,
}

impl Services {
    pub fn new(plan: Plan, base_env: Vec<(String, String)>) -> Services {
        let index: HashMap<String, usize> = plan
            .services
            .iter()
            .enumerate()
            .map(|(i, p)| (p.def.name.clone(), i))
            .collect();
        let indices = |names: &[String]| -> Vec<usize> {
            names.iter().filter_map(|n| index.get(n).copied()).collect()
        };
        let list = plan
            .services
            .iter()
            .map(|planned| Service {
                waits_for: indices(&planned.waits_for),
                requires: indices(&planned.def.requires),
                progress: Progress::Waiting,
                process: Process::NotStarted,
                backoff: Backoff::new(planned.def.restart_delay, planned.def.restart_max_delay),
                def: planned.def.clone(),
            })
            .collect();
        Services {
            list,
            by_pid: HashMap::new(),
            start_order: Vec::new(),
            base_env,
            not_planned: plan.not_started.len(),
        }
    }

    /// Start every waiting service whose dependencies have all started (or failed, for
    /// `after`). The list is in dependency order, so one pass also starts the dependents of
    /// services it has just started, when those need no readiness.
    pub fn start_eligible(&mut self, now: Instant) {
        for i in 0..self.list.len() {
            if self.list[i].progress != Progress::Waiting {
                continue;
            }
            if let Some(&failed) = self.list[i]
                .requires
                .iter()
                .find(|&&d| self.list[d].progress == Progress::Failed)
            {
                let name = self.list[failed].def.name.clone();
                error!(
                    &self.list[i].def.name,
                    "not starting: it requires {name}, which failed to start"
                );
                self.list[i].progress = Progress::Failed;
                self.list[i].process = Process::Done;
                continue;
            }
            let settled =
                |d: &usize| matches!(self.list[*d].progress, Progress::Started | Progress::Failed);
            if self.list[i].waits_for.iter().all(settled) {
                self.first_start(i, now);
            }
        }
    }

    fn first_start(&mut self, i: usize, now: Instant) {
        if self.list[i].def.target {
            let service = &mut self.list[i];
            info!(&service.def.name, "waiting for it to be reached");
            service.process = Process::Done;
            service.progress = Progress::Starting {
                deadline: deadline::after(now, service.def.ready_timeout),
            };
            return;
        }
        if !self.spawn(i, now) {
            let service = &mut self.list[i];
            error!(
                &service.def.name,
                "not retrying: restarts apply only to a service that started once"
            );
            service.progress = Progress::Failed;
            service.process = Process::Done;
            return;
        }
        self.start_order.push(i);
        let service = &mut self.list[i];
        service.progress = match service.def.ready {
            Some(_) => Progress::Starting {
                deadline: deadline::after(now, service.def.ready_timeout),
            },
            None => Progress::Started,
        };
    }

    /// Spawn service `i`'s process; logs the outcome. Returns whether it started.
    fn spawn(&mut self, i: usize, now: Instant) -> bool {
        let service = &mut self.list[i];
        match process::spawn(&service.def, &self.base_env) {
            Ok(pid) => {
                info!(&service.def.name, "started (pid {pid})");
                service.process = Process::Running { pid, since: now };
                self.by_pid.insert(pid, i);
                true
            }
            Err(err) => {
                error!(&service.def.name, "{err}");
                false
            }
        }
    }

    /// Check the readiness rules of services still starting, and count as started those whose
    /// rule holds or whose time is up.
    pub fn poll_readiness(&mut self, now: Instant) {
        for service in &mut self.list {
            let (
                Progress::Starting {
                    deadline: give_up_at,
                },
                Some(rule),
            ) = (service.progress, &service.def.ready)
            else {
                continue;
            };
            if readiness::is_ready(rule) {
                info!(
                    &service.def.name,
                    "{}",
                    if service.def.target {
                        "reached"
                    } else {
                        "ready"
                    }
                );
                service.progress = Progress::Started;
            } else if now >= give_up_at && service.def.target {
                warn!(
                    &service.def.name,
                    "not reached within {:.1} s: services that require it will not start",
                    service.def.ready_timeout.as_secs_f64()
                );
                service.progress = Progress::Failed;
            } else if now >= give_up_at {
                warn!(
                    &service.def.name,
                    "not ready after {} ms ({}): counting it as started so the boot goes on",
                    service.def.ready_timeout.as_millis(),
                    readiness::describe(rule)
                );
                service.progress = Progress::Started;
            }
        }
    }

    /// Restart the services whose backoff delay is over.
    pub fn restart_due(&mut self, now: Instant) {
        for i in 0..self.list.len() {
            let Process::RestartAt(at) = self.list[i].process else {
                continue;
            };
            if at > now {
                continue;
            }
            if !self.spawn(i, now) {
                // It ran before, so the command may come back (a remounted disk): keep trying,
                // as slowly as the backoff allows.
                let service = &mut self.list[i];
                let delay = service.backoff.next_delay(Duration::ZERO);
                info!(&service.def.name, "restarting in {} ms", delay.as_millis());
                service.process = Process::RestartAt(deadline::after(now, delay));
            }
        }
    }

    /// Record that process `pid` ended. Unknown pids (orphans reparented to us) are ignored.
    /// While `stopping`, nothing is restarted.
    pub fn on_exit(&mut self, pid: i32, status: ExitStatus, now: Instant, stopping: bool) {
        let Some(i) = self.by_pid.remove(&pid) else {
            return;
        };
        let service = &mut self.list[i];
        let Process::Running { since, .. } = service.process else {
            return;
        };
        let name = service.def.name.clone();
        if stopping {
            info!(&name, "{status}");
            service.process = Process::Done;
            return;
        }
        if should_restart(service.def.restart, status) {
            let delay = service
                .backoff
                .next_delay(now.saturating_duration_since(since));
            info!(&name, "{status}, restarting in {} ms", delay.as_millis());
            service.process = Process::RestartAt(deadline::after(now, delay));
            return;
        }
        info!(
            &name,
            "{status}, restart={}: not restarting",
            service.def.restart.as_str()
        );
        service.process = Process::Done;
        if let Progress::Starting { .. } = service.progress {
            // It ended for good before it was ready: a clean exit did its job (a one-shot
            // set-up task); anything else means it failed to start.
            service.progress = match status.is_success() {
                true => Progress::Started,
                false => Progress::Failed,
            };
        }
    }

    /// Whether every service has started (ready or timed out) or failed: the boot is ready.
    pub fn all_settled(&self) -> bool {
        self.list
            .iter()
            .all(|s| matches!(s.progress, Progress::Started | Progress::Failed))
    }

    /// Services (not built-in targets) that started.
    pub fn started_count(&self) -> usize {
        self.list
            .iter()
            .filter(|s| s.progress == Progress::Started && !s.def.target)
            .count()
    }

    /// Services that will not run: not planned, or failed.
    pub fn not_started_count(&self) -> usize {
        self.not_planned
            + self
                .list
                .iter()
                .filter(|s| s.progress == Progress::Failed)
                .count()
    }

    /// How long the loop may sleep before something is due (a restart, a readiness check).
    pub fn next_wakeup(&self, now: Instant) -> Duration {
        let mut wakeup = IDLE_WAKEUP;
        for service in &self.list {
            if let Progress::Starting { .. } = service.progress {
                wakeup = wakeup.min(readiness::POLL_INTERVAL);
            }
            if let Process::RestartAt(at) = service.process {
                wakeup = wakeup.min(at.saturating_duration_since(now));
            }
        }
        wakeup
    }

    /// Cancel pending restarts: at shutdown, services that are down stay down.
    pub fn cancel_restarts(&mut self) {
        for service in &mut self.list {
            if let Process::RestartAt(_) = service.process {
                service.process = Process::Done;
            }
        }
    }

    /// Services in the reverse of the order they started: dependents before dependencies.
    pub fn stop_order(&self) -> Vec<usize> {
        self.start_order.iter().rev().copied().collect()
    }

    /// The pid (and process group) of service `i`, if its process is running.
    pub fn running_pid(&self, i: usize) -> Option<i32> {
        match self.list.get(i)?.process {
            Process::Running { pid, .. } => Some(pid),
            _ => None,
        }
    }

    pub fn name(&self, i: usize) -> &str {
        self.list.get(i).map(|s| s.def.name.as_str()).unwrap_or("?")
    }

    pub fn stop_timeout(&self, i: usize) -> Duration {
        self.list
            .get(i)
            .map(|s| s.def.stop_timeout)
            .unwrap_or(Duration::ZERO)
    }
}
