//! What an operator must see once the machines are done, read through the admin API.

use std::fmt::Write as _;
use std::path::Path;

use super::NodeReport;
use super::admin::AdminApi;
use crate::error::{Error, Result};

/// Timeline events every provisioned node must have: found, finished, and its next network
/// boot answered with its local disk (no install loop).
const REQUIRED_EVENTS: [&str; 3] = ["discovered", "provisioned", "local-boot"];

/// The bootkit's service whose syslog lines must be stored under the node: the worker that
/// ran the workflow.
const WORKER_LOG_SOURCE: &str = "tink-worker";

/// The node of `report` is provisioned with the right profile and identity, has the
/// timeline events and stored logs.
pub(super) fn check_node(api: &AdminApi<'_>, report: &NodeReport, stack_dir: &Path) -> Result<()> {
    let machine = &report.machine;
    let detail = api.node(machine.mac)?;
    let node = &detail.node;
    let mut problems = Vec::new();
    let mut expect = |what: &str, shown: Option<&str>, wanted: &str| {
        if shown != Some(wanted) {
            problems.push(format!("{what} is {shown:?}, not {wanted}"));
        }
    };
    expect("state", Some(&node.state), "provisioned");
    expect(
        "profile",
        node.profile.as_deref(),
        machine.expected_profile(),
    );
    expect("serial", node.serial.as_deref(), machine.serial);
    expect("UUID", node.uuid.as_deref(), machine.uuid);
    if !node.macs.iter().any(|mac| mac == machine.mac) {
        problems.push(format!("MACs {:?} lack {}", node.macs, machine.mac));
    }
    for wanted in REQUIRED_EVENTS {
        if !detail.has_event(wanted) {
            let kinds: Vec<&str> = detail
                .timeline
                .iter()
                .map(|event| event.kind.as_str())
                .collect();
            problems.push(format!("no `{wanted}` event in its timeline {kinds:?}"));
        }
    }
    let logs = api.logs(machine.mac)?;
    if !logs.iter().any(|line| line.source == WORKER_LOG_SOURCE) {
        let sources: Vec<&str> = logs.iter().map(|line| line.source.as_str()).collect();
        problems.push(format!(
            "none of its {} stored log lines is from {WORKER_LOG_SOURCE} (sources {sources:?}): the bootkit's syslog did not reach the provisioner",
            logs.len()
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    let mut message = format!("node {}: the admin API shows it wrong:\n", machine.label());
    for problem in problems {
        let _ = writeln!(message, "  - {problem}");
    }
    let _ = write!(
        message,
        "  console log: {}\n  stack logs: {}",
        report.console_log.display(),
        stack_dir.display()
    );
    Err(Error::Other(message))
}
