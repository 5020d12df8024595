//! The network-online state machine: what the init does with static addresses and DHCP
//! leases, decided without touching an interface.
//!
//! The rules:
//! - Explicit `ip=`/`ipam=` configurations come first. When there are none, or every one of
//!   them failed and none asked for DHCP, DHCP runs on the interfaces the selector allows
//!   ([`Policy::falls_back_to_dhcp`]).
//! - DHCP runs on every chosen interface at once. The first lease applied wins: the clients
//!   on the other interfaces are stopped, and a lease that still arrives from one of them is
//!   not applied ([`Policy::should_apply`]). `bootkit.net.all=1` keeps every lease.
//! - The network is online with the first address, static or leased, once per boot: a lost
//!   lease removes its address but does not take the network offline (the winner's client
//!   goes on and gets a lease again).

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use crate::dhcp::LossReason;
use crate::lease::Lease;

/// Where an interface's address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressSource {
    /// A lease from the interface's DHCP client.
    Dhcp,
    /// A static configuration from the command-line key named (`ip` or `ipam`).
    Static {
        /// The command-line key the address came from, without `=`.
        key: &'static str,
    },
}

/// What the driver is to do or report, in the order it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnlineEvent {
    /// `lease.interface` has an address now that it did not have before.
    Configured {
        /// The address and what came with it.
        lease: Lease,
        /// Static or DHCP.
        source: AddressSource,
    },
    /// An address was applied (a first lease, a renewal or a static one): its DNS servers,
    /// domain and search list are the ones to use now.
    Resolver {
        /// The address applied, whose resolver settings to write.
        lease: Lease,
    },
    /// Stop the DHCP client on `interface`: `winner` has the lease.
    StopClient {
        /// The interface whose client is to stop.
        interface: String,
        /// The interface that holds the lease.
        winner: String,
    },
    /// The first address is up: the network is online. Reported once per boot.
    Online {
        /// The first address (host name, NTP servers and the log forwarder's name come
        /// from it).
        lease: Lease,
    },
    /// A lease ended: its address is to be removed from its interface.
    LeaseLost {
        /// The lease that ended.
        lease: Lease,
        /// Why the client gave it up.
        reason: LossReason,
    },
    /// An IPv6 address (static or SLAAC's) is up on `interface`.
    Ipv6Configured {
        /// The interface.
        interface: String,
        /// The address.
        address: Ipv6Addr,
        /// Its prefix length.
        prefix_len: u8,
    },
    /// The first address is an IPv6 one: the network is online. Reported once per boot,
    /// like [`OnlineEvent::Online`], which it stands for when no IPv4 address came first.
    OnlineIpv6 {
        /// The interface with the address.
        interface: String,
        /// The host name its `ip=` gives, if any.
        hostname: Option<String>,
    },
    /// No interface to configure and none configured: the network stays down.
    StaysDown,
}

/// The policy's state; see the module documentation for its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    keep_all_leases: bool,
    /// Interfaces whose DHCP client runs.
    clients: BTreeSet<String>,
    /// Interfaces whose lease is applied, in the order they got it.
    holders: Vec<String>,
    /// Explicit configurations seen: all of them, the failed ones, and those asking for DHCP.
    explicit: usize,
    explicit_failed: usize,
    explicit_dhcp: usize,
    online: bool,
}

impl Policy {
    /// `keep_all_leases`: `bootkit.net.all=1`, every lease is applied and no client stopped.
    pub fn new(keep_all_leases: bool) -> Policy {
        Policy {
            keep_all_leases,
            clients: BTreeSet::new(),
            holders: Vec::new(),
            explicit: 0,
            explicit_failed: 0,
            explicit_dhcp: 0,
            online: false,
        }
    }

    /// Whether an address has been up since the boot began.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// An explicit configuration could not be applied (no such interface, the VLAN or the
    /// address could not be set).
    pub fn explicit_failed(&mut self) {
        self.explicit += 1;
        self.explicit_failed += 1;
    }

