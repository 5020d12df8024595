//! `tink-worker`: runs the Tinkerbell workflows of this machine as containerd containers.
//!
//! Without a subcommand it is the worker: configuration from the kernel command line, the
//! environment and the flags (see `config`), then the loop of `worker` until SIGTERM.
//! `pull` and `run-once` run one step of that loop by hand (benchmarks, debugging).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use bootkit_oci::RegistryClient;
use tink_worker::config::{Config, Flags};
use tink_worker::protocol::{Action, WorkflowClient};
use tink_worker::runtime::{ArgsMode, Runtime, RuntimeConfig};
use tink_worker::worker::adapters::{ContainerdRunner, ServerConnection};
use tink_worker::worker::power::SystemPower;
use tink_worker::worker::{ActionRunner, Exit, RunOutcome, RunRequest, Settings, Worker};

#[derive(Parser)]
#[command(
    name = "tink-worker",
    version,
    about = "Runs this machine's Tinkerbell workflow actions as containerd containers"
)]
struct Cli {
    #[command(flatten)]
    flags: Flags,
    /// The worker directory: `<dir>/<workflow>` is each action's `/workflow`, and an action
    /// creating `<dir>/reboot` asks for a reboot at the end of its workflow.
    #[arg(long, default_value = "/worker")]
    worker_dir: PathBuf,
    /// Where the output FIFOs of running actions are made.
    #[arg(long, default_value = "/run/tink-worker")]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Pull IMAGE into containerd as the worker does before an action, then exit.
    Pull { image: String },
    /// Run IMAGE as an action container (privileged, the worker's mounts) REPEAT times in
    /// a row, then exit with the last run's status. IMAGE must have been pulled.
    RunOnce {
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        repeat: u32,
        /// Seconds before each run is killed.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
        image: String,
        /// The action's command (after `--`); the image's CMD when empty.
        #[arg(last = true)]
        command: Vec<String>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        // The init's log (and syslog) stamp every line already.
        .without_time()
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let config = Config::load(cli.flags.clone()).context("cannot read the worker configuration")?;
    let runner = containerd_runner(&cli, &config)?;
    match cli.command {
        None => serve(&cli, &config, runner).await,
        Some(Command::Pull { image }) => pull(runner, &image).await,
        Some(Command::RunOnce {
            repeat,
            timeout,
            image,
            command,
        }) => run_once(runner, image, command, repeat, Duration::from_secs(timeout)).await,
    }
}

fn containerd_runner(cli: &Cli, config: &Config) -> Result<ContainerdRunner> {
    let registry = RegistryClient::new(config.registry.client_config())
        .context("cannot set up the registry client")?;
    let runtime = Runtime::new(RuntimeConfig {
        socket: config.containerd_socket.clone(),
        namespace: config.namespace.clone(),
        state_dir: cli.state_dir.clone(),
        worker_dir: cli.worker_dir.clone(),
        ..RuntimeConfig::default()
    });
    let args_mode = if config.emt_args {
        ArgsMode::CommandIsWholeArgs
    } else {
        ArgsMode::EntrypointThenCommand
    };
    Ok(ContainerdRunner::new(
        runtime,
        registry,
        args_mode,
        config.keep_containers,
    ))
}

/// The worker proper: the loop until SIGTERM/SIGINT or an end-of-workflow power action.
async fn serve(cli: &Cli, config: &Config, runner: ContainerdRunner) -> Result<ExitCode> {
    std::fs::create_dir_all(&cli.worker_dir).with_context(|| {
        format!(
            "cannot create the worker directory {}",
            cli.worker_dir.display()
        )
    })?;
    let client = WorkflowClient::from_config(config)
        .context("cannot set up the connection to the workflow server")?;
    let server = ServerConnection::new(client, bootkit_hwinfo::collect());
    tracing::info!(
        "worker {} polling {} ({:?} protocol, containerd {}, namespace {})",
        config.worker_id,
        config.grpc_authority,
        config.protocol,
        config.containerd_socket.display(),
        config.namespace
    );
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;
    let settings = Settings {
        worker_dir: cli.worker_dir.clone(),
        ..Settings::default()
    };
    let mut worker = Worker::new(server, runner, SystemPower, settings, shutdown);
    match worker.run().await {
        Exit::Shutdown => tracing::info!("stopped on request"),
        Exit::Power(action) => tracing::info!("`{}` started: exiting", action.command()),
    }
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (the init stopping services) or SIGINT: finish the current action and its
/// report, start no other.
fn spawn_signal_handler(shutdown: CancellationToken) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("stop requested: finishing the current action, starting no other");
        shutdown.cancel();
    });
    Ok(())
}

async fn pull(mut runner: ContainerdRunner, image: &str) -> Result<ExitCode> {
    runner
        .pull(image)
        .await
        .with_context(|| format!("cannot pull {image}"))?;
    tracing::info!("pulled {image}");
    Ok(ExitCode::SUCCESS)
}

async fn run_once(
    mut runner: ContainerdRunner,
    image: String,
    command: Vec<String>,
    repeat: u32,
    timeout: Duration,
) -> Result<ExitCode> {
    let action = Action {
        workflow_id: "run-once".to_string(),
        name: "run-once".to_string(),
        image,
        timeout,
        command,
        ..Action::default()
    };
    let mut outcome = run_action_once(&mut runner, &action).await?;
    for _ in 1..repeat {
        outcome = run_action_once(&mut runner, &action).await?;
    }
    match outcome.exit_code {
        Some(0) => Ok(ExitCode::SUCCESS),
        Some(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(1))),
        None => bail!("{} was killed after {} s", action.image, timeout.as_secs()),
    }
}

async fn run_action_once(runner: &mut ContainerdRunner, action: &Action) -> Result<RunOutcome> {
    let request = RunRequest {
        action,
        command_override: None,
        label: &action.name,
        timeout: action.timeout,
    };
    runner
        .run(request)
        .await
        .with_context(|| format!("cannot run {}", action.image))
}
