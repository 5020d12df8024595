//! The boot service's UDP sockets (DHCP, TFTP, syslog): receive buffers sized for a rack's
//! burst, and the datagrams the kernel dropped on them counted for /metrics.
//!
//! The drops are the kernel's own per-socket counter (`sk_drops`), read from the `drops`
//! column of `/proc/net/udp` and `/proc/net/udp6` by the socket's inode when /metrics is
//! scraped. Why not `SO_RXQ_OVFL`: that counter arrives as ancillary data on the *next*
//! datagram received, so a receiver that is stalled (the very case worth seeing) reports
//! nothing, and every receive path (three crates) would have to move to `recvmsg`. The
//! /proc column is the same counter, current at any moment, and needs no change to the
//! receive paths.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::fd::AsFd;
use std::sync::Mutex;

/// What the boot service asks of the kernel for each UDP socket: a PXE rack powering on at
/// once sends hundreds of DHCP, TFTP and syslog datagrams within milliseconds, more than the
/// default buffer (about 200 KiB) holds while the receiver is busy.
pub const RECEIVE_BUFFER: usize = 8 * 1024 * 1024;

/// The UDP sockets whose drops /metrics reports, by the name of their socket label.
#[derive(Debug, Default)]
pub struct UdpDrops {
    sockets: Mutex<Vec<(&'static str, u64)>>,
}

impl UdpDrops {
    /// Counts `socket`'s drops under `name` (`dhcp`, `tftp` or `syslog`; several sockets may
    /// share a name, their drops add up).
    pub fn watch(&self, name: &'static str, socket: impl AsFd) -> io::Result<()> {
        let inode = rustix::fs::fstat(socket)?.st_ino;
        self.lock().push((name, inode));
        Ok(())
    }

    /// Each watched name with its sockets' drops now (0 for a socket the kernel no longer
    /// lists); empty when nothing is watched.
    pub fn totals(&self) -> io::Result<BTreeMap<&'static str, u64>> {
        let sockets = self.lock().clone();
        let mut totals = BTreeMap::new();
        if sockets.is_empty() {
            return Ok(totals);
        }
        let mut drops = HashMap::new();
        for table in ["/proc/net/udp", "/proc/net/udp6"] {
            match std::fs::read_to_string(table) {
                Ok(text) => drops.extend(drops_by_inode(&text)),
                // No IPv6 in this kernel: no udp6 table.
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        for (name, inode) in sockets {
            *totals.entry(name).or_default() += drops.get(&inode).copied().unwrap_or(0);
        }
        Ok(totals)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(&'static str, u64)>> {
        // The list is only pushed to and copied: a panic elsewhere cannot leave it half made.
        self.sockets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Inode → drops from a `/proc/net/udp` or `/proc/net/udp6` table (header line skipped;
/// the inode is the 10th field, drops the last).
fn drops_by_inode(table: &str) -> impl Iterator<Item = (u64, u64)> + '_ {
    table.lines().skip(1).filter_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let inode = fields.get(9)?.parse().ok()?;
        let drops = fields.last()?.parse().ok()?;
        Some((inode, drops))
    })
}

/// Asks for a receive buffer of `bytes` for `socket` (named `name` in the log) and logs what
/// the kernel granted. `SO_RCVBUFFORCE` passes `net.core.rmem_max` when the provisioner has
/// CAP_NET_ADMIN (it runs as root for DHCP's port 67); without it, `SO_RCVBUF` is capped
/// at rmem_max, and the log says how to raise it. Returns the granted size.
pub fn size_receive_buffer(name: &str, socket: impl AsFd, bytes: usize) -> io::Result<usize> {
    let socket = socket.as_fd();
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(socket, bytes).is_err() {
        rustix::net::sockopt::set_socket_recv_buffer_size(socket, bytes)?;
    }
    // Linux reports twice the size asked for (it counts its bookkeeping too).
    let granted = rustix::net::sockopt::socket_recv_buffer_size(socket)? / 2;
    if granted < bytes {
        tracing::warn!(
            socket = name,
            asked = bytes,
            granted,
            "the kernel granted a smaller UDP receive buffer than asked: bursts from a rack \
             may be dropped (see provisioner_udp_drops_total); raise net.core.rmem_max or run \
             with CAP_NET_ADMIN"
        );
    } else {
        tracing::info!(socket = name, bytes = granted, "UDP receive buffer sized");
    }
    Ok(granted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drops_column_is_read_by_inode_from_both_table_layouts() {
        // Lines as Linux 6.x writes them (udp, then udp6).
        let udp = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
          1: 00000000:0202 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 40213 2 0000000000000000 17\n";
        let udp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
          5: 00000000000000000000000000000000:0045 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 777 2 0000000000000000 0\n";
        let found: HashMap<u64, u64> = drops_by_inode(udp).chain(drops_by_inode(udp6)).collect();
        assert_eq!(found, HashMap::from([(40213, 17), (777, 0)]));
    }
}
