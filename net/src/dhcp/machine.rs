//! The DHCPv4 client state machine (RFC 2131 §4.4), free of I/O and of clocks.
//!
//! Time is a [`Duration`] since an origin the driver picks (its start); every entry point
//! takes the current time, and [`Machine::wake_at`] says when the machine next needs
//! [`Machine::on_timeout`]. Tests drive it with a fake clock.
//!
//! Choices beyond the RFC, and why:
//! - Retransmissions start at 1 s, not 4 s (RFC 2131 §4.1's example), and double up to 64 s:
//!   a provisioning OS waits for its lease on every boot, and a server that missed the first
//!   DISCOVER (link still negotiating, STP) should not cost 4 s. Jitter is ±1 s as in the
//!   RFC, but at most half the interval, so the first tries stay positive and ordered.
//! - The first OFFER wins: boot speed matters more than comparing servers.
//! - No ARP probe of the offered address and no DECLINE (as udhcpc by default).
//! - No INIT-REBOOT: a RAM-only OS has no previous lease to reuse.
//! - No DHCPRELEASE: the caller never asks for one (EMT's images set SendRelease=false, the
//!   next boot gets the same address back).
//! - After NAKs in a row, the next DISCOVER waits (0, 1 s, 2 s, ... capped at 64 s), so a
//!   misconfigured server that offers and then refuses cannot make us loop at wire speed.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{Message, MessageType};

use super::packet::{self, Request};
use crate::lease::Lease;

/// Retransmission timing. It looks like `bootkit_common::backoff::Backoff` but is not one on
/// purpose: RFC 2131 §4.1 spreads each interval by ±jitter around the doubled delay (a
/// retransmission may come early or late), where the shared backoff only shortens delays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// First retransmission interval of DISCOVER and REQUEST (doubles on each retry).
    pub first_retransmit: Duration,
    /// Cap of the doubling.
    pub max_retransmit: Duration,
    /// Random spread added to each interval: uniform in ±jitter, at most ±half the interval.
    pub jitter: Duration,
    /// REQUESTs sent in REQUESTING before giving up on the offer and starting again.
    pub request_attempts: u32,
    /// Shortest wait between REQUESTs while RENEWING/REBINDING (RFC 2131 §4.4.5: 60 s).
    pub renew_min_retransmit: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            first_retransmit: Duration::from_secs(1),
            max_retransmit: Duration::from_secs(64),
            jitter: Duration::from_secs(1),
            request_attempts: 4,
            renew_min_retransmit: Duration::from_secs(60),
        }
    }
}

/// What the client is and how it behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Interface name, copied into every [`Lease`] and used by the driver's socket.
    pub interface: String,
    /// The interface's MAC: chaddr and the client identifier (type 1 + MAC).
    pub mac: [u8; 6],
    /// Sent as option 12 when set, so the server can register the name.
    pub hostname: Option<String>,
    /// Retransmission and lease timer rules.
    pub timing: Timing,
}

impl Config {
    /// A configuration for `interface` with MAC `mac`, no host name and the default timing.
    pub fn new(interface: &str, mac: [u8; 6]) -> Self {
        Self {
            interface: interface.to_string(),
            mac,
            hostname: None,
            timing: Timing::default(),
        }
    }
}

/// RFC 2131's client states (INIT-REBOOT and REBOOTING are not implemented).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No lease: about to DISCOVER.
    Init,
    /// DISCOVER sent, waiting for offers.
    Selecting,
    /// REQUEST sent for an offer, waiting for the ACK.
    Requesting,
    /// A lease is held; waiting for T1.
    Bound,
    /// Past T1: renewing with the lease's server (unicast).
    Renewing,
    /// Past T2: renewing with any server (broadcast).
    Rebinding,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Init => "INIT",
            State::Selecting => "SELECTING",
            State::Requesting => "REQUESTING",
            State::Bound => "BOUND",
            State::Renewing => "RENEWING",
            State::Rebinding => "REBINDING",
        })
    }
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// 255.255.255.255:67 on the interface.
    Broadcast,
    /// The server, port 67 (RENEWING); needs the leased address configured.
    Unicast(Ipv4Addr),
}

/// Why a lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossReason {
    /// Neither the server nor any other answered before the lease expired.
    Expired,
    /// A server refused the renewal.
    Nak,
    /// A renewal was answered with another address: the old one must go.
    AddressChanged,
}

