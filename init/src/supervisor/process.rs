//! Starting a service's process, and forwarding its output to the log line by line.
//!
//! The process is spawned with std's `Command` and its `Child` handle dropped at once: dropping
//! it neither waits nor kills, and all reaping is left to the supervisor's `waitpid(-1)` loop.
//! Between fork and exec the child's signal mask is emptied (see `signals::reset_in_child`):
//! std keeps the parent's mask, which blocks SIGTERM.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use bootkit_common::service_def::ServiceDef;

use super::signals;
use crate::log::{self, Level};

/// PATH for services whose environment does not set one.
pub const DEFAULT_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// A line longer than this is logged in pieces, so a service writing without newlines cannot
/// make the supervisor buffer without bound.
const MAX_LINE_BYTES: u64 = 16 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("cannot start {command}: {source}; {hint}")]
pub struct SpawnError {
    command: PathBuf,
    hint: String,
    #[source]
    source: std::io::Error,
}

/// The environment of a service: `base` (the kernel command line's keys) first, the service's
/// own `environment` over it, and the default PATH if neither has one.
pub fn service_environment(
    base: &[(String, String)],
    def: &ServiceDef,
) -> BTreeMap<String, String> {
    let mut environment: BTreeMap<String, String> = base.iter().cloned().collect();
    environment.extend(def.environment.clone());
    environment
        .entry("PATH".into())
        .or_insert_with(|| DEFAULT_PATH.into());
    environment
}

/// Start `def` in its own process group with stdin on /dev/null and stdout/stderr forwarded to
/// the log. Returns its pid, which is also its process group id.
pub fn spawn(def: &ServiceDef, base_env: &[(String, String)]) -> Result<i32, SpawnError> {
    let mut command = Command::new(&def.command);
    command
        .args(&def.args)
        .env_clear()
        .envs(service_environment(base_env, def))
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .current_dir(def.working_dir.as_deref().unwrap_or("/".as_ref()));
    // SAFETY: `reset_in_child` only makes async-signal-safe calls and does not allocate, as
    // code between fork and exec must.
    unsafe { command.pre_exec(signals::reset_in_child) };
    if let Some(gid) = def.group {
        command.gid(gid);
    }
    if let Some(uid) = def.user {
        command.uid(uid);
    }
    let mut child = command.spawn().map_err(|source| SpawnError {
        command: def.command.clone(),
        hint: match &def.working_dir {
            Some(dir) => format!(
                "check that it exists and is executable, and that working_dir {} exists",
                dir.display()
            ),
            None => "check that it exists and is executable".into(),
        },
        source,
    })?;
    let pid = child.id() as i32;
    if let Some(stdout) = child.stdout.take() {
        forward_output(&def.name, "stdout", stdout);
    }
    if let Some(stderr) = child.stderr.take() {
        forward_output(&def.name, "stderr", stderr);
    }
    // Dropping the handle does not wait for or kill the process; the reaper collects it.
    drop(child);
    Ok(pid)
}

/// Log every line read from `pipe` under the service's name, on a thread of its own. The
/// thread ends when every writer has closed the pipe.
fn forward_output(service: &str, stream: &str, pipe: impl Read + Send + 'static) {
    let source = service.to_owned();
    let spawned = std::thread::Builder::new()
        .name(format!("{service}-{stream}"))
        .stack_size(128 * 1024)
        .spawn(move || forward_lines(&source, pipe));
    if let Err(err) = spawned {
        log::line(
            Level::Warn,
            service,
            &format!("cannot start a thread to log its {stream}, which is dropped: {err}"),
        );
    }
}

/// Log each line of `pipe`, including a last line without a newline. Invalid UTF-8 is shown
/// with replacement characters rather than dropped.
pub fn forward_lines(source: &str, pipe: impl Read) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader
            .by_ref()
            .take(MAX_LINE_BYTES)
            .read_until(b'\n', &mut line)
        {
            Ok(0) => return,
            Ok(_) => log_line(source, &line),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                log::line(
                    Level::Warn,
                    source,
                    &format!("cannot read its output any more: {err}"),
                );
                return;
            }
        }
    }
}

fn log_line(source: &str, line: &[u8]) {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    log::line(Level::Info, source, &String::from_utf8_lossy(line));
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootkit_common::service_def::parse;

    #[test]
    fn environment_layers_kernel_keys_service_keys_and_path() {
        let def = parse(
            "svc",
            "command = \"x\"\nenvironment = { A = \"service\", C = \"3\" }",
        )
        .unwrap();
        let base = vec![
            ("A".to_string(), "kernel".to_string()),
            ("worker_id".to_string(), "52:54:00:12:34:56".to_string()),
        ];
        let env = service_environment(&base, &def);
        assert_eq!(env["A"], "service");
        assert_eq!(env["C"], "3");
        assert_eq!(env["worker_id"], "52:54:00:12:34:56");
        assert_eq!(env["PATH"], DEFAULT_PATH);
        assert_eq!(env.len(), 4);
    }

    #[test]
    fn a_path_from_the_kernel_or_the_service_is_kept() {
        let def = parse("svc", "command = \"x\"").unwrap();
        let base = vec![("PATH".to_string(), "/opt/bin".to_string())];
        assert_eq!(service_environment(&base, &def)["PATH"], "/opt/bin");
        let def = parse("svc", "command = \"x\"\nenvironment = { PATH = \"/x\" }").unwrap();
        assert_eq!(service_environment(&base, &def)["PATH"], "/x");
    }

    #[test]
    fn forwarding_reads_to_the_end_including_partial_and_invalid_lines() {
        // The lines go to stdout (captured by the test harness); this checks it ends cleanly.
        let input: &[u8] = b"one\r\ntwo\n\xff\xfe bad utf8\nno newline at the end";
        forward_lines("test", input);
        let long = vec![b'x'; (MAX_LINE_BYTES as usize) * 2 + 5];
        forward_lines("test", long.as_slice());
    }
}
