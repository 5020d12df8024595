//! Interfaces, carrier, addresses, routes, MTU and VLANs over rtnetlink.
//!
//! [`Links`] is the one place that changes the kernel's network configuration, so that a DHCP
//! lease and a static `ip=` configuration are applied the same way ([`Links::apply`]).
//! Nothing here prints: every failure is a [`LinkError`] that names the operation, the
//! interface and the kernel's reason, for the caller to log.

mod bond;
mod ipv6;
mod kind;
mod parse;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::route::{RouteMessage, RouteProtocol, RouteScope, RouteType};
use rtnetlink::{
    Handle, LinkUnspec, LinkVlan, MulticastGroup, RouteMessageBuilder, new_connection,
    new_multicast_connection,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use bond::BondOption;
pub use ipv6::Ipv6Address;
pub use kind::LinkKind;
pub use parse::{LinkInfo, VlanInfo, format_mac};

use crate::lease::Lease;

/// Linux errno values the code below treats as "already done" or "not there".
const EEXIST: i32 = libc::EEXIST;
const ENODEV: i32 = libc::ENODEV;
const ESRCH: i32 = libc::ESRCH;
const ENOENT: i32 = libc::ENOENT;
const EADDRNOTAVAIL: i32 = libc::EADDRNOTAVAIL;
/// What RTM_NEWLINK answers for a link type the kernel was built without.
const EOPNOTSUPP: i32 = libc::EOPNOTSUPP;
/// What some drivers answer to a MAC change while the interface is up.
const EBUSY: i32 = libc::EBUSY;

/// The base of the per-interface route metric: `100 + index`, so that with
/// `bootkit.net.all` every interface gets its own default route and none replaces another;
/// the lowest index (usually the first NIC) is preferred.
pub const ROUTE_METRIC_BASE: u32 = 100;

/// Smallest MTU an IPv4 interface can have (RFC 791; the kernel refuses less).
const MIN_IPV4_MTU: u32 = 68;

/// Longest interface name (IFNAMSIZ - 1).
const MAX_IFNAME_LEN: usize = 15;

/// How often [`Links::wait_for_carrier`] re-reads the link when no event arrives: events
/// wake it at once, this only bounds the cost of a missed one.
const CARRIER_RECHECK: Duration = Duration::from_millis(250);

/// A failed network configuration step.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The netlink route socket cannot be opened.
    #[error("cannot open a netlink route socket")]
    Connect(#[source] std::io::Error),
    /// Called outside a tokio runtime (rtnetlink needs one).
    #[error("Links::connect must be called inside a tokio runtime")]
    NoRuntime,
    /// A netlink request failed.
    #[error("{op}: {}", describe(.cause))]
    Netlink {
        /// What was being done (`set eth0 up`, ...).
        op: String,
        /// rtnetlink's error.
        cause: rtnetlink::Error,
    },
    /// No interface has this name.
    #[error("no interface named {0:?}")]
    NoSuchName(String),
    /// No interface has this index.
    #[error("no interface with index {0}")]
    NoSuchIndex(u32),
    /// A value to configure is not valid.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// What was given (`MTU`, `VLAN id`, ...).
        what: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The kernel lacks a feature the configuration needs.
    #[error("the kernel does not support {what}")]
    Unsupported {
        /// The feature (`VLAN`, ...).
        what: &'static str,
    },
    /// A per-interface kernel setting under /proc/sys cannot be written.
    #[error("cannot write {}", .path.display())]
    Sysctl {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An interface of the VLAN's name exists but is another VLAN or on another parent.
    #[error("{name:?} exists but is not VLAN {id} on interface index {parent}")]
    VlanConflict {
        /// The interface name.
        name: String,
        /// The VLAN id asked for.
        id: u16,
        /// The parent's index asked for.
        parent: u32,
    },
}

impl LinkError {
    /// The kernel's errno when the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            LinkError::Netlink { cause, .. } => errno_of(cause),
            _ => None,
        }
    }
}

fn errno_of(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) if msg.raw_code() != 0 => Some(msg.raw_code().abs()),
        _ => None,
    }
}

