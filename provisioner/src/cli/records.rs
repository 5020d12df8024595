//! `provisioner template|hardware|workflow`: the Tinkerbell records, one command each.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use provisioner::store::{Hardware, HardwareSpec, TemplateRecord, Workflow};

use super::output::{Output, read};
use super::remote::Backend;

#[derive(Subcommand)]
pub enum TemplateCommand {
    /// Store a Tinkerbell workflow template (YAML).
    #[command(after_help = "Example:\n  provisioner template create --file emt-install.yaml")]
    Create {
        /// The template's YAML file.
        #[arg(long, value_name = "T.yaml")]
        file: PathBuf,
        /// Overrides the template's own name.
        #[arg(long)]
        name: Option<String>,
    },
    /// One template, its YAML included.
    #[command(after_help = "Example:\n  provisioner template get emt-install")]
    Get {
        /// The template's id or name.
        id: String,
    },
    /// Every template: id, name, when it was stored.
    #[command(after_help = "Example:\n  provisioner template list")]
    List,
    /// Delete a template.
    #[command(after_help = "Example:\n  provisioner template delete emt-install")]
    Delete {
        /// The template's id or name.
        id: String,
    },
}

#[derive(Subcommand)]
pub enum HardwareCommand {
    /// Store a machine (Tinkerbell Hardware) from JSON.
    #[command(after_help = "Example:\n  provisioner hardware create --file node1.json")]
    Create {
        /// JSON: {"id": "...", "macs": ["52:54:00:.."], "ips": [".."], "attributes": {..}}
        #[arg(long, value_name = "H.json")]
        file: PathBuf,
    },
    /// By id or MAC.
    #[command(after_help = "Example:\n  provisioner hardware get 52:54:00:12:34:56")]
    Get {
        /// The hardware's id or one of its MACs.
        id: String,
    },
    /// Every machine.
    #[command(after_help = "Example:\n  provisioner hardware list")]
    List,
    /// Delete a machine.
    #[command(after_help = "Example:\n  provisioner hardware delete node1")]
    Delete {
        /// The hardware's id or one of its MACs.
        id: String,
    },
}

#[derive(Subcommand)]
pub enum WorkflowCommand {
    /// Run a template on hardware.
    #[command(
        after_help = "Example:\n  provisioner workflow create --template emt-install --hardware '{\"device_1\": \"52:54:00:12:34:56\"}'"
    )]
    Create {
        /// The template's id.
        #[arg(long)]
        template: String,
        /// The hardware map as JSON, e.g. '{"device_1": "52:54:00:12:34:56"}'.
        #[arg(long, default_value = "{}")]
        hardware: String,
    },
    /// One workflow with its actions' states.
    #[command(after_help = "Example:\n  provisioner workflow get 3f2a...")]
    Get {
        /// The workflow's id.
        id: String,
    },
    /// Every workflow.
    #[command(after_help = "Example:\n  provisioner workflow list")]
    List,
    /// Delete a workflow.
    #[command(after_help = "Example:\n  provisioner workflow delete 3f2a...")]
    Delete {
        /// The workflow's id.
        id: String,
    },
}

pub fn template(backend: &Backend, out: &Output, command: TemplateCommand) -> anyhow::Result<()> {
    match command {
        TemplateCommand::Create { file, name } => {
            let created = backend.create_template(&read(&file)?, name.as_deref())?;
            out.one(&created, template_text)
        }
        TemplateCommand::Get { id } => out.one(&backend.get_template(&id)?, template_text),
        TemplateCommand::List => out.many(&backend.list_templates()?, |t| {
            format!("{}  {}  {}", t.id, t.name, t.created_at)
        }),
        TemplateCommand::Delete { id } => {
            backend.delete_template(&id)?;
            out.done(&format!("template {id} deleted"))
        }
    }
}

pub fn hardware(backend: &Backend, out: &Output, command: HardwareCommand) -> anyhow::Result<()> {
    match command {
        HardwareCommand::Create { file } => {
            let spec = HardwareSpec::parse(&read(&file)?)?;
            out.one(&backend.create_hardware(&spec)?, hardware_text)
        }
        HardwareCommand::Get { id } => out.one(&backend.get_hardware(&id)?, hardware_text),
        HardwareCommand::List => out.many(&backend.list_hardware()?, |h| {
            format!("{}  {}  {}", h.id, h.macs.join(","), h.ips.join(","))
        }),
        HardwareCommand::Delete { id } => {
            backend.delete_hardware(&id)?;
            out.done(&format!("hardware {id} deleted"))
        }
    }
}

pub fn workflow(backend: &Backend, out: &Output, command: WorkflowCommand) -> anyhow::Result<()> {
    match command {
        WorkflowCommand::Create { template, hardware } => {
            let map: BTreeMap<String, String> = serde_json::from_str(&hardware).context(
                "--hardware: expected a JSON object of strings, e.g. '{\"device_1\": \"52:54:00:12:34:56\"}'",
            )?;
            out.one(&backend.create_workflow(&template, &map)?, workflow_text)
        }
        WorkflowCommand::Get { id } => out.one(&backend.get_workflow(&id)?, workflow_text),
        WorkflowCommand::List => out.many(&backend.list_workflows()?, |w| {
            format!(
                "{}  {}  template {}  {}",
                w.id, w.state, w.template_id, w.created_at
            )
        }),
        WorkflowCommand::Delete { id } => {
            backend.delete_workflow(&id)?;
            out.done(&format!("workflow {id} deleted"))
        }
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
