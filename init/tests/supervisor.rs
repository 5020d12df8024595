//! The supervisor end to end: `bootkit supervise DIR` on a directory of service definitions
//! whose services are /bin/sh scripts, stopped with the signals PID 1 receives. Every wait has
//! a deadline; on failure the supervisor and its services are killed and the output shown.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

const DEADLINE: Duration = Duration::from_secs(10);

/// A running `bootkit supervise` and everything it has printed so far.
struct Supervise {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    exited: bool,
}

impl Supervise {
    fn start(dir: &Path) -> Supervise {
        Supervise::start_with(dir, &[])
    }

    fn start_with(dir: &Path, extra_args: &[String]) -> Supervise {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bootkit"))
            .arg("supervise")
            .arg(dir)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bootkit supervise");
        let (sender, lines) = channel();
        forward(child.stdout.take().unwrap(), sender.clone());
        forward(child.stderr.take().unwrap(), sender);
        Supervise {
            child,
            lines,
            seen: Vec::new(),
            exited: false,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Wait for a line containing `needle`; returns its index in `seen`.
    fn wait_for(&mut self, needle: &str) -> usize {
        let deadline = Instant::now() + DEADLINE;
        let mut from = 0;
        loop {
            if let Some(at) = self.seen[from..].iter().position(|l| l.contains(needle)) {
                return from + at;
            }
            from = self.seen.len();
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("timed out waiting for {needle:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("output ended before {needle:?}"))
                }
            }
        }
    }

    /// Wait until `needle` has been seen `count` times.
    fn wait_for_count(&mut self, needle: &str, count: usize) {
        let deadline = Instant::now() + DEADLINE;
        while self.count(needle) < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => self.fail(&format!("{needle:?} not seen {count} times")),
            }
        }
    }

    fn count(&self, needle: &str) -> usize {
        self.seen.iter().filter(|l| l.contains(needle)).count()
    }

    fn index_of(&self, needle: &str) -> usize {
        match self.seen.iter().position(|l| l.contains(needle)) {
            Some(at) => at,
            None => self.fail(&format!("{needle:?} never printed")),
        }
    }

    fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap();
    }

    /// Wait for the supervisor to exit and for all of its output; returns its exit code.
    fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => self.fail("timed out waiting for exit"),
            }
        }
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.exited = true;
                return status.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.fail("output closed but the process did not exit")
    }

    fn fail(&self, why: &str) -> ! {
        panic!("{why}; output so far:\n{}", self.seen.join("\n"))
    }

    /// Pids of services from their `started (pid N)` lines.
    fn service_pids(&self) -> Vec<i32> {
        self.seen
            .iter()
            .filter_map(|l| l.split("started (pid ").nth(1))
            .filter_map(|rest| rest.trim_end_matches(')').parse().ok())
            .collect()
    }
}

