//! Full mode's address book: reservations, the pool, outstanding offers and bound leases.
//! Time is passed in, so expiry is tested without waiting.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tracing::warn;

use crate::leasefile::{self, StoredLease};
use crate::{DhcpError, FullConfig, Reservation};

/// How long an offered address stays held for the client that was offered it; a client
/// that doesn't REQUEST it by then loses it to the next DISCOVER.
pub(crate) const OFFER_HOLD: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Lease {
    ip: Ipv4Addr,
    expires: SystemTime,
    bound: bool,
}

/// Why a REQUEST is NAKed; the text goes into the NAK's message option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    NotOurs,
    Taken,
    ReservedElsewhere,
}

impl Refusal {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::NotOurs => "address not served here",
            Refusal::Taken => "address in use by another client",
            Refusal::ReservedElsewhere => "this client has a reservation for another address",
        }
    }
}

pub(crate) struct Leases {
    pool_first: u32,
    pool_last: u32,
    server_ip: Ipv4Addr,
    lease_time: Duration,
    reservations: HashMap<String, Reservation>,
    reserved_for: HashMap<Ipv4Addr, String>,
    by_mac: HashMap<String, Lease>,
    holder: HashMap<Ipv4Addr, String>,
    declined_until: HashMap<Ipv4Addr, SystemTime>,
    file: Option<PathBuf>,
}

impl Leases {
    pub(crate) fn new(
        config: &FullConfig,
        server_ip: Ipv4Addr,
        now: SystemTime,
    ) -> Result<Self, DhcpError> {
        let (pool_first, pool_last) = (u32::from(config.pool_start), u32::from(config.pool_end));
        if pool_first > pool_last {
            return Err(DhcpError::Config(format!(
                "pool start {} is after pool end {}; swap them",
                config.pool_start, config.pool_end
            )));
        }
        let mut leases = Leases {
            pool_first,
            pool_last,
            server_ip,
            lease_time: config.lease_time,
            reservations: HashMap::new(),
            reserved_for: HashMap::new(),
            by_mac: HashMap::new(),
            holder: HashMap::new(),
            declined_until: HashMap::new(),
            file: config.lease_file.clone(),
        };
        for reservation in &config.reservations {
            leases.reserve(reservation)?;
        }
        if let Some(path) = &config.lease_file {
            let stored = leasefile::load(path).map_err(|source| DhcpError::LeaseFile {
                path: path.clone(),
                source,
            })?;
            for lease in stored.into_iter().filter(|lease| lease.expires > now) {
                if leases.available_to(lease.ip, &lease.mac, now) {
                    leases.assign(&lease.mac, lease.ip, lease.expires, true);
                }
            }
        }
        Ok(leases)
    }

    fn reserve(&mut self, reservation: &Reservation) -> Result<(), DhcpError> {
        let mac = reservation.mac.to_ascii_lowercase();
        if let Some(other) = self.reserved_for.insert(reservation.ip, mac.clone()) {
            return Err(DhcpError::Config(format!(
                "address {} is reserved for both {other} and {mac}; give each MAC its own address",
                reservation.ip
            )));
        }
        let reservation = Reservation {
            mac: mac.clone(),
            ..reservation.clone()
        };
        self.reservations.insert(mac, reservation);
        Ok(())
    }

    pub(crate) fn hostname(&self, mac: &str) -> Option<&str> {
        self.reservations.get(mac)?.hostname.as_deref()
    }

    pub(crate) fn lease_time(&self) -> Duration {
        self.lease_time
    }

    /// The address to offer this client, held for [`OFFER_HOLD`]: its reservation, else the
    /// address it already has, else the one it asks for, else the first free one.
    pub(crate) fn offer(
        &mut self,
        mac: &str,
        requested: Option<Ipv4Addr>,
        now: SystemTime,
    ) -> Option<Ipv4Addr> {
        let ip = match self.reservations.get(mac) {
            Some(reservation) => reservation.ip,
            None => {
                let current = self.by_mac.get(mac).map(|lease| lease.ip);
                [current, requested]
                    .into_iter()
                    .flatten()
                    .find(|ip| self.available_to(*ip, mac, now))
                    .or_else(|| self.first_free(mac, now))?
            }
        };
        let already_bound = self
            .by_mac
            .get(mac)
            .is_some_and(|lease| lease.bound && lease.ip == ip && lease.expires > now);
        if !already_bound {
            self.assign(mac, ip, now + OFFER_HOLD, false);
        }
        Some(ip)
    }

