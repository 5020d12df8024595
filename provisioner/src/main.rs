//! `provisioner`: the workflow service and its command line.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use provisioner::server::{Protocols, RunningServer, ServeOptions, TlsFiles};
use provisioner::store::{Hardware, HardwareSpec, Store, TemplateRecord, Workflow};

#[derive(Parser)]
#[command(
    name = "provisioner",
    about = "Tinkerbell-compatible workflow service on an embedded store"
)]
struct Cli {
    /// The SQLite database (created if missing).
    #[arg(long, value_name = "PATH")]
    db: PathBuf,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Workflow templates (Tinkerbell YAML).
    Template {
        #[command(subcommand)]
        action: TemplateCommand,
    },
    /// Machines, by id and MACs.
    Hardware {
        #[command(subcommand)]
        action: HardwareCommand,
    },
    /// Workflows: a template run on hardware.
    Workflow {
        #[command(subcommand)]
        action: WorkflowCommand,
    },
    /// Serve the gRPC workflow service (both protocols) and the REST API.
    Serve(ServeArgs),
}

#[derive(Subcommand)]
enum TemplateCommand {
    Create {
        #[arg(long, value_name = "T.yaml")]
        file: PathBuf,
        /// Overrides the template's own name.
        #[arg(long)]
        name: Option<String>,
    },
    Get {
        id: String,
    },
    List,
    Delete {
        id: String,
    },
}

#[derive(Subcommand)]
enum HardwareCommand {
    Create {
        /// JSON: {"id": "...", "macs": ["52:54:00:.."], "ips": [".."], "attributes": {..}}
        #[arg(long, value_name = "H.json")]
        file: PathBuf,
    },
    /// By id or MAC.
    Get {
        id: String,
    },
    List,
    Delete {
        id: String,
    },
}

