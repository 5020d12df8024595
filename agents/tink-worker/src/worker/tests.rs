//! The loop's decisions, driven by a scripted server and runner.

use std::collections::VecDeque;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::power::{PowerAction, PowerControl};
use super::*;
use crate::worker_dir::REBOOT_FILE;

/// A workflow service that answers from a script; when the script of next actions runs
/// out it requests the shutdown, which bounds every test.
struct ScriptedServer {
    next: VecDeque<Result<Option<Action>, StepError>>,
    report_answers: VecDeque<Result<(), StepError>>,
    reports: Vec<ActionReport>,
    shutdown: CancellationToken,
}

impl WorkflowServer for &mut ScriptedServer {
    async fn next_action(&mut self) -> Result<Option<Action>, StepError> {
        match self.next.pop_front() {
            Some(answer) => answer,
            None => {
                self.shutdown.cancel();
                Ok(None)
            }
        }
    }

    async fn report(&mut self, report: &ActionReport) -> Result<(), StepError> {
        let answer = self.report_answers.pop_front().unwrap_or(Ok(()));
        if answer.is_ok() {
            self.reports.push(report.clone());
        }
        answer
    }
}

#[derive(Debug, PartialEq)]
struct Run {
    action: String,
    command_override: Option<Vec<String>>,
    label: String,
}

#[derive(Default)]
struct ScriptedRunner {
    pull_answers: VecDeque<Result<(), StepError>>,
    pulls: usize,
    outcomes: VecDeque<RunOutcome>,
    runs: Vec<Run>,
    /// Requests the shutdown when a container runs, as a SIGTERM in mid-action would.
    shutdown_when_run: Option<CancellationToken>,
}

impl ActionRunner for &mut ScriptedRunner {
    async fn pull(&mut self, _image: &str) -> Result<(), StepError> {
        self.pulls += 1;
        self.pull_answers.pop_front().unwrap_or(Ok(()))
    }

    async fn run(&mut self, request: RunRequest<'_>) -> Result<RunOutcome, StepError> {
        self.runs.push(Run {
            action: request.action.name.clone(),
            command_override: request.command_override.map(<[String]>::to_vec),
            label: request.label.to_string(),
        });
        if let Some(shutdown) = &self.shutdown_when_run {
            shutdown.cancel();
        }
        Ok(self.outcomes.pop_front().unwrap_or(exited(0, &[])))
    }
}

#[derive(Default)]
struct RecordingPower {
    performed: Vec<PowerAction>,
    /// How many reports the server had acknowledged when the power action ran.
    reports_before: Vec<usize>,
}

struct PowerProbe<'a> {
    power: &'a mut RecordingPower,
    acknowledged: std::rc::Rc<std::cell::Cell<usize>>,
}

impl PowerControl for PowerProbe<'_> {
    fn perform(&mut self, action: PowerAction) -> std::io::Result<()> {
        self.power.performed.push(action);
        self.power.reports_before.push(self.acknowledged.get());
        Ok(())
    }
}

fn action(workflow: &str, name: &str) -> Action {
    Action {
        workflow_id: workflow.to_string(),
        task_id: "task-1".to_string(),
        action_id: format!("{workflow}-{name}"),
        task_name: "provision".to_string(),
        name: name.to_string(),
        image: "registry.local/actions/busybox:1".to_string(),
        timeout: Duration::from_secs(60),
        ..Action::default()
    }
}

fn exited(code: i64, lines: &[&str]) -> RunOutcome {
    RunOutcome {
        exit_code: Some(code),
        last_lines: lines.iter().map(|line| line.to_string()).collect(),
    }
}

fn fast_settings(worker_dir: &std::path::Path) -> Settings {
    let tiny = waits(Duration::from_millis(1), Duration::from_millis(5));
    Settings {
        worker_dir: worker_dir.to_path_buf(),
        idle: tiny.clone(),
        unreachable: tiny.clone(),
        report: tiny.clone(),
        refused: tiny.clone(),
        pull: tiny,
        shutdown_report_grace: Duration::from_millis(50),
    }
}

struct Scenario {
    server: ScriptedServer,
    runner: ScriptedRunner,
    power: RecordingPower,
    dir: tempfile::TempDir,
    shutdown: CancellationToken,
}

impl Scenario {
    fn new(next: Vec<Result<Option<Action>, StepError>>) -> Self {
        let shutdown = CancellationToken::new();
        Self {
            server: ScriptedServer {
                next: next.into(),
                report_answers: VecDeque::new(),
                reports: vec![],
                shutdown: shutdown.clone(),
            },
            runner: ScriptedRunner::default(),
            power: RecordingPower::default(),
            dir: tempfile::tempdir().unwrap(),
            shutdown,
        }
    }