    /// Binds `ip` to the client for the lease time, or says why not.
    pub(crate) fn request(
        &mut self,
        mac: &str,
        ip: Ipv4Addr,
        now: SystemTime,
    ) -> Result<Ipv4Addr, Refusal> {
        if self
            .reservations
            .get(mac)
            .is_some_and(|reservation| reservation.ip != ip)
        {
            return Err(Refusal::ReservedElsewhere);
        }
        if !self.available_to(ip, mac, now) {
            return Err(if self.is_ours(ip) {
                Refusal::Taken
            } else {
                Refusal::NotOurs
            });
        }
        self.assign(mac, ip, now + self.lease_time, true);
        self.persist(now);
        Ok(ip)
    }

    /// The client took another server's offer: our offer is free again.
    pub(crate) fn withdraw_offer(&mut self, mac: &str) {
        if let Some(lease) = self.by_mac.get(mac).copied().filter(|lease| !lease.bound) {
            self.remove(mac, lease.ip);
        }
    }

    pub(crate) fn release(&mut self, mac: &str, ip: Ipv4Addr, now: SystemTime) {
        if self.by_mac.get(mac).is_some_and(|lease| lease.ip == ip) {
            self.remove(mac, ip);
            self.persist(now);
        }
    }

    /// The client found `ip` in use on the wire: keep it out of the pool for a lease time.
    pub(crate) fn decline(&mut self, mac: &str, ip: Ipv4Addr, now: SystemTime) {
        if self.by_mac.get(mac).is_some_and(|lease| lease.ip == ip) {
            self.remove(mac, ip);
            self.declined_until.insert(ip, now + self.lease_time);
            self.persist(now);
        }
    }

    fn is_ours(&self, ip: Ipv4Addr) -> bool {
        self.in_pool(ip) || self.reserved_for.contains_key(&ip)
    }

    fn in_pool(&self, ip: Ipv4Addr) -> bool {
        (self.pool_first..=self.pool_last).contains(&u32::from(ip))
    }

    fn available_to(&self, ip: Ipv4Addr, mac: &str, now: SystemTime) -> bool {
        if ip == self.server_ip {
            return false;
        }
        if let Some(owner) = self.reserved_for.get(&ip) {
            return owner == mac;
        }
        if !self.in_pool(ip)
            || self
                .declined_until
                .get(&ip)
                .is_some_and(|until| *until > now)
        {
            return false;
        }
        match self.holder.get(&ip) {
            Some(holder) if holder != mac => self
                .by_mac
                .get(holder)
                .is_none_or(|lease| lease.expires <= now),
            _ => true,
        }
    }

    fn first_free(&self, mac: &str, now: SystemTime) -> Option<Ipv4Addr> {
        (self.pool_first..=self.pool_last)
            .map(Ipv4Addr::from)
            .find(|ip| self.available_to(*ip, mac, now))
    }

    /// Gives `ip` to `mac`, dropping the client's previous address and any expired holder.
    fn assign(&mut self, mac: &str, ip: Ipv4Addr, expires: SystemTime, bound: bool) {
        let lease = Lease { ip, expires, bound };
        if let Some(previous) = self.by_mac.insert(mac.to_owned(), lease)
            && previous.ip != ip
            && self
                .holder
                .get(&previous.ip)
                .is_some_and(|held| held == mac)
        {
            self.holder.remove(&previous.ip);
        }
        if let Some(evicted) = self.holder.insert(ip, mac.to_owned())
            && evicted != mac
        {
            self.by_mac.remove(&evicted);
        }
    }

    fn remove(&mut self, mac: &str, ip: Ipv4Addr) {
        self.by_mac.remove(mac);
        self.holder.remove(&ip);
    }