impl fmt::Display for LossReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LossReason::Expired => "expired",
            LossReason::Nak => "refused by the server (NAK)",
            LossReason::AddressChanged => "replaced by another address",
        })
    }
}

/// What the driver must do after an event, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this message.
    Send {
        /// The message.
        message: Message,
        /// Broadcast, or unicast to the lease's server.
        to: Destination,
    },
    /// A new lease: configure it.
    Acquired(Lease),
    /// The same address, new timers (and possibly new options): re-apply it.
    Renewed(Lease),
    /// Remove this lease's address and routes.
    Lost {
        /// The lease that is gone.
        lease: Lease,
        /// Why it is gone.
        reason: LossReason,
    },
}

/// A lease in force, with its timers as absolute times.
#[derive(Debug, Clone)]
struct Active {
    lease: Lease,
    /// `None` for an infinite lease.
    t1: Option<Duration>,
    t2: Option<Duration>,
    expiry: Option<Duration>,
}

/// The state machine. See the module documentation.
#[derive(Debug)]
pub struct Machine {
    config: Config,
    rng: fastrand::Rng,
    state: State,
    /// Transaction id of the current exchange; replies with another are ignored.
    xid: u32,
    /// When the current exchange began (the `secs` field counts from it).
    exchange_start: Duration,
    /// When the first REQUEST of the current exchange was sent: lease timers count from it
    /// (RFC 2131 §4.4.1), so a slow server cannot make us overstay.
    request_sent: Duration,
    /// Retransmissions so far in the current exchange.
    attempt: u32,
    wake_at: Option<Duration>,
    /// SELECTING → REQUESTING: (offered address, server).
    offer: Option<(Ipv4Addr, Ipv4Addr)>,
    active: Option<Active>,
    naks_in_a_row: u32,
}

impl Machine {
    /// A machine in INIT; call [`Machine::start`] to send the first DISCOVER.
    pub fn new(config: Config) -> Self {
        Self::with_rng(config, fastrand::Rng::new())
    }

    /// As [`Machine::new`] with a seeded random source (xids, jitter), for reproducible tests.
    pub fn with_seed(config: Config, seed: u64) -> Self {
        Self::with_rng(config, fastrand::Rng::with_seed(seed))
    }

    fn with_rng(config: Config, rng: fastrand::Rng) -> Self {
        Self {
            config,
            rng,
            state: State::Init,
            xid: 0,
            exchange_start: Duration::ZERO,
            request_sent: Duration::ZERO,
            attempt: 0,
            wake_at: None,
            offer: None,
            active: None,
            naks_in_a_row: 0,
        }
    }

    /// The client's current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The lease in force (BOUND, RENEWING, REBINDING).
    pub fn lease(&self) -> Option<&Lease> {
        self.active.as_ref().map(|a| &a.lease)
    }

    /// When [`Machine::on_timeout`] is next due; `None` while waiting for nothing but
    /// packets (an infinite lease).
    pub fn wake_at(&self) -> Option<Duration> {
        self.wake_at
    }

    /// Begins acquisition: the first DISCOVER.
    pub fn start(&mut self, now: Duration) -> Vec<Action> {
        self.active = None;
        self.begin_discover(now)
    }

    /// A datagram from port 67; anything that is not a valid reply to us is ignored.
    pub fn on_bytes(&mut self, bytes: &[u8], now: Duration) -> Vec<Action> {
        match packet::decode_reply(bytes) {
            Some(msg) => self.on_packet(&msg, now),
            None => Vec::new(),
        }
    }

    /// A decoded message from a server.
    pub fn on_packet(&mut self, msg: &Message, now: Duration) -> Vec<Action> {
        if !packet::is_reply_to(msg, self.xid, self.config.mac) {
            return Vec::new();
        }
        let Some(kind) = msg.opts().msg_type() else {
            return Vec::new();
        };
        match (self.state, kind) {
            (State::Selecting, MessageType::Offer) => self.on_offer(msg, now),
            (State::Requesting, MessageType::Ack) if self.is_from_chosen_server(msg) => {
                self.on_ack(msg, now)
            }
            (State::Requesting, MessageType::Nak) if self.is_from_chosen_server(msg) => {
                self.on_nak(now)
            }
            (State::Renewing | State::Rebinding, MessageType::Ack) => self.on_ack(msg, now),
            (State::Renewing | State::Rebinding, MessageType::Nak) => self.on_nak(now),
            _ => Vec::new(),
        }
    }

