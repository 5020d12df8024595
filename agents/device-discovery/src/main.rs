//! `device-discovery`: exit 0 onboarded, 1 gave up (the supervisor restarts it), 2 bad
//! configuration, 143 terminated by SIGTERM.

use std::process::ExitCode;

use bootkit_common::error_chain;
use clap::Parser;
use device_discovery::config::{Config, Flags};
use device_discovery::console;
use device_discovery::identity::LiveAddresses;
use device_discovery::{RunError, run};
use tokio::signal::unix::{SignalKind, signal};

const EXIT_GAVE_UP: u8 = 1;
const EXIT_BAD_CONFIGURATION: u8 = 2;
const EXIT_TERMINATED: u8 = 128 + 15;

fn main() -> ExitCode {
    let flags = Flags::parse();
    let config = match Config::load(flags) {
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
