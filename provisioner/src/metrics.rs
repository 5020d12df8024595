//! Prometheus metrics: nodes and workflows by state, action durations, and the boot service's
//! DHCP/TFTP/HTTP/syslog request counts.
//!
//! Rendered by hand in the text exposition format: a few dozen lines of formatting, where a
//! metrics crate would add a registry this service has no other use for.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::boot::{HttpCounters, SyslogSinkCounters};
use crate::state::State;
use crate::store::{NodeState, Store, StoreError};

/// Shared by every listener of `serve`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// The DHCP server's counters.
    pub dhcp: Arc<bootkit_dhcp::Counters>,
    /// The TFTP server's counters.
    pub tftp: Arc<bootkit_tftp::Counters>,
    /// The syslog receiver's counters.
    pub syslog: Arc<bootkit_syslog_receiver::Counters>,
    /// What became of received syslog lines: stored under a node, or why not.
    pub syslog_sink: Arc<SyslogSinkCounters>,
    /// Node-facing HTTP requests.
    pub http: Arc<HttpCounters>,
    /// Requests refused by the per-source rate limits of boot scripts and onboarding (DHCP's
    /// are in [`bootkit_dhcp::Counters::rate_limited`]).
    pub rate_limited: Arc<crate::limits::RateLimitCounters>,
    /// `serve --allow-unauthenticated-workers`: set once at start, shown as a gauge.
    pub unauthenticated_workers_allowed: AtomicBool,
    /// The kernel's drops on the DHCP, TFTP and syslog UDP sockets.
    pub udp_drops: crate::udp_drops::UdpDrops,
}

const WORKFLOW_STATES: [State; 5] = [
    State::Pending,
    State::Running,
    State::Success,
    State::Failed,
    State::Timeout,
];

/// Upper bounds (seconds) of the action duration buckets: from a quick `wipefs` to a
/// multi-gigabyte image streamed over a slow link.
const DURATION_BUCKETS: [f64; 9] = [1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0];

impl Metrics {
    /// Every metric in Prometheus' text format; the fleet's numbers are read from `store` now.
    pub fn render(&self, store: &Store) -> Result<String, StoreError> {
        let mut out = Exposition::default();
        self.render_fleet(store, &mut out)?;
        self.render_counters(&mut out);
        self.render_udp_drops(&mut out);
        out.family(
            "provisioner_unauthenticated_workers_allowed",
            "gauge",
            "1 when serve --allow-unauthenticated-workers lets workers without a node certificate act for any worker id.",
        );
        out.sample(
            "provisioner_unauthenticated_workers_allowed",
            &[],
            u8::from(self.unauthenticated_workers_allowed.load(Ordering::Relaxed)),
        );
        Ok(out.text)
    }

    fn render_fleet(&self, store: &Store, out: &mut Exposition) -> Result<(), StoreError> {
        let mut nodes: BTreeMap<NodeState, u64> = NodeState::ALL.map(|state| (state, 0)).into();
        for node in store.list_nodes()? {
            *nodes.entry(node.state).or_default() += 1;
        }
        out.family("provisioner_nodes", "gauge", "Nodes by lifecycle state.");
        for (state, count) in nodes {
            out.sample("provisioner_nodes", &[("state", state.as_str())], count);
        }

        let workflows = store.list_workflows()?;
        let mut by_state: BTreeMap<&str, u64> =
            WORKFLOW_STATES.map(|state| (state.as_str(), 0)).into();
        let mut durations: BTreeMap<String, Histogram> = BTreeMap::new();
        for workflow in &workflows {
            *by_state.entry(workflow.state.as_str()).or_default() += 1;
            for action in &workflow.actions {
                if let Some(ms) = action.duration_ms.filter(|_| action.state.is_final()) {
                    durations
                        .entry(action.name.clone())
                        .or_default()
                        .observe(ms as f64 / 1000.0);
                }
            }
        }
        out.family("provisioner_workflows", "gauge", "Workflows by state.");
        for (state, count) in by_state {
            out.sample("provisioner_workflows", &[("state", state)], count);
        }
        out.family(
            "provisioner_action_duration_seconds",
            "histogram",
            "How long finished workflow actions ran, by action name.",
        );
        for (action, histogram) in &durations {
            histogram.render(out, "provisioner_action_duration_seconds", action);
        }
        Ok(())
    }

    /// The kernel's per-socket drop counters; a failed read of /proc is logged and leaves
    /// the family out rather than failing the whole scrape.
    fn render_udp_drops(&self, out: &mut Exposition) {
        let totals = match self.udp_drops.totals() {
            Ok(totals) => totals,
            Err(error) => {
                tracing::warn!(%error, "reading the UDP drop counters from /proc/net/udp failed");
                return;
            }
        };
        if totals.is_empty() {
            return;
        }
        let name = "provisioner_udp_drops_total";
        out.family(
            name,
            "counter",
            "Datagrams the kernel dropped on a boot service UDP socket (receive buffer full), by socket.",
        );
        for (socket, drops) in totals {
            out.sample(name, &[("socket", socket)], drops);
        }
    }