impl Drop for Supervise {
    /// On a failed test, do not leave the supervisor or its services running.
    fn drop(&mut self) {
        if self.exited {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in self.service_pids() {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

fn forward(pipe: impl Read + Send + 'static, lines: Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });
}

/// A temporary services directory.
struct Services {
    dir: tempfile::TempDir,
}

impl Services {
    fn new() -> Services {
        Services {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A service running `script` with /bin/sh, plus more definition lines.
    fn add(&self, name: &str, script: &str, extra: &str) -> &Self {
        let text = format!("command = \"/bin/sh\"\nargs = [\"-c\", '''{script}''']\n{extra}\n");
        std::fs::write(self.dir.path().join(format!("{name}.toml")), text).unwrap();
        self
    }

    fn add_raw(&self, file: &str, text: &str) -> &Self {
        std::fs::write(self.dir.path().join(file), text).unwrap();
        self
    }
}

#[test]
fn services_start_in_dependency_order_and_stop_in_reverse() {
    let services = Services::new();
    services
        .add(
            "alpha",
            "echo alpha up; exec sleep 30",
            "requires = [\"mid\"]",
        )
        .add("mid", "echo mid up; exec sleep 30", "after = [\"zeta\"]")
        .add("zeta", "echo zeta up; exec sleep 30", "");
    let mut run = Supervise::start(services.path());
    run.wait_for("supervise: ready (3 services)");
    let zeta = run.index_of("] zeta: started (pid ");
    let mid = run.index_of("] mid: started (pid ");
    let alpha = run.index_of("] alpha: started (pid ");
    assert!(
        zeta < mid && mid < alpha,
        "start order:\n{}",
        run.seen.join("\n")
    );
    run.wait_for("alpha: alpha up");
    run.signal(Signal::SIGUSR2);
    run.wait_for("supervise: stopped, requested poweroff");
    assert_eq!(run.wait_exit(), 0);
    let stop = |name: &str| run.index_of(&format!("supervisor: stopping {name}"));
    let stopped = |name: &str| run.index_of(&format!("supervisor: stopped {name}"));
    assert!(stop("alpha") < stopped("alpha") && stopped("alpha") < stop("mid"));
    assert!(stop("mid") < stopped("mid") && stopped("mid") < stop("zeta"));
    assert!(run.index_of("zeta: killed by signal 15 (SIGTERM)") < stopped("zeta"));
}

#[test]
fn output_is_logged_line_by_line_with_the_service_name() {
    let services = Services::new();
    let printed = services.path().join("printed");
    services.add(
        "talker",
        &format!(
            r#"echo to stdout; echo to stderr >&2; echo "path=$PATH greeting=$GREETING"
printf 'no newline at the end'; touch {}; exec sleep 30"#,
            printed.display()
        ),
        "environment = { GREETING = \"hi there\" }",
    );
    let mut run = Supervise::start(services.path());
    run.wait_for("] talker: to stdout");
    run.wait_for("] talker: to stderr");
    run.wait_for("] talker: path=/usr/sbin:/usr/bin:/sbin:/bin greeting=hi there");
    run.wait_for("supervise: ready (1 services)");
    // Stop only once the partial line is written, or there is nothing to log at the close.
    let deadline = Instant::now() + DEADLINE;
    while !printed.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    run.signal(Signal::SIGUSR2);
    // The last line had no newline: it is logged once the pipe closes.
    run.wait_for("] talker: no newline at the end");
    run.wait_for("supervise: stopped, requested poweroff");
    assert_eq!(run.wait_exit(), 0);
}

#[test]
fn services_start_with_no_signal_blocked() {
    // The supervisor blocks the signals it handles; a service must not inherit that. `exec`, so
    // that no shell in between resets the mask.
    let services = Services::new();
    services.add(
        "mask",
        "exec grep -E '^Sig(Blk|Ign)' /proc/self/status",
        "restart = \"never\"",
    );
    let mut run = Supervise::start(services.path());
    run.wait_for("] mask: SigBlk:\t0000000000000000");
    run.wait_for("mask: exited with status 0");
    run.signal(Signal::SIGUSR2);
    run.wait_for("supervise: stopped, requested poweroff");
    assert_eq!(run.wait_exit(), 0);
}

#[test]
fn a_crashing_service_is_restarted_and_a_never_service_is_not() {
    let services = Services::new();
    services
        .add(
            "crasher",
            "echo crasher run; exit 3",
            "restart_delay_ms = 50\nrestart_max_delay_ms = 100",
        )
        .add("once", "echo once run; exit 1", "restart = \"never\"");
    let mut run = Supervise::start(services.path());
    run.wait_for_count("crasher: crasher run", 3);
    run.wait_for("crasher: exited with status 3, restarting in 50 ms");
    run.wait_for("crasher: exited with status 3, restarting in 100 ms");
    run.wait_for("once: exited with status 1, restart=never: not restarting");
    run.signal(Signal::SIGINT);
    run.wait_for("supervise: stopped, requested reboot");
    assert_eq!(run.wait_exit(), 0);
    assert!(run.count("crasher: started (pid ") >= 3);
    assert_eq!(run.count("once: started (pid "), 1);
    assert_eq!(run.count("once: once run"), 1);
    // Pending restarts are cancelled at shutdown: nothing starts after the request.
    let requested = run.index_of("SIGINT received");
    assert!(
        !run.seen[requested..]
            .iter()
            .any(|l| l.contains("started (pid"))
    );
}

#[test]
fn a_file_readiness_rule_delays_the_dependents() {
    let services = Services::new();
    let flag = services.path().join("slow.ready");
    services
        .add(
            "slow",
            &format!(
                "sleep 0.3; echo slow ready now; touch {}; exec sleep 30",
                flag.display()
            ),
            &format!("ready = {{ file = \"{}\" }}", flag.display()),
        )
        .add(
            "dependent",
            "echo dependent up; exec sleep 30",
            "requires = [\"slow\"]",
        );
    let mut run = Supervise::start(services.path());
    let started = Instant::now();
    run.wait_for("supervise: ready (2 services)");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let ready = run.index_of("] slow: ready");
    let dependent = run.index_of("] dependent: started (pid ");
    assert!(run.index_of("] slow: started (pid ") < ready && ready < dependent);
    assert!(dependent < run.index_of("supervise: ready"));
    run.signal(Signal::SIGUSR2);
    run.wait_for("supervise: stopped, requested poweroff");
    assert_eq!(run.wait_exit(), 0);
}

#[test]
fn built_in_targets_hold_back_their_dependents_until_reached() {
    let services = Services::new();
    let online = services.path().join("network-online.reached");
    services
        .add(
            "worker",
            "echo worker up; exec sleep 30",
            "requires = [\"network-online\"]",
        )
        .add(
            "needs-time",
            "echo needs-time up; exec sleep 30",
            "requires = [\"time-sync\"]",
        )
        .add("plain", "echo plain up; exec sleep 30", "");
    let targets = [
        format!("network-online:{}:10000", online.display()),
        format!("time-sync:{}:300", services.path().join("never").display()),
    ];
    let args: Vec<String> = targets
        .iter()
        .flat_map(|t| ["--target".to_string(), t.clone()])
        .collect();
    let mut run = Supervise::start_with(services.path(), &args);
    run.wait_for("plain: plain up");
    run.wait_for("time-sync: warning: not reached within 0.3 s");
    run.wait_for("needs-time: error: not starting: it requires time-sync, which failed to start");
    assert_eq!(
        run.count("worker: worker up"),
        0,
        "worker waits for network-online"
    );
    std::fs::write(&online, "").unwrap();
    run.wait_for("network-online: reached");
    run.wait_for("worker: worker up");
    run.wait_for("supervise: ready (2 services)");
    run.signal(Signal::SIGUSR2);
    run.wait_for("supervise: stopped, requested poweroff");
    assert_eq!(run.wait_exit(), 0);
}

#[test]
fn a_failed_target_gives_up_its_dependents_before_its_timeout() {
    let services = Services::new();
    let online = services.path().join("network-online");
    services.add(
        "worker",
        "echo worker up; exec sleep 30",
        "requires = [\"network-online\"]",
    );
    let target = format!("network-online:{}:60000", online.display());
    let mut run = Supervise::start_with(services.path(), &["--target".to_string(), target]);
    run.wait_for("network-online: waiting for it to be reached");
    let failed_at = Instant::now();
    std::fs::write(
        services.path().join("network-online.failed"),
        "thread network panicked at net.rs:1:1: boom",
    )
    .unwrap();
    run.wait_for(
        "network-online: error: failed (thread network panicked at net.rs:1:1: boom): \
         services that require it will not start",
    );
    run.wait_for("worker: error: not starting: it requires network-online, which failed to start");
    assert!(failed_at.elapsed() < Duration::from_secs(5));
    assert_eq!(run.count("worker: worker up"), 0);
    run.signal(Signal::SIGUSR2);
    run.wait_for("supervise: stopped, requested poweroff");
    assert_eq!(run.wait_exit(), 0);
}

#[test]
fn a_readiness_timeout_lets_the_boot_go_on() {
    let services = Services::new();
    services.add(
        "never-ready",
        "exec sleep 30",
        "ready = { tcp = \"127.0.0.1:9\" }\nready_timeout_ms = 200",
    );
    let mut run = Supervise::start(services.path());
    run.wait_for("never-ready: warning: not ready after 200 ms (tcp 127.0.0.1:9)");
    run.wait_for("supervise: ready (1 services)");
    run.signal(Signal::SIGUSR1);
    run.wait_for("supervise: stopped, requested halt");
    assert_eq!(run.wait_exit(), 0);
}

#[test]
fn a_service_ignoring_sigterm_is_killed_after_its_stop_timeout() {
    let services = Services::new();
    services.add(
        "stubborn",
        "trap '' TERM; echo ignoring TERM; while :; do sleep 0.05; done",
        "stop_timeout_ms = 300",
    );
    let mut run = Supervise::start(services.path());
    run.wait_for("stubborn: ignoring TERM");
    let asked = Instant::now();
    run.signal(Signal::SIGUSR2);
    run.wait_for("stubborn did not stop within 300 ms of SIGTERM: sending SIGKILL");
    run.wait_for("stubborn: killed by signal 9 (SIGKILL)");
    run.wait_for("supervisor: stopped stubborn");
    run.wait_for("supervise: stopped, requested poweroff");
    assert!(asked.elapsed() >= Duration::from_millis(300));
    assert!(asked.elapsed() < Duration::from_secs(3));
    assert_eq!(run.wait_exit(), 0);
}

#[test]
fn orphaned_grandchildren_are_reaped() {
    let services = Services::new();
    services.add(
        "forker",
        "sleep 0.2 & echo grandchild $!; exit 0",
        "restart = \"never\"",
    );
    let mut run = Supervise::start(services.path());
    let at = run.wait_for("forker: grandchild ");
    let line = run.seen[at].clone();
    let grandchild: i32 = line.rsplit(' ').next().unwrap().parse().unwrap();
    run.wait_for("forker: exited with status 0, restart=never: not restarting");
    // The grandchild ends after its parent, as an orphan of the supervisor (a subreaper):
    // once reaped, it disappears from /proc instead of staying a zombie.
    let deadline = Instant::now() + DEADLINE;
    while Path::new(&format!("/proc/{grandchild}")).exists() {
        assert!(
            Instant::now() < deadline,
            "grandchild {grandchild} was never reaped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(zombie_children(run.pid()).is_empty());
    run.signal(Signal::SIGUSR2);
    run.wait_for("supervise: stopped, requested poweroff");
    assert_eq!(run.wait_exit(), 0);
}

/// Pids of zombie processes whose parent is `parent`.
fn zombie_children(parent: Pid) -> Vec<i32> {
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        if field("PPid:") == parent.to_string() && field("State:").starts_with('Z') {
            zombies.push(field("Pid:").parse().unwrap_or(0));
        }
    }
    zombies
}

#[test]
fn bad_definitions_are_reported_and_the_others_still_run() {
    let services = Services::new();
    services
        .add("good", "echo good up; exec sleep 30", "after = [\"ghost\"]")
        .add_raw(
            "typo.toml",
            "command = \"/bin/true\"\nrestart_dealy_ms = 5\n",
        )
        .add("needs-ghost", "exec sleep 30", "requires = [\"ghost\"]")
        .add("needs-typo", "exec sleep 30", "requires = [\"typo\"]")
        .add("loop-a", "exec sleep 30", "after = [\"loop-b\"]")
        .add("loop-b", "exec sleep 30", "after = [\"loop-a\"]")
        .add("shell-only", "exec sleep 30", "modes = [\"shell\"]")
        .add(
            "needs-missing",
            "exec sleep 30",
            "requires = [\"missing-binary\"]",
        )
        .add_raw(
            "missing-binary.toml",
            "command = \"/nonexistent/program\"\nrestart = \"always\"",
        );
    let mut run = Supervise::start(services.path());
    run.wait_for("supervise: ready (1 services)");
    run.wait_for("good: good up");
    run.index_of("typo.toml: line 2: unknown field `restart_dealy_ms`");
    run.index_of("good: ignoring `after = ghost`: there is no such service");
    run.index_of("needs-ghost will not start: requires ghost, but there is no such service");
    run.index_of("needs-typo will not start: requires typo, but its definition failed to load");
    run.index_of("loop-a will not start: dependency cycle loop-");
    run.index_of("loop-b will not start: dependency cycle loop-");
    run.index_of("shell-only: not for mode provision");
    run.index_of("missing-binary: error: cannot start /nonexistent/program");
    run.index_of("needs-missing: error: not starting: it requires missing-binary, which failed");
    run.signal(Signal::SIGUSR2);
    run.wait_for("supervise: stopped, requested poweroff");
    assert_eq!(run.wait_exit(), 0);
    assert_eq!(run.count("missing-binary: started"), 0);
    assert_eq!(run.count("needs-missing: started"), 0);
}

#[test]
fn no_services_is_ready_at_once() {
    let services = Services::new();
    let mut run = Supervise::start(services.path());
    run.wait_for("supervise: ready (0 services)");
    run.signal(Signal::SIGPWR);
    run.wait_for("supervise: stopped, requested poweroff");
    assert_eq!(run.wait_exit(), 0);
}
