//! Where the onboarding service is and how to reach it, from three layers with EMT's names:
//! command-line flags win over the env file (`/etc/hook/env_config`: `onboarding_stream_svc`,
//! `onboarding_manager_svc`, `OBM_PORT`), which wins over the kernel command line
//! (`grpc_authority=`, `worker_id=`, `tinkerbell_tls=`, `tinkerbell_insecure_tls=`,
//! `tinkerbell_ca=`, `bootkit.onboarding=`; read only with `--use-kernel-args`, as EMT does).
//! The layers, their value rules and the one boolean parser are `bootkit_common::layered_config`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bootkit_common::checksum::Sha256Digest;
use bootkit_common::layered_config::{
    InvalidSetting, Layer, Origin, Setting, boolean_or, parse_bool_arg,
};

/// The provisioner serves onboarding on its gRPC port (Tinkerbell's 42113).
pub const DEFAULT_PORT: u16 = 42113;

/// `device-discovery`'s command line: the flags of a run, or the hidden `generate-docs`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "device-discovery",
    version,
    about = "Reports this machine to the provisioner (onboardingmgr.v1) and waits until it is onboarded, or (per --onboarding) lets the tink-worker start without",
    after_help = "\
Settings come from the flags, then /etc/hook/env_config, then (with --use-kernel-args) the
kernel command line.
Exit codes: 0 onboarded (or started without onboarding, as --onboarding allows), 1 gave up
(timeout or no usable network), 2 bad configuration, 143 terminated.

Examples (the first is how the bootkit runs it: grpc_authority= and worker_id= from the
kernel command line):
  device-discovery --use-kernel-args
  device-discovery --obs-svc prov.lab:42113 --ca-cert /etc/site-ca.pem --timeout 90s
  device-discovery --onboarding off --obs-svc 10.0.0.2 --tls false --mac 52:54:00:12:34:56"
)]
pub struct Cli {
    /// The flags of a run (when no subcommand is given).
    #[command(flatten)]
    pub flags: Flags,
    /// A subcommand instead of a run.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What `device-discovery` does instead of a run.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Write shell completions and man pages into DIR (scripts/install-docs.sh runs it).
    #[command(hide = true)]
    GenerateDocs(bootkit_common::cli_docs::GenerateDocsArgs),
}