/// The kernel's reason as the OS words it ("File exists (os error 17)") rather than
/// rtnetlink's dump of the whole reply.
fn describe(err: &rtnetlink::Error) -> String {
    match errno_of(err) {
        Some(errno) => std::io::Error::from_raw_os_error(errno).to_string(),
        None => err.to_string(),
    }
}

fn netlink(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> LinkError {
    let op = op.into();
    move |cause| LinkError::Netlink { op, cause }
}

/// Treats the listed errnos as success: for idempotent adds (EEXIST) and removals of what
/// is already gone (ESRCH, EADDRNOTAVAIL...).
fn tolerate(
    result: Result<(), rtnetlink::Error>,
    ok_errnos: &[i32],
) -> Result<(), rtnetlink::Error> {
    match result {
        Err(e) if errno_of(&e).is_some_and(|n| ok_errnos.contains(&n)) => Ok(()),
        other => other,
    }
}

/// Stops the netlink connection task when the last [`Links`] clone goes.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A connection to the kernel's routing netlink, cheap to clone.
#[derive(Clone, Debug)]
pub struct Links {
    handle: Handle,
    sysfs_root: PathBuf,
    _task: Arc<AbortOnDrop>,
}

impl Links {
    /// Connects and spawns the netlink connection task on the current tokio runtime. The
    /// socket belongs to the network namespace of the calling thread.
    pub fn connect() -> Result<Links, LinkError> {
        Links::connect_with_sysfs("/sys")
    }

    /// As [`Links::connect`], reading interface kinds from `sysfs_root` instead of `/sys`
    /// (tests: a fake tree; note that a mounted sysfs shows the namespace it was mounted in).
    pub fn connect_with_sysfs(sysfs_root: impl Into<PathBuf>) -> Result<Links, LinkError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| LinkError::NoRuntime)?;
        let (conn, handle, _) = new_connection().map_err(LinkError::Connect)?;
        let task = runtime.spawn(conn);
        Ok(Links {
            handle,
            sysfs_root: sysfs_root.into(),
            _task: Arc::new(AbortOnDrop(task)),
        })
    }

    /// The sysfs tree used for [`LinkKind`] detection.
    pub fn sysfs_root(&self) -> &Path {
        &self.sysfs_root
    }

    /// Every interface, by index.
    pub async fn list(&self) -> Result<Vec<LinkInfo>, LinkError> {
        let messages: Vec<_> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(netlink("listing interfaces"))?;
        let mut links: Vec<_> = messages
            .iter()
            .map(|m| parse::link_info(m, &self.sysfs_root))
            .collect();
        links.sort_by_key(|l| l.index);
        Ok(links)
    }

    /// The interface with this index.
    pub async fn get(&self, index: u32) -> Result<LinkInfo, LinkError> {
        let mut replies = self.handle.link().get().match_index(index).execute();
        match replies.try_next().await {
            Ok(Some(msg)) => Ok(parse::link_info(&msg, &self.sysfs_root)),
            Ok(None) => Err(LinkError::NoSuchIndex(index)),
            Err(e) if errno_of(&e) == Some(ENODEV) => Err(LinkError::NoSuchIndex(index)),
            Err(e) => Err(netlink(format!("reading interface index {index}"))(e)),
        }
    }

    /// The interface with this name, if there is one.
    pub async fn find_by_name(&self, name: &str) -> Result<Option<LinkInfo>, LinkError> {
        // The kernel refuses a name longer than IFNAMSIZ with EINVAL; such a name cannot
        // exist, which is the honest answer.
        if name.is_empty() || name.len() > MAX_IFNAME_LEN {
            return Ok(None);
        }
        let mut replies = self.handle.link().get().match_name(name).execute();
        match replies.try_next().await {
            Ok(found) => Ok(found.map(|m| parse::link_info(&m, &self.sysfs_root))),
            Err(e) if errno_of(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(netlink(format!("looking up interface {name:?}"))(e)),
        }
    }

    /// The interface with this MAC (current or permanent). VLANs and bond ports share their
    /// parent's MAC, so a physical NIC wins over other kinds, then the lowest index.
    pub async fn find_by_mac(&self, mac: [u8; 6]) -> Result<Option<LinkInfo>, LinkError> {
        let mut matches: Vec<_> = self
            .list()
            .await?
            .into_iter()
            .filter(|l| l.mac == Some(mac) || l.permanent_mac == Some(mac))
            .collect();
        // Stable sort: within a kind, the index order of list() stays.
        matches.sort_by_key(|l| l.kind != LinkKind::PhysicalEthernet);
        Ok(matches.into_iter().next())
    }

    /// Sets the interface administratively up (idempotent).
    pub async fn set_up(&self, index: u32) -> Result<(), LinkError> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| self.index_error(index, "setting interface up", e))
    }

    /// Sets the interface's MTU.
    pub async fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), LinkError> {
        if mtu < MIN_IPV4_MTU {
            return Err(LinkError::Invalid {
                what: "MTU",
                why: format!("{mtu} is below the IPv4 minimum of {MIN_IPV4_MTU}"),
            });
        }
        let msg = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| self.index_error(index, &format!("setting MTU {mtu}"), e))
    }

    /// Sets the interface's MAC (dracut's `<macaddr>` of `ip=`). Drivers that refuse a change
    /// while up (EBUSY) get it while down, and are left down: the caller brings it up.
    pub async fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<(), LinkError> {
        let op = format!("setting MAC {}", format_mac(&mac));
        let set = |handle: &Handle| {
            let msg = LinkUnspec::new_with_index(index)
                .address(mac.to_vec())
                .build();
            handle.link().set(msg).execute()
        };
        match set(&self.handle).await {
            Err(e) if errno_of(&e) == Some(EBUSY) => {
                self.set_down(index).await?;
                set(&self.handle)
                    .await
                    .map_err(|e| self.index_error(index, &op, e))
            }
            other => other.map_err(|e| self.index_error(index, &op, e)),
        }
    }

    /// Sets the interface administratively down (idempotent).
    pub async fn set_down(&self, index: u32) -> Result<(), LinkError> {
        let msg = LinkUnspec::new_with_index(index).down().build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| self.index_error(index, "setting interface down", e))
    }

    /// Renames the interface (dracut's `ifname=`). The kernel renames only interfaces that
    /// are down, so it is taken down first and left down.
    pub async fn rename(&self, index: u32, name: &str) -> Result<(), LinkError> {
        validate_name(name)?;
        self.set_down(index).await?;
        let msg = LinkUnspec::new_with_index(index).name(name).build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| self.index_error(index, &format!("renaming to {name:?}"), e))
    }

    /// What dracut's ifup does before an interface is used: the MAC and MTU that `ip=`
    /// asks for (when given), then the link up.
    pub async fn prepare(
        &self,
        index: u32,
        mac: Option<[u8; 6]>,
        mtu: Option<u32>,
    ) -> Result<LinkInfo, LinkError> {
        let current = self.get(index).await?;
        if let Some(mac) = mac
            && current.mac != Some(mac)
        {
            self.set_mac(index, mac).await?;
        }
        if let Some(mtu) = mtu
            && current.mtu != mtu
        {
            self.set_mtu(index, mtu).await?;
        }
        self.set_up(index).await?;
        self.get(index).await
    }

    fn index_error(&self, index: u32, what: &str, e: rtnetlink::Error) -> LinkError {
        if errno_of(&e) == Some(ENODEV) {
            LinkError::NoSuchIndex(index)
        } else {
            netlink(format!("{what} on interface index {index}"))(e)
        }
    }

    /// Waits until the interface reports carrier (IFF_LOWER_UP), at most `timeout`.
    /// Returns whether it did. Bring the interface up first: a NIC that is down has no
    /// carrier.
    pub async fn wait_for_carrier(&self, index: u32, timeout: Duration) -> Result<bool, LinkError> {
        let deadline = Instant::now() + timeout;
        // Subscribe before the first check so that a change between the two is not lost.
        // Without the subscription (it can fail only on exotic kernels) this degrades to
        // polling.
        let (_events_task, mut events) = match new_multicast_connection(&[MulticastGroup::Link]) {
            Ok((conn, _handle, events)) => (Some(AbortOnDrop(tokio::spawn(conn))), Some(events)),
            Err(_) => (None, None),
        };
        loop {
            if self.get(index).await?.carrier {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let nap = (deadline - now).min(CARRIER_RECHECK);
            match events.as_mut() {
                // Any link event (or the nap's end) is a reason to re-read the link; the
                // events themselves are not parsed, the fresh read is the truth.
                Some(stream) => {
                    if let Ok(None) = tokio::time::timeout(nap, stream.next()).await {
                        events = None;
                    }
                }
                None => tokio::time::sleep(nap).await,
            }
        }
    }

    async fn index_of(&self, name: &str) -> Result<u32, LinkError> {
        match self.find_by_name(name).await? {
            Some(link) => Ok(link.index),
            None => Err(LinkError::NoSuchName(name.to_string())),
        }
    }

    /// The route metric for default routes through this interface.
    pub fn metric_for(index: u32) -> u32 {
        ROUTE_METRIC_BASE.saturating_add(index)
    }

    /// Configures the lease's interface: up, MTU (when given), the address (replacing any
    /// other global IPv4 address on it, which can only be an older one of ours), and the
    /// default route via the first router with metric [`Links::metric_for`]. Applying the same
    /// lease again changes nothing and is not an error. DNS, hostname and NTP are the
    /// caller's (see [`crate::resolv`]).
    pub async fn apply(&self, lease: &Lease) -> Result<(), LinkError> {
        validate_prefix(lease.prefix_len)?;
        let index = self.index_of(&lease.interface).await?;
        self.set_up(index).await?;
        if let Some(mtu) = lease.mtu {
            self.set_mtu(index, u32::from(mtu)).await?;
        }
        self.remove_other_addresses(index, lease).await?;
        self.add_address(index, lease).await?;
        if let Some(&router) = lease.routers.first() {
            self.add_default_route(index, lease, router).await?;
        }
        Ok(())
    }

    /// Undoes [`Links::apply`] when the lease is lost: the default route and the address.
    /// What is already gone (or an interface that vanished) is not an error. The MTU and
    /// the link state stay.
    pub async fn remove(&self, lease: &Lease) -> Result<(), LinkError> {
        validate_prefix(lease.prefix_len)?;
        let Some(link) = self.find_by_name(&lease.interface).await? else {
            return Ok(());
        };
        let index = link.index;
        let gone = [ESRCH, ENOENT, ENODEV, EADDRNOTAVAIL];
        if let Some(&router) = lease.routers.first() {
            let metric = Links::metric_for(index);
            let default = route_for_delete(Ipv4Addr::UNSPECIFIED, 0, Some(router), index, metric);
            tolerate(self.handle.route().del(default).execute().await, &gone).map_err(netlink(
                format!("removing the default route via {router} on {}", link.name),
            ))?;
            if !in_subnet(router, lease.address, lease.prefix_len) {
                let host = route_for_delete(router, 32, None, index, metric);
                tolerate(self.handle.route().del(host).execute().await, &gone).map_err(netlink(
                    format!("removing the host route to {router} on {}", link.name),
                ))?;
            }
        }
        let addr = address_message(index, lease.address, lease.prefix_len);
        tolerate(self.handle.address().del(addr).execute().await, &gone).map_err(netlink(format!(
            "removing {}/{} from {}",
            lease.address, lease.prefix_len, link.name
        )))
    }

    async fn add_address(&self, index: u32, lease: &Lease) -> Result<(), LinkError> {
        let mut request = self
            .handle
            .address()
            .add(index, IpAddr::V4(lease.address), lease.prefix_len)
            .replace();
        if let Some(peer) = lease.peer {
            // What `ip addr add <address> peer <peer>` sends: IFA_LOCAL is ours, IFA_ADDRESS
            // the other end.
            for attribute in &mut request.message_mut().attributes {
                if let AddressAttribute::Address(address) = attribute {
                    *address = IpAddr::V4(peer);
                }
            }
        }
        // The subnet route gets the same metric as the default route, so that two
        // interfaces on one subnet (bootkit.net.all) prefer the same one for both.
        request
            .message_mut()
            .attributes
            .push(AddressAttribute::RoutePriority(Links::metric_for(index)));
        tolerate(request.execute().await, &[EEXIST]).map_err(netlink(format!(
            "adding {}/{} to {}",
            lease.address, lease.prefix_len, lease.interface
        )))
    }

    /// Every address of interface `index`, both families (`what` names the listing in errors).
    async fn address_messages(
        &self,
        index: u32,
        what: &str,
    ) -> Result<Vec<AddressMessage>, LinkError> {
        self.handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(netlink(what.to_string()))
    }

    /// Removes the global IPv4 addresses on `index` other than the lease's. Removing them
    /// before adding the new one matters: with the kernel's default
    /// promote_secondaries=0, deleting an old primary address deletes the secondaries of
    /// its subnet too, which the new address would be.
    async fn remove_other_addresses(&self, index: u32, lease: &Lease) -> Result<(), LinkError> {
        let current = self
            .address_messages(index, &format!("listing addresses of {}", lease.interface))
            .await?;
        for msg in current {
            let Some(addr) = ipv4_of(&msg) else { continue };
            let same = addr == lease.address && msg.header.prefix_len == lease.prefix_len;
            // Link-local (169.254/16) is not ours to remove; neither is anything of
            // narrower scope than global.
            if same || addr.is_link_local() || msg.header.scope != AddressScope::Universe {
                continue;
            }
            let (prefix_len, interface) = (msg.header.prefix_len, &lease.interface);
            tolerate(
                self.handle.address().del(msg).execute().await,
                &[EADDRNOTAVAIL],
            )
            .map_err(netlink(format!(
                "removing old address {addr}/{prefix_len} from {interface}"
            )))?;
        }
        Ok(())
    }

    async fn add_default_route(
        &self,
        index: u32,
        lease: &Lease,
        router: Ipv4Addr,
    ) -> Result<(), LinkError> {
        let metric = Links::metric_for(index);
        let protocol = route_protocol(lease);
        // A router outside the leased subnet (a /32 lease, some clouds) is unreachable until
        // the kernel is told it is on this link.
        if !in_subnet(router, lease.address, lease.prefix_len) {
            let host = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(router, 32)
                .output_interface(index)
                .scope(RouteScope::Link)
                .protocol(protocol)
                .priority(metric)
                .build();
            self.replace_route(
                host,
                &format!(
                    "adding the host route to router {router} on {}",
                    lease.interface
                ),
            )
            .await?;
        }
        let default = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(router)
            .output_interface(index)
            .protocol(protocol)
            .priority(metric)
            .build();
        self.replace_route(
            default,
            &format!(
                "adding the default route via {router} on {} (metric {metric})",
                lease.interface
            ),
        )
        .await
    }

    /// Adds or replaces a route (NLM_F_REPLACE: the same destination and metric is updated,
    /// not duplicated, so re-applying is harmless).
    async fn replace_route(&self, route: RouteMessage, op: &str) -> Result<(), LinkError> {
        let result = self.handle.route().add(route).replace().execute().await;
        tolerate(result, &[EEXIST]).map_err(netlink(op))
    }

    /// Adds a route to `dest/prefix_len` (dracut's `rd.route=`), via `gateway`, through
    /// `interface` (an index), or both; at least one is needed. Host bits in `dest` are
    /// cleared, as `rd.route=10.1.2.3/16:...` can only mean 10.1.0.0/16. Idempotent.
    pub async fn add_route(
        &self,
        dest: Ipv4Addr,
        prefix_len: u8,
        gateway: Option<Ipv4Addr>,
        interface: Option<u32>,
    ) -> Result<(), LinkError> {
        validate_prefix(prefix_len)?;
        if gateway.is_none() && interface.is_none() {
            return Err(LinkError::Invalid {
                what: "route",
                why: format!("{dest}/{prefix_len} has neither a gateway nor an interface"),
            });
        }
        let dest = network(dest, prefix_len);
        let mut builder =
            RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(dest, prefix_len);
        if let Some(gw) = gateway {
            builder = builder.gateway(gw);
        } else {
            // Without a gateway the destination is directly on the link.
            builder = builder.scope(RouteScope::Link);
        }
        if let Some(index) = interface {
            builder = builder.output_interface(index);
        }
        let via = gateway.map(|g| format!(" via {g}")).unwrap_or_default();
        let dev = interface
            .map(|i| format!(" on interface index {i}"))
            .unwrap_or_default();
        self.replace_route(
            builder.build(),
            &format!("adding the route to {dest}/{prefix_len}{via}{dev}"),
        )
        .await
    }

    /// Creates the 802.1Q VLAN `name` with id `vlan_id` on `parent_index`, sets it and its
    /// parent up (the VLAN has no carrier while its parent is down), and returns its index.
    /// When `name` already is that VLAN, it is reused.
    pub async fn add_vlan(
        &self,
        parent_index: u32,
        vlan_id: u16,
        name: &str,
    ) -> Result<u32, LinkError> {
        validate_vlan(vlan_id, name)?;
        // The kernel refuses to create a VLAN that is up on a parent that is down (ENETDOWN).
        self.set_up(parent_index).await?;
        let msg = LinkVlan::new(name, parent_index, vlan_id).up().build();
        let created = self.handle.link().add(msg).execute().await;
        if let Err(e) = created {
            return match errno_of(&e) {
                Some(EEXIST) => self.reuse_vlan(parent_index, vlan_id, name).await,
                Some(ENODEV) => Err(LinkError::NoSuchIndex(parent_index)),
                Some(EOPNOTSUPP) => Err(LinkError::Unsupported {
                    what: "802.1Q VLANs (CONFIG_VLAN_8021Q, module 8021q)",
                }),
                _ => Err(netlink(format!(
                    "creating VLAN {vlan_id} {name:?} on interface index {parent_index}"
                ))(e)),
            };
        }
        let index = self.index_of(name).await?;
        self.set_up(index).await?;
        Ok(index)
    }

    async fn reuse_vlan(&self, parent: u32, id: u16, name: &str) -> Result<u32, LinkError> {
        let existing = self.find_by_name(name).await?;
        match existing {
            Some(link) if link.vlan == Some(VlanInfo { id, parent }) => {
                self.set_up(parent).await?;
                self.set_up(link.index).await?;
                Ok(link.index)
            }
            _ => Err(LinkError::VlanConflict {
                name: name.to_string(),
                id,
                parent,
            }),
        }
    }
}