    /// Runs the loop to its end; returns why it ended.
    async fn run(&mut self) -> Exit {
        self.run_with(|_| {}).await
    }

    /// [`Scenario::run`] with the test's settings changed by `adjust`.
    async fn run_with(&mut self, adjust: impl FnOnce(&mut Settings)) -> Exit {
        let acknowledged = std::rc::Rc::new(std::cell::Cell::new(0));
        let counter = CountingServer {
            inner: &mut self.server,
            acknowledged: acknowledged.clone(),
        };
        let probe = PowerProbe {
            power: &mut self.power,
            acknowledged,
        };
        let mut settings = fast_settings(self.dir.path());
        adjust(&mut settings);
        let mut worker = Worker::new(
            counter,
            &mut self.runner,
            probe,
            settings,
            self.shutdown.clone(),
        );
        tokio::time::timeout(Duration::from_secs(20), worker.run())
            .await
            .expect("the worker loop ends once the script runs out")
    }

    fn states(&self) -> Vec<(String, ActionState)> {
        self.server
            .reports
            .iter()
            .map(|report| (report.action_name.clone(), report.state))
            .collect()
    }
}

/// Counts acknowledged reports, so a test can tell the power action came after them.
struct CountingServer<'a> {
    inner: &'a mut ScriptedServer,
    acknowledged: std::rc::Rc<std::cell::Cell<usize>>,
}

impl WorkflowServer for CountingServer<'_> {
    async fn next_action(&mut self) -> Result<Option<Action>, StepError> {
        (&mut *self.inner).next_action().await
    }

    async fn report(&mut self, report: &ActionReport) -> Result<(), StepError> {
        let answer = (&mut *self.inner).report(report).await;
        if answer.is_ok() {
            self.acknowledged.set(self.acknowledged.get() + 1);
        }
        answer
    }
}

fn transient(reason: &str) -> StepError {
    StepError::Transient(reason.to_string())
}

#[tokio::test]
async fn actions_run_in_order_each_reported_running_then_success_with_times() {
    let mut scenario = Scenario::new(vec![
        Ok(Some(action("wf-1", "write"))),
        Ok(Some(action("wf-1", "read"))),
        Ok(None),
    ]);
    assert_eq!(scenario.run().await, Exit::Shutdown);
    assert_eq!(
        scenario.states(),
        vec![
            ("write".to_string(), ActionState::Running),
            ("write".to_string(), ActionState::Success),
            ("read".to_string(), ActionState::Running),
            ("read".to_string(), ActionState::Success),
        ]
    );
    for report in &scenario.server.reports {
        if report.state == ActionState::Success {
            let stopped = report
                .stopped
                .expect("a final report carries its stop time");
            assert!(stopped >= report.started);
        } else {
            assert_eq!(report.stopped, None);
        }
    }
    assert!(scenario.dir.path().join("wf-1").is_dir());
    assert!(scenario.power.performed.is_empty());
}

#[tokio::test]
async fn server_errors_never_stop_the_loop_and_reports_are_retried_until_acknowledged() {
    let mut scenario = Scenario::new(vec![
        Err(transient("connection refused")),
        Err(transient("connection refused")),
        Ok(Some(action("wf-1", "only"))),
    ]);
    scenario.server.report_answers = VecDeque::from([
        Err(transient("unavailable")),
        Ok(()),
        Err(transient("unavailable")),
        Err(transient("unavailable")),
        Err(transient("unavailable")),
        Ok(()),
    ]);
    scenario.run().await;
    assert_eq!(
        scenario.states(),
        vec![
            ("only".to_string(), ActionState::Running),
            ("only".to_string(), ActionState::Success),
        ]
    );
    assert_eq!(scenario.runner.runs.len(), 1, "the action ran exactly once");
}

#[tokio::test]
async fn an_action_the_server_rejects_when_it_starts_is_dropped_not_run() {
    let mut scenario = Scenario::new(vec![Ok(Some(action("wf-1", "stale")))]);
    scenario.server.report_answers =
        VecDeque::from([Err(StepError::Permanent("workflow deleted".to_string()))]);
    scenario.run().await;
    assert!(scenario.runner.runs.is_empty());
    assert_eq!(scenario.runner.pulls, 0);
    assert!(scenario.server.reports.is_empty());
}