/// `device-discovery`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct Flags {
    /// Whether the tink-worker waits for OEP onboarding: `required` (EMT), `if-served`
    /// (onboard when the server serves onboardingmgr.v1, else start without: the default) or
    /// `off` (never ask, as HookOS). Also `onboarding=` in the env file and
    /// `bootkit.onboarding=` on the kernel command line.
    #[arg(long, value_name = "MODE", value_parser = parse_onboarding_arg)]
    pub onboarding: Option<Onboarding>,
    /// The onboarding manager, host[:port] (EMT's -obm-svc).
    #[arg(long = "obm-svc", value_name = "HOST:PORT")]
    pub obm_svc: Option<String>,
    /// The onboarding stream service, host[:port]; defaults to --obm-svc.
    #[arg(long = "obs-svc", value_name = "HOST:PORT")]
    pub obs_svc: Option<String>,
    /// The port used when the service address has none (EMT's -obm-port).
    #[arg(long = "obm-port", value_name = "PORT")]
    pub obm_port: Option<u16>,
    /// The boot MAC (the node's worker id) instead of the detected one.
    #[arg(long)]
    pub mac: Option<String>,
    /// The serial number instead of DMI's.
    #[arg(long)]
    pub serial: Option<String>,
    /// The system UUID instead of DMI's.
    #[arg(long)]
    pub uuid: Option<String>,
    /// The IP address to report instead of the boot interface's.
    #[arg(long)]
    pub ip: Option<String>,
    /// How long to try before giving up with exit code 1 (`90s`, `5m`, `1h30m`).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Also read settings from the kernel command line (after the flags and the env file).
    #[arg(long)]
    pub use_kernel_args: bool,
    /// Use TLS to the onboarding service (`false`: plain HTTP/2).
    #[arg(long, value_name = "BOOL", value_parser = parse_bool_arg)]
    pub tls: Option<bool>,
    /// Use TLS without checking the server's certificate.
    #[arg(long, value_name = "BOOL", value_parser = parse_bool_arg)]
    pub insecure_tls: Option<bool>,
    /// PEM bundle of the CAs that sign the server's certificate (default: the system's).
    #[arg(long, value_name = "PATH")]
    pub ca_cert: Option<PathBuf>,
    /// The site CA's SHA-256 (of its DER, 64 hex digits): the server's chain must hold that CA
    /// and verify to it. Wins over --ca-cert. Also `tinkerbell_ca_sha256=` on the kernel
    /// command line, which the provisioner's boot script passes.
    #[arg(long, value_name = "HEX")]
    pub ca_sha256: Option<String>,
    /// EMT's environment file.
    #[arg(long, default_value = "/etc/hook/env_config")]
    pub env_file: PathBuf,
    /// The kernel command line to read with --use-kernel-args.
    #[arg(long, default_value = "/proc/cmdline")]
    pub cmdline_file: PathBuf,
    /// Where /sys and /proc are (a prepared tree in tests).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// The readiness file for the tink-worker, written last and only once onboarded.
    #[arg(long, default_value = "/run/bootkit/device-discovery.env")]
    pub output: PathBuf,
    /// Where client_id, client_secret and project_id are written (mode 0600).
    #[arg(long, default_value = "/run/bootkit/client-credentials")]
    pub credentials_dir: PathBuf,
    /// Where the node credential is written: node-key.pem (0600), node.pem, node-ca.pem.
    #[arg(long, default_value = "/run/bootkit/credentials")]
    pub node_credentials_dir: PathBuf,
    /// First retry delay in milliseconds; it doubles up to 16 times this (2 s → 32 s).
    #[arg(long, default_value_t = 2000)]
    pub backoff_base_ms: u64,
    /// How many times to look for an IPv4 address on the boot interface.
    #[arg(long, default_value_t = 10)]
    pub ip_tries: u32,
    /// Milliseconds between those looks.
    #[arg(long, default_value_t = 3000)]
    pub ip_interval_ms: u64,
}

/// How the client reaches the onboarding service.
pub use agent_channel::ServerTls;

/// Whether the node waits for OEP onboarding (`onboardingmgr.v1`) before the tink-worker
/// starts. A plain Tinkerbell stack (smee + tink-server) has no onboarding service: HookOS
/// starts its worker without one, EMT's bootkit never does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Onboarding {
    /// Wait until onboarded, whatever the server answers (EMT's device-discovery).
    Required,
    /// Onboard if the server serves `onboardingmgr.v1`; when it answers UNIMPLEMENTED, say so
    /// and let the worker start without credentials. Unreachable servers are still waited for:
    /// silence does not tell which kind of server it is.
    #[default]
    IfServed,
    /// Never ask: report the identity and let the worker start (HookOS's boot).
    Off,
}

impl Onboarding {
    /// The spelling in flags, the env file and on the kernel command line.
    pub fn name(self) -> &'static str {
        match self {
            Onboarding::Required => "required",
            Onboarding::IfServed => "if-served",
            Onboarding::Off => "off",
        }
    }

    fn parse(text: &str) -> Option<Onboarding> {
        match text.trim().to_ascii_lowercase().as_str() {
            "required" => Some(Onboarding::Required),
            "if-served" | "if_served" => Some(Onboarding::IfServed),
            "off" => Some(Onboarding::Off),
            _ => None,
        }
    }
}

const ONBOARDING_VALUES: &str = "expected required, if-served or off";

/// `--onboarding`'s parser, with the words of the other layers.
pub fn parse_onboarding_arg(text: &str) -> Result<Onboarding, String> {
    Onboarding::parse(text).ok_or_else(|| format!("{text:?}: {ONBOARDING_VALUES}"))
}

