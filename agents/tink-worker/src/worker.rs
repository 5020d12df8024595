//! The worker loop: ask the workflow service for the next action, run it as a container,
//! report how it went — forever, whatever the server, the network or containerd do.
//!
//! The loop sees the server and containerd through two small traits, [`WorkflowServer`]
//! and [`ActionRunner`], so that its decisions (retries, backoff, dropping actions the
//! server no longer wants, the end-of-workflow reboot) are unit-tested with fakes, while
//! the end-to-end tests drive the real protocol client and containerd runtime through the
//! adapters in [`adapters`].

pub mod adapters;
pub mod power;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use bootkit_common::backoff::{Backoff, Delays};
use bootkit_common::error_chain;
use tokio_util::sync::CancellationToken;

use crate::protocol::{Action, ActionReport, ActionState};
use crate::worker_dir;
use power::{PowerAction, PowerControl};

/// How many output lines of a failed action go into its status message.
const MESSAGE_TAIL_LINES: usize = 20;
/// Upper bound of a status message, so that a chatty action cannot bloat the store.
const MESSAGE_MAX_BYTES: usize = 4096;
const MESSAGE_MAX_LINE_BYTES: usize = 512;

/// A failed step of the loop, classified by what the loop should do about it.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Worth trying again later: the server, the network or containerd is away.
    #[error("{0}")]
    Transient(String),
    /// Trying again will not help: the server rejected the request, the image is unknown.
    #[error("{0}")]
    Permanent(String),
}

impl StepError {
    /// [`StepError::Transient`] if `retryable`, else [`StepError::Permanent`], with `error`'s
    /// whole chain of causes as the message.
    pub fn classified(retryable: bool, error: impl std::error::Error + 'static) -> Self {
        // The whole chain: the server's report names the cause, not only the step that failed.
        let message = error_chain(&error);
        if retryable {
            StepError::Transient(message)
        } else {
            StepError::Permanent(message)
        }
    }
}

/// The workflow service, as the loop needs it.
pub trait WorkflowServer {
    /// The next action for this worker, `None` when there is nothing to do.
    fn next_action(&mut self) -> impl Future<Output = Result<Option<Action>, StepError>>;
    /// Reports an action's state; Ok once the server acknowledged it.
    fn report(&mut self, report: &ActionReport) -> impl Future<Output = Result<(), StepError>>;
}

/// One container run: the action itself, or one of its legacy on-timeout/on-failure
/// commands (same image, same mounts, the command replaced).
pub struct RunRequest<'a> {
    /// The action whose image, mounts and environment the run uses.
    pub action: &'a Action,
    /// Replaces the action's command (a legacy hook); None: the action's own.
    pub command_override: Option<&'a [String]>,
    /// Prefix of the output lines in the log: the action name, plus which hook it is.
    pub label: &'a str,
    /// Killed when this runs out.
    pub timeout: Duration,
}

/// How a container run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// `None` when the deadline killed it.
    pub exit_code: Option<i64>,
    /// The last lines of its output (stdout and stderr interleaved), oldest first.
    pub last_lines: Vec<String>,
}

/// containerd, as the loop needs it.
pub trait ActionRunner {
    /// Makes `image` present and unpacked.
    fn pull(&mut self, image: &str) -> impl Future<Output = Result<(), StepError>>;
    /// Runs one container to its end or its deadline.
    fn run(
        &mut self,
        request: RunRequest<'_>,
    ) -> impl Future<Output = Result<RunOutcome, StepError>>;
}

/// Writes one line of an action's output to the worker's log (stderr, which the init
/// forwards to syslog), in the `action <name>: <line>` form users grep for.
pub fn log_action_output(label: &str, line: &str) {
    tracing::info!("action {label}: {line}");
}

/// The loop's waits and where it keeps per-workflow directories.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `/worker`: holds `/worker/<workflow_id>` (the actions' `/workflow`) and the
    /// `/worker/reboot` request file.
    pub worker_dir: PathBuf,
    /// Between polls when the server has nothing to do (tink polls every 3 s).
    pub idle: Delays,
    /// Between polls after the server could not be reached.
    pub unreachable: Delays,
    /// Between attempts of a status report.
    pub report: Delays,
    /// Before asking again after the server refused an action's RUNNING report: it serves
    /// the same action again at once, so without a pause the worker would hammer it
    /// (tink-agent waits up to 5 s, tink v0.12's worker 3 s).
    pub refused: Delays,
    /// Between attempts of an image pull (bounded overall by the action's timeout).
    pub pull: Delays,
    /// After a shutdown request, how long an unacknowledged report is still retried.
    pub shutdown_report_grace: Duration,
}

