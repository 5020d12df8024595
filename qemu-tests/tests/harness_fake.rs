//! The harness against a fake "qemu" (a shell script), no kernel needed:
//! markers, console input, timeouts, early exit, and QEMU always killed.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use qemu_tests::{Error, Vm, VmConfig};
use tempfile::TempDir;

/// A config whose "qemu" is `/bin/sh` running `body`; QEMU's arguments
/// become the script's positional parameters and are ignored.
fn fake(name: &str, body: &str) -> Result<(TempDir, VmConfig)> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("fake-qemu");
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n"))?;
    make_executable(&script)?;
    let kernel = dir.path().join("vmlinuz");
    let initrd = dir.path().join("initramfs");
    std::fs::write(&kernel, b"")?;
    std::fs::write(&initrd, b"")?;
    let mut cfg = VmConfig::new(name, kernel, initrd).append("console=ttyS0");
    cfg.qemu = script;
    Ok((dir, cfg))
}

fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// True once `pid` is gone (or only a zombie waiting for its new parent).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if process_gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn read_pid(path: &Path) -> Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return Ok(pid);
        }
        if Instant::now() >= deadline {
            bail!("{} never appeared", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn timeout_fires_with_console_tail_and_drop_kills_the_process_group() -> Result<()> {
    let (dir, cfg) = fake(
        "fake_timeout",
        "echo 'fake: booting'\nsleep 30 &\necho $! > \"$PIDS/sleep\"\necho $$ > \"$PIDS/sh\"\nwait",
    )?;
    // The pid directory is written into the script (no process-wide env var).
    let script =
        std::fs::read_to_string(&cfg.qemu)?.replace("$PIDS", &dir.path().display().to_string());
    std::fs::write(&cfg.qemu, script)?;

    let mut vm = Vm::boot(cfg)?;
    vm.wait_for("fake: booting", Duration::from_secs(10))?;
    let t0 = Instant::now();
    let err = vm
        .wait_for("never printed", Duration::from_millis(500))
        .expect_err("must time out");
    let waited = t0.elapsed();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.is_not_seen());
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("fake: booting"),
        "the error shows the console tail: {msg}"
    );
    assert!(
        msg.contains("fake_timeout.log"),
        "the error names the log: {msg}"
    );

    let sh = read_pid(&dir.path().join("sh"))?;
    let sleep = read_pid(&dir.path().join("sleep"))?;
    let log = vm.log_path().to_path_buf();
    let t0 = Instant::now();
    drop(vm);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "Drop must not wait for the sleep"
    );
    assert!(wait_gone(sh), "the fake qemu {sh} survived Drop");
    assert!(wait_gone(sleep), "its child {sleep} survived Drop");
    let logged = std::fs::read_to_string(&log)?;
    assert!(logged.starts_with("# "), "log starts with the command line");
    assert!(
        logged.contains("-accel") && logged.contains("fake: booting"),
        "{logged}"
    );
    Ok(())
}

#[test]
fn markers_advance_and_console_input_reaches_the_guest() -> Result<()> {
    let (_dir, cfg) = fake(
        "fake_input",
        "echo 'tick 1'\necho 'tick 2'\nprintf 'prompt> '\nread line\necho \"got [$line]\"\nexit 0",
    )?;
    let mut vm = Vm::boot(cfg)?;
    assert_eq!(vm.wait_for("tick", Duration::from_secs(10))?, "tick 1");
    assert_eq!(vm.wait_for("tick", Duration::from_secs(10))?, "tick 2");
    // A prompt without a newline is seen by wait_for_prompt.
    assert!(vm.wait_for("prompt>", Duration::from_millis(300)).is_err());
    vm.wait_for_prompt("prompt>", Duration::from_secs(10))?;
    vm.send_line("hello guest")?;
    let (which, line) = vm.wait_for_any(&["error", "got ["], Duration::from_secs(10))?;
    assert_eq!((which, line.as_str()), (1, "got [hello guest]"));
    let status = vm.wait_exit(Duration::from_secs(10))?;
    assert!(status.success());
    assert_eq!(vm.count("tick"), 2);
    assert!(vm.console().contains("tick 1\ntick 2\n"));
    Ok(())
}

#[test]
fn early_exit_fails_fast_with_status() -> Result<()> {
    let (_dir, cfg) = fake(
        "fake_exit",
        "echo 'kernel panic, pretend'\necho 'qemu: oops' >&2\nexit 3",
    )?;
    let mut vm = Vm::boot(cfg)?;
    let t0 = Instant::now();
    let err = vm
        .wait_for("bootkit: ready", Duration::from_secs(60))
        .expect_err("the VM exited");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "must not wait out the timeout"
    );
    let msg = err.to_string();
    assert!(matches!(err, Error::Exited { .. }), "{msg}");
    assert!(msg.contains("exit status: 3"), "{msg}");
    assert!(msg.contains("kernel panic, pretend"), "{msg}");
    let status = vm.wait_exit(Duration::from_secs(5))?;
    assert_eq!(status.code(), Some(3));
    assert!(vm.qemu_stderr().contains("qemu: oops"));
    Ok(())
}

#[test]
fn wait_exit_times_out_while_running() -> Result<()> {
    let (_dir, cfg) = fake("fake_running", "echo up\nexec sleep 30")?;
    let mut vm = Vm::boot(cfg)?;
    vm.wait_for("up", Duration::from_secs(10))?;
    let err = vm
        .wait_exit(Duration::from_millis(300))
        .expect_err("still running");
    assert!(matches!(err, Error::StillRunning { .. }), "{err}");
    Ok(())
}

#[test]
fn a_panicking_test_still_kills_qemu() -> Result<()> {
    let (dir, cfg) = fake(
        "fake_panic",
        "echo $$ > \"$PIDFILE\"\necho up\nexec sleep 30",
    )?;
    let pidfile = dir.path().join("pid");
    let script =
        std::fs::read_to_string(&cfg.qemu)?.replace("$PIDFILE", &pidfile.display().to_string());
    std::fs::write(&cfg.qemu, script)?;

    let joined = std::thread::spawn(move || {
        let mut vm = Vm::boot(cfg).expect("boot");
        vm.wait_for("up", Duration::from_secs(10)).expect("up");
        panic!("test failure while the VM runs");
    })
    .join();
    assert!(joined.is_err(), "the thread panicked");
    let pid = read_pid(&pidfile).context("fake qemu pid")?;
    assert!(wait_gone(pid), "qemu {pid} survived the panic");
    Ok(())
}

#[test]
fn missing_qemu_names_the_setup_script() -> Result<()> {
    let (_dir, mut cfg) = fake("fake_missing", "")?;
    cfg.qemu = "/nonexistent/qemu-system-x86_64".into();
    let err = Vm::boot(cfg).err().context("boot must fail")?;
    assert!(err.to_string().contains("scripts/setup.sh"), "{err}");
    Ok(())
}
