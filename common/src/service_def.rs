//! Service definitions: one TOML file per service in `/etc/bootkit/services/`, named
//! `NAME.toml`; the file stem is the service's name (letters, digits, `-`, `_`, `.`, `@`).
//!
//! ```toml
//! # /etc/bootkit/services/tink-worker.toml
//! command = "/usr/bin/tink-worker"          # required: absolute path, or a name looked up in PATH
//! args = ["--log-level", "info"]            # default: none
//! environment = { DOCKER_HOST = "unix:///run/docker.sock" }  # default: none
//! after = ["network"]      # start once these have started (and are ready); default: none
//! requires = ["docker"]    # like `after`, and if one is absent or fails to start, this
//!                          # service does not start (the reason is logged); default: none
//! modes = ["provision"]    # boot modes it runs in: provision, standalone, shell; default: all
//! restart = "on-failure"   # "always" | "on-failure" | "never"; default: "on-failure"
//! restart_delay_ms = 1000        # first restart delay, doubled per quick exit; default 1000
//! restart_max_delay_ms = 30000   # the delay never grows past this; default 30000
//! ready = { file = "/run/worker.ready" }  # or { tcp = "127.0.0.1:8080" }; default: ready
//!                                         # as soon as it is started
//! ready_timeout_ms = 30000  # not ready by then: logged, and counted as started; default 30000
//! stop_timeout_ms = 5000    # grace between SIGTERM and SIGKILL at shutdown; default 5000
//! working_dir = "/var/lib/worker"  # default: /
//! user = 1000               # numeric uid to run as; default: the supervisor's (root)
//! group = 1000              # numeric gid to run as; default: the supervisor's (root)
//! ```
//!
//! Environment of a service: the kernel command line's `key=value` pairs first, then the
//! service's `environment` (which overrides them), then `PATH=/usr/sbin:/usr/bin:/sbin:/bin` if
//! neither set PATH. Nothing else is inherited from the supervisor.
//!
//! Unknown keys are an error. This module is the schema alone (types, defaults, checks, no
//! I/O): the init reads the files at boot (and skips one that fails, naming it and the reason),
//! and the builder checks the same rules at build time, so a typo stops the build, not the node.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::toml_parse::{self, TomlError};

/// Definition files larger than this are refused: a service definition is a few hundred bytes,
/// and PID 1 must not read an arbitrarily large file into memory.
pub const MAX_FILE_BYTES: u64 = 256 * 1024;

/// No duration in a definition may be longer than this (a day), which keeps every deadline the
/// supervisor computes from one representable.
pub const LONGEST_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// What the bootkit runs once the root filesystem is up (`bootkit.mode=` on the kernel
/// command line); a service runs only in the modes it lists in `modes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BootMode {
    /// PXE-booted provisioning OS: device discovery and the workflow worker.
    Provision,
    /// USB standalone installer.
    Standalone,
    /// Services of the shell mode plus an interactive shell on the console.
    Shell,
}

impl BootMode {
    /// Every mode, in the order they are listed to users.
    pub const ALL: [BootMode; 3] = [BootMode::Provision, BootMode::Standalone, BootMode::Shell];

    /// The name used on the kernel command line and in `modes`.
    pub fn as_str(self) -> &'static str {
        match self {
            BootMode::Provision => "provision",
            BootMode::Standalone => "standalone",
            BootMode::Shell => "shell",
        }
    }

    /// The modes' names, for messages: `provision, standalone, shell`.
    pub fn names() -> String {
        BootMode::ALL.map(BootMode::as_str).join(", ")
    }
}

impl fmt::Display for BootMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that names no boot mode; the message lists the ones there are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown boot mode `{0}`: use {modes}", modes = BootMode::names())]
pub struct UnknownBootMode(pub String);

impl FromStr for BootMode {
    type Err = UnknownBootMode;

    fn from_str(text: &str) -> Result<BootMode, UnknownBootMode> {
        BootMode::ALL
            .into_iter()
            .find(|mode| mode.as_str() == text)
            .ok_or_else(|| UnknownBootMode(text.to_owned()))
    }
}