/// Up to a quarter of each wait is taken off at random, so that a fleet of workers restarted
/// together does not hit the server in step.
const JITTER_PERCENT: u8 = 25;

/// The loop's waits from `initial` doubling up to `max`, with the worker's jitter.
fn waits(initial: Duration, max: Duration) -> Delays {
    Backoff::new(initial, max)
        .with_jitter(JITTER_PERCENT)
        .delays()
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            worker_dir: PathBuf::from("/worker"),
            idle: waits(Duration::from_secs(3), Duration::from_secs(15)),
            unreachable: waits(Duration::from_secs(1), Duration::from_secs(60)),
            report: waits(Duration::from_millis(500), Duration::from_secs(30)),
            refused: waits(Duration::from_secs(1), Duration::from_secs(5)),
            pull: waits(Duration::from_secs(1), Duration::from_secs(60)),
            shutdown_report_grace: Duration::from_secs(20),
        }
    }
}

/// Why the loop returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A shutdown was requested (SIGTERM): the current action finished and was reported.
    Shutdown,
    /// A workflow asked for a reboot or power off and the command was started.
    Power(PowerAction),
}

/// The workflow the loop is in: which one, and whether it asked for a power action.
struct CurrentWorkflow {
    id: String,
    after: Option<PowerAction>,
}

enum Acknowledgement {
    Acknowledged,
    Rejected(String),
    Abandoned,
}

/// The final state of an action run, as reported.
struct Completion {
    state: ActionState,
    message: String,
}

/// The worker loop: asks the server for actions, runs them, reports them, until shut down or a
/// workflow asks for a reboot.
pub struct Worker<S, R, P> {
    server: S,
    runner: R,
    power: P,
    settings: Settings,
    shutdown: CancellationToken,
    current: Option<CurrentWorkflow>,
}