/// RTPROT_DHCP for leases from a server (so `ip route` shows `proto dhcp`), RTPROT_STATIC
/// for static configuration.
fn route_protocol(lease: &Lease) -> RouteProtocol {
    if lease.server.is_some() {
        RouteProtocol::Dhcp
    } else {
        RouteProtocol::Static
    }
}

/// A route message that matches ours for deletion: the kernel treats an unspecified
/// protocol and type, and scope NOWHERE, as wildcards (what `ip route del` sends).
fn route_for_delete(
    dest: Ipv4Addr,
    prefix_len: u8,
    gateway: Option<Ipv4Addr>,
    index: u32,
    metric: u32,
) -> RouteMessage {
    let mut builder = RouteMessageBuilder::<Ipv4Addr>::new()
        .output_interface(index)
        .priority(metric);
    if prefix_len > 0 {
        builder = builder.destination_prefix(dest, prefix_len);
    }
    if let Some(gw) = gateway {
        builder = builder.gateway(gw);
    }
    let mut msg = builder.build();
    msg.header.protocol = RouteProtocol::Unspec;
    msg.header.kind = RouteType::Unspec;
    msg.header.scope = RouteScope::NoWhere;
    msg
}

fn address_message(index: u32, address: Ipv4Addr, prefix_len: u8) -> AddressMessage {
    rtnetlink::AddressMessageBuilder::<Ipv4Addr>::new()
        .index(index)
        .address(address, prefix_len)
        .build()
}

