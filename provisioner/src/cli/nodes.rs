//! `provisioner node ...` and `provisioner profile ...`: registration, status, timeline, logs
//! and re-arming of nodes; the OS profiles they boot and install.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use provisioner::store::{
    LogLine, Node, NodeDetail, Profile, ProfileSpec, Registered, Registration, RegistrationSpec,
    Store,
};

use super::output::{Output, read};

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Every node: seen ones, then registered ones not seen yet.
    List,
    /// A node's identity, profile, state, workflow actions and timeline.
    Show {
        /// The node's id, a MAC, its serial or its UUID.
        key: String,
    },
    /// A node's logs (syslog and action output).
    Logs(LogsArgs),
    /// Register a node (by serial, UUID and/or MAC) for a profile.
    Register(RegisterArgs),
    /// Register nodes from OEP's CSV (Serial,UUID,OSProfile,Site,Secure,RemoteUser,Metadata).
    Import {
        #[arg(long, value_name = "regs.csv")]
        file: PathBuf,
    },
    /// Registrations as stored (with their ids, for `unregister`).
    Registrations,
    /// Delete a registration.
    Unregister {
        /// The registration's id.
        id: String,
    },
    /// Re-arm a provisioned or failed node: its next boot installs again (its credentials
    /// are revoked, so it enrolls again).
    Reprovision { key: String },
    /// Revoke every credential of a node (its client certificate and client secret): it
    /// is refused everywhere until it enrolls again.
    Revoke {
        /// The node's id, a MAC, its serial or its UUID.
        key: String,
    },
    /// Let a node that lost its credential (reinstalled, RAM cleared) enroll once more:
    /// revokes its credentials; the next onboarding wins, later ones are refused again.
    ApproveEnrollment {
        /// The node's id, a MAC, its serial or its UUID.
        key: String,
    },
}

#[derive(Args)]
pub struct LogsArgs {
    key: String,
    /// Keep printing new lines (polls every 500 ms) until Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// Only lines after this sequence number.
    #[arg(long, default_value_t = 0)]
    since_seq: i64,
    /// At most this many lines (per poll with --follow).
    #[arg(long, default_value_t = 1000)]
    lines: usize,
}

#[derive(Args)]
pub struct RegisterArgs {
    #[arg(long)]
    serial: Option<String>,
    #[arg(long)]
    uuid: Option<String>,
    #[arg(long)]
    mac: Option<String>,
    #[arg(long)]
    profile: String,
    #[arg(long)]
    hostname: Option<String>,
    /// Metadata, repeatable: --meta site=lab --meta dest_disk=/dev/sda
    #[arg(long = "meta", value_name = "K=V")]
    metadata: Vec<String>,
}

#[derive(Subcommand)]
pub enum ProfileCommand {
    Create(CreateProfileArgs),
    List,
    Show {
        name: String,
    },
    Delete {
        name: String,
    },
    /// Set the profile of unregistered nodes, or --none to refuse them.
    Default {
        #[arg(required_unless_present = "none")]
        name: Option<String>,
        #[arg(long, conflicts_with = "name")]
        none: bool,
    },
}

#[derive(Args)]
pub struct CreateProfileArgs {
    #[arg(long)]
    name: String,
    /// The bootkit kernel (a file on this host).
    #[arg(long, value_name = "PATH")]
    kernel: String,
    /// The bootkit initramfs (a file on this host).
    #[arg(long, value_name = "PATH")]
    initramfs: String,
    /// The workflow template, by id or name.
    #[arg(long)]
    template: String,
    /// The OS image: an http(s) URL or a file on this host.
    #[arg(long, value_name = "URL|PATH")]
    os_image: String,
    #[arg(long, value_name = "HEX")]
    os_image_sha256: Option<String>,
    /// Extra kernel command line parameters.
    #[arg(long, default_value = "")]
    cmdline: String,
    /// Make it the profile of unregistered nodes.
    #[arg(long)]
    default: bool,
}

/// How often `node logs --follow` looks for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

