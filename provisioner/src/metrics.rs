//! Prometheus metrics: nodes by state, DHCP/TFTP/HTTP/syslog request counts, action durations.
//! PLACEHOLDER: the struct is the contract (the boot service increments, the admin listener
//! renders); rendering is being written.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// Shared by every listener of `serve`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub dhcp: Arc<bootkit_dhcp::Counters>,
    pub tftp: Arc<bootkit_tftp::Counters>,
    pub syslog: Arc<bootkit_syslog_receiver::Counters>,
    pub http: HttpCounters,
}

/// Node-facing HTTP requests, by what they asked for.
#[derive(Debug, Default)]
pub struct HttpCounters {
    pub scripts: AtomicU64,
    pub artifacts: AtomicU64,
    pub artifact_bytes: AtomicU64,
    pub metadata: AtomicU64,
    pub not_found: AtomicU64,
}