/// Identity values given by the operator instead of detected ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityOverrides {
    /// `--mac`, else the kernel command line's `worker_id`: the boot MAC, checked and written
    /// `aa:bb:cc:dd:ee:ff` (lowercase, `-` turned into `:`).
    pub mac: Option<String>,
    /// `--serial`, as given.
    pub serial: Option<String>,
    /// `--uuid`, lowercased.
    pub uuid: Option<String>,
    /// `--ip`, as given; with it the boot interface is looked up once, without waiting for an
    /// address.
    pub ip: Option<String>,
}

/// Everything one run needs, from [`Config::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Whether and how the node waits for onboarding.
    pub onboarding: Onboarding,
    /// The onboarding stream service, `host:port`; empty when onboarding is off and no layer
    /// names one (nothing is asked then).
    pub server: String,
    /// `--tls`, `--insecure-tls` and `--ca-cert` (or their kernel command line keys): TLS is on
    /// and verified unless they say otherwise.
    pub tls: ServerTls,
    /// The identity values the operator gave.
    pub overrides: IdentityOverrides,
    /// [`Flags::root`].
    pub root: PathBuf,
    /// [`Flags::timeout`]: the bound of the whole run.
    pub timeout: Duration,
    /// The first retry delay ([`Flags::backoff_base_ms`]).
    pub backoff_base: Duration,
    /// [`Flags::ip_tries`], at least 1.
    pub ip_tries: u32,
    /// The wait between those tries ([`Flags::ip_interval_ms`]).
    pub ip_interval: Duration,
    /// [`Flags::output`].
    pub output: PathBuf,
    /// [`Flags::credentials_dir`].
    pub credentials_dir: PathBuf,
    /// [`Flags::node_credentials_dir`].
    pub node_credentials_dir: PathBuf,
}

/// Why the configuration cannot be loaded (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No layer names the onboarding service.
    #[error(
        "the onboarding server is not set: pass --obs-svc HOST:PORT, set onboarding_stream_svc in {env_file}, or boot with grpc_authority=HOST:PORT on the kernel command line and --use-kernel-args"
    )]
    MissingServer {
        /// The env file (`--env-file`), named so the operator knows where to set it.
        env_file: String,
    },
    /// A value that means nothing for its setting, named with where it came from.
    #[error(transparent)]
    Invalid(#[from] InvalidSetting),
    /// The env file or the kernel command line file exists but cannot be read.
    #[error("cannot read {path}; fix its permissions or pass another file")]
    Unreadable {
        /// The file.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// `90s`, `5m`, `1h30m`, `500ms`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("{text:?} is not a duration: write it like 90s, 5m or 1h30m");
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        let unit_end = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .map_or(rest.len(), |end| digits + end);
        let unit = match &rest[digits..unit_end] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(invalid()),
        };
        let part = unit.checked_mul(u32::try_from(number).map_err(|_| invalid())?);
        total = part
            .and_then(|part| total.checked_add(part))
            .ok_or_else(invalid)?;
        rest = &rest[unit_end..];
    }
    Ok(total)
}

impl Config {
    /// The configuration from the flags and the files they name.
    pub fn load(flags: Flags) -> Result<Config, ConfigError> {
        let env_file = read_layer(&flags.env_file, Layer::from_env_file)?;
        let cmdline = if flags.use_kernel_args {
            read_layer(&flags.cmdline_file, Layer::from_cmdline)?
        } else {
            Layer::empty(Origin::KernelCommandLine(flags.cmdline_file.clone()))
        };
        Config::from_layers(flags, &env_file, &cmdline)
    }

