//! Per-step latencies and errors over all simulated nodes, and the report printed from them.

use std::collections::BTreeMap;
use std::time::Duration;

/// The steps of one node's boot, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    DhcpOffer,
    DhcpBootAck,
    Tftp,
    IpxeScript,
    Discovery,
    GetAction,
    ReportStatus,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::DhcpOffer => "dhcp offer",
            Step::DhcpBootAck => "dhcp 4011 ack",
            Step::Tftp => "tftp fetch",
            Step::IpxeScript => "ipxe script",
            Step::Discovery => "discovery",
            Step::GetAction => "GetAction",
            Step::ReportStatus => "ReportActionStatus",
        }
    }
}

/// What one simulated node did.
#[derive(Debug, Default)]
pub struct NodeOutcome {
    pub timings: Vec<(Step, Duration)>,
    pub error: Option<(Step, String)>,
    pub tftp_bytes: u64,
    pub reports_sent: u64,
    pub reports_acknowledged: u64,
    pub actions_completed: u64,
}

impl NodeOutcome {
    pub fn fail(&mut self, step: Step, error: anyhow::Error) {
        self.error = Some((step, format!("{error:#}")));
    }
}

/// Everything the run measured.
pub struct Summary {
    pub label: String,
    pub nodes: usize,
    pub wall: Duration,
    pub outcomes: Vec<NodeOutcome>,
}

impl Summary {
    fn by_step(&self) -> BTreeMap<Step, Vec<Duration>> {
        let mut steps: BTreeMap<Step, Vec<Duration>> = BTreeMap::new();
        for (step, took) in self.outcomes.iter().flat_map(|outcome| &outcome.timings) {
            steps.entry(*step).or_default().push(*took);
        }
        steps.values_mut().for_each(|durations| durations.sort());
        steps
    }

    fn errors(&self) -> Vec<&(Step, String)> {
        self.outcomes
            .iter()
            .filter_map(|outcome| outcome.error.as_ref())
            .collect()
    }

    fn total(&self, field: fn(&NodeOutcome) -> u64) -> u64 {
        self.outcomes.iter().map(field).sum()
    }

    /// The human-readable report.
    pub fn print(&self) {
        let errors = self.errors();
        let seconds = self.wall.as_secs_f64();
        println!(
            "== {}: {} nodes in {:.2} s, {} failed",
            self.label,
            self.nodes,
            seconds,
            errors.len()
        );
        println!(
            "{:<20} {:>7} {:>10} {:>10} {:>10}",
            "step", "count", "p50 ms", "p99 ms", "max ms"
        );
        for (step, durations) in self.by_step() {
            println!(
                "{:<20} {:>7} {:>10.1} {:>10.1} {:>10.1}",
                step.name(),
                durations.len(),
                millis(percentile(&durations, 50)),
                millis(percentile(&durations, 99)),
                millis(durations.last().copied().unwrap_or_default()),
            );
        }
        let tftp_bytes = self.total(|outcome| outcome.tftp_bytes);
        let exchanges = self.by_step().get(&Step::DhcpOffer).map_or(0, Vec::len);
        println!(
            "throughput: {:.1} DHCP exchanges/s, TFTP {:.1} MB/s ({} bytes)",
            exchanges as f64 / seconds,
            tftp_bytes as f64 / seconds / 1e6,
            tftp_bytes
        );
        let sent = self.total(|outcome| outcome.reports_sent);
        let acknowledged = self.total(|outcome| outcome.reports_acknowledged);
        if sent > 0 {
            println!(
                "status reports: {sent} sent, {acknowledged} acknowledged, {} lost; actions completed: {}",
                sent - acknowledged,
                self.total(|outcome| outcome.actions_completed)
            );
        }
        let mut shown = BTreeMap::new();
        for (step, message) in errors {
            *shown.entry((step.name(), message.as_str())).or_insert(0) += 1;
        }
        for ((step, message), count) in shown.iter().take(10) {
            println!("error x{count} at {step}: {message}");
        }
    }

    /// One JSON object for scripts (bench/pxe.sh compares runs with it).
    pub fn json(&self) -> serde_json::Value {
        let steps: serde_json::Map<String, serde_json::Value> = self
            .by_step()
            .into_iter()
            .map(|(step, durations)| {
                (
                    step.name().to_string(),
                    serde_json::json!({
                        "count": durations.len(),
                        "p50_ms": millis(percentile(&durations, 50)),
                        "p99_ms": millis(percentile(&durations, 99)),
                    }),
                )
            })
            .collect();
        let seconds = self.wall.as_secs_f64();
        let sent = self.total(|outcome| outcome.reports_sent);
        let acknowledged = self.total(|outcome| outcome.reports_acknowledged);
        serde_json::json!({
            "label": self.label,
            "nodes": self.nodes,
            "seconds": seconds,
            "failed": self.errors().len(),
            "steps": steps,
            "dhcp_per_s": self.by_step().get(&Step::DhcpOffer).map_or(0, Vec::len) as f64 / seconds,
            "tftp_mb_per_s": self.total(|outcome| outcome.tftp_bytes) as f64 / seconds / 1e6,
            "reports_sent": sent,
            "reports_lost": sent - acknowledged,
            "actions_completed": self.total(|outcome| outcome.actions_completed),
        })
    }
}

fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = (sorted.len() * percent).div_ceil(100).saturating_sub(1);
    sorted[index.min(sorted.len() - 1)]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 50), Duration::from_millis(50));
        assert_eq!(percentile(&sorted, 99), Duration::from_millis(99));
        assert_eq!(percentile(&sorted[..1], 99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }
}
