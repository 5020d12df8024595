//! DHCPv4 client (RFC 2131), in two layers:
//!
//! - [`machine`]: a pure state machine (INIT → SELECTING → REQUESTING → BOUND → RENEWING →
//!   REBINDING). It never touches a socket or a clock: the driver feeds it packets and
//!   timeouts with the current time, and it answers with [`Action`]s (packets to send, leases
//!   acquired, renewed or lost) and the time it next wants to be woken. That is what lets the
//!   unit tests run whole leases, renewals and expiries with a fake clock.
//! - [`client`]: the tokio driver: a UDP socket bound to port 68 on one interface, real time,
//!   and [`LeaseEvent`]s for the caller, who applies the leases (addresses and routes are the
//!   job of [`crate::link`]; the client never configures the interface itself).
//!
//! How init runs it, one task per interface:
//!
//! ```no_run
//! # async fn example() {
//! use bootkit_net::dhcp::{self, Config, LeaseEvent};
//! let (tx, mut rx) = tokio::sync::mpsc::channel(16);
//! let config = Config::new("eth0", [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
//! tokio::spawn(dhcp::run(config, tx));
//! while let Some(event) = rx.recv().await {
//!     match event {
//!         LeaseEvent::Acquired(lease) | LeaseEvent::Renewed(lease) => { /* apply */ }
//!         LeaseEvent::Lost { lease, .. } => { /* remove lease.address */ }
//!         LeaseEvent::State { .. } | LeaseEvent::Error { .. } => { /* log the line */ }
//!     }
//! }
//! # }
//! ```

pub mod client;
pub mod machine;
mod packet;
mod socket;

#[cfg(test)]
mod tests;

pub use client::{DhcpError, LeaseEvent, acquire_once, run};
pub use machine::{Action, Config, Destination, LossReason, Machine, State, Timing};
