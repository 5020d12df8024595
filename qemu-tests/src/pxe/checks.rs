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

/// What a refused call without (or with a bad) node certificate leaves in the agents' output:
/// tonic's code name and the provisioner's words (grpc.rs). None may appear: the provisioner
/// runs without `--allow-unauthenticated-workers`, so every call the workflow needed carried
/// the node's credential.
const UNAUTHENTICATED_SIGNS: [&str; 4] = [
    "Unauthenticated",
    "UNAUTHENTICATED",
    "no client certificate",
    "is not an active credential",
];

/// The node of `report` is provisioned with the right profile and identity, has the
/// timeline events and stored logs, holds an active node certificate, and none of its calls
/// was refused as unauthenticated.
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
    let certificates = detail
        .credentials
        .iter()
        .filter(|credential| credential.kind == "certificate" && credential.active)
        .count();
    if certificates == 0 {
        problems.push(format!(
            "the provisioner records no active node certificate for node {}: it did not enroll",
            node.id
        ));
    }
    let logs = api.logs(machine.mac)?;
    let console = std::fs::read_to_string(&report.console_log).unwrap_or_default();
    for sign in UNAUTHENTICATED_SIGNS {
        if let Some(line) = console.lines().find(|line| line.contains(sign)) {
            problems.push(format!(
                "a call went unauthenticated (its console shows {sign:?}): {line}"
            ));
        }
        if let Some(line) = logs.iter().find(|line| line.text.contains(sign)) {
            problems.push(format!(
                "a call went unauthenticated (a stored {} line shows {sign:?}): {}",
                line.source, line.text
            ));
        }
    }
    // The receiver may mark how a line arrived after the program's name
    // ("tink-worker (unauthenticated, udp)"): the program is the first word.
    let from_worker = |source: &str| source.split_whitespace().next() == Some(WORKER_LOG_SOURCE);
    // The worker runs after enrollment, so its lines came over TLS with the node's
    // certificate: filed under the bare program name, no "(unauthenticated, ...)" mark.
    if let Some(line) = logs
        .iter()
        .find(|line| from_worker(&line.source) && line.source != WORKER_LOG_SOURCE)
    {
        problems.push(format!(
            "a {WORKER_LOG_SOURCE} line was not attributed by the node's certificate (source {:?}): {}",
            line.source, line.text
        ));
    }
    if !logs.iter().any(|line| from_worker(&line.source)) {
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