impl<S: WorkflowServer, R: ActionRunner, P: PowerControl> Worker<S, R, P> {
    /// A worker over these parts; [`Worker::run`] runs the loop until `shutdown` is cancelled.
    pub fn new(
        server: S,
        runner: R,
        power: P,
        settings: Settings,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            server,
            runner,
            power,
            settings,
            shutdown,
            current: None,
        }
    }

    /// Runs until a shutdown is requested or a workflow ends with a reboot/power off.
    /// Errors of the server, the network or containerd never end it: they are logged and
    /// the loop backs off and goes on.
    pub async fn run(&mut self) -> Exit {
        loop {
            if self.shutdown.is_cancelled() {
                return Exit::Shutdown;
            }
            let next = self.server.next_action().await;
            match next {
                Ok(next) => {
                    self.settings.unreachable.reset();
                    if let Some(exit) = self.end_of_workflow_before(next.as_ref()) {
                        return exit;
                    }
                    match next {
                        Some(action) => {
                            self.settings.idle.reset();
                            self.handle(action).await;
                        }
                        None => {
                            let delay = self.settings.idle.next_delay();
                            self.pause(delay).await;
                        }
                    }
                }
                Err(err) => {
                    let delay = self.settings.unreachable.next_delay();
                    tracing::warn!(
                        "cannot get the next action from the workflow service: {err}; \
                         trying again in {:.1} s",
                        delay.as_secs_f64()
                    );
                    self.pause(delay).await;
                }
            }
        }
    }

    /// Waits, or less if a shutdown is requested meanwhile.
    async fn pause(&self, delay: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = self.shutdown.cancelled() => {}
        }
    }

    /// A successful workflow has ended when the server has nothing more for it: no action,
    /// or one of another workflow. Then its power request, if any, is carried out.
    fn end_of_workflow_before(&mut self, next: Option<&Action>) -> Option<Exit> {
        let current = self.current.as_ref()?;
        if next.is_some_and(|action| action.workflow_id == current.id) {
            return None;
        }
        let finished = self.current.take()?;
        tracing::info!("workflow {} completed", finished.id);
        let requested = match power::take_reboot_file(&self.settings.worker_dir) {
            Ok(from_file) => from_file.or(finished.after),
            Err(err) => {
                tracing::warn!(
                    "cannot read the reboot request file in {}: {err}",
                    self.settings.worker_dir.display()
                );
                finished.after
            }
        };
        let action = requested?;
        tracing::info!(
            "workflow {} asked for `{}`: running it",
            finished.id,
            action.command()
        );
        match self.power.perform(action) {
            Ok(()) => Some(Exit::Power(action)),
            Err(err) => {
                tracing::error!(
                    "cannot {} after workflow {}: {err}; the node stays up and the worker \
                     goes on (check that the `{}` command exists)",
                    action.command(),
                    finished.id,
                    action.command()
                );
                None
            }
        }
    }

    /// One action: RUNNING, pull, run, final report.
    async fn handle(&mut self, action: Action) {
        tracing::info!(
            "action {}: workflow {}, image {}",
            action.name,
            action.workflow_id,
            action.image
        );
        if let Err(err) =
            worker_dir::create_workflow_dir(&self.settings.worker_dir, &action.workflow_id)
        {
            tracing::error!("not running action {}: {err}", action.name);
            let delay = self.settings.unreachable.next_delay();
            self.pause(delay).await;
            return;
        }
        let started = SystemTime::now();
        let running = report_of(&action, ActionState::Running, started, None, String::new());
        match self.report_until_acknowledged(&running).await {
            Acknowledgement::Acknowledged => self.settings.refused.reset(),
            Acknowledgement::Rejected(reason) => {
                let delay = self.settings.refused.next_delay();
                tracing::warn!(
                    "action {}: the workflow service no longer accepts it ({reason}); \
                     dropping it and asking again in {:.1} s",
                    action.name,
                    delay.as_secs_f64()
                );
                self.pause(delay).await;
                return;
            }
            Acknowledgement::Abandoned => return,
        }
        self.enter_workflow(&action);
        let Some(completion) = self.execute(&action).await else {
            tracing::warn!(
                "action {}: stopping before it ran; the workflow service will serve it again",
                action.name
            );
            return;
        };
        let final_report = report_of(
            &action,
            completion.state,
            started,
            Some(SystemTime::now()),
            completion.message,
        );
        let acknowledgement = self.report_until_acknowledged(&final_report).await;
        if let Acknowledgement::Rejected(reason) = &acknowledgement {
            tracing::warn!(
                "action {}: the workflow service refused its final report ({reason})",
                action.name
            );
        }
        if completion.state != ActionState::Success {
            tracing::warn!(
                "workflow {} ended at action {}: {:?}: {}",
                action.workflow_id,
                action.name,
                completion.state,
                final_report.message
            );
            self.current = None;
        }
    }

    fn enter_workflow(&mut self, action: &Action) {
        let requested = power::requested_by_environment(&action.environment);
        match &mut self.current {
            Some(current) if current.id == action.workflow_id => {
                current.after = requested.or(current.after);
            }
            _ => {
                self.current = Some(CurrentWorkflow {
                    id: action.workflow_id.clone(),
                    after: requested,
                })
            }
        }
    }

    /// Pulls and runs the action within its timeout (the pull counts in it), then its
    /// legacy on-timeout/on-failure hook. `None` if a shutdown stopped it before it ran.
    async fn execute(&mut self, action: &Action) -> Option<Completion> {
        let deadline = Instant::now() + action.timeout;
        if let Err(completion) = self.pull_before(action, deadline).await? {
            return Some(completion);
        }
        let request = RunRequest {
            action,
            command_override: None,
            label: &action.name,
            timeout: deadline.saturating_duration_since(Instant::now()),
        };
        let completion = match self.runner.run(request).await {
            Ok(outcome) => completion_of(action, &outcome),
            Err(err) => Completion {
                state: ActionState::Failed,
                message: format!("cannot run the container: {err}"),
            },
        };
        self.run_hook(action, completion.state).await;
        Some(completion)
    }

    /// Pulls the image, retrying transient errors until the action's deadline.
    async fn pull_before(
        &mut self,
        action: &Action,
        deadline: Instant,
    ) -> Option<Result<(), Completion>> {
        self.settings.pull.reset();
        loop {
            let err = match self.runner.pull(&action.image).await {
                Ok(()) => return Some(Ok(())),
                Err(StepError::Permanent(reason)) => {
                    return Some(Err(Completion {
                        state: ActionState::Failed,
                        message: format!("cannot pull image {}: {reason}", action.image),
                    }));
                }
                Err(StepError::Transient(reason)) => reason,
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Some(Err(Completion {
                    state: ActionState::Timeout,
                    message: format!(
                        "the image {} could not be pulled within the action's timeout of \
                         {} s: {err}",
                        action.image,
                        action.timeout.as_secs()
                    ),
                }));
            }
            let delay = self.settings.pull.next_delay().min(remaining);
            tracing::warn!(
                "action {}: cannot pull {}: {err}; trying again in {:.1} s",
                action.name,
                action.image,
                delay.as_secs_f64()
            );
            self.pause(delay).await;
            if self.shutdown.is_cancelled() {
                return None;
            }
        }
    }

    /// Legacy actions name a command to run (in the same image) when they time out or
    /// fail; its outcome is logged, the action's own state is what gets reported.
    async fn run_hook(&mut self, action: &Action, state: ActionState) {
        let (hook, name) = match state {
            ActionState::Timeout => (&action.on_timeout, "on-timeout"),
            ActionState::Failed => (&action.on_failure, "on-failure"),
            _ => return,
        };
        if hook.is_empty() {
            return;
        }
        let label = format!("{} {name}", action.name);
        let request = RunRequest {
            action,
            command_override: Some(hook),
            label: &label,
            timeout: action.timeout,
        };
        match self.runner.run(request).await {
            Ok(outcome) => tracing::info!(
                "action {label}: {}",
                describe_end(outcome.exit_code, action.timeout)
            ),
            Err(err) => tracing::warn!("action {label}: cannot run it: {err}"),
        }
    }

    /// Sends a report until the server acknowledges or rejects it. Transient errors are
    /// retried with backoff while the process lives; after a shutdown request, for
    /// `shutdown_report_grace` more.
    async fn report_until_acknowledged(&mut self, report: &ActionReport) -> Acknowledgement {
        self.settings.report.reset();
        let mut shutdown_seen: Option<Instant> = None;
        loop {
            let err = match self.server.report(report).await {
                Ok(()) => return Acknowledgement::Acknowledged,
                Err(StepError::Permanent(reason)) => return Acknowledgement::Rejected(reason),
                Err(StepError::Transient(reason)) => reason,
            };
            if self.shutdown.is_cancelled() {
                let since = *shutdown_seen.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.settings.shutdown_report_grace {
                    tracing::error!(
                        "action {}: giving up reporting {:?} at shutdown: {err}",
                        report.action_name,
                        report.state
                    );
                    return Acknowledgement::Abandoned;
                }
            }
            let delay = self.settings.report.next_delay();
            tracing::warn!(
                "action {}: cannot report {:?}: {err}; trying again in {:.1} s",
                report.action_name,
                report.state,
                delay.as_secs_f64()
            );
            // Not `pause`: a shutdown must not cut short the retries of a report.
            tokio::time::sleep(delay).await;
        }
    }
}

