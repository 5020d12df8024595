//! The service supervisor: PID 1's main loop once the root filesystem is in place.
//!
//! It loads the service definitions (`definition`), orders them (`order`), starts them in
//! that order as their dependencies become ready (`services`, `process`, `readiness`), reaps
//! every child (`reaper`), restarts per policy (`restart`), and on a shutdown signal
//! (`signals`) stops them in reverse order (`shutdown`) and says which power action was asked.
//! `deadline` keeps timer arithmetic from overflowing.
//!
//! Everything runs on the calling thread, driven by `sigtimedwait`: signals are blocked (see
//! `block_signals`) and taken synchronously, and the wait's timeout drives the timers. The only
//! other threads forward services' output to the log.

mod deadline;
mod definition;
mod order;
mod process;
mod readiness;
mod reaper;
mod restart;
mod services;
mod shutdown;
mod signals;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use bootkit_common::service_def::{BootMode, ServiceDef};

use crate::power::PowerAction;
use crate::{error, info, warn};
use services::Services;
use signals::Request;

pub use signals::reset_in_child as reset_signals_in_child;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(
        "cannot block the signals the supervisor handles: {0}; \
         this should not happen, check the seccomp policy of the environment"
    )]
    BlockSignals(#[source] nix::Error),
    #[error(
        "cannot read the services directory {dir}: {source}; \
         check that it is a readable directory"
    )]
    ServicesDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the supervisor runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory of service definitions, `/etc/bootkit/services` on a booted system.
    pub services_dir: PathBuf,
    /// The boot mode: services run only in their `modes`.
    pub mode: BootMode,
    /// Environment every service receives before its own: the kernel command line's keys.
    pub env: Vec<(String, String)>,
    /// Built-in targets services may name in `after`/`requires`, reached when the init
    /// creates their file (the network is online, the clock is set, ...).
    pub targets: Vec<Target>,
}

/// A built-in target: a point in the boot that the init itself reaches, not a process.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    /// Created by the init when the target is reached.
    pub reached_file: PathBuf,
    /// Not reached by then: it failed, and services that `require` it do not start.
    pub timeout: std::time::Duration,
}

/// Handed to the caller once every service for the mode has started (and is ready).
#[derive(Debug, Clone)]
pub struct ReadyReport {
    /// Services that started (and are ready, or their readiness timed out).
    pub services: usize,
}

/// Block the signals the supervisor waits for. Called first thing in the process, before any
/// thread starts, so every thread inherits the mask and the signals queue for the supervisor.
pub fn block_signals() -> Result<(), SupervisorError> {
    signals::block().map_err(SupervisorError::BlockSignals)
}

/// Start the services, supervise them until a shutdown is asked for, stop them, and say which
/// power action was asked for.
///
/// `on_ready` is called once, when every service for the mode has started and is ready (or
/// its readiness timed out, or it failed to start), right away if there are none. If a
/// shutdown is asked for before that, it is not called.
pub fn run(
    config: Config,
    on_ready: &mut dyn FnMut(&ReadyReport),
) -> Result<PowerAction, SupervisorError> {
    // Blocking again is harmless, and makes sure this thread's mask is right even if the
    // caller forgot: an unblocked SIGTERM would kill PID 1's caller's process by default.
    block_signals()?;
    let plan = load_plan(&config)?;
    let mut services = Services::new(plan, config.env);
    let mut ready_reported = false;
    let action = loop {
        let now = Instant::now();
        services.restart_due(now);
        services.poll_readiness(now);
        services.start_eligible(now);
        if !ready_reported && services.all_settled() {
            ready_reported = true;
            let not_started = services.not_started_count();
            if not_started > 0 {
                warn!(
                    "supervisor",
                    "{not_started} service(s) did not start: see above why"
                );
            }
            on_ready(&ReadyReport {
                services: services.started_count(),
            });
        }
        if let Some(action) = wait_for_request(services.next_wakeup(Instant::now())) {
            break action;
        }
        let now = Instant::now();
        for (pid, status) in reaper::reap_exited() {
            services.on_exit(pid, status, now, false);
        }
    };
    shutdown::stop_all(&mut services);
    Ok(action)
}

/// Wait for a signal (or the timeout); returns the power action if one was asked for.
fn wait_for_request(timeout: std::time::Duration) -> Option<PowerAction> {
    let signal = match signals::wait(timeout) {
        Ok(signal) => signal?,
        Err(err) => {
            // Cannot happen with a valid set and timeout; sleep so the loop cannot spin.
            warn!("supervisor", "waiting for signals failed: {err}");
            std::thread::sleep(timeout);
            return None;
        }
    };
    match signals::request_for(signal) {
        Request::ChildExited => None,
        Request::Shutdown(action) => {
            info!(
                "supervisor",
                "{signal} received: stopping services to {}",
                verb(action)
            );
            Some(action)
        }
        Request::Ignored(signal) => {
            info!("supervisor", "{signal} received: ignored");
            None
        }
    }
}

/// Stand-ins for the built-in targets that services of this mode depend on (and that no
/// service of the same name replaces).
fn referenced_targets(targets: &[Target], services: &[ServiceDef]) -> Vec<ServiceDef> {
    targets
        .iter()
        .filter(|target| {
            let named = |s: &ServiceDef| {
                s.after.contains(&target.name) || s.requires.contains(&target.name)
            };
            services.iter().any(named) && !services.iter().any(|s| s.name == target.name)
        })
        .map(|target| {
            ServiceDef::builtin_target(&target.name, target.reached_file.clone(), target.timeout)
        })
        .collect()
}

fn verb(action: PowerAction) -> &'static str {
    match action {
        PowerAction::Poweroff => "power off",
        PowerAction::Reboot => "reboot",
        PowerAction::Halt => "halt",
    }
}

/// Load the definitions, keep those of this boot mode, and order them. Every problem is
/// logged here; what remains is what will start.
fn load_plan(config: &Config) -> Result<order::Plan, SupervisorError> {
    let dir = &config.services_dir;
    if !dir.exists() {
        warn!(
            "supervisor",
            "no services directory {}: running no services",
            dir.display()
        );
    }
    let loaded = definition::load_dir(dir).map_err(|source| SupervisorError::ServicesDir {
        dir: dir.clone(),
        source,
    })?;
    let mut absent = BTreeMap::new();
    for err in &loaded.errors {
        error!("supervisor", "{err}; this service will not run");
        if let Some(stem) = err.file().file_stem() {
            absent.insert(
                stem.to_string_lossy().into_owned(),
                "its definition failed to load".to_string(),
            );
        }
    }
    let mode = config.mode;
    let (mut in_mode, other_modes): (Vec<_>, Vec<_>) =
        loaded.services.into_iter().partition(|s| s.runs_in(mode));
    let targets = referenced_targets(&config.targets, &in_mode);
    in_mode.extend(targets);
    for service in other_modes {
        info!("supervisor", "{}: not for mode {mode}", service.name);
        absent.insert(service.name, format!("it does not run in mode {mode}"));
    }
    let plan = order::plan(in_mode, &absent);
    for warning in &plan.warnings {
        warn!("supervisor", "{warning}");
    }
    for (name, reason) in &plan.not_started {
        error!("supervisor", "{name} will not start: {reason}");
    }
    Ok(plan)
}
