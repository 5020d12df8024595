//! `provisioner node ...` and `provisioner profile ...`: registration, status, timeline, logs
//! and re-arming of nodes; the OS profiles they boot and install.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use provisioner::store::{
    LogLine, Node, NodeDetail, Profile, ProfileSpec, Registered, Registration, RegistrationSpec,
    is_url,
};

use super::output::{Output, read, table};
use super::remote::{Backend, is_not_found};
use provisioner::hints::did_you_mean;

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Every node: seen ones, then registered ones not seen yet.
    #[command(after_help = "Examples:
  provisioner node list
  provisioner node list -o wide
  provisioner node list -o json | jq '.[] | select(.state == \"failed\") | .id'")]
    List {
        /// `table` (the default), `wide` (UUID, MACs, IP, last change too), `json` or `yaml`.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: ListFormat,
    },
    /// A node's identity, profile, state, workflow actions and timeline.
    #[command(after_help = "Example:\n  provisioner node show HUX0010")]
    Show {
        /// The node's id, a MAC, its serial or its UUID.
        key: String,
    },
    /// A node's logs (syslog and action output).
    #[command(
        after_help = "Examples:\n  provisioner node logs HUX0010\n  provisioner node logs HUX0010 --follow"
    )]
    Logs(LogsArgs),
    /// Register a node (by serial, UUID and/or MAC) for a profile.
    #[command(
        after_help = "Example:\n  provisioner node register --serial HUX0010 --profile edge --hostname rack1-n10 --meta site=lab"
    )]
    Register(RegisterArgs),
    /// Register nodes from OEP's CSV: columns Serial, UUID, OSProfile, Site, Secure,
    /// RemoteUser, Metadata (any case), plus `meta.KEY` columns for metadata; all rows or none.
    #[command(after_help = "Example:
  provisioner node import --file regs.csv
with regs.csv:
  Serial,UUID,OSProfile,Site,meta.rack
  HUX0010,,edge,lab,r1")]
    Import {
        /// The CSV file.
        #[arg(long, value_name = "regs.csv")]
        file: PathBuf,
    },
    /// Registrations as stored (with their ids, for `unregister`).
    #[command(after_help = "Example:\n  provisioner node registrations")]
    Registrations,
    /// Delete a registration.
    #[command(after_help = "Example:\n  provisioner node unregister 3f2a...")]
    Unregister {
        /// The registration's id.
        id: String,
    },
    /// Re-arm a provisioned or failed node: its next boot installs again (its credentials
    /// are revoked, so it enrolls again).
    #[command(after_help = "Example:\n  provisioner node reprovision HUX0010")]
    Reprovision {
        /// The node's id, a MAC, its serial or its UUID.
        key: String,
    },
    /// Revoke every credential of a node (its client certificate and client secret): it
    /// is refused everywhere until it enrolls again.
    #[command(after_help = "Example:\n  provisioner node revoke HUX0010")]
    Revoke {
        /// The node's id, a MAC, its serial or its UUID.
        key: String,
    },
    /// Let a node that lost its credential (reinstalled, RAM cleared) enroll once more:
    /// revokes its credentials; the next onboarding wins, later ones are refused again.
    #[command(after_help = "Example:\n  provisioner node approve-enrollment HUX0010")]
    ApproveEnrollment {
        /// The node's id, a MAC, its serial or its UUID.
        key: String,
    },
}

/// How `node list` prints.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// A header and aligned columns.
    Table,
    /// The table with UUID, MACs, IP and the last change.
    Wide,
    /// The API's JSON.
    Json,
    /// The same as YAML.
    Yaml,
}

#[derive(Args)]
pub struct LogsArgs {
    /// The node's id, a MAC, its serial or its UUID.
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
    /// The node's SMBIOS serial number (`dmidecode -s system-serial-number`).
    #[arg(long)]
    serial: Option<String>,
    /// The node's SMBIOS system UUID.
    #[arg(long)]
    uuid: Option<String>,
    /// A MAC address of the node's boot NIC.
    #[arg(long)]
    mac: Option<String>,
    /// The OS profile it installs (`provisioner profile list`).
    #[arg(long)]
    profile: String,
    /// The hostname it gets.
    #[arg(long)]
    hostname: Option<String>,
    /// Metadata, repeatable: --meta site=lab --meta dest_disk=/dev/sda
    #[arg(long = "meta", value_name = "K=V")]
    metadata: Vec<String>,
}

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// Create a profile: the bootkit to boot, the workflow to run and the OS image to write.
    #[command(after_help = "Example:
  provisioner profile create --name edge --kernel /srv/bootkit/vmlinuz \\
    --initramfs /srv/bootkit/initramfs.cpio.gz --template emt-install \\
    --os-image https://images.lab/emt.raw.gz --default")]
    Create(CreateProfileArgs),
    /// Every profile; `(default)` marks the one unregistered nodes get.
    #[command(after_help = "Example:\n  provisioner profile list")]
    List,
    /// One profile's files, template and image.
    #[command(after_help = "Example:\n  provisioner profile show edge")]
    Show {
        /// The profile's name.
        name: String,
    },
    /// Delete a profile no registration uses.
    #[command(after_help = "Example:\n  provisioner profile delete edge")]
    Delete {
        /// The profile's name.
        name: String,
    },
    /// Set the profile of unregistered nodes, or --none to refuse them.
    #[command(
        after_help = "Examples:\n  provisioner profile default edge\n  provisioner profile default --none"
    )]
    Default {
        /// The profile unregistered nodes get.
        #[arg(required_unless_present = "none")]
        name: Option<String>,
        /// Refuse unregistered nodes.
        #[arg(long, conflicts_with = "name")]
        none: bool,
    },
}