/// How a service is restarted when its process exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Restart whenever it exits, successfully or not.
    Always,
    /// Restart when it exits with a non-zero status or is killed by a signal.
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    /// The spelling in service files: `always`, `on-failure`, `never`.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        }
    }
}

/// When a started service counts as ready, so that the services after it may start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyRule {
    /// Ready once this path exists.
    File(PathBuf),
    /// Ready once a TCP connection to this address succeeds.
    Tcp(SocketAddr),
}

/// A service definition as loaded and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDef {
    /// The file stem: letters, digits, `-`, `_`, `.`, `@`.
    pub name: String,
    /// The program: an absolute path, or a name looked up in PATH.
    pub command: PathBuf,
    /// Arguments after the program; default none.
    pub args: Vec<String>,
    /// Variables over the kernel command line's `key=value` pairs (see the module docs).
    pub environment: BTreeMap<String, String>,
    /// Services that must have started (and be ready) first; a missing one is skipped.
    pub after: Vec<String>,
    /// Like `after`, but this service does not start if one is absent or fails.
    pub requires: Vec<String>,
    /// The boot modes it runs in; every mode unless the file lists some.
    pub modes: Vec<BootMode>,
    /// What happens when the process exits; default on-failure.
    pub restart: RestartPolicy,
    /// First restart delay, doubled per quick exit; default 1 s.
    pub restart_delay: Duration,
    /// The restart delay never grows past this; default 30 s.
    pub restart_max_delay: Duration,
    /// When it counts as ready; None: as soon as it is started.
    pub ready: Option<ReadyRule>,
    /// Not ready by then: logged, and counted as started; default 30 s.
    pub ready_timeout: Duration,
    /// Grace between SIGTERM and SIGKILL at shutdown; default 5 s.
    pub stop_timeout: Duration,
    /// Working directory; None: `/`.
    pub working_dir: Option<PathBuf>,
    /// Numeric uid to run as; None: the supervisor's (root).
    pub user: Option<u32>,
    /// Numeric gid to run as; None: the supervisor's (root).
    pub group: Option<u32>,
    /// A built-in target (`network-online`, `time-sync`, `nbd`, ...): no process; it has
    /// started when its file appears, and failed if that does not happen in time.
    pub target: bool,
}

impl ServiceDef {
    /// The stand-in for a built-in target that services name in `after` or `requires`.
    pub fn builtin_target(name: &str, reached_file: PathBuf, timeout: Duration) -> ServiceDef {
        ServiceDef {
            name: name.to_string(),
            command: PathBuf::new(),
            args: Vec::new(),
            environment: BTreeMap::new(),
            after: Vec::new(),
            requires: Vec::new(),
            modes: BootMode::ALL.to_vec(),
            restart: RestartPolicy::Never,
            restart_delay: Duration::from_secs(1),
            restart_max_delay: Duration::from_secs(1),
            ready: Some(ReadyRule::File(reached_file)),
            ready_timeout: timeout,
            stop_timeout: Duration::ZERO,
            working_dir: None,
            user: None,
            group: None,
            target: true,
        }
    }

    /// Whether the service runs in boot mode `mode`.
    pub fn runs_in(&self, mode: BootMode) -> bool {
        self.modes.contains(&mode)
    }
}

/// The file's shape, exactly as written (before defaults and validation). `modes` stays text
/// here so an unknown mode is reported by [`check_modes`] with the modes there are.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    command: PathBuf,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    after: Vec<String>,
    #[serde(default)]
    requires: Vec<String>,
    modes: Option<Vec<String>>,
    restart: Option<RestartPolicy>,
    restart_delay_ms: Option<u64>,
    restart_max_delay_ms: Option<u64>,
    ready: Option<RawReady>,
    ready_timeout_ms: Option<u64>,
    stop_timeout_ms: Option<u64>,
    working_dir: Option<PathBuf>,
    user: Option<u32>,
    group: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReady {
    file: Option<PathBuf>,
    tcp: Option<String>,
}