    /// An explicit configuration asks for DHCP on its interface.
    pub fn explicit_dhcp(&mut self) {
        self.explicit += 1;
        self.explicit_dhcp += 1;
    }

    /// A static address from `key=` is applied on `lease.interface`.
    pub fn static_applied(
        &mut self,
        lease: &Lease,
        key: &'static str,
        emit: &mut dyn FnMut(OnlineEvent),
    ) {
        self.explicit += 1;
        emit(OnlineEvent::Configured {
            lease: lease.clone(),
            source: AddressSource::Static { key },
        });
        self.address_up(lease, emit);
    }

    /// An IPv6 address from an explicit `ip=` (static or `auto6`) is up on `interface`.
    pub fn ipv6_applied(
        &mut self,
        interface: &str,
        address: (Ipv6Addr, u8),
        hostname: Option<String>,
        emit: &mut dyn FnMut(OnlineEvent),
    ) {
        self.explicit += 1;
        emit(OnlineEvent::Ipv6Configured {
            interface: interface.to_string(),
            address: address.0,
            prefix_len: address.1,
        });
        if !self.online {
            self.online = true;
            emit(OnlineEvent::OnlineIpv6 {
                interface: interface.to_string(),
                hostname,
            });
        }
    }

    /// Whether DHCP runs on the selector's interfaces instead of the explicit ones: there
    /// were no explicit configurations, or none that worked.
    pub fn falls_back_to_dhcp(&self) -> bool {
        self.explicit == 0 || (self.explicit_failed > 0 && self.explicit_dhcp == 0 && !self.online)
    }

    /// DHCP is to run on `interfaces` (possibly none): reports [`OnlineEvent::StaysDown`]
    /// when there is none and no static address is up either.
    pub fn dhcp_planned(&self, interfaces: &[String], emit: &mut dyn FnMut(OnlineEvent)) {
        if interfaces.is_empty() && !self.online {
            emit(OnlineEvent::StaysDown);
        }
    }

    /// A DHCP client runs on `interface`.
    pub fn client_started(&mut self, interface: &str) {
        self.clients.insert(interface.to_string());
    }

    /// A lease arrived (acquired or renewed): whether to apply it. Once an interface holds a
    /// lease, the others' are not, unless every lease is kept.
    pub fn should_apply(&self, lease: &Lease) -> bool {
        self.keep_all_leases || self.holders.is_empty() || self.holders.contains(&lease.interface)
    }

    /// A lease is applied on `lease.interface`.
    pub fn lease_applied(&mut self, lease: &Lease, emit: &mut dyn FnMut(OnlineEvent)) {
        if !self.holders.contains(&lease.interface) {
            self.holders.push(lease.interface.clone());
            emit(OnlineEvent::Configured {
                lease: lease.clone(),
                source: AddressSource::Dhcp,
            });
        }
        if !self.keep_all_leases {
            let losers: Vec<String> = self
                .clients
                .iter()
                .filter(|name| **name != lease.interface)
                .cloned()
                .collect();
            for interface in losers {
                self.clients.remove(&interface);
                emit(OnlineEvent::StopClient {
                    interface,
                    winner: lease.interface.clone(),
                });
            }
        }
        self.address_up(lease, emit);
    }

    /// The lease on `lease.interface` ended.
    pub fn lease_lost(
        &mut self,
        lease: &Lease,
        reason: LossReason,
        emit: &mut dyn FnMut(OnlineEvent),
    ) {
        self.holders.retain(|name| *name != lease.interface);
        emit(OnlineEvent::LeaseLost {
            lease: lease.clone(),
            reason,
        });
    }

    fn address_up(&mut self, lease: &Lease, emit: &mut dyn FnMut(OnlineEvent)) {
        emit(OnlineEvent::Resolver {
            lease: lease.clone(),
        });
        if !self.online {
            self.online = true;
            emit(OnlineEvent::Online {
                lease: lease.clone(),
            });
        }
    }
}