pub fn node(store: &Store, out: &Output, command: NodeCommand) -> anyhow::Result<()> {
    match command {
        NodeCommand::List => out.many(&store.list_nodes()?, node_line),
        NodeCommand::Show { key } => show_node(store, out, &key),
        NodeCommand::Logs(args) => logs(store, out, &args),
        NodeCommand::Register(args) => {
            let registered = store.register(&registration_spec(args)?)?;
            out.one(&registered, registered_text)
        }
        NodeCommand::Import { file } => {
            let registered = store
                .import_registrations(&read(&file)?)
                .with_context(|| format!("importing {}; nothing was stored", file.display()))?;
            out.many(&registered, registered_text)
        }
        NodeCommand::Registrations => out.many(&store.list_registrations()?, registration_line),
        NodeCommand::Unregister { id } => {
            store.delete_registration(&id)?;
            out.done(&format!("registration {id} deleted"))
        }
        NodeCommand::Reprovision { key } => {
            let node = store.reprovision(&key)?;
            out.one(&node, |node| {
                format!(
                    "node {} re-armed ({}): its next boot installs again",
                    node.id, node.state
                )
            })
        }
        NodeCommand::Revoke { key } => out.one(&store.revoke_node(&key)?, |revocation| {
            format!(
                "node {}: {} active credential(s) revoked; it is refused until it enrolls again \
                 (`provisioner node approve-enrollment {}` lets it)",
                revocation.node_id, revocation.revoked, revocation.node_id
            )
        }),
        NodeCommand::ApproveEnrollment { key } => {
            out.one(&store.approve_enrollment(&key)?, |revocation| {
                format!(
                    "node {}: {} active credential(s) revoked; its next onboarding enrolls it",
                    revocation.node_id, revocation.revoked
                )
            })
        }
    }
}

pub fn profile(store: &Store, out: &Output, command: ProfileCommand) -> anyhow::Result<()> {
    match command {
        ProfileCommand::Create(args) => {
            let spec = ProfileSpec {
                name: args.name,
                kernel: args.kernel,
                initramfs: args.initramfs,
                cmdline: args.cmdline,
                template: args.template,
                os_image: args.os_image,
                os_image_sha256: args.os_image_sha256,
                default: args.default,
            };
            out.one(&store.create_profile(&spec)?, profile_text)
        }
        ProfileCommand::List => out.many(&store.list_profiles()?, profile_line),
        ProfileCommand::Show { name } => out.one(&store.get_profile(&name)?, profile_text),
        ProfileCommand::Delete { name } => {
            store.delete_profile(&name)?;
            out.done(&format!("profile {name} deleted"))
        }
        ProfileCommand::Default { name, none: _ } => {
            store.set_default_profile(name.as_deref())?;
            match name {
                Some(name) => out.done(&format!(
                    "profile {name} is now the default: unregistered nodes install it"
                )),
                None => out.done("no default profile: unregistered nodes are refused"),
            }
        }
    }
}

fn registration_spec(args: RegisterArgs) -> anyhow::Result<RegistrationSpec> {
    let mut metadata = BTreeMap::new();
    for pair in &args.metadata {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("--meta {pair:?} is not KEY=VALUE"))?;
        metadata.insert(key.trim().to_string(), value.to_string());
    }
    Ok(RegistrationSpec {
        serial: args.serial,
        uuid: args.uuid,
        mac: args.mac,
        profile: args.profile,
        hostname: args.hostname,
        metadata,
    })
}

fn show_node(store: &Store, out: &Output, key: &str) -> anyhow::Result<()> {
    out.one(&store.node_detail(key)?, node_detail_text)
}

fn logs(store: &Store, out: &Output, args: &LogsArgs) -> anyhow::Result<()> {
    let node = store.get_node(&args.key)?;
    let mut after = args.since_seq;
    loop {
        let lines = store.node_logs(&node.id, after, args.lines)?;
        if let Some(last) = lines.last() {
            after = last.seq;
        }
        if out.json && !args.follow {
            return out.many(&lines, log_text);
        }
        for line in &lines {
            out.one(line, log_text)?;
        }
        if !args.follow {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_INTERVAL);
    }
}

fn log_text(line: &LogLine) -> String {
    let time = line.sent_at.as_deref().unwrap_or(&line.received_at);
    // One log line, one terminal line, whatever the node sent (`node logs -f` prints each
    // with `Output::one`, which keeps line feeds).
    let text = provisioner::store::text::shown(&line.text, &[]);
    format!("{time} {}: {text}", line.source)
}

/// The inventory's headline figures (`-o json` and the API have all of it): threads, memory,
/// each disk and NIC, in the units upstream's document uses.
fn hardware_text(in_band: &serde_json::Value) -> String {
    let number = |value: &serde_json::Value| value.as_u64().map(|n| n.to_string());
    let text = |value: &serde_json::Value| value.as_str().map(str::to_string);
    let mut lines = format!(
        "hardware (inBand, {})\n  CPU threads {}\n  memory {} bytes\n",
        text(&in_band["lastUpdated"]).unwrap_or_else(|| "-".to_string()),
        number(&in_band["cpu"]["totalThreads"]).unwrap_or_else(|| "-".to_string()),
        number(&in_band["memory"]["totalBytes"]).unwrap_or_else(|| "-".to_string()),
    );
    for disk in in_band["blockDevices"].as_array().into_iter().flatten() {
        lines.push_str(&format!(
            "  disk {} {} bytes {}\n",
            text(&disk["name"]).unwrap_or_default(),
            number(&disk["sizeBytes"]).unwrap_or_else(|| "-".to_string()),
            text(&disk["model"]).unwrap_or_default(),
        ));
    }
    for nic in in_band["networkInterfaces"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let port = &nic["ports"][0];
        lines.push_str(&format!(
            "  NIC {} {} {} Mbit/s\n",
            text(&nic["name"]).unwrap_or_default(),
            text(&port["mac"]).unwrap_or_default(),
            number(&port["speedMbps"]).unwrap_or_else(|| "-".to_string()),
        ));
    }
    lines
}