fn ipv4_of(msg: &AddressMessage) -> Option<Ipv4Addr> {
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point
    // links, so prefer LOCAL.
    let find = |want_local: bool| {
        msg.attributes.iter().find_map(|a| match (a, want_local) {
            (AddressAttribute::Local(IpAddr::V4(ip)), true) => Some(*ip),
            (AddressAttribute::Address(IpAddr::V4(ip)), false) => Some(*ip),
            _ => None,
        })
    };
    find(true).or_else(|| find(false))
}

fn validate_prefix(prefix_len: u8) -> Result<(), LinkError> {
    if prefix_len > 32 {
        return Err(LinkError::Invalid {
            what: "prefix length",
            why: format!("/{prefix_len} is longer than 32 bits"),
        });
    }
    Ok(())
}

fn validate_vlan(vlan_id: u16, name: &str) -> Result<(), LinkError> {
    // 0 means "priority tag only" and 4095 is reserved (IEEE 802.1Q).
    if !(1..=4094).contains(&vlan_id) {
        return Err(LinkError::Invalid {
            what: "VLAN id",
            why: format!("{vlan_id} is not in 1..=4094"),
        });
    }
    validate_name(name)
}

fn validate_name(name: &str) -> Result<(), LinkError> {
    let bad_char = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control());
    if name.is_empty()
        || name.len() > MAX_IFNAME_LEN
        || bad_char.is_some()
        || name == "."
        || name == ".."
    {
        return Err(LinkError::Invalid {
            what: "interface name",
            why: format!(
                "{name:?} must be 1 to {MAX_IFNAME_LEN} bytes without '/', ':' or whitespace"
            ),
        });
    }
    Ok(())
}

