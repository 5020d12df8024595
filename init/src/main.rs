//! The bootkit's multicall binary. By the name it is called with (or its first argument):
//!
//! - `init` (or any name, as PID 1): boot the machine.
//! - `poweroff`, `reboot`, `halt` `[-f]`: ask PID 1 to stop the machine (or do it at once).
//! - `bootkit supervise DIR [--mode MODE]`: run the service supervisor on DIR without being
//!   PID 1, for developing and testing service definitions on a workstation.

mod boot;
mod cmdline;
mod fatal;
mod modules;
mod mounts;
mod network;
mod panics;
mod power;
mod shell;
mod supervisor;
mod targets;

use bootkit_common::error_chain;
// The log and the rootfs unpacker live in the library (src/lib.rs) so the fuzz targets can
// link them; the log's macros come along for `crate::info!` and friends.
use bootkit_init::{error, info, log, rootfs, warn};

use std::path::{Path, PathBuf};

use bootkit_common::service_def::BootMode;
use power::PowerAction;

/// The short usage shown with every usage error of `bootkit` itself.
const USAGE: &str = "\
usage: bootkit supervise DIR [--mode MODE] [--target NAME:FILE:TIMEOUT_MS]...
       bootkit poweroff|reboot|halt [-f]
       bootkit init
       bootkit --help | --version";

const SUPERVISE_USAGE: &str =
    "usage: bootkit supervise DIR [--mode MODE] [--target NAME:FILE:TIMEOUT_MS]...";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let called_as = args
        .first()
        .map(|arg0| {
            Path::new(arg0)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    // A rootfs's own init (init=) may exec `poweroff -f` as PID 1: the name decides first.
    if std::process::id() == 1 && PowerAction::from_command(&called_as).is_none() {
        boot::run();
    }
    let invocation = if called_as == "bootkit" {
        parse(
            args.get(1).map(String::as_str).unwrap_or(""),
            &args[2.min(args.len())..],
        )
    } else {
        parse(&called_as, &args[1.min(args.len())..])
    };
    let code = dispatch(invocation);
    std::process::exit(code);
}

/// What one run of the multicall binary is asked to do: [`parse`] decides from its arguments,
/// [`dispatch`] does it. Help and usage errors are decided before anything happens.
#[derive(Debug)]
enum Invocation {
    /// Print this on stdout and exit 0: a help text or the version.
    Show(String),
    /// A usage error: print this on stderr and exit 2.
    Refuse(String),
    /// `poweroff`, `reboot` or `halt` with their arguments (checked by `power::request`).
    Power(PowerAction, Vec<String>),
    /// `bootkit supervise`.
    Supervise(SuperviseArgs),
}

/// `bootkit supervise DIR [--mode MODE] [--target NAME:FILE:TIMEOUT_MS]...`
#[derive(Debug)]
struct SuperviseArgs {
    services_dir: PathBuf,
    mode: BootMode,
    targets: Vec<supervisor::Target>,
}

/// The command (the name called by, or `bootkit`'s first argument) and its arguments.
fn parse(command: &str, args: &[String]) -> Invocation {
    let asks_help = args.iter().any(|arg| arg == "--help" || arg == "-h");
    if let Some(action) = PowerAction::from_command(command) {
        return if asks_help {
            Invocation::Show(power_help(action))
        } else {
            Invocation::Power(action, args.to_vec())
        };
    }
    match command {
        "supervise" => parse_supervise(args),
        "init" if asks_help => Invocation::Show(INIT_HELP.to_string()),
        "init" => Invocation::Refuse(
            "bootkit init: only runs as PID 1 (the kernel starts it as /init); \
             to try services on this machine, use `bootkit supervise DIR`"
                .to_string(),
        ),
        "--version" | "-V" | "version" => {
            Invocation::Show(format!("bootkit {}", env!("CARGO_PKG_VERSION")))
        }
        "--help" | "-h" => Invocation::Show(bootkit_help()),
        // `bootkit help [COMMAND]`, as git and cargo have it.
        "help" => match args.first() {
            None => Invocation::Show(bootkit_help()),
            Some(command) => match parse(command, &["--help".to_string()]) {
                help @ Invocation::Show(_) => help,
                _ => Invocation::Refuse(unknown_command(command)),
            },
        },
        "" => Invocation::Refuse(format!(
            "bootkit: a command is missing\n{USAGE}\nRun `bootkit --help` for what each does."
        )),
        other => Invocation::Refuse(unknown_command(other)),
    }
}

fn unknown_command(command: &str) -> String {
    let kind = if command.starts_with('-') {
        "option"
    } else {
        "command"
    };
    format!("bootkit: unknown {kind} {command}\n{USAGE}\nRun `bootkit --help` for what each does.")
}

fn parse_supervise(args: &[String]) -> Invocation {
    let mut dir: Option<PathBuf> = None;
    let mut mode = BootMode::Provision;
    let mut targets = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--help" | "-h" => return Invocation::Show(supervise_help()),
            "--mode" => match rest.next().map(|value| value.parse()) {
                Some(Ok(value)) => mode = value,
                Some(Err(unknown)) => return supervise_usage_error(&unknown.to_string()),
                None => {
                    return supervise_usage_error(&format!(
                        "--mode needs a value: {}",
                        BootMode::names()
                    ));
                }
            },
            "--target" => match rest.next().map(|value| parse_target(value)) {
                Some(Ok(target)) => targets.push(target),
                Some(Err(message)) => return supervise_usage_error(&message),
                None => return supervise_usage_error("--target needs NAME:FILE:TIMEOUT_MS"),
            },
            option if option.starts_with('-') => {
                return supervise_usage_error(&format!("unknown option {option}"));
            }
            _ if dir.is_none() => dir = Some(PathBuf::from(arg)),
            _ => return supervise_usage_error(&format!("a second directory {arg:?}")),
        }
    }
    match dir {
        Some(services_dir) => Invocation::Supervise(SuperviseArgs {
            services_dir,
            mode,
            targets,
        }),
        None => supervise_usage_error("the directory of service definitions is missing"),
    }
}

