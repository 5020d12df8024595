//! The init's network policy, free of I/O: which interfaces are configured, which lease wins,
//! and when the network is online.
//!
//! - [`choose`]: the interfaces a configuration names, the ones DHCP runs on by default, and
//!   the [`Lease`](crate::lease::Lease) a static `ip=`/`ipam=` stands for.
//! - [`policy`]: the state machine. The driver (the init's network thread, which owns the
//!   sockets and rtnetlink) tells it what happened (a static address applied, a DHCP client
//!   started, a lease applied or lost) and it reports [`OnlineEvent`]s to a callback: which
//!   interface is configured, which DHCP clients to stop because another interface has the
//!   lease (the first lease wins unless `bootkit.net.all=1`), when the network is online,
//!   when a lease is lost. Like [`crate::nbd`], nothing here prints: the caller turns the
//!   events into log lines and targets.

pub mod choose;
pub mod policy;
#[cfg(test)]
mod tests;

pub use policy::{AddressSource, OnlineEvent, Policy};
