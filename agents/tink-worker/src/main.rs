//! `tink-worker`: runs the Tinkerbell workflows of this machine as containerd containers.
//!
//! Without a subcommand it is the worker: configuration from the kernel command line, the
//! environment and the flags (see `config`), then the loop of `worker` until SIGTERM.
//! `pull` and `run-once` run one step of that loop by hand (benchmarks, debugging); they need
//! only containerd and the registry settings, no workflow server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use bootkit_oci::RegistryClient;
use tink_worker::config::{Config, Flags, RegistryConfig, Sources};
use tink_worker::protocol::{Action, WorkflowClient};
use tink_worker::runtime::{ArgsMode, Runtime, RuntimeConfig};
use tink_worker::worker::adapters::{ContainerdRunner, ServerConnection};
use tink_worker::worker::power::SystemPower;
use tink_worker::worker::{ActionRunner, Exit, RunOutcome, RunRequest, Settings, Worker};

#[derive(Parser)]
#[command(
    name = "tink-worker",
    version,
    about = "Runs this machine's Tinkerbell workflow actions as containerd containers",
    after_help = "\
Settings beyond the flags come from the environment, device discovery's env file and the
kernel command line (TINKERBELL_GRPC_AUTHORITY / grpc_authority=, WORKER_ID / worker_id=,
DOCKER_REGISTRY, INSECURE_REGISTRIES, REGISTRY_USERNAME, REGISTRY_PASSWORD, ...).

Examples:
  TINKERBELL_GRPC_AUTHORITY=tink.example.com:42113 WORKER_ID=52:54:00:12:34:56 tink-worker
  INSECURE_REGISTRIES=10.0.2.2:5000 tink-worker pull 10.0.2.2:5000/actions/image2disk:v1"
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
    /// Pull IMAGE into containerd as the worker does before an action, then exit (no
    /// workflow server needed).
    #[command(after_help = "\
The registry settings (DOCKER_REGISTRY, INSECURE_REGISTRIES, REGISTRY_USERNAME,
REGISTRY_PASSWORD, CONTAINERD_REGISTRY_CONFIG_PATH) apply as in the worker.

Example:
  INSECURE_REGISTRIES=10.0.2.2:5000 tink-worker pull 10.0.2.2:5000/actions/image2disk:v1")]
    Pull {
        /// The image reference, HOST[:PORT]/REPOSITORY[:TAG|@DIGEST].
        image: String,
    },
    /// Run IMAGE as an action container (privileged, the worker's mounts) REPEAT times in
    /// a row, then exit with the last run's status. IMAGE must have been pulled.
    #[command(after_help = "\
Example:
  tink-worker pull 10.0.2.2:5000/test/busybox:1
  tink-worker run-once --repeat 3 10.0.2.2:5000/test/busybox:1 -- echo hello")]
    RunOnce {
        /// How many times to run the container in a row.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        repeat: u32,
        /// Seconds before each run is killed.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
        /// The image reference (pulled before, e.g. with `tink-worker pull`).
        image: String,
        /// The action's command (after `--`); the image's CMD when empty.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Write shell completions and man pages into DIR (scripts/install-docs.sh runs it).
    #[command(hide = true)]
    GenerateDocs(bootkit_common::cli_docs::GenerateDocsArgs),
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
    let Some(command) = &cli.command else {
        let config =
            Config::load(cli.flags.clone()).context("cannot read the worker configuration")?;
        let runner = containerd_runner(&cli, &config.registry)?;
        return serve(&cli, &config, runner).await;
    };
    if let Command::GenerateDocs(args) = command {
        for path in bootkit_common::cli_docs::write_all(Cli::command(), &args.out)? {
            println!("{}", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Pulling or running by hand needs the registry settings only: no workflow server address
    // or worker id, so it works on a workstation or before the provisioner is up.
    let sources = Sources::live(&cli.flags.discovery_env_file)
        .context("cannot read the registry settings")?;
    let runner = containerd_runner(&cli, &RegistryConfig::from_sources(&sources))?;
    match command {
        Command::Pull { image } => pull(runner, image).await,
        Command::RunOnce {
            repeat,
            timeout,
            image,
            command,
        } => {
            run_once(
                runner,
                image.clone(),
                command.clone(),
                *repeat,
                Duration::from_secs(*timeout),
            )
            .await
        }
        Command::GenerateDocs(_) => Ok(ExitCode::SUCCESS),
    }
}

fn containerd_runner(cli: &Cli, registry: &RegistryConfig) -> Result<ContainerdRunner> {
    let registry = RegistryClient::new(registry.client_config())
        .context("cannot set up the registry client")?;
    let runtime = Runtime::new(RuntimeConfig {
        socket: cli.flags.containerd_socket.clone(),
        namespace: cli.flags.namespace.clone(),
        state_dir: cli.state_dir.clone(),
        worker_dir: cli.worker_dir.clone(),
        ..RuntimeConfig::default()
    });
    let args_mode = if cli.flags.emt_args {
        ArgsMode::CommandIsWholeArgs
    } else {
        ArgsMode::EntrypointThenCommand
    };
    Ok(ContainerdRunner::new(
        runtime,
        registry,
        args_mode,
        cli.flags.keep_containers,
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

#[cfg(test)]
mod tests {
    use super::*;
    use bootkit_common::cli_docs::undocumented;

    #[test]
    fn every_option_has_help_and_every_command_an_example() {
        assert_eq!(undocumented(&Cli::command()), Vec::<String>::new());
    }

    #[test]
    fn a_misspelt_subcommand_gets_a_suggestion() {
        let Err(err) = Cli::try_parse_from(["tink-worker", "pul", "x"]) else {
            panic!("`pul` parsed");
        };
        assert!(
            err.to_string()
                .contains("similar subcommand exists: 'pull'"),
            "{err}"
        );
    }
}