/// A server that refuses the RUNNING report serves the same action again at once; the worker
/// waits before asking again (doubling), instead of polling in a tight loop.
#[tokio::test]
async fn after_a_refused_running_report_the_worker_waits_before_asking_again() {
    let mut scenario = Scenario::new(vec![
        Ok(Some(action("wf-1", "stale"))),
        Ok(Some(action("wf-1", "stale"))),
        Ok(Some(action("wf-1", "stale"))),
    ]);
    let refused = || Err(StepError::Permanent("workflow is not running".to_string()));
    scenario.server.report_answers = VecDeque::from([refused(), refused(), refused()]);
    let started = std::time::Instant::now();
    scenario
        .run_with(|settings| settings.refused = waits(REFUSED_WAIT, REFUSED_WAIT * 4))
        .await;
    // Three refusals: at least the first wait and the doubled ones (jitter takes off up to a
    // quarter of each); sleeps never end early, so this bound cannot flake.
    let least = (REFUSED_WAIT + REFUSED_WAIT * 2 + REFUSED_WAIT * 4) * 3 / 4;
    assert!(
        started.elapsed() >= least,
        "three refusals took {:?}, less than {least:?}",
        started.elapsed()
    );
    assert!(scenario.runner.runs.is_empty());
}

const REFUSED_WAIT: Duration = Duration::from_millis(40);

#[tokio::test]
async fn a_failed_action_reports_its_output_tail_and_runs_its_on_failure_hook() {
    let mut failing = action("wf-1", "partition");
    failing.on_failure = vec!["sh".to_string(), "-c".to_string(), "cleanup".to_string()];
    let mut scenario = Scenario::new(vec![Ok(Some(failing)), Ok(None)]);
    scenario.runner.outcomes =
        VecDeque::from([exited(3, &["starting", "sgdisk: no such disk /dev/sdz"])]);
    std::fs::write(scenario.dir.path().join(REBOOT_FILE), "").unwrap();
    scenario.run().await;

    let last = scenario.server.reports.last().unwrap();
    assert_eq!(last.state, ActionState::Failed);
    assert!(last.message.contains("status 3"), "{}", last.message);
    assert!(
        last.message.contains("sgdisk: no such disk /dev/sdz"),
        "{}",
        last.message
    );
    assert_eq!(scenario.runner.runs.len(), 2);
    assert_eq!(
        scenario.runner.runs[1].command_override.as_deref(),
        Some(&["sh".to_string(), "-c".to_string(), "cleanup".to_string()][..])
    );
    assert_eq!(scenario.runner.runs[1].label, "partition on-failure");
    assert!(
        scenario.power.performed.is_empty(),
        "a failed workflow does not reboot the node"
    );
}

#[tokio::test]
async fn a_timed_out_action_reports_timeout_and_runs_its_on_timeout_hook() {
    let mut slow = action("wf-1", "slow");
    slow.on_timeout = vec!["echo".to_string(), "timed out".to_string()];
    let mut scenario = Scenario::new(vec![Ok(Some(slow))]);
    scenario.runner.outcomes = VecDeque::from([RunOutcome {
        exit_code: None,
        last_lines: vec!["still working".to_string()],
    }]);
    scenario.run().await;
    let last = scenario.server.reports.last().unwrap();
    assert_eq!(last.state, ActionState::Timeout);
    assert!(last.message.contains("timeout of 60 s"), "{}", last.message);
    assert!(last.message.contains("still working"), "{}", last.message);
    assert_eq!(scenario.runner.runs[1].label, "slow on-timeout");
}

#[tokio::test]
async fn pull_errors_are_retried_and_count_in_the_action_timeout() {
    let mut scenario = Scenario::new(vec![Ok(Some(action("wf-1", "flaky-registry")))]);
    scenario.runner.pull_answers = VecDeque::from([
        Err(transient("connection refused")),
        Err(transient("connection refused")),
        Ok(()),
    ]);
    scenario.run().await;
    assert_eq!(scenario.runner.pulls, 3);
    assert_eq!(
        scenario.server.reports.last().unwrap().state,
        ActionState::Success
    );

    let mut never = action("wf-2", "registry-down");
    never.timeout = Duration::from_millis(30);
    let mut scenario = Scenario::new(vec![Ok(Some(never))]);
    scenario.runner.pull_answers = (0..10_000)
        .map(|_| Err(transient("connection refused")))
        .collect();
    scenario.run().await;
    let last = scenario.server.reports.last().unwrap();
    assert_eq!(last.state, ActionState::Timeout);
    assert!(
        last.message.contains("could not be pulled"),
        "{}",
        last.message
    );
    assert!(
        scenario.runner.runs.is_empty(),
        "nothing ran without its image"
    );
}

#[tokio::test]
async fn an_unknown_image_fails_the_action_at_once() {
    let mut scenario = Scenario::new(vec![Ok(Some(action("wf-1", "typo")))]);
    scenario.runner.pull_answers =
        VecDeque::from([Err(StepError::Permanent("manifest unknown".to_string()))]);
    scenario.run().await;
    let last = scenario.server.reports.last().unwrap();
    assert_eq!(last.state, ActionState::Failed);
    assert!(
        last.message.contains("manifest unknown"),
        "{}",
        last.message
    );
    assert_eq!(scenario.runner.pulls, 1);
}

