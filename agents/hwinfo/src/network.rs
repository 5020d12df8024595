//! Network interfaces from /sys/class/net, hardware only (loopback, bridges, veths and other
//! interfaces under /sys/devices/virtual are left out).

use std::path::Path;

use crate::sysfs;

/// One hardware network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInterface {
    /// The kernel's interface name (`eth0`, `enp1s0`).
    pub name: String,
    /// Lower-case colon-separated hardware address.
    pub mac: Option<String>,
    /// Link speed in Mbit/s; absent while the link is down (the kernel refuses to read it).
    pub speed_mbps: Option<u32>,
    /// The interface's MTU in bytes (`mtu`).
    pub mtu: Option<u32>,
    /// The kernel's RFC 2863 operational state (`operstate`: `up`, `down`, `dormant`, ...);
    /// absent when the driver does not track it (`unknown`).
    pub link_status: Option<String>,
}

/// The hardware network interfaces under `sys`, in the order the kernel created them (ifindex),
/// so the first one is the boot NIC's usual place.
pub fn network_interfaces(sys: &Path) -> Vec<NetworkInterface> {
    let mut interfaces: Vec<(u64, NetworkInterface)> = sysfs::entries(&sys.join("class/net"))
        .into_iter()
        .filter(|(_, path)| !sysfs::is_virtual(path))
        .map(|(name, path)| {
            let index = sysfs::number(&path.join("ifindex")).unwrap_or(u64::MAX);
            let interface = NetworkInterface {
                mac: sysfs::text(&path.join("address")).map(|mac| mac.to_ascii_lowercase()),
                // `speed` is -1 when unknown, which does not parse as u32.
                speed_mbps: sysfs::text(&path.join("speed")).and_then(|speed| speed.parse().ok()),
                mtu: sysfs::number(&path.join("mtu")).and_then(|mtu| u32::try_from(mtu).ok()),
                link_status: sysfs::text(&path.join("operstate"))
                    .filter(|state| state != "unknown"),
                name,
            };
            (index, interface)
        })
        .collect();
    interfaces.sort_by_key(|(index, _)| *index);
    interfaces
        .into_iter()
        .map(|(_, interface)| interface)
        .collect()
}
