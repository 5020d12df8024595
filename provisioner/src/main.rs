//! `provisioner`: the provisioning service and its command line.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Subcommand};
use provisioner::store::Store;

use cli::admin::InitArgs;
use cli::audit::{AuditArgs, LocalChange};
use cli::nodes::{NodeCommand, ProfileCommand};
use cli::objects::{ApplyArgs, GetArgs};
use cli::output::Output;
use cli::records::{HardwareCommand, TemplateCommand, WorkflowCommand};
use cli::serve::ServeArgs;

#[derive(clap::Parser)]
#[command(
    name = "provisioner",
    about = "Provisions bare-metal nodes over PXE: boot service, registration and profiles, Tinkerbell workflows, status and logs"
)]
struct Cli {
    /// The SQLite database (created if missing); every command but `init` needs it.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
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
    /// Create or update Tinkerbell Hardware, Template and Workflow objects from YAML, as
    /// `kubectl apply -f` does.
    Apply(ApplyArgs),
    /// Write Tinkerbell objects back (`-o yaml|json`), as `kubectl get` does.
    Get(GetArgs),
    /// Nodes: registration, status, timeline, logs, re-arming.
    Node {
        #[command(subcommand)]
        action: NodeCommand,
    },
    /// OS profiles: what a node boots and installs.
    Profile {
        #[command(subcommand)]
        action: ProfileCommand,
    },
    /// Serve everything: boot (DHCP, TFTP, HTTP), workflows and onboarding (gRPC), syslog, and
    /// the admin API and page.
    Serve(Box<ServeArgs>),
    /// First run: create a CA, a server certificate and an admin token.
    Init(InitArgs),
    /// The audit log: every change through the admin API or this CLI, and every refused
    /// admin request (who, what, when, from where).
    Audit(AuditArgs),
}

fn main() -> ExitCode {
    let command = Cli::command();
    let matches = command.clone().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    // This CLI changes the database directly, past the admin API's audit: it records its
    // changes itself.
    let change = LocalChange::of(&command, &matches);
    let db = cli.db.clone();
    let result = run(cli);
    if let (Some(change), Some(db)) = (change, db) {
        change.record(&db, result.is_ok());
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("provisioner: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let out = Output { json: cli.json };
    let db = cli.db;
    let open = || {
        let db = db.as_deref().context(
            "--db PATH is missing: this command works on the provisioner's database, e.g. --db /var/lib/provisioner/provisioner.db",
        )?;
        Store::open(db).with_context(|| format!("opening the database {}", db.display()))
    };
    match cli.command {
        Command::Template { action } => cli::records::template(&open()?, &out, action),
        Command::Hardware { action } => cli::records::hardware(&open()?, &out, action),
        Command::Workflow { action } => cli::records::workflow(&open()?, &out, action),
        Command::Apply(args) => cli::objects::apply(&open()?, &out, &args),
        Command::Get(args) => cli::objects::get(&open()?, &out, &args),
        Command::Node { action } => cli::nodes::node(&open()?, &out, action),
        Command::Profile { action } => cli::nodes::profile(&open()?, &out, action),
        Command::Serve(args) => cli::serve::serve(open()?, *args),
        Command::Init(args) => cli::admin::init(&args, &out),
        Command::Audit(args) => cli::audit::audit(&open()?, &args, out.json),
    }
}