    fn render_counters(&self, out: &mut Exposition) {
        let dhcp = &self.dhcp;
        let tftp = &self.tftp;
        let http = &self.http;
        let counters: &[(&str, &str, &AtomicU64)] = &[
            (
                "provisioner_dhcp_received_total",
                "DHCP packets received.",
                &dhcp.received,
            ),
            (
                "provisioner_dhcp_offers_total",
                "DHCP offers sent.",
                &dhcp.offers,
            ),
            ("provisioner_dhcp_acks_total", "DHCP acks sent.", &dhcp.acks),
            ("provisioner_dhcp_naks_total", "DHCP naks sent.", &dhcp.naks),
            (
                "provisioner_dhcp_ignored_total",
                "DHCP packets not for this server or refused nodes.",
                &dhcp.ignored,
            ),
            (
                "provisioner_dhcp_errors_total",
                "DHCP packets that could not be parsed or answered.",
                &dhcp.errors,
            ),
            (
                "provisioner_tftp_requests_total",
                "TFTP read and write requests.",
                &tftp.requests,
            ),
            (
                "provisioner_tftp_completed_total",
                "TFTP transfers completed.",
                &tftp.completed,
            ),
            (
                "provisioner_tftp_refused_total",
                "TFTP requests answered with an error.",
                &tftp.refused,
            ),
            (
                "provisioner_tftp_failed_total",
                "TFTP transfers given up.",
                &tftp.failed,
            ),
            (
                "provisioner_tftp_sent_bytes_total",
                "File bytes acknowledged by TFTP clients.",
                &tftp.bytes_sent,
            ),
            (
                "provisioner_tftp_aborted_total",
                "TFTP transfers the client ended (UEFI's size probe).",
                &tftp.aborted,
            ),
            (
                "provisioner_tftp_retransmitted_total",
                "TFTP packets sent again after a timeout.",
                &tftp.retransmitted,
            ),
            (
                "provisioner_syslog_messages_total",
                "Syslog messages received.",
                &self.syslog.messages,
            ),
            (
                "provisioner_syslog_malformed_total",
                "Syslog messages that could not be parsed.",
                &self.syslog.malformed,
            ),
            (
                "provisioner_syslog_truncated_total",
                "Syslog frames cut at the size limit.",
                &self.syslog.truncated,
            ),
            (
                "provisioner_syslog_rejected_connections_total",
                "Syslog TCP and TLS connections refused at the connection limit.",
                &self.syslog.rejected_connections,
            ),
            (
                "provisioner_syslog_tls_failed_handshakes_total",
                "Syslog TLS connections whose handshake failed (e.g. a certificate the node CA did not sign).",
                &self.syslog.failed_handshakes,
            ),
            (
                "provisioner_syslog_authenticated_total",
                "Syslog lines attributed by a node certificate; the others went by address.",
                &self.syslog_sink.authenticated,
            ),
            (
                "provisioner_syslog_stored_total",
                "Syslog lines stored under their node.",
                &self.syslog_sink.stored,
            ),
            (
                "provisioner_syslog_dropped_total",
                "Syslog lines dropped because the store fell behind.",
                &self.syslog_sink.dropped,
            ),
            (
                "provisioner_syslog_unknown_sender_total",
                "Syslog lines from addresses of no known node yet (held for the node, then dropped).",
                &self.syslog_sink.unknown_sender,
            ),
            (
                "provisioner_syslog_store_failures_total",
                "Syslog lines lost because the store failed.",
                &self.syslog_sink.store_failures,
            ),
            (
                "provisioner_http_scripts_total",
                "iPXE scripts served to nodes.",
                &http.scripts,
            ),
            (
                "provisioner_http_artifacts_total",
                "Artifact downloads started by nodes.",
                &http.artifacts,
            ),
            (
                "provisioner_http_artifact_bytes_total",
                "Artifact bytes sent to nodes.",
                &http.artifact_bytes,
            ),
            (
                "provisioner_http_metadata_total",
                "Metadata requests from nodes.",
                &http.metadata,
            ),
            (
                "provisioner_http_not_found_total",
                "Node-facing requests for unknown paths.",
                &http.not_found,
            ),
        ];
        for (name, help, counter) in counters {
            out.family(name, "counter", help);
            out.sample(name, &[], counter.load(Ordering::Relaxed));
        }
        let limited = "provisioner_rate_limited_total";
        out.family(
            limited,
            "counter",
            "Requests refused by a per-source rate limit, by endpoint.",
        );
        for (endpoint, counter) in [
            ("dhcp", &dhcp.rate_limited),
            ("boot_script", &self.rate_limited.boot_script),
            ("onboarding", &self.rate_limited.onboarding),
        ] {
            out.sample(
                limited,
                &[("endpoint", endpoint)],
                counter.load(Ordering::Relaxed),
            );
        }
    }
}

/// Cumulative buckets of one action's durations.
#[derive(Default)]
struct Histogram {
    buckets: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, bucket) in DURATION_BUCKETS.iter().zip(&mut self.buckets) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn render(&self, out: &mut Exposition, name: &str, action: &str) {
        let bucket = format!("{name}_bucket");
        for (bound, count) in DURATION_BUCKETS.iter().zip(self.buckets) {
            out.sample(
                &bucket,
                &[("action", action), ("le", &bound.to_string())],
                count,
            );
        }
        out.sample(&bucket, &[("action", action), ("le", "+Inf")], self.count);
        out.sample(&format!("{name}_sum"), &[("action", action)], self.sum);
        out.sample(&format!("{name}_count"), &[("action", action)], self.count);
    }
}

/// The text being rendered.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(key, value)| format!("{key}=\"{}\"", escape_label(value)))
                .collect();
            let _ = write!(self.text, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// Label values may hold any text (action names come from users' templates).
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_from_templates_cannot_break_the_exposition() {
        let mut out = Exposition::default();
        out.sample("m", &[("action", "say \"hi\"\\\nbye")], 1);
        assert_eq!(out.text, "m{action=\"say \\\"hi\\\"\\\\\\nbye\"} 1\n");
    }
}
