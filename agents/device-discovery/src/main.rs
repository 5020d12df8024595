//! `device-discovery`: exit 0 onboarded, 1 gave up (the supervisor restarts it), 2 bad
//! configuration, 143 terminated by SIGTERM. `device-discovery generate-docs --out DIR`
//! (hidden) writes its shell completions and man page instead.

use std::process::ExitCode;

use bootkit_common::error_chain;
use clap::{CommandFactory, Parser};
use device_discovery::config::{Cli, Command, Config};
use device_discovery::console;
use device_discovery::identity::LiveAddresses;
use device_discovery::{RunError, run};
use tokio::signal::unix::{SignalKind, signal};

const EXIT_GAVE_UP: u8 = 1;
const EXIT_BAD_CONFIGURATION: u8 = 2;
const EXIT_TERMINATED: u8 = 128 + 15;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::GenerateDocs(args)) = cli.command {
        return generate_docs(&args.out);
    }
    let config = match Config::load(cli.flags) {
        Ok(config) => config,
        Err(error) => {
            console::note(error_chain(&error));
            return ExitCode::from(EXIT_BAD_CONFIGURATION);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            console::note(format_args!("cannot start the async runtime: {error}"));
            return ExitCode::from(EXIT_GAVE_UP);
        }
    };
    runtime.block_on(run_until_terminated(&config))
}

fn generate_docs(out: &std::path::Path) -> ExitCode {
    match bootkit_common::cli_docs::write_all(Cli::command(), out) {
        Ok(paths) => {
            for path in paths {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("device-discovery: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

async fn run_until_terminated(config: &Config) -> ExitCode {
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => terminate,
        Err(error) => {
            console::note(format_args!("cannot watch for SIGTERM: {error}"));
            return ExitCode::from(EXIT_GAVE_UP);
        }
    };
    tokio::select! {
        result = run(config, &LiveAddresses) => match result {
            Ok(discovered) => {
                console::summary(discovered.summary());
                ExitCode::SUCCESS
            }
            Err(error @ RunError::Channel(_)) => {
                console::note(error_chain(&error));
                ExitCode::from(EXIT_BAD_CONFIGURATION)
            }
            Err(error) => {
                console::note(error_chain(&error));
                ExitCode::from(EXIT_GAVE_UP)
            }
        },
        _ = terminate.recv() => {
            console::note("terminated before the node was onboarded");
            ExitCode::from(EXIT_TERMINATED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootkit_common::cli_docs::undocumented;

    #[test]
    fn every_option_has_help_and_every_command_an_example() {
        assert_eq!(undocumented(&Cli::command()), Vec::<String>::new());
    }

    #[test]
    fn version_and_typo_suggestions() {
        let err = Cli::try_parse_from(["device-discovery", "--version"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayVersion);
        assert_eq!(
            err.to_string().trim(),
            format!("device-discovery {}", env!("CARGO_PKG_VERSION"))
        );
        let err = Cli::try_parse_from(["device-discovery", "--use-kernel-arg"]).unwrap_err();
        assert!(
            err.to_string()
                .contains("tip: a similar argument exists: '--use-kernel-args'"),
            "{err}"
        );
    }
}