#[derive(Subcommand)]
enum WorkflowCommand {
    Create {
        /// The template's id.
        #[arg(long)]
        template: String,
        /// The hardware map as JSON, e.g. '{"device_1": "52:54:00:12:34:56"}'.
        #[arg(long, default_value = "{}")]
        hardware: String,
    },
    Get {
        id: String,
    },
    List,
    Delete {
        id: String,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// gRPC listen address (workers).
    #[arg(long, default_value = "127.0.0.1:42113")]
    grpc: SocketAddr,
    /// REST API listen address.
    #[arg(long, default_value = "127.0.0.1:42114")]
    http: SocketAddr,
    /// PEM certificate chain: serve gRPC over TLS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The worker protocols to speak.
    #[arg(long, value_enum, default_value_t = Protocols::Both)]
    protocols: Protocols,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("provisioner: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let store = Store::open(&cli.db)
        .with_context(|| format!("opening the database {}", cli.db.display()))?;
    let out = Output { json: cli.json };
    match cli.command {
        Command::Template { action } => template(&store, &out, action),
        Command::Hardware { action } => hardware(&store, &out, action),
        Command::Workflow { action } => workflow(&store, &out, action),
        Command::Serve(args) => serve(store, args),
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn template(store: &Store, out: &Output, command: TemplateCommand) -> anyhow::Result<()> {
    match command {
        TemplateCommand::Create { file, name } => {
            let created = store.create_template(&read(&file)?, name.as_deref())?;
            out.one(&created, template_text)
        }
        TemplateCommand::Get { id } => out.one(&store.get_template(&id)?, template_text),
        TemplateCommand::List => out.many(&store.list_templates()?, |t| {
            format!("{}  {}  {}", t.id, t.name, t.created_at)
        }),
        TemplateCommand::Delete { id } => {
            store.delete_template(&id)?;
            out.done(&format!("template {id} deleted"))
        }
    }
}

fn hardware(store: &Store, out: &Output, command: HardwareCommand) -> anyhow::Result<()> {
    match command {
        HardwareCommand::Create { file } => {
            let spec = HardwareSpec::parse(&read(&file)?)?;
            out.one(&store.create_hardware(&spec)?, hardware_text)
        }
        HardwareCommand::Get { id } => out.one(&store.get_hardware(&id)?, hardware_text),
        HardwareCommand::List => out.many(&store.list_hardware()?, |h| {
            format!("{}  {}  {}", h.id, h.macs.join(","), h.ips.join(","))
        }),
        HardwareCommand::Delete { id } => {
            store.delete_hardware(&id)?;
            out.done(&format!("hardware {id} deleted"))
        }
    }
}

fn workflow(store: &Store, out: &Output, command: WorkflowCommand) -> anyhow::Result<()> {
    match command {
        WorkflowCommand::Create { template, hardware } => {
            let map: BTreeMap<String, String> = serde_json::from_str(&hardware).context(
                "--hardware: expected a JSON object of strings, e.g. '{\"device_1\": \"52:54:00:12:34:56\"}'",
            )?;
            out.one(&store.create_workflow(&template, &map)?, workflow_text)
        }
        WorkflowCommand::Get { id } => out.one(&store.get_workflow(&id)?, workflow_text),
        WorkflowCommand::List => out.many(&store.list_workflows()?, |w| {
            format!(
                "{}  {}  template {}  {}",
                w.id, w.state, w.template_id, w.created_at
            )
        }),
        WorkflowCommand::Delete { id } => {
            store.delete_workflow(&id)?;
            out.done(&format!("workflow {id} deleted"))
        }
    }
}

fn serve(store: Store, args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    let options = ServeOptions {
        grpc: args.grpc,
        http: Some(args.http),
        tls,
        protocols: args.protocols,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let mut server = RunningServer::start(Arc::new(store), &options).await?;
        tokio::select! {
            result = server.wait() => result,
            signal = stop_signal() => {
                signal?;
                tracing::info!("stopping on signal");
                server.stop().await
            }
        }
    })
}

async fn stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("listening for SIGINT"),
        _ = terminate.recv() => Ok(()),
    }
}

/// Prints results as text, or as JSON with `--json`.
struct Output {
    json: bool,
}

impl Output {
    fn one<T: serde::Serialize>(&self, value: &T, text: fn(&T) -> String) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            println!("{}", text(value));
        }
        Ok(())
    }

    fn many<T: serde::Serialize>(
        &self,
        values: &[T],
        line: fn(&T) -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(values)?);
        } else {
            values.iter().for_each(|value| println!("{}", line(value)));
        }
        Ok(())
    }

    fn done(&self, message: &str) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::json!({ "result": message }));
        } else {
            println!("{message}");
        }
        Ok(())
    }
}

fn template_text(template: &TemplateRecord) -> String {
    format!(
        "id: {}\nname: {}\ncreated: {}\n---\n{}",
        template.id, template.name, template.created_at, template.data
    )
}

fn hardware_text(hardware: &Hardware) -> String {
    let attributes = serde_json::Value::Object(hardware.attributes.clone());
    format!(
        "id: {}\nmacs: {}\nips: {}\nattributes: {}\nagent seen: {}\ncreated: {}",
        hardware.id,
        hardware.macs.join(", "),
        hardware.ips.join(", "),
        attributes,
        hardware.agent_seen_at.as_deref().unwrap_or("never"),
        hardware.created_at
    )
}

fn workflow_text(workflow: &Workflow) -> String {
    let mut text = format!(
        "id: {}\nstate: {}\ntemplate: {}\nhardware: {}\ncreated: {}\nstarted: {}\nstopped: {}\nactions:",
        workflow.id,
        workflow.state,
        workflow.template_id,
        serde_json::to_string(&workflow.hardware).unwrap_or_default(),
        workflow.created_at,
        workflow.started_at.as_deref().unwrap_or("-"),
        workflow.stopped_at.as_deref().unwrap_or("-"),
    );
    for action in &workflow.actions {
        let duration = action
            .duration_ms
            .map(|ms| format!("{:.3}s", ms as f64 / 1000.0));
        text.push_str(&format!(
            "\n  {}/{}  {}  worker {}  started {}  stopped {}  duration {}  message {:?}",
            action.task_name,
            action.name,
            action.state,
            action.worker,
            action.started_at.as_deref().unwrap_or("-"),
            action.stopped_at.as_deref().unwrap_or("-"),
            duration.as_deref().unwrap_or("-"),
            action.message,
        ));
    }
    text
}