    /// The clock reached [`Machine::wake_at`] (earlier calls are ignored, so a driver may
    /// wake spuriously).
    pub fn on_timeout(&mut self, now: Duration) -> Vec<Action> {
        match self.wake_at {
            Some(at) if now >= at => {}
            _ => return Vec::new(),
        }
        match self.state {
            State::Init => self.begin_discover(now),
            State::Selecting => {
                self.attempt += 1;
                self.send_discover(now)
            }
            State::Requesting => {
                self.attempt += 1;
                if self.attempt >= self.config.timing.request_attempts.max(1) {
                    // RFC 2131 §4.4.1: no answer to the REQUEST, back to INIT.
                    self.begin_discover(now)
                } else {
                    self.send_selecting_request(now)
                }
            }
            State::Bound | State::Renewing | State::Rebinding => self.lease_timer(now),
        }
    }

    fn is_from_chosen_server(&self, msg: &Message) -> bool {
        // A server identifier that is not the one we chose means the reply is to another
        // client's REQUEST with our xid (or a second server): not ours. RFC 2131 requires the
        // option, but tolerate its absence.
        match (packet::server_id(msg), self.offer) {
            (Some(id), Some((_, server))) => id == server,
            _ => true,
        }
    }

    fn on_offer(&mut self, msg: &Message, now: Duration) -> Vec<Action> {
        let address = msg.yiaddr();
        let Some(server) = packet::server_id(msg) else {
            // Without a server identifier we cannot form a valid REQUEST (RFC 2131 §4.3.1).
            return Vec::new();
        };
        if !packet::usable_address(address) {
            return Vec::new();
        }
        self.offer = Some((address, server));
        self.state = State::Requesting;
        self.attempt = 0;
        self.request_sent = now;
        self.send_selecting_request(now)
    }

    fn on_ack(&mut self, msg: &Message, now: Duration) -> Vec<Action> {
        let previous = self.active.take();
        let fallback_server = previous.as_ref().and_then(|a| a.lease.server);
        let lease = match packet::lease_from_ack(&self.config.interface, msg, fallback_server) {
            Ok(lease) => lease,
            Err(_) => {
                // A broken ACK is treated as no answer: keep what we had and let the
                // retransmission timer run.
                self.active = previous;
                return Vec::new();
            }
        };
        let base = self.request_sent;
        let at = |d: Option<Duration>| d.map(|d| base.saturating_add(d));
        let active = Active {
            t1: at(lease.renew_after),
            t2: at(lease.rebind_after),
            expiry: at(lease.lease_time),
            lease: lease.clone(),
        };
        self.naks_in_a_row = 0;
        self.offer = None;
        self.state = State::Bound;
        self.attempt = 0;
        self.wake_at = active.t1;
        self.active = Some(active);
        // A timer already due (a lease shorter than the server's reply time) is handled now
        // rather than left to a wake-up in the past.
        let mut actions = match previous {
            Some(old) if old.lease.address == lease.address => vec![Action::Renewed(lease)],
            Some(old) => vec![
                Action::Lost {
                    lease: old.lease,
                    reason: LossReason::AddressChanged,
                },
                Action::Acquired(lease),
            ],
            None => vec![Action::Acquired(lease)],
        };
        if self.wake_at.is_some_and(|at| at <= now) {
            actions.extend(self.lease_timer(now));
        }
        actions
    }