    fn from_layers(flags: Flags, env_file: &Layer, cmdline: &Layer) -> Result<Config, ConfigError> {
        let onboarding = onboarding(&flags, env_file, cmdline)?;
        let server = match server(&flags, env_file, cmdline) {
            Err(ConfigError::MissingServer { .. }) if onboarding == Onboarding::Off => {
                String::new()
            }
            other => other?,
        };
        let tls = server_tls(&flags, cmdline)?;
        let mac = Setting::from_flag("--mac", flags.mac.clone())
            .or_else(|| cmdline.get("worker_id"))
            .map(mac_address)
            .transpose()?;
        Ok(Config {
            onboarding,
            server,
            tls,
            overrides: IdentityOverrides {
                mac,
                serial: flags.serial,
                uuid: flags.uuid.map(|uuid| uuid.to_ascii_lowercase()),
                ip: flags.ip,
            },
            root: flags.root,
            timeout: flags.timeout,
            backoff_base: Duration::from_millis(flags.backoff_base_ms),
            ip_tries: flags.ip_tries.max(1),
            ip_interval: Duration::from_millis(flags.ip_interval_ms),
            output: flags.output,
            credentials_dir: flags.credentials_dir,
            node_credentials_dir: flags.node_credentials_dir,
        })
    }
}

/// A missing file is an empty layer (the bootkit may have no env file); any other read error
/// is reported, since silently ignoring settings the operator wrote would be worse.
fn read_layer(path: &Path, parse: fn(&Path, &str) -> Layer) -> Result<Layer, ConfigError> {
    Layer::read(path, parse).map_err(|source| ConfigError::Unreadable {
        path: path.display().to_string(),
        source,
    })
}

/// The flag, else the image's env file (`onboarding=`), else the kernel command line
/// (`bootkit.onboarding=`), else [`Onboarding::IfServed`].
fn onboarding(flags: &Flags, env_file: &Layer, cmdline: &Layer) -> Result<Onboarding, ConfigError> {
    if let Some(mode) = flags.onboarding {
        return Ok(mode);
    }
    match env_file
        .get("onboarding")
        .or_else(|| cmdline.get("bootkit.onboarding"))
    {
        Some(found) => match Onboarding::parse(&found.value) {
            Some(mode) => Ok(mode),
            None => Err(found.invalid(ONBOARDING_VALUES).into()),
        },
        None => Ok(Onboarding::default()),
    }
}

/// The stream service wins over the manager in each layer: onboarding here is the stream only.
fn server(flags: &Flags, env_file: &Layer, cmdline: &Layer) -> Result<String, ConfigError> {
    let found = Setting::from_flag("--obs-svc", flags.obs_svc.clone())
        .or_else(|| Setting::from_flag("--obm-svc", flags.obm_svc.clone()))
        .or_else(|| env_file.get("onboarding_stream_svc"))
        .or_else(|| env_file.get("onboarding_manager_svc"))
        .or_else(|| cmdline.get("grpc_authority"))
        .ok_or_else(|| ConfigError::MissingServer {
            env_file: flags.env_file.display().to_string(),
        })?;
    let port = match flags.obm_port {
        Some(port) => port,
        None => match env_file.get("OBM_PORT") {
            Some(found) => found
                .value
                .parse()
                .map_err(|_| found.invalid("expected a port number (1-65535)"))?,
            None => DEFAULT_PORT,
        },
    };
    with_port(found, port)
}

/// `host:port` from `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.
fn with_port(found: Setting, default_port: u16) -> Result<String, ConfigError> {
    let value = found.value.trim();
    if value.contains("://") || value.contains('/') {
        return Err(found
            .invalid(
                "expected host[:port] without a scheme or path, for example provisioner.lan:42113",
            )
            .into());
    }
    let bracketed = value.starts_with('[');
    let (host, port) = match value.rsplit_once(':') {
        Some((host, port)) if !bracketed || host.ends_with(']') => {
            if !bracketed && host.contains(':') {
                // A bare IPv6 address: every colon belongs to it.
                (format!("[{value}]"), None)
            } else {
                (host.to_string(), Some(port))
            }
        }
        _ => (value.to_string(), None),
    };
    if host.is_empty() || host == "[]" {
        return Err(found.invalid("the host is empty").into());
    }
    let port = match port {
        Some(port) => port.parse::<u16>().map_err(|_| {
            found
                .clone()
                .invalid("the port is not a number from 1 to 65535")
        })?,
        None => default_port,
    };
    Ok(format!("{host}:{port}"))
}

