//! Forwarding log lines to a log host as RFC 5424 syslog (`syslog_host=`, `syslog_port=`), the
//! way Tinkerbell's smee and EMT's fluent-bit collect them.
//!
//! - [`format_rfc5424`] formats one line: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME - - - MSG`.
//! - [`Forwarder::new`] gives a [`Forwarder`], which PID 1 pushes every line into without ever
//!   waiting (a bounded buffer; overflow is dropped and counted), and a [`ForwarderTask`] that
//!   sends the buffered and later lines once the network is up, over UDP (RFC 5426), TCP
//!   with octet counting (RFC 6587), or TLS with the same framing (RFC 5425, port 6514, the
//!   host's certificate verified against a CA bundle; the node's client certificate presented
//!   once its files exist, see [`ClientIdentity`]), reconnecting with backoff. Lines pushed
//!   before the network was up are sent after it; a count of dropped lines is sent before them.
//!
//! A host name (rather than an address) goes through getaddrinfo, which in a static glibc
//! binary cannot load NSS modules and so resolves names only partly; give an address.
//!
//! Nothing here prints: the task reports [`Event`]s for the caller to log.

mod format;
mod forwarder;

pub use format::{
    Facility, MAX_APP_NAME_LEN, MAX_HOSTNAME_LEN, NILVALUE, Rfc3339, Severity, format_rfc5424,
    header_field, priority,
};
pub use forwarder::{
    ClientIdentity, DEFAULT_CA_FILE, DEFAULT_CAPACITY, DEFAULT_CLIENT_CERT_FILE,
    DEFAULT_CLIENT_KEY_FILE, DEFAULT_PORT, DEFAULT_TLS_PORT, Event, FORWARDER_APP_NAME,
    ForwardError, Forwarder, ForwarderConfig, ForwarderTask, MAX_CAPACITY, MAX_MSG_LEN,
    RECONNECT_BACKOFF, Transport, write_octet_counted,
};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