fn or_dash(value: Option<&str>) -> &str {
    value.filter(|value| !value.is_empty()).unwrap_or("-")
}

fn node_line(node: &Node) -> String {
    let progress = node
        .progress
        .as_ref()
        .map_or_else(|| "-".to_string(), ToString::to_string);
    format!(
        "{}  {}  {}  {}  {}  {}  {}",
        node.id,
        or_dash(node.serial.as_deref()),
        or_dash(node.uuid.as_deref()),
        or_dash(node.profile.as_deref()),
        node.state,
        progress,
        or_dash(node.failure.as_deref()),
    )
}

fn node_detail_text(detail: &NodeDetail) -> String {
    let node = &detail.node;
    let mut text = format!(
        "node {}\n  serial {}\n  UUID {}\n  MACs {}\n  IP {}\n  hostname {}\n  profile {}\n  state {}\n",
        node.id,
        or_dash(node.serial.as_deref()),
        or_dash(node.uuid.as_deref()),
        node.macs.join(", "),
        or_dash(node.ip.as_deref()),
        or_dash(node.hostname.as_deref()),
        or_dash(node.profile.as_deref()),
        node.state,
    );
    if let Some(failure) = &node.failure {
        text.push_str(&format!("  failure {failure}\n"));
    }
    if let Some(workflow) = &detail.workflow {
        text.push_str(&format!("workflow {} {}\n", workflow.id, workflow.state));
        let total = workflow.actions.len();
        for (index, action) in workflow.actions.iter().enumerate() {
            let duration = action
                .duration_ms
                .map_or_else(String::new, |ms| format!(" ({:.1}s)", ms as f64 / 1000.0));
            text.push_str(&format!(
                "  {}/{total} {}: {}{duration}\n",
                index + 1,
                action.name,
                action.state
            ));
        }
    }
    if let Some(in_band) = &detail.in_band {
        text.push_str(&hardware_text(in_band));
    }
    if !detail.credentials.is_empty() {
        text.push_str("credentials\n");
        for credential in &detail.credentials {
            let status = match (&credential.revoked_at, credential.active) {
                (Some(at), _) => format!("revoked {at}"),
                (None, true) => format!("active until {}", credential.not_after),
                (None, false) => format!("expired {}", credential.not_after),
            };
            text.push_str(&format!(
                "  {} sha256 {} issued {}: {status}\n",
                credential.kind, credential.fingerprint, credential.issued_at
            ));
        }
    }
    text.push_str("timeline\n");
    for event in &detail.events {
        text.push_str(&format!(
            "  {} {}: {}\n",
            event.at, event.kind, event.message
        ));
    }
    text.trim_end().to_string()
}

fn registered_text(registered: &Registered) -> String {
    let mut text = format!("registered {}", registration_line(&registered.registration));
    for warning in &registered.warnings {
        text.push_str(&format!("\nwarning: {warning}"));
    }
    text
}

fn registration_line(registration: &Registration) -> String {
    format!(
        "{}  serial {}  UUID {}  MAC {}  profile {}",
        registration.id,
        or_dash(registration.serial.as_deref()),
        or_dash(registration.uuid.as_deref()),
        or_dash(registration.mac.as_deref()),
        registration.profile,
    )
}

fn profile_line(profile: &Profile) -> String {
    let default = if profile.is_default {
        "  (default)"
    } else {
        ""
    };
    format!("{}  {}{default}", profile.name, profile.os_image)
}

fn profile_text(profile: &Profile) -> String {
    format!(
        "profile {}{}\n  kernel {}\n  initramfs {}\n  cmdline {}\n  template {}\n  OS image {}\n  sha256 {}",
        profile.name,
        if profile.is_default { " (default)" } else { "" },
        profile.kernel,
        profile.initramfs,
        or_dash(Some(&profile.cmdline)),
        profile.template_id,
        profile.os_image,
        or_dash(profile.os_image_sha256.as_deref()),
    )
}
