//! `provisioner`: the provisioning service and its command line.

mod cli;

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
use cli::remote::{ContextCommand, LoginArgs, Target};
use cli::serve::ServeArgs;

#[derive(clap::Parser)]
#[command(
    name = "provisioner",
    version,
    about = "Provisions bare-metal nodes over PXE: boot service, registration and profiles, Tinkerbell workflows, status and logs",
    after_help = "Commands work on a database on this host (--db PATH) or on a running provisioner's \
admin API (--server URL with --token or --client-cert, or a context saved by `provisioner login`).

Examples:
  provisioner init --dir /etc/provisioner --db /var/lib/provisioner/provisioner.db
  provisioner serve --db /var/lib/provisioner/provisioner.db --admin-token-file /etc/provisioner/admin-token
  provisioner node list --db /var/lib/provisioner/provisioner.db
  provisioner login https://prov.lab:8443 --ca /etc/provisioner/ca.pem --token \"$(cat /etc/provisioner/admin-token)\"
  provisioner node show HUX0010"
)]
struct Cli {
    #[command(flatten)]
    target: Target,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Workflow templates (Tinkerbell YAML).
    #[command(
        after_help = "Examples:\n  provisioner template create --file emt-install.yaml\n  provisioner template list"
    )]
    Template {
        #[command(subcommand)]
        action: TemplateCommand,
    },
    /// Machines, by id and MACs.
    #[command(
        after_help = "Examples:\n  provisioner hardware create --file node1.json\n  provisioner hardware list"
    )]
    Hardware {
        #[command(subcommand)]
        action: HardwareCommand,
    },
    /// Workflows: a template run on hardware.
    #[command(
        after_help = "Examples:\n  provisioner workflow list\n  provisioner workflow get 3f2a..."
    )]
    Workflow {
        #[command(subcommand)]
        action: WorkflowCommand,
    },
    /// Create or update Tinkerbell Hardware, Template and Workflow objects from YAML, as
    /// `kubectl apply -f` does.
    #[command(
        after_help = "Examples:\n  provisioner apply -f hardware.yaml\n  cat objects.yaml | provisioner apply -f -"
    )]
    Apply(ApplyArgs),
    /// Write Tinkerbell objects back (`-o yaml|json`), as `kubectl get` does.
    #[command(
        after_help = "Examples:\n  provisioner get hardware -o yaml\n  provisioner get workflow -o json"
    )]
    Get(GetArgs),
    /// Nodes: registration, status, timeline, logs, re-arming.
    #[command(
        after_help = "Examples:\n  provisioner node list\n  provisioner node show HUX0010\n  provisioner node import --file regs.csv"
    )]
    Node {
        #[command(subcommand)]
        action: NodeCommand,
    },
    /// OS profiles: what a node boots and installs.
    #[command(
        after_help = "Examples:\n  provisioner profile list\n  provisioner profile default edge"
    )]
    Profile {
        #[command(subcommand)]
        action: ProfileCommand,
    },
    /// Serve everything: boot (DHCP, TFTP, HTTP), workflows and onboarding (gRPC), syslog, and
    /// the admin API and page.
    Serve(Box<ServeArgs>),
    /// First run: create a CA, a server certificate and an admin token (and, with --db, the
    /// database).
    #[command(
        after_help = "Example:\n  provisioner init --dir /etc/provisioner --hostname prov.lab --ip 10.0.0.2 --db /var/lib/provisioner/provisioner.db"
    )]
    Init(InitArgs),
    /// Check a server's URL and credentials, then save them as a context (in
    /// ~/.config/bootkit/provisioner.toml, mode 0600) that every command uses.
    Login(LoginArgs),
    /// The contexts `provisioner login` saved: list them, switch, forget one.
    #[command(after_help = "Examples:\n  provisioner context list\n  provisioner context use lab")]
    Context {
        #[command(subcommand)]
        action: ContextCommand,
    },
    /// Write shell completions and man pages into DIR (scripts/install-docs.sh runs it).
    #[command(hide = true)]
    GenerateDocs(bootkit_common::cli_docs::GenerateDocsArgs),
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
    let db = cli.target.db.clone();
    let result = run(cli);
    // Only a database that exists: recording must not create one under a misspelt path.
    if let (Some(change), Some(db)) = (change, db.filter(|db| db.exists())) {
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
    let target = cli.target;
    let open = || cli::remote::open(&target);
    match cli.command {
        Command::Template { action } => cli::records::template(&open()?, &out, action),
        Command::Hardware { action } => cli::records::hardware(&open()?, &out, action),
        Command::Workflow { action } => cli::records::workflow(&open()?, &out, action),
        Command::Apply(args) => cli::objects::apply(&open()?, &out, &args),
        Command::Get(args) => cli::objects::get(&open()?, &out, &args),
        Command::Node { action } => cli::nodes::node(&open()?, &out, action),
        Command::Profile { action } => cli::nodes::profile(&open()?, &out, action),
        Command::Serve(args) => {
            // The one command that creates a database (with `init --db`).
            let db = target.db.as_deref().context(
                "--db PATH is missing: serve keeps its records in a SQLite database, e.g. \
                 --db /var/lib/provisioner/provisioner.db (created if missing)",
            )?;
            let store = Store::open(db)
                .with_context(|| format!("opening the database {}", db.display()))?;
            cli::serve::serve(store, *args)
        }
        Command::Init(args) => {
            if let Some(db) = &target.db {
                Store::open(db)
                    .with_context(|| format!("creating the database {}", db.display()))?;
            }
            cli::admin::init(&args, &out)
        }
        Command::Login(args) => cli::remote::login(&target, &args, &out),
        Command::Context { action } => cli::remote::context(&action, &out),
        Command::Audit(args) => cli::audit::audit(&open()?, &args, out.json),
        Command::GenerateDocs(args) => {
            for path in bootkit_common::cli_docs::write_all(Cli::command(), &args.out)? {
                println!("{}", path.display());
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_option_has_help_and_every_command_an_example() {
        assert_eq!(
            bootkit_common::cli_docs::undocumented(&super::Cli::command()),
            Vec::<String>::new()
        );
    }
}
