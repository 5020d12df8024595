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
//! Unknown keys are an error. A file that fails to load is reported with its name and the reason
//! and skipped; the other services still run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::deadline;

/// The boot modes a service may name in `modes`.
pub const KNOWN_MODES: [&str; 3] = ["provision", "standalone", "shell"];

/// Definition files larger than this are refused: a service definition is a few hundred bytes,
/// and PID 1 must not read an arbitrarily large file into memory.
const MAX_DEFINITION_BYTES: u64 = 256 * 1024;

/// At most this many files are read from the services directory (a bound on the loop).
const MAX_DEFINITION_FILES: usize = 4096;

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
    pub name: String,
    pub command: PathBuf,
    pub args: Vec<String>,
    pub environment: BTreeMap<String, String>,
    pub after: Vec<String>,
    pub requires: Vec<String>,
    pub modes: Vec<String>,
    pub restart: RestartPolicy,
    pub restart_delay: Duration,
    pub restart_max_delay: Duration,
    pub ready: Option<ReadyRule>,
    pub ready_timeout: Duration,
    pub stop_timeout: Duration,
    pub working_dir: Option<PathBuf>,
    pub user: Option<u32>,
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
            modes: KNOWN_MODES.iter().map(|m| m.to_string()).collect(),
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
    pub fn runs_in(&self, mode: &str) -> bool {
        self.modes.iter().any(|m| m == mode)
    }
}

/// The file's shape, exactly as written (before defaults and validation).
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

/// Why one definition file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("{file}: cannot read it: {source}; check its permissions")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {size} bytes is too large for a service definition (at most {max})")]
    TooLarge { file: PathBuf, size: u64, max: u64 },
    #[error("{file}: {location}{message}")]
    Syntax {
        file: PathBuf,
        location: String,
        message: String,
    },
    #[error("{file}: {problem}")]
    Invalid { file: PathBuf, problem: String },
}

impl DefinitionError {
    /// The definition file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            DefinitionError::Read { file, .. }
            | DefinitionError::TooLarge { file, .. }
            | DefinitionError::Syntax { file, .. }
            | DefinitionError::Invalid { file, .. } => file,
        }
    }
}

/// What loading a services directory found: the good definitions, sorted by name, and one
/// error per file that was skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    pub services: Vec<ServiceDef>,
    pub errors: Vec<DefinitionError>,
}

/// Load every `*.toml` file of `dir`. A missing directory means no services; any other failure
/// to list it is returned. Failures of single files are collected in `Loaded::errors`.
pub fn load_dir(dir: &Path) -> std::io::Result<Loaded> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(err) => return Err(err),
    };
    let mut files = Vec::new();
    for entry in entries.take(MAX_DEFINITION_FILES) {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            files.push(path);
        }
    }
    files.sort();
    let mut loaded = Loaded::default();
    for file in files {
        match load_file(&file) {
            Ok(service) => loaded.services.push(service),
            Err(err) => loaded.errors.push(err),
        }
    }
    Ok(loaded)
}

/// Load and validate one definition file; the service is named after the file stem.
pub fn load_file(file: &Path) -> Result<ServiceDef, DefinitionError> {
    let read_error = |source| DefinitionError::Read {
        file: file.to_owned(),
        source,
    };
    let size = std::fs::metadata(file).map_err(read_error)?.len();
    if size > MAX_DEFINITION_BYTES {
        return Err(DefinitionError::TooLarge {
            file: file.to_owned(),
            size,
            max: MAX_DEFINITION_BYTES,
        });
    }
    let text = std::fs::read_to_string(file).map_err(read_error)?;
    let name = file
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse(&name, &text).map_err(|err| match err {
        ParseError::Syntax { location, message } => DefinitionError::Syntax {
            file: file.to_owned(),
            location,
            message,
        },
        ParseError::Invalid(problem) => DefinitionError::Invalid {
            file: file.to_owned(),
            problem,
        },
    })
}

/// Why a definition's text is unusable (without the file name, which the caller adds).
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not TOML, or not the schema (unknown key, wrong type, missing `command`).
    Syntax { location: String, message: String },
    /// Well-formed, but a value is wrong.
    Invalid(String),
}

/// Parse and validate the definition of service `name` from TOML `text`, applying defaults.
pub fn parse(name: &str, text: &str) -> Result<ServiceDef, ParseError> {
    let raw: RawService = toml::from_str(text).map_err(|err| ParseError::Syntax {
        location: err
            .span()
            .map(|span| format!("line {}: ", line_of(text, span.start)))
            .unwrap_or_default(),
        message: err.message().trim_end().to_owned(),
    })?;
    validate(name, raw).map_err(ParseError::Invalid)
}

/// 1-based line number of byte offset `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
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
    let longest = deadline::LONGEST.as_millis() as u64;
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

fn check_modes(modes: Option<Vec<String>>) -> Result<Vec<String>, String> {
    let Some(modes) = modes else {
        return Ok(KNOWN_MODES.iter().map(|m| m.to_string()).collect());
    };
    if modes.is_empty() {
        return Err(
            "`modes` is empty, so the service would never run: remove the file or \
                    name the modes it runs in"
                .into(),
        );
    }
    if let Some(unknown) = modes.iter().find(|m| !KNOWN_MODES.contains(&m.as_str())) {
        return Err(format!(
            "unknown mode `{unknown}` in `modes`: use {}",
            KNOWN_MODES.join(", ")
        ));
    }
    Ok(modes)
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
        match parse("svc", text).unwrap_err() {
            ParseError::Syntax { location, message } => format!("{location}{message}"),
            ParseError::Invalid(problem) => problem,
        }
    }

    #[test]
    fn minimal_definition_gets_the_defaults() {
        let def = parse_ok(r#"command = "/bin/true""#);
        assert_eq!(def.name, "svc");
        assert_eq!(def.command, PathBuf::from("/bin/true"));
        assert!(def.args.is_empty() && def.environment.is_empty());
        assert!(def.after.is_empty() && def.requires.is_empty());
        assert_eq!(def.modes, ["provision", "standalone", "shell"]);
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
        assert!(def.runs_in("provision") && !def.runs_in("shell"));
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
            Err(ParseError::Invalid(p)) if p.contains("not a usable service name")
        ));
    }

    #[test]
    fn modes_select_the_services_of_a_boot_mode() {
        let everywhere = parse_ok("command = \"x\"");
        let provisioning = parse_ok("command = \"x\"\nmodes = [\"provision\", \"standalone\"]");
        for mode in KNOWN_MODES {
            assert!(everywhere.runs_in(mode));
        }
        assert!(provisioning.runs_in("provision") && provisioning.runs_in("standalone"));
        assert!(!provisioning.runs_in("shell"));
    }

    #[test]
    fn load_dir_skips_bad_files_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.toml"), "command = \"/bin/b\"").unwrap();
        std::fs::write(dir.path().join("a.toml"), "command = \"/bin/a\"").unwrap();
        std::fs::write(
            dir.path().join("bad.toml"),
            "command = \"/bin/x\"\nbogus = 1",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a service").unwrap();
        let loaded = load_dir(dir.path()).unwrap();
        let names: Vec<_> = loaded.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(loaded.errors.len(), 1);
        let message = loaded.errors[0].to_string();
        assert!(
            message.contains("bad.toml: line 2: unknown field `bogus`"),
            "{message}"
        );
    }

    #[test]
    fn missing_directory_means_no_services() {
        let loaded = load_dir(Path::new("/nonexistent/bootkit/services")).unwrap();
        assert!(loaded.services.is_empty() && loaded.errors.is_empty());
    }
}