    fn on_nak(&mut self, now: Duration) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Some(old) = self.active.take() {
            actions.push(Action::Lost {
                lease: old.lease,
                reason: LossReason::Nak,
            });
        }
        self.naks_in_a_row = self.naks_in_a_row.saturating_add(1);
        let delay = match self.naks_in_a_row {
            0 | 1 => Duration::ZERO,
            n => self.backoff(n - 2),
        };
        if delay.is_zero() {
            actions.extend(self.begin_discover(now));
        } else {
            self.state = State::Init;
            self.offer = None;
            self.wake_at = Some(now + delay);
        }
        actions
    }

    /// BOUND/RENEWING/REBINDING timers: expiry first, so a driver that slept past several
    /// deadlines lands in the right state.
    fn lease_timer(&mut self, now: Duration) -> Vec<Action> {
        let Some(active) = self.active.as_ref() else {
            return self.begin_discover(now);
        };
        let (t1, t2, expiry) = (active.t1, active.t2, active.expiry);
        if expiry.is_some_and(|e| now >= e) {
            let mut actions = Vec::new();
            if let Some(old) = self.active.take() {
                actions.push(Action::Lost {
                    lease: old.lease,
                    reason: LossReason::Expired,
                });
            }
            actions.extend(self.begin_discover(now));
            return actions;
        }
        let next_state = if t2.is_some_and(|t| now >= t) {
            State::Rebinding
        } else if t1.is_some_and(|t| now >= t) {
            State::Renewing
        } else {
            // Woken early (cannot happen with our own wake_at, but be safe).
            self.wake_at = t1;
            return Vec::new();
        };
        if next_state != self.state {
            // Each renewal is a new exchange, so a late ACK to an earlier one is ignored.
            self.state = next_state;
            self.xid = self.rng.u32(..);
            self.exchange_start = now;
            self.request_sent = now;
            self.attempt = 0;
        } else {
            self.attempt += 1;
        }
        self.send_lease_request(now)
    }

    fn begin_discover(&mut self, now: Duration) -> Vec<Action> {
        self.state = State::Selecting;
        self.xid = self.rng.u32(..);
        self.exchange_start = now;
        self.attempt = 0;
        self.offer = None;
        self.active = None;
        self.send_discover(now)
    }

    fn send_discover(&mut self, now: Duration) -> Vec<Action> {
        let message = packet::build(MessageType::Discover, &self.request(now, None));
        self.wake_at = Some(now + self.retransmit_delay());
        vec![Action::Send {
            message,
            to: Destination::Broadcast,
        }]
    }

    fn send_selecting_request(&mut self, now: Duration) -> Vec<Action> {
        let message = packet::build(MessageType::Request, &self.request(now, self.offer));
        self.wake_at = Some(now + self.retransmit_delay());
        vec![Action::Send {
            message,
            to: Destination::Broadcast,
        }]
    }

    /// RENEWING (unicast to the server) or REBINDING (broadcast to any server): a REQUEST
    /// with ciaddr and neither requested address nor server identifier (RFC 2131 Table 5).
    fn send_lease_request(&mut self, now: Duration) -> Vec<Action> {
        let Some(active) = self.active.as_ref() else {
            return Vec::new();
        };
        let (to, deadline) = match (self.state, active.lease.server) {
            (State::Renewing, Some(server)) => (Destination::Unicast(server), active.t2),
            (State::Renewing, None) => (Destination::Broadcast, active.t2),
            _ => (Destination::Broadcast, active.expiry),
        };
        let mut req = self.request(now, None);
        req.ciaddr = active.lease.address;
        let message = packet::build(MessageType::Request, &req);
        // RFC 2131 §4.4.5: wait half the time left until the next deadline, at least the
        // minimum, but never past the deadline itself.
        self.wake_at = deadline.map(|deadline| {
            let half = deadline.saturating_sub(now) / 2;
            (now + half.max(self.config.timing.renew_min_retransmit)).min(deadline)
        });
        vec![Action::Send { message, to }]
    }

    fn request(&self, now: Duration, requested: Option<(Ipv4Addr, Ipv4Addr)>) -> Request<'_> {
        let secs = now.saturating_sub(self.exchange_start).as_secs();
        Request {
            mac: self.config.mac,
            xid: self.xid,
            secs: u16::try_from(secs).unwrap_or(u16::MAX),
            hostname: self.config.hostname.as_deref(),
            ciaddr: Ipv4Addr::UNSPECIFIED,
            requested,
        }
    }

    /// first × 2^n, capped.
    fn backoff(&self, n: u32) -> Duration {
        let t = &self.config.timing;
        t.first_retransmit
            .saturating_mul(1u32 << n.min(20))
            .min(t.max_retransmit)
    }

    /// The current attempt's interval with jitter (see the module documentation).
    fn retransmit_delay(&mut self) -> Duration {
        let base = self.backoff(self.attempt);
        let spread = self.config.timing.jitter.min(base / 2);
        let spread_ms = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX / 2);
        let offset = self.rng.u64(0..=spread_ms * 2);
        (base + Duration::from_millis(offset)).saturating_sub(spread)
    }
}