#[derive(Args)]
pub struct CreateProfileArgs {
    /// The profile's name, as registrations name it.
    #[arg(long)]
    name: String,
    /// The bootkit kernel: a file under the artifact roots (with --db, a relative PATH is
    /// taken from the current directory; with --server, from the server's artifacts
    /// directory), or an http(s) URL.
    #[arg(long, value_name = "PATH")]
    kernel: String,
    /// The bootkit initramfs, a PATH or URL as for --kernel.
    #[arg(long, value_name = "PATH")]
    initramfs: String,
    /// The workflow template, by id or name.
    #[arg(long)]
    template: String,
    /// The OS image: an http(s) URL, or a PATH as for --kernel.
    #[arg(long, value_name = "URL|PATH")]
    os_image: String,
    /// The OS image's SHA-256, checked by the installer.
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

pub fn node(backend: &Backend, out: &Output, command: NodeCommand) -> anyhow::Result<()> {
    match command {
        NodeCommand::List { output } => list_nodes(&backend.list_nodes()?, out, output),
        NodeCommand::Show { key } => {
            let detail = hinted(backend, &key, backend.node_detail(&key))?;
            out.one(&detail, node_detail_text)
        }
        NodeCommand::Logs(args) => logs(backend, out, &args),
        NodeCommand::Register(args) => {
            let registered = backend.register(&registration_spec(args)?)?;
            out.one(&registered, registered_text)
        }
        NodeCommand::Import { file } => {
            let registered = backend
                .import_registrations(&read(&file)?)
                .with_context(|| format!("importing {}; nothing was stored", file.display()))?;
            out.many(&registered, registered_text)
        }
        NodeCommand::Registrations => {
            let registrations = backend.list_registrations()?;
            if out.json {
                return out.many(&registrations, registration_line);
            }
            print!("{}", registrations_table(&registrations));
            Ok(())
        }
        NodeCommand::Unregister { id } => {
            backend.delete_registration(&id)?;
            out.done(&format!("registration {id} deleted"))
        }
        NodeCommand::Reprovision { key } => {
            let node = hinted(backend, &key, backend.reprovision(&key))?;
            out.one(&node, |node| {
                format!(
                    "node {} re-armed ({}): its next boot installs again",
                    node.id, node.state
                )
            })
        }
        NodeCommand::Revoke { key } => {
            let revocation = hinted(backend, &key, backend.revoke_node(&key))?;
            out.one(&revocation, |revocation| {
                format!(
                    "node {}: {} active credential(s) revoked; it is refused until it enrolls again \
                     (`provisioner node approve-enrollment {}` lets it)",
                    revocation.node_id, revocation.revoked, revocation.node_id
                )
            })
        }
        NodeCommand::ApproveEnrollment { key } => {
            let revocation = hinted(backend, &key, backend.approve_enrollment(&key))?;
            out.one(&revocation, |revocation| {
                format!(
                    "node {}: {} active credential(s) revoked; its next onboarding enrolls it",
                    revocation.node_id, revocation.revoked
                )
            })
        }
    }
}

/// A "node not found" error said as "no node KEY; did you mean X?", X the nearest id,
/// serial, UUID or MAC of a known node; other errors as they are.
fn hinted<T>(backend: &Backend, key: &str, result: anyhow::Result<T>) -> anyhow::Result<T> {
    let error = match result {
        Ok(value) => return Ok(value),
        Err(error) if is_not_found(&error, "node") => error,
        Err(error) => return Err(error),
    };
    // Without the list the plain error still says what failed.
    let Ok(nodes) = backend.list_nodes() else {
        return Err(error);
    };
    let known = nodes.iter().flat_map(|node| {
        [
            Some(node.id.as_str()),
            node.serial.as_deref(),
            node.uuid.as_deref(),
        ]
        .into_iter()
        .flatten()
        .chain(node.macs.iter().map(String::as_str))
    });
    let hint = did_you_mean(key, known);
    Err(anyhow::anyhow!(
        "no node {}{hint} (`provisioner node list` shows every node's id, serial and UUID)",
        provisioner::store::text::shown(key, &[])
    ))
}

fn list_nodes(nodes: &[Node], out: &Output, format: ListFormat) -> anyhow::Result<()> {
    match (format, out.json) {
        (ListFormat::Json, _) | (_, true) => println!("{}", serde_json::to_string_pretty(nodes)?),
        (ListFormat::Yaml, _) => print!("{}", serde_yaml_ng::to_string(nodes)?),
        (ListFormat::Table, _) => print!("{}", nodes_table(nodes, false)),
        (ListFormat::Wide, _) => print!("{}", nodes_table(nodes, true)),
    }
    Ok(())
}

fn or_dash_owned(value: Option<&str>) -> String {
    or_dash(value).to_string()
}

/// `node list`'s table: a header and aligned columns, `wide` adding UUID, MACs, IP and the
/// last change.
fn nodes_table(nodes: &[Node], wide: bool) -> String {
    let mut header = vec!["ID", "SERIAL", "HOSTNAME", "PROFILE", "STATE", "PROGRESS"];
    if wide {
        header.extend(["UUID", "MACS", "IP", "UPDATED"]);
    }
    header.push("FAILURE");
    let rows = nodes
        .iter()
        .map(|node| {
            let mut row = vec![
                node.id.clone(),
                or_dash_owned(node.serial.as_deref()),
                or_dash_owned(node.hostname.as_deref()),
                or_dash_owned(node.profile.as_deref()),
                node.state.to_string(),
                node.progress
                    .as_ref()
                    .map_or_else(|| "-".to_string(), ToString::to_string),
            ];
            if wide {
                row.extend([
                    or_dash_owned(node.uuid.as_deref()),
                    or_dash_owned(Some(&node.macs.join(","))),
                    or_dash_owned(node.ip.as_deref()),
                    node.updated_at.clone(),
                ]);
            }
            row.push(or_dash_owned(node.failure.as_deref()));
            row
        })
        .collect();
    table(&header, rows)
}

fn registrations_table(registrations: &[Registration]) -> String {
    let header = ["ID", "SERIAL", "UUID", "MAC", "PROFILE", "HOSTNAME"];
    let rows = registrations
        .iter()
        .map(|registration| {
            vec![
                registration.id.clone(),
                or_dash_owned(registration.serial.as_deref()),
                or_dash_owned(registration.uuid.as_deref()),
                or_dash_owned(registration.mac.as_deref()),
                registration.profile.clone(),
                or_dash_owned(registration.hostname.as_deref()),
            ]
        })
        .collect();
    table(&header, rows)
}

pub fn profile(backend: &Backend, out: &Output, command: ProfileCommand) -> anyhow::Result<()> {
    match command {
        ProfileCommand::Create(args) => {
            let file = |location: String| profile_file(backend, location);
            let spec = ProfileSpec {
                name: args.name,
                kernel: file(args.kernel)?,
                initramfs: file(args.initramfs)?,
                cmdline: args.cmdline,
                template: args.template,
                os_image: file(args.os_image)?,
                os_image_sha256: args.os_image_sha256,
                default: args.default,
            };
            out.one(&backend.create_profile(&spec)?, profile_text)
        }
        ProfileCommand::List => out.many(&backend.list_profiles()?, profile_line),
        ProfileCommand::Show { name } => out.one(&backend.get_profile(&name)?, profile_text),
        ProfileCommand::Delete { name } => {
            backend.delete_profile(&name)?;
            out.done(&format!("profile {name} deleted"))
        }
        ProfileCommand::Default { name, none: _ } => {
            backend.set_default_profile(name.as_deref())?;
            match name {
                Some(name) => out.done(&format!(
                    "profile {name} is now the default: unregistered nodes install it"
                )),
                None => out.done("no default profile: unregistered nodes are refused"),
            }
        }
    }
}

/// A profile's file as stored: on this host's database a relative path is made absolute
/// against the current directory, as the shell that completed it meant, so that a `serve`
/// started elsewhere finds the same file. URLs stay as given, and so does a relative path
/// sent to a server: this host's directory means nothing there, and the server resolves it
/// in its artifacts directory.
fn profile_file(backend: &Backend, location: String) -> anyhow::Result<String> {
    let relative_here = matches!(backend, Backend::Local(_))
        && !location.trim().is_empty()
        && !is_url(location.trim())
        && std::path::Path::new(&location).is_relative();
    if !relative_here {
        return Ok(location);
    }
    let absolute = std::path::absolute(&location)
        .with_context(|| format!("making {location} an absolute path failed"))?;
    absolute.into_os_string().into_string().map_err(|path| {
        anyhow::anyhow!(
            "{} is not UTF-8: a profile's path is stored as text; rename the file",
            std::path::Path::new(&path).display()
        )
    })
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

fn logs(backend: &Backend, out: &Output, args: &LogsArgs) -> anyhow::Result<()> {
    let node = hinted(backend, &args.key, backend.get_node(&args.key))?;
    let mut after = args.since_seq;
    loop {
        let lines = backend.node_logs(&node.id, after, args.lines)?;
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
