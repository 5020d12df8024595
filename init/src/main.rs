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

const USAGE: &str = "\
usage: bootkit init                        (as PID 1: boot the machine)
       bootkit poweroff|reboot|halt [-f]   (ask PID 1 to stop the machine; -f: at once)
       bootkit supervise DIR [--mode MODE] [--target NAME:FILE:TIMEOUT_MS]...
                                           (run the services in DIR, not as PID 1; a
                                           target is reached when FILE appears, and
                                           failed when FILE.failed does)
       bootkit --version";

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
    let code = if called_as == "bootkit" {
        dispatch(
            args.get(1).map(String::as_str).unwrap_or(""),
            &args[2.min(args.len())..],
        )
    } else {
        dispatch(&called_as, &args[1.min(args.len())..])
    };
    std::process::exit(code);
}

fn dispatch(command: &str, args: &[String]) -> i32 {
    if let Some(action) = PowerAction::from_command(command) {
        return power::request(action, args);
    }
    match command {
        "supervise" => supervise(args),
        "init" => {
            eprintln!("bootkit init: only runs as PID 1 (the kernel starts it as /init)");
            2
        }
        "--version" | "version" => {
            println!("bootkit {}", env!("CARGO_PKG_VERSION"));
            0
        }
        "--help" | "-h" | "help" => {
            println!("{USAGE}");
            0
        }
        other => {
            eprintln!("bootkit: unknown command {other:?}\n{USAGE}");
            2
        }
    }
}

/// `bootkit supervise DIR [--mode MODE]`
fn supervise(args: &[String]) -> i32 {
    let mut dir: Option<PathBuf> = None;
    let mut mode = BootMode::Provision;
    let mut targets = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--mode" => match rest.next().map(|value| value.parse()) {
                Some(Ok(value)) => mode = value,
                Some(Err(unknown)) => return usage_error(&unknown.to_string()),
                None => return usage_error("--mode needs a value"),
            },
            "--target" => match rest.next().map(|value| parse_target(value)) {
                Some(Ok(target)) => targets.push(target),
                Some(Err(message)) => return usage_error(&message),
                None => return usage_error("--target needs NAME:FILE:TIMEOUT_MS"),
            },
            _ if dir.is_none() && !arg.starts_with('-') => dir = Some(PathBuf::from(arg)),
            _ => return usage_error(&format!("unexpected argument {arg:?}")),
        }
    }
    let Some(services_dir) = dir else {
        return usage_error("supervise needs the directory of service definitions");
    };
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
        services_dir,
        mode,
        env: Vec::new(),
        targets,
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

fn usage_error(message: &str) -> i32 {
    eprintln!("bootkit: {message}\n{USAGE}");
    2
}