fn supervise_usage_error(message: &str) -> Invocation {
    Invocation::Refuse(format!(
        "bootkit supervise: {message}\n{SUPERVISE_USAGE}\n\
         Run `bootkit supervise --help` for the options and an example."
    ))
}

fn bootkit_help() -> String {
    format!(
        "\
The bootkit's multicall binary: its PID 1, and the commands that go with it.

{USAGE}

Commands:
  init                    boot the machine (only as PID 1: the kernel starts it as /init)
  poweroff, reboot, halt  ask PID 1 to stop the services and the machine (-f: at once)
  supervise               run a directory of service definitions with the init's
                          supervisor, without being PID 1 (to develop and test services)

Called as poweroff, reboot or halt (the bootkit's links to it), it is that command.
`bootkit COMMAND --help` shows a command's options.

Examples:
  bootkit supervise ./services --mode shell
  bootkit reboot"
    )
}

const INIT_HELP: &str = "\
usage: bootkit init   (as PID 1 only)

The bootkit's boot: mounts, the kernel command line (bootkit.mode=, bootkit.rootfs=, ...),
modules, the root filesystem in RAM, switch_root, then the services of the mode under the
supervisor. The kernel starts it as /init; run by hand it refuses, as it would take over the
machine. The README's \"The init\" section lists the kernel command line keys.

Example (in QEMU, as the demo boots it):
  qemu-system-x86_64 -kernel vmlinuz -initrd initramfs -append 'console=ttyS0 bootkit.mode=shell'";

fn supervise_help() -> String {
    format!(
        "\
{SUPERVISE_USAGE}

Runs the service definitions in DIR (one NAME.toml per service, as /etc/bootkit/services in
the image) with the init's supervisor, without being PID 1: to develop and test services on
a workstation. It prints `supervise: ready (N services)` once every service of the mode has
started (and is ready), and stops them all on SIGTERM, SIGINT (Ctrl-C), SIGUSR1 or SIGUSR2.

Options:
  --mode MODE      the boot mode whose services run (their `modes`): {modes};
                   default provision
  --target NAME:FILE:TIMEOUT_MS
                   a built-in target services may name in `after` and `requires` (as the
                   init's network-online): reached when FILE appears, failed when
                   FILE.failed does or TIMEOUT_MS passes first; repeatable
  -h, --help       print this help

Example:
  bootkit supervise ./services --mode shell --target network-online:/tmp/online:30000
  touch /tmp/online    # (in another shell) the services waiting for network-online start",
        modes = BootMode::names()
    )
}

fn power_help(action: PowerAction) -> String {
    let name = action.as_str();
    format!(
        "\
usage: {name} [-f]

Asks PID 1 to stop the services, unmount and {name} the machine, by {signal} (the signal
busybox's {name} sends too, so either works under either init).

Options:
  -f, --force   {name} at once, without PID 1: sync, then the reboot(2) system call (root)
  -h, --help    print this help

Examples:
  {name}
  bootkit {name} -f",
        signal = action.signal().as_str()
    )
}

fn dispatch(invocation: Invocation) -> i32 {
    match invocation {
        Invocation::Show(text) => {
            println!("{text}");
            0
        }
        Invocation::Refuse(message) => {
            eprintln!("{message}");
            2
        }
        Invocation::Power(action, args) => power::request(action, &args),
        Invocation::Supervise(args) => supervise(args),
    }
}

/// Runs the supervisor on the directory until a signal stops it.
fn supervise(args: SuperviseArgs) -> i32 {
    if let Err(err) = supervisor::block_signals() {
        eprintln!(
            "supervise: cannot block signals: {err}",
            err = error_chain(&err)
        );
        return 1;
    }
    if let Err(err) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        eprintln!("supervise: cannot become a subreaper: {err}");
        return 1;
    }
    let config = supervisor::Config {
        services_dir: args.services_dir,
        mode: args.mode,
        env: Vec::new(),
        targets: args.targets,
    };
    let mut on_ready = |report: &supervisor::ReadyReport| {
        println!("supervise: ready ({} services)", report.services);
    };
    match supervisor::run(config, &mut on_ready) {
        Ok(action) => {
            println!("supervise: stopped, requested {}", action.as_str());
            0
        }
        Err(err) => {
            eprintln!("supervise: {err}", err = error_chain(&err));
            1
        }
    }
}

/// `NAME:FILE:TIMEOUT_MS`
fn parse_target(value: &str) -> Result<supervisor::Target, String> {
    let mut parts = value.splitn(3, ':');
    let (Some(name), Some(file), Some(timeout)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("--target {value:?}: expected NAME:FILE:TIMEOUT_MS"));
    };
    let timeout: u64 = timeout
        .parse()
        .map_err(|_| format!("--target {value:?}: the timeout must be milliseconds"))?;
    Ok(supervisor::Target {
        name: name.to_string(),
        reached_file: PathBuf::from(file),
        timeout: std::time::Duration::from_millis(timeout),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(command: &str, args: &[&str]) -> Invocation {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        parse(command, &args)
    }

    fn shown(invocation: Invocation) -> String {
        match invocation {
            Invocation::Show(text) => text,
            other => panic!("expected a text for stdout, got {other:?}"),
        }
    }

    fn refused(invocation: Invocation) -> String {
        match invocation {
            Invocation::Refuse(message) => message,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn every_command_has_help_with_an_example() {
        let helps = [
            ("--help", vec![]),
            ("-h", vec![]),
            ("help", vec![]),
            ("help", vec!["supervise"]),
            ("supervise", vec!["--help"]),
            ("supervise", vec!["services", "--mode", "shell", "-h"]),
            ("init", vec!["--help"]),
            ("poweroff", vec!["--help"]),
            ("reboot", vec!["-h"]),
            ("halt", vec!["-f", "--help"]),
        ];
        for (command, args) in helps {
            let text = shown(parse_words(command, &args));
            assert!(text.contains("usage:"), "{command} {args:?}: {text}");
            assert!(text.contains("Example"), "{command} {args:?}: {text}");
        }
        let supervise = shown(parse_words("supervise", &["--help"]));
        assert!(
            supervise.contains("--target NAME:FILE:TIMEOUT_MS"),
            "{supervise}"
        );
        assert!(
            supervise.contains("provision, standalone, shell"),
            "{supervise}"
        );
        let halt = shown(parse_words("halt", &["--help"]));
        assert!(
            halt.contains("usage: halt [-f]") && halt.contains("SIGUSR1"),
            "{halt}"
        );
    }

    #[test]
    fn version_names_the_binary_and_its_version() {
        for flag in ["--version", "-V", "version"] {
            assert_eq!(
                shown(parse_words(flag, &[])),
                format!("bootkit {}", env!("CARGO_PKG_VERSION"))
            );
        }
    }

    #[test]
    fn unknown_options_and_commands_are_named_and_point_at_help() {
        let cases = [
            (
                "supervise",
                vec!["services", "--bogus"],
                "unknown option --bogus",
            ),
            (
                "supervise",
                vec![],
                "the directory of service definitions is missing",
            ),
            ("supervise", vec!["a", "b"], "a second directory \"b\""),
            ("supervise", vec!["a", "--mode"], "--mode needs a value"),
            (
                "supervise",
                vec!["a", "--mode", "fast"],
                "unknown boot mode `fast`",
            ),
            ("--bogus", vec![], "unknown option --bogus"),
            ("frobnicate", vec![], "unknown command frobnicate"),
            ("help", vec!["frobnicate"], "unknown command frobnicate"),
            ("", vec![], "a command is missing"),
        ];
        for (command, args, expected) in cases {
            let message = refused(parse_words(command, &args));
            assert!(message.contains(expected), "{command} {args:?}: {message}");
            assert!(message.contains("--help`"), "{command} {args:?}: {message}");
        }
        assert!(refused(parse_words("init", &[])).contains("only runs as PID 1"));
    }

    #[test]
    fn supervise_and_power_commands_parse_their_arguments() {
        let Invocation::Supervise(args) = parse_words(
            "supervise",
            &["--mode", "shell", "svc", "--target", "net:/tmp/up:1500"],
        ) else {
            panic!("supervise did not parse");
        };
        assert_eq!(args.services_dir, PathBuf::from("svc"));
        assert_eq!(args.mode, BootMode::Shell);
        assert_eq!(args.targets.len(), 1);
        assert_eq!(args.targets[0].name, "net");
        assert_eq!(args.targets[0].reached_file, PathBuf::from("/tmp/up"));
        assert_eq!(args.targets[0].timeout.as_millis(), 1500);
        let Invocation::Power(action, args) = parse_words("reboot", &["-f"]) else {
            panic!("reboot -f did not parse");
        };
        assert_eq!(
            (action, args),
            (PowerAction::Reboot, vec!["-f".to_string()])
        );
    }
}