#[tokio::test]
async fn the_reboot_file_reboots_once_the_workflow_is_done_and_reported() {
    let mut scenario = Scenario::new(vec![
        Ok(Some(action("wf-1", "first"))),
        Ok(Some(action("wf-1", "last"))),
        Ok(None),
    ]);
    std::fs::write(scenario.dir.path().join(REBOOT_FILE), "").unwrap();
    assert_eq!(scenario.run().await, Exit::Power(PowerAction::Reboot));
    assert_eq!(scenario.power.performed, vec![PowerAction::Reboot]);
    assert_eq!(
        scenario.power.reports_before,
        vec![4],
        "the power action comes after all four reports were acknowledged"
    );
    assert!(!scenario.dir.path().join(REBOOT_FILE).exists());
}

#[tokio::test]
async fn the_environment_asks_for_poweroff_when_the_next_workflow_starts_too() {
    let mut last = action("wf-1", "last");
    last.environment = vec!["TINK_WORKER_AFTER=poweroff".to_string()];
    let mut scenario = Scenario::new(vec![
        Ok(Some(last)),
        Ok(Some(action("wf-2", "next-workflow"))),
    ]);
    assert_eq!(scenario.run().await, Exit::Power(PowerAction::Poweroff));
    assert!(
        scenario.runner.runs.iter().all(|run| run.action == "last"),
        "the next workflow did not start before the power off"
    );
}

#[tokio::test]
async fn a_shutdown_during_an_action_lets_it_finish_and_report_but_starts_no_other() {
    let mut scenario = Scenario::new(vec![
        Ok(Some(action("wf-1", "current"))),
        Ok(Some(action("wf-1", "never"))),
    ]);
    scenario.runner.shutdown_when_run = Some(scenario.shutdown.clone());
    scenario.server.report_answers =
        VecDeque::from([Ok(()), Err(transient("server restarting")), Ok(())]);
    assert_eq!(scenario.run().await, Exit::Shutdown);
    assert_eq!(
        scenario.states(),
        vec![
            ("current".to_string(), ActionState::Running),
            ("current".to_string(), ActionState::Success),
        ]
    );
    assert_eq!(scenario.runner.runs.len(), 1);
}

#[test]
fn failure_messages_stay_bounded_and_keep_the_last_lines() {
    let lines: Vec<String> = (0..100)
        .map(|index| format!("{index:03} {}", "é".repeat(400)))
        .collect();
    let action = action("wf-1", "noisy");
    let completion = completion_of(
        &action,
        &RunOutcome {
            exit_code: Some(1),
            last_lines: lines,
        },
    );
    assert!(
        completion.message.len() <= MESSAGE_MAX_BYTES,
        "{}",
        completion.message.len()
    );
    assert!(completion.message.starts_with("exited with status 1"));
    assert!(
        completion.message.contains("\n099 "),
        "the last line is kept"
    );
    assert!(
        !completion.message.contains("\n000 "),
        "the oldest lines go first"
    );
}

/// Ids that would climb out of the worker directory as paths are escaped into one name
/// inside it (`crate::worker_dir`): the action runs, and nothing is made outside.
#[tokio::test]
async fn a_workflow_id_shaped_like_a_path_stays_inside_the_worker_directory() {
    let mut scenario = Scenario::new(vec![
        Ok(Some(action("../../etc", "climb"))),
        Ok(Some(action("default/wf-1", "namespaced"))),
    ]);
    scenario.run().await;
    assert_eq!(scenario.runner.runs.len(), 2);
    let mut made: Vec<String> = std::fs::read_dir(scenario.dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    assert_eq!(made, ["%2E.%2F..%2Fetc", "default%2Fwf-1"]);
}

#[test]
fn waits_double_then_stay_at_the_cap_never_exceeding_it() {
    let base = Duration::from_millis(100);
    let cap = Duration::from_millis(700);
    let mut backoff = waits(base, cap);
    let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
    let ceilings = [100u64, 200, 400, 700, 700, 700, 700, 700];
    for (delay, ceiling) in delays.iter().zip(ceilings) {
        let ceiling = Duration::from_millis(ceiling);
        assert!(*delay <= ceiling, "{delay:?} above {ceiling:?}");
        assert!(
            *delay >= ceiling.mul_f64(0.75),
            "{delay:?} too far below {ceiling:?}"
        );
    }
}

#[test]
fn reset_starts_again_from_the_base_delay() {
    let base = Duration::from_millis(100);
    let mut backoff = waits(base, Duration::from_secs(60));
    for _ in 0..10 {
        backoff.next_delay();
    }
    backoff.reset();
    assert!(backoff.next_delay() <= base);
}