    /// Writes the bound leases; a failure is logged, not fatal: the leases stay valid in
    /// memory, only a restart would forget them.
    fn persist(&self, now: SystemTime) {
        let Some(path) = &self.file else { return };
        let stored: Vec<StoredLease> = self
            .by_mac
            .iter()
            .filter(|(_, lease)| lease.bound && lease.expires > now)
            .map(|(mac, lease)| StoredLease {
                mac: mac.clone(),
                ip: lease.ip,
                expires: lease.expires,
            })
            .collect();
        if let Err(error) = leasefile::save(path, &stored) {
            warn!(path = %path.display(), %error, "cannot write the DHCP lease file; leases will be forgotten on restart (check the directory's permissions and free space)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "52:54:00:00:00:0a";
    const B: &str = "52:54:00:00:00:0b";

    fn config(reservations: Vec<Reservation>) -> FullConfig {
        FullConfig {
            pool_start: Ipv4Addr::new(10, 0, 0, 10),
            pool_end: Ipv4Addr::new(10, 0, 0, 11),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            router: None,
            dns: Vec::new(),
            lease_time: Duration::from_secs(600),
            reservations,
            lease_file: None,
        }
    }

    fn table(reservations: Vec<Reservation>) -> Leases {
        Leases::new(
            &config(reservations),
            Ipv4Addr::new(10, 0, 0, 1),
            SystemTime::UNIX_EPOCH,
        )
        .unwrap()
    }

    #[test]
    fn an_unrequested_offer_expires_and_goes_to_the_next_client() {
        let start = SystemTime::UNIX_EPOCH;
        let mut leases = table(Vec::new());
        let offered = leases.offer(A, None, start).unwrap();
        assert_ne!(leases.offer(B, Some(offered), start), Some(offered));
        let later = start + OFFER_HOLD + Duration::from_secs(1);
        let mut third = table(Vec::new());
        third.offer(A, None, start);
        assert_eq!(third.offer(B, Some(offered), later), Some(offered));
        assert_eq!(third.request(A, offered, later), Err(Refusal::Taken));
    }

    #[test]
    fn a_reserved_address_goes_only_to_its_mac() {
        let reserved = Ipv4Addr::new(10, 0, 0, 11);
        let mut leases = table(vec![Reservation {
            mac: A.to_ascii_uppercase(),
            ip: reserved,
            hostname: Some("node-a".into()),
        }]);
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(
            leases.offer(B, Some(reserved), now),
            Some(Ipv4Addr::new(10, 0, 0, 10))
        );
        assert_eq!(leases.offer(A, None, now), Some(reserved));
        assert_eq!(
            leases.request(A, Ipv4Addr::new(10, 0, 0, 10), now),
            Err(Refusal::ReservedElsewhere)
        );
        assert_eq!(leases.hostname(A), Some("node-a"));
    }

    #[test]
    fn a_declined_address_is_not_offered_again_during_a_lease_time() {
        let now = SystemTime::UNIX_EPOCH;
        let mut leases = table(Vec::new());
        let first = leases.offer(A, None, now).unwrap();
        leases.request(A, first, now).unwrap();
        leases.decline(A, first, now);
        assert_ne!(leases.offer(B, Some(first), now), Some(first));
        assert_eq!(
            leases.request(A, Ipv4Addr::new(192, 168, 1, 1), now),
            Err(Refusal::NotOurs)
        );
    }

    #[test]
    fn an_exhausted_pool_offers_nothing() {
        let now = SystemTime::UNIX_EPOCH;
        let mut leases = table(Vec::new());
        assert!(leases.offer(A, None, now).is_some());
        assert!(leases.offer(B, None, now).is_some());
        assert_eq!(leases.offer("52:54:00:00:00:0c", None, now), None);
    }

    #[test]
    fn overlapping_reservations_are_a_config_error() {
        let twice = |mac: &str| Reservation {
            mac: mac.into(),
            ip: Ipv4Addr::new(10, 0, 0, 50),
            hostname: None,
        };
        let result = Leases::new(
            &config(vec![twice(A), twice(B)]),
            Ipv4Addr::new(10, 0, 0, 1),
            SystemTime::UNIX_EPOCH,
        );
        assert!(matches!(result, Err(DhcpError::Config(_))));
    }
}