fn report_of(
    action: &Action,
    state: ActionState,
    started: SystemTime,
    stopped: Option<SystemTime>,
    message: String,
) -> ActionReport {
    ActionReport {
        workflow_id: action.workflow_id.clone(),
        task_id: action.task_id.clone(),
        action_id: action.action_id.clone(),
        task_name: action.task_name.clone(),
        action_name: action.name.clone(),
        state,
        started,
        stopped,
        message,
    }
}

fn completion_of(action: &Action, outcome: &RunOutcome) -> Completion {
    let state = match outcome.exit_code {
        Some(0) => ActionState::Success,
        Some(_) => ActionState::Failed,
        None => ActionState::Timeout,
    };
    let end = describe_end(outcome.exit_code, action.timeout);
    let message = if state == ActionState::Success {
        end
    } else {
        with_output_tail(end, &outcome.last_lines)
    };
    Completion { state, message }
}

fn describe_end(exit_code: Option<i64>, timeout: Duration) -> String {
    match exit_code {
        Some(code) => format!("exited with status {code}"),
        None => format!("killed after its timeout of {} s", timeout.as_secs()),
    }
}

/// `head` followed by the last output lines, cut to [`MESSAGE_MAX_BYTES`] by dropping
/// the oldest lines first (the end of the output is where the reason usually is), each
/// line cut to [`MESSAGE_MAX_LINE_BYTES`].
fn with_output_tail(head: String, lines: &[String]) -> String {
    let tail_start = lines.len().saturating_sub(MESSAGE_TAIL_LINES);
    let mut tail: Vec<&str> = lines[tail_start..].iter().map(|line| clip(line)).collect();
    let budget = MESSAGE_MAX_BYTES.saturating_sub(head.len() + 20);
    while tail.iter().map(|line| line.len() + 1).sum::<usize>() > budget && !tail.is_empty() {
        tail.remove(0);
    }
    if tail.is_empty() {
        head
    } else {
        format!("{head}; last output:\n{}", tail.join("\n"))
    }
}

fn clip(line: &str) -> &str {
    let mut end = line.len().min(MESSAGE_MAX_LINE_BYTES);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

#[cfg(test)]
mod tests;