fn mask(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

fn network(addr: Ipv4Addr, prefix_len: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(addr) & mask(prefix_len))
}

fn in_subnet(ip: Ipv4Addr, address: Ipv4Addr, prefix_len: u8) -> bool {
    network(ip, prefix_len) == network(address, prefix_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let a = Ipv4Addr::new(10, 1, 2, 3);
        assert_eq!(network(a, 16), Ipv4Addr::new(10, 1, 0, 0));
        assert_eq!(network(a, 0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(network(a, 32), a);
        assert!(in_subnet(Ipv4Addr::new(10, 1, 255, 1), a, 16));
        assert!(!in_subnet(Ipv4Addr::new(10, 2, 0, 1), a, 16));
        assert!(!in_subnet(Ipv4Addr::new(10, 1, 2, 1), a, 32));
    }

    #[test]
    fn vlan_validation() {
        assert!(validate_vlan(42, "eth0.42").is_ok());
        assert!(validate_vlan(4094, "v").is_ok());
        for id in [0, 4095, 5000] {
            let err = validate_vlan(id, "eth0.x").unwrap_err().to_string();
            assert!(err.contains("VLAN id"), "{err}");
        }
        for name in [
            "",
            "a-very-long-interface-name",
            "a/b",
            "a b",
            "eth0:1",
            "..",
        ] {
            let err = validate_vlan(42, name).unwrap_err().to_string();
            assert!(err.contains("interface name"), "{err}");
        }
    }

    #[test]
    fn prefix_validation() {
        assert!(validate_prefix(32).is_ok());
        assert!(validate_prefix(33).unwrap_err().to_string().contains("/33"));
    }

    #[test]
    fn metric_is_per_interface() {
        assert_eq!(Links::metric_for(2), 102);
        assert_ne!(Links::metric_for(2), Links::metric_for(3));
    }

    #[test]
    fn route_protocol_follows_origin() {
        let mut lease = Lease::new("eth0", Ipv4Addr::new(10, 0, 0, 2), 24);
        assert_eq!(route_protocol(&lease), RouteProtocol::Static);
        lease.server = Some(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(route_protocol(&lease), RouteProtocol::Dhcp);
    }
}