/// Why a definition's text is unusable (without the file name, which the caller adds).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceDefError {
    /// Not TOML, or not the schema (unknown key, wrong type, missing `command`).
    #[error(transparent)]
    Syntax(#[from] TomlError),
    /// Well-formed, but a value is wrong.
    #[error("{0}")]
    Invalid(String),
}

/// The service name a definition file gives: its file stem (`tink-worker.toml` names
/// `tink-worker`).
pub fn name_of_file(file: &Path) -> String {
    file.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Parse and validate the definition of service `name` from TOML `text`, applying defaults.
pub fn parse(name: &str, text: &str) -> Result<ServiceDef, ServiceDefError> {
    let raw: RawService = toml_parse::parse(text)?;
    validate(name, raw).map_err(ServiceDefError::Invalid)
}

fn validate(name: &str, raw: RawService) -> Result<ServiceDef, String> {
    check_name(name)?;
    if raw.command.as_os_str().is_empty() {
        return Err("`command` is empty: name the program to run".into());
    }
    check_environment(&raw.environment)?;
    check_dependencies(name, "after", &raw.after)?;
    check_dependencies(name, "requires", &raw.requires)?;
    let modes = check_modes(raw.modes)?;
    let restart_delay_ms = check_duration("restart_delay_ms", raw.restart_delay_ms, 1000)?;
    let restart_max_delay_ms =
        check_duration("restart_max_delay_ms", raw.restart_max_delay_ms, 30_000)?;
    let ready_timeout_ms = check_duration("ready_timeout_ms", raw.ready_timeout_ms, 30_000)?;
    let stop_timeout_ms = check_duration("stop_timeout_ms", raw.stop_timeout_ms, 5000)?;
    if restart_delay_ms == 0 {
        return Err("`restart_delay_ms` must be at least 1".into());
    }
    if restart_max_delay_ms < restart_delay_ms {
        return Err(format!(
            "`restart_max_delay_ms` ({restart_max_delay_ms}) is less than `restart_delay_ms` \
             ({restart_delay_ms})"
        ));
    }
    Ok(ServiceDef {
        name: name.to_owned(),
        command: raw.command,
        args: raw.args,
        environment: raw.environment,
        after: raw.after,
        requires: raw.requires,
        modes,
        restart: raw.restart.unwrap_or(RestartPolicy::OnFailure),
        restart_delay: Duration::from_millis(restart_delay_ms),
        restart_max_delay: Duration::from_millis(restart_max_delay_ms),
        ready: raw.ready.map(check_ready).transpose()?,
        ready_timeout: Duration::from_millis(ready_timeout_ms),
        stop_timeout: Duration::from_millis(stop_timeout_ms),
        working_dir: raw.working_dir,
        user: raw.user,
        group: raw.group,
        target: false,
    })
}

/// A duration in milliseconds, or its default; at most a day, which keeps every deadline
/// computed from it representable.
fn check_duration(key: &str, value: Option<u64>, default: u64) -> Result<u64, String> {
    // A day in milliseconds: far below u64::MAX, so the saturation never happens.
    let longest = u64::try_from(LONGEST_DURATION.as_millis()).unwrap_or(u64::MAX);
    match value {
        Some(ms) if ms > longest => Err(format!(
            "`{key}` = {ms} is more than a day ({longest} ms): use a smaller value"
        )),
        Some(ms) => Ok(ms),
        None => Ok(default),
    }
}

/// Names appear in log lines and dependency lists, so keep them plain.
fn check_name(name: &str) -> Result<(), String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@');
    if name.is_empty() || !name.chars().all(plain) {
        return Err(format!(
            "`{name}` is not a usable service name: rename the file to use only letters, \
             digits, `-`, `_`, `.` and `@`"
        ));
    }
    Ok(())
}