fn mac_address(found: Setting) -> Result<String, ConfigError> {
    let mac = found.value.to_ascii_lowercase().replace('-', ":");
    let octets: Vec<&str> = mac.split(':').collect();
    let valid = octets.len() == 6
        && octets
            .iter()
            .all(|octet| octet.len() == 2 && octet.chars().all(|c| c.is_ascii_hexdigit()));
    if valid {
        Ok(mac)
    } else {
        Err(found
            .invalid("expected a MAC address like aa:bb:cc:dd:ee:ff")
            .into())
    }
}

/// A flag (clap parsed it with the same spellings) wins over the kernel command line.
fn switch(
    flag: Option<bool>,
    cmdline: Option<Setting>,
    default: bool,
) -> Result<bool, ConfigError> {
    match flag {
        Some(value) => Ok(value),
        None => Ok(boolean_or(cmdline, default)?),
    }
}

/// TLS by default with the system's CAs, as the tink-worker and HookOS; a CA pin wins over a
/// CA file.
fn server_tls(flags: &Flags, cmdline: &Layer) -> Result<ServerTls, ConfigError> {
    if !switch(flags.tls, cmdline.get("tinkerbell_tls"), true)? {
        return Ok(ServerTls::Plaintext);
    }
    if switch(
        flags.insecure_tls,
        cmdline.get("tinkerbell_insecure_tls"),
        false,
    )? {
        return Ok(ServerTls::InsecureSkipVerify);
    }
    if let Some(found) = Setting::from_flag("--ca-sha256", flags.ca_sha256.clone())
        .or_else(|| cmdline.get("tinkerbell_ca_sha256"))
    {
        return match Sha256Digest::parse(&found.value) {
            Ok(digest) => Ok(ServerTls::Pinned {
                ca_sha256: digest.0,
            }),
            Err(_) => Err(found
                .invalid("expected the 64 hex digits of the site CA certificate's SHA-256 (sha256sum of its DER)")
                .into()),
        };
    }
    let ca_bundle = flags.ca_cert.clone().or_else(|| {
        cmdline
            .get("tinkerbell_ca")
            .map(|found| PathBuf::from(found.value))
    });
    Ok(ServerTls::Verified { ca_bundle })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootkit_common::layered_config::parse_env_file;

    /// The flags of a run, parsed as the binary parses its command line.
    fn parse(args: &[&str]) -> Result<Flags, clap::Error> {
        use clap::Parser;
        let all = std::iter::once("device-discovery").chain(args.iter().copied());
        Cli::try_parse_from(all).map(|cli| cli.flags)
    }

    #[test]
    fn env_file_tolerates_quotes_comments_and_export() {
        let values = parse_env_file(
            "# EMT env\nexport onboarding_manager_svc=\"obm.lan\"\nonboarding_stream_svc='obs.lan:1234'\nOBM_PORT=50051 # the port\n\nbroken line\n",
        );
        assert_eq!(values["onboarding_manager_svc"], "obm.lan");
        assert_eq!(values["onboarding_stream_svc"], "obs.lan:1234");
        assert_eq!(values["OBM_PORT"], "50051");
        assert_eq!(values.len(), 3);
    }

    #[test]
    fn tls_flags_take_the_spellings_of_the_other_layers() {
        let flags = parse(&["--tls", "off"]).unwrap();
        assert_eq!(flags.tls, Some(false));
        let flags = parse(&["--insecure-tls", "Yes"]).unwrap();
        assert_eq!(flags.insecure_tls, Some(true));
        let error = parse(&["--tls", "maybe"]).err().unwrap().to_string();
        assert!(error.contains("true or false"), "{error}");
    }

    #[test]
    fn durations_in_go_style() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("42"), Ok(Duration::from_secs(42)));
        assert!(parse_duration("five minutes").is_err());
        assert!(parse_duration("").is_err());
    }

    fn found(value: &str) -> Setting {
        Setting {
            name: "grpc_authority".to_string(),
            value: value.to_string(),
            origin: Origin::Flag,
        }
    }

    #[test]
    fn server_addresses_get_the_default_port() {
        let cases = [
            ("provisioner.lan", "provisioner.lan:42113"),
            ("10.0.0.1:9000", "10.0.0.1:9000"),
            ("[fd00::1]:9000", "[fd00::1]:9000"),
            ("[fd00::1]", "[fd00::1]:42113"),
            ("fd00::1", "[fd00::1]:42113"),
        ];
        for (given, expected) in cases {
            assert_eq!(with_port(found(given), DEFAULT_PORT).unwrap(), expected);
        }
        for bad in ["http://provisioner.lan", "host:notaport", ":42113"] {
            let error = with_port(found(bad), DEFAULT_PORT).unwrap_err().to_string();
            assert!(error.contains("grpc_authority"), "{error}");
        }
    }

    fn load(args: &[&str], env_file: &str, cmdline: &str) -> Result<Config, ConfigError> {
        let flags = parse(args).unwrap();
        let env_file = Layer::from_env_file(Path::new("/etc/hook/env_config"), env_file);
        let cmdline = Layer::from_cmdline(Path::new("/proc/cmdline"), cmdline);
        Config::from_layers(flags, &env_file, &cmdline)
    }

    #[test]
    fn onboarding_mode_from_flag_then_env_file_then_kernel_command_line() {
        let server = "grpc_authority=10.0.0.1:42113";
        let mode = |args: &[&str], env: &str, cmdline: &str| {
            load(args, env, &format!("{server} {cmdline}"))
                .unwrap()
                .onboarding
        };
        assert_eq!(mode(&[], "", ""), Onboarding::IfServed, "the default");
        assert_eq!(
            mode(&[], "", "bootkit.onboarding=required"),
            Onboarding::Required
        );
        assert_eq!(
            mode(&[], "onboarding=off", "bootkit.onboarding=required"),
            Onboarding::Off,
            "the image's env file wins over the command line"
        );
        assert_eq!(
            mode(&["--onboarding", "required"], "onboarding=off", ""),
            Onboarding::Required,
            "the flag wins"
        );
    }

    #[test]
    fn a_bad_onboarding_mode_is_named_with_its_origin() {
        let error = load(&[], "", "grpc_authority=h bootkit.onboarding=sometimes")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("bootkit.onboarding") && error.contains("if-served"),
            "{error}"
        );
        let error = parse(&["--onboarding", "maybe"]).err().unwrap().to_string();
        assert!(error.contains("required, if-served or off"), "{error}");
    }

    #[test]
    fn the_ca_pin_from_the_flag_or_the_kernel_command_line() {
        let pin = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let config = load(
            &[],
            "",
            &format!("grpc_authority=h:1 tinkerbell_ca=/ca.pem tinkerbell_ca_sha256={pin}"),
        )
        .unwrap();
        let ServerTls::Pinned { ca_sha256 } = config.tls else {
            panic!("{:?}", config.tls)
        };
        assert_eq!(ca_sha256[..2], [0x9f, 0x86]);
        let other = "ab".repeat(32);
        let config = load(
            &["--ca-sha256", &other],
            "",
            &format!("grpc_authority=h:1 tinkerbell_ca_sha256={pin}"),
        )
        .unwrap();
        assert_eq!(
            config.tls,
            ServerTls::Pinned {
                ca_sha256: [0xab; 32]
            },
            "the flag wins"
        );
        let config = load(
            &[],
            "",
            &format!("grpc_authority=h:1 tinkerbell_tls=false tinkerbell_ca_sha256={pin}"),
        )
        .unwrap();
        assert_eq!(config.tls, ServerTls::Plaintext);
        let error = load(&[], "", "grpc_authority=h:1 tinkerbell_ca_sha256=12345")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("tinkerbell_ca_sha256") && error.contains("64 hex digits"),
            "{error}"
        );
    }

    #[test]
    fn onboarding_off_needs_no_server_but_the_other_modes_do() {
        let config = load(
            &[],
            "",
            "bootkit.onboarding=off worker_id=52:54:00:12:34:56",
        )
        .unwrap();
        assert_eq!(config.server, "");
        assert!(matches!(
            load(&[], "", "bootkit.onboarding=if-served"),
            Err(ConfigError::MissingServer { .. })
        ));
    }
}