fn check_environment(environment: &BTreeMap<String, String>) -> Result<(), String> {
    for (key, value) in environment {
        if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
            return Err(format!(
                "environment variable `{key}` is not usable: names must be non-empty without \
                 `=`, and neither name nor value may contain a NUL byte"
            ));
        }
    }
    Ok(())
}

fn check_dependencies(name: &str, key: &str, dependencies: &[String]) -> Result<(), String> {
    if dependencies.iter().any(|d| d == name) {
        return Err(format!("`{key}` names the service itself (`{name}`)"));
    }
    Ok(())
}

fn check_modes(modes: Option<Vec<String>>) -> Result<Vec<BootMode>, String> {
    let Some(modes) = modes else {
        return Ok(BootMode::ALL.to_vec());
    };
    if modes.is_empty() {
        return Err(
            "`modes` is empty, so the service would never run: remove the file or \
                    name the modes it runs in"
                .into(),
        );
    }
    modes
        .iter()
        .map(|mode| {
            mode.parse().map_err(|_| {
                format!(
                    "unknown mode `{mode}` in `modes`: use {}",
                    BootMode::names()
                )
            })
        })
        .collect()
}

fn check_ready(raw: RawReady) -> Result<ReadyRule, String> {
    match (raw.file, raw.tcp) {
        (Some(file), None) => Ok(ReadyRule::File(file)),
        (None, Some(tcp)) => tcp.parse().map(ReadyRule::Tcp).map_err(|_| {
            format!("`ready.tcp` = \"{tcp}\" is not an IP address and port such as 127.0.0.1:8080")
        }),
        _ => Err("`ready` needs exactly one of `file` or `tcp`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> ServiceDef {
        parse("svc", text).unwrap()
    }

    fn parse_err(text: &str) -> String {
        parse("svc", text).unwrap_err().to_string()
    }

    #[test]
    fn minimal_definition_gets_the_defaults() {
        let def = parse_ok(r#"command = "/bin/true""#);
        assert_eq!(def.name, "svc");
        assert_eq!(def.command, PathBuf::from("/bin/true"));
        assert!(def.args.is_empty() && def.environment.is_empty());
        assert!(def.after.is_empty() && def.requires.is_empty());
        assert_eq!(def.modes, BootMode::ALL);
        assert_eq!(def.restart, RestartPolicy::OnFailure);
        assert_eq!(def.restart_delay, Duration::from_millis(1000));
        assert_eq!(def.restart_max_delay, Duration::from_millis(30_000));
        assert_eq!(def.ready, None);
        assert_eq!(def.ready_timeout, Duration::from_millis(30_000));
        assert_eq!(def.stop_timeout, Duration::from_millis(5000));
        assert_eq!((def.working_dir, def.user, def.group), (None, None, None));
    }

    #[test]
    fn full_definition_is_read() {
        let def = parse_ok(
            r#"
            command = "/usr/bin/worker"
            args = ["-v", "x y"]
            environment = { A = "1", B = "two" }
            after = ["net"]
            requires = ["docker"]
            modes = ["provision"]
            restart = "always"
            restart_delay_ms = 100
            restart_max_delay_ms = 400
            ready = { tcp = "127.0.0.1:8080" }
            ready_timeout_ms = 2000
            stop_timeout_ms = 300
            working_dir = "/tmp"
            user = 1000
            group = 100
            "#,
        );
        assert_eq!(def.args, ["-v", "x y"]);
        assert_eq!(def.environment.get("B").map(String::as_str), Some("two"));
        assert_eq!(
            (&def.after[..], &def.requires[..]),
            (&["net".to_string()][..], &["docker".to_string()][..])
        );
        assert_eq!(def.restart, RestartPolicy::Always);
        assert_eq!(def.restart_max_delay, Duration::from_millis(400));
        assert_eq!(
            def.ready,
            Some(ReadyRule::Tcp("127.0.0.1:8080".parse().unwrap()))
        );
        assert_eq!(def.stop_timeout, Duration::from_millis(300));
        assert_eq!((def.user, def.group), (Some(1000), Some(100)));
        assert!(def.runs_in(BootMode::Provision) && !def.runs_in(BootMode::Shell));
    }

    #[test]
    fn file_readiness_and_restart_spellings() {
        let def = parse_ok("command = \"x\"\nrestart = \"never\"\nready = { file = \"/run/x\" }");
        assert_eq!(def.ready, Some(ReadyRule::File("/run/x".into())));
        assert_eq!(def.restart, RestartPolicy::Never);
        let def = parse_ok("command = \"x\"\nrestart = \"on-failure\"");
        assert_eq!(def.restart, RestartPolicy::OnFailure);
    }

    #[test]
    fn unknown_keys_are_errors_with_their_line() {
        let err = parse_err("command = \"/bin/true\"\nrestrat = \"always\"\n");
        assert!(err.starts_with("line 2: "), "{err}");
        assert!(err.contains("unknown field `restrat`"), "{err}");
        let err = parse_err("command = \"x\"\nready = { file = \"/a\", port = 1 }");
        assert!(err.contains("unknown field `port`"), "{err}");
    }

    #[test]
    fn missing_command_and_wrong_types_are_errors() {
        assert!(parse_err("args = []").contains("missing field `command`"));
        assert!(parse_err("command = \"x\"\nrestart = \"sometimes\"").contains("sometimes"));
        assert!(parse_err("command = \"x\"\nuser = \"root\"").contains("line 2"));
        assert!(parse_err("command = ").starts_with("line 1"));
    }

    #[test]
    fn invalid_values_are_explained() {
        assert!(parse_err("command = \"\"").contains("`command` is empty"));
        assert!(parse_err("command = \"x\"\nmodes = []").contains("never run"));
        assert!(
            parse_err("command = \"x\"\nmodes = [\"rescue\"]").contains("unknown mode `rescue`")
        );
        assert!(parse_err("command = \"x\"\nafter = [\"svc\"]").contains("itself"));
        assert!(parse_err("command = \"x\"\nready = {}").contains("exactly one"));
        assert!(
            parse_err("command = \"x\"\nready = { tcp = \"localhost:80\" }").contains("IP address")
        );
        assert!(parse_err("command = \"x\"\nrestart_delay_ms = 0").contains("at least 1"));
        assert!(
            parse_err("command = \"x\"\nstop_timeout_ms = 99999999999").contains("more than a day")
        );
        assert!(
            parse_err("command = \"x\"\nrestart_delay_ms = 500\nrestart_max_delay_ms = 100")
                .contains("less than")
        );
        assert!(parse_err("command = \"x\"\nenvironment = { \"A=B\" = \"1\" }").contains("`A=B`"));
        assert!(matches!(
            parse("bad name", "command = \"x\""),
            Err(ServiceDefError::Invalid(p)) if p.contains("not a usable service name")
        ));
    }

    #[test]
    fn modes_select_the_services_of_a_boot_mode() {
        let everywhere = parse_ok("command = \"x\"");
        let provisioning = parse_ok("command = \"x\"\nmodes = [\"provision\", \"standalone\"]");
        for mode in BootMode::ALL {
            assert!(everywhere.runs_in(mode));
        }
        assert!(
            provisioning.runs_in(BootMode::Provision) && provisioning.runs_in(BootMode::Standalone)
        );
        assert!(!provisioning.runs_in(BootMode::Shell));
    }

    #[test]
    fn boot_modes_parse_from_their_names_only() {
        for mode in BootMode::ALL {
            assert_eq!(mode.as_str().parse::<BootMode>(), Ok(mode));
        }
        let error = "Shell".parse::<BootMode>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown boot mode `Shell`: use provision, standalone, shell"
        );
    }

    #[test]
    fn a_file_names_its_service_by_its_stem() {
        assert_eq!(
            name_of_file(Path::new("/etc/x/tink-worker.toml")),
            "tink-worker"
        );
    }
}
