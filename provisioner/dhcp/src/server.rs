//! The server: sockets, the receive loop, and what each message gets in each mode.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bootkit_common::dhcp_options;
use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Encodable};
use tokio::net::UdpSocket;
use tracing::{debug, info, warn};

use crate::boot::{self, BootInfo, Ignored};
use crate::client::client_mac;
use crate::leases::Leases;
use crate::rate::{Rate, TokenBuckets};
use crate::reply::{self, AddressInfo};
use crate::{BootPolicy, Config, Counters, DhcpError, FullConfig, Mode, socket};

/// The PXE boot server port (PXE spec §2.2.3); proxy mode listens on it beside 67.
const PXE_BOOT_SERVER_PORT: u16 = 4011;
/// Larger than any DHCP message a client sends (576 minimum, Ethernet MTU in practice).
const RECEIVE_BUFFER: usize = 4096;

/// A bound DHCP server.
pub struct Server {
    dhcp: UdpSocket,
    dhcp_addr: SocketAddr,
    boot_server: Option<(UdpSocket, SocketAddr)>,
    answers: Answers,
}

/// Where a request came in: the DHCP port, or proxy mode's boot server (answered directly
/// to the sender).
#[derive(Debug, Clone, Copy)]
enum Port {
    Dhcp,
    BootServer { from: SocketAddr },
}

enum State {
    Proxy,
    Full {
        config: FullConfig,
        leases: Box<Leases>,
    },
}

impl State {
    fn new(mode: Mode, server_ip: Ipv4Addr) -> Result<Self, DhcpError> {
        Ok(match mode {
            Mode::Proxy => State::Proxy,
            Mode::Full(full) => State::Full {
                leases: Box::new(Leases::new(&full, server_ip, SystemTime::now())?),
                config: full,
            },
        })
    }
}

/// Decides the reply for each request; no sockets, so it stays a plain state machine.
struct Answers {
    server_ip: Ipv4Addr,
    boot_files: crate::BootFiles,
    state: State,
    /// Per client MAC, not per source address: a rack behind one relay shares its giaddr.
    per_client: Option<TokenBuckets<String>>,
}

impl Server {
    /// Binds the sockets (so "port in use" and "no such interface" surface at start-up).
    pub async fn bind(config: Config) -> Result<Self, DhcpError> {
        let SocketAddr::V4(listen) = config.listen else {
            return Err(DhcpError::Config(format!(
                "listen address {} is not IPv4; DHCP here is IPv4 only (use e.g. 0.0.0.0:67)",
                config.listen
            )));
        };
        if config.server_ip.is_unspecified() {
            return Err(DhcpError::Config(
                "server ip is 0.0.0.0; set the provisioner's address on the boot network".into(),
            ));
        }
        let interface = config.interface.as_deref();
        let state = State::new(config.mode, config.server_ip)?;
        let dhcp = socket::bind(listen.into(), interface)?;
        let dhcp_addr = dhcp.local_addr().map_err(DhcpError::Socket)?;
        let boot_server = match state {
            State::Proxy => {
                // Tests listen on port 0; the boot server then takes any free port too.
                let port = if listen.port() == 0 {
                    0
                } else {
                    PXE_BOOT_SERVER_PORT
                };
                let socket = socket::bind(SocketAddrV4::new(*listen.ip(), port).into(), interface)?;
                let addr = socket.local_addr().map_err(DhcpError::Socket)?;
                Some((socket, addr))
            }
            State::Full { .. } => None,
        };
        Ok(Server {
            dhcp,
            dhcp_addr,
            boot_server,
            answers: Answers {
                server_ip: config.server_ip,
                boot_files: config.boot_files,
                state,
                per_client: None,
            },
        })
    }

    /// Limits each client MAC to `rate` requests (both ports together); requests beyond it
    /// are dropped unanswered and counted in [`Counters::rate_limited`]. `None`: no limit.
    /// Per MAC because relayed clients all come from their relay's address.
    #[must_use]
    pub fn limit_clients(mut self, rate: Option<Rate>) -> Self {
        self.answers.per_client = rate.map(TokenBuckets::new);
        self
    }

    /// The DHCP socket's address (67, or what port 0 picked).
    pub fn local_addr(&self) -> SocketAddr {
        self.dhcp_addr
    }

    /// The PXE boot server socket (4011) in proxy mode.
    pub fn boot_server_addr(&self) -> Option<SocketAddr> {
        self.boot_server.as_ref().map(|(_, addr)| *addr)
    }

    /// The sockets requests arrive on (67, and 4011 in proxy mode), for the caller's receive
    /// buffer sizing and drop counting.
    pub fn sockets(&self) -> impl Iterator<Item = &UdpSocket> {
        std::iter::once(&self.dhcp).chain(self.boot_server.as_ref().map(|(socket, _)| socket))
    }

    /// Serves until an unrecoverable socket error; stop it by aborting its task.
    pub async fn serve(
        mut self,
        policy: Arc<dyn BootPolicy>,
        counters: Arc<Counters>,
    ) -> Result<(), DhcpError> {
        info!(addr = %self.dhcp_addr, boot_server = ?self.boot_server_addr(), "DHCP server listening");
        let mut dhcp_buffer = vec![0u8; RECEIVE_BUFFER];
        let mut boot_buffer = vec![0u8; RECEIVE_BUFFER];
        loop {
            let boot_socket = self.boot_server.as_ref().map(|(socket, _)| socket);
            let (packet, port) = tokio::select! {
                received = self.dhcp.recv_from(&mut dhcp_buffer) => {
                    let (length, _) = received.map_err(DhcpError::Serve)?;
                    (&dhcp_buffer[..length], Port::Dhcp)
                }
                received = receive_if_bound(boot_socket, &mut boot_buffer) => {
                    let (length, from) = received.map_err(DhcpError::Serve)?;
                    (&boot_buffer[..length], Port::BootServer { from })
                }
            };
            let Some((reply, to)) = self.answers.answer(packet, port, &*policy, &counters) else {
                continue;
            };
            let socket = match port {
                Port::Dhcp => &self.dhcp,
                Port::BootServer { .. } => boot_socket.unwrap_or(&self.dhcp),
            };
            send(socket, &reply, to, &counters).await;
        }
    }
}

async fn receive_if_bound(
    socket: Option<&UdpSocket>,
    buffer: &mut [u8],
) -> io::Result<(usize, SocketAddr)> {
    match socket {
        Some(socket) => socket.recv_from(buffer).await,
        None => std::future::pending().await,
    }
}

/// A failed send is one lost reply (the client retries), not a reason to stop serving.
async fn send(socket: &UdpSocket, reply: &Message, to: SocketAddr, counters: &Counters) {
    let kind = reply.opts().msg_type();
    let bytes = match reply.to_vec() {
        Ok(bytes) => bytes,
        Err(error) => {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            warn!(%error, ?kind, "cannot encode a DHCP reply");
            return;
        }
    };
    if let Err(error) = socket.send_to(&bytes, to).await {
        counters.errors.fetch_add(1, Ordering::Relaxed);
        warn!(%to, %error, ?kind, "cannot send a DHCP reply (with no default route, set the DHCP interface so broadcasts can leave)");
        return;
    }
    let counter: Option<&AtomicU64> = match kind {
        Some(MessageType::Offer) => Some(&counters.offers),
        Some(MessageType::Ack) => Some(&counters.acks),
        Some(MessageType::Nak) => Some(&counters.naks),
        _ => None,
    };
    if let Some(counter) = counter {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn requested_ip(request: &Message) -> Option<Ipv4Addr> {
    match request.opts().get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
        _ => None,
    }
}

fn server_identifier(request: &Message) -> Option<Ipv4Addr> {
    match request.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    }
}

/// Why a packet from the network is not a request the server can read.
#[derive(Debug, thiserror::Error)]
enum MalformedPacket {
    #[error(
        "not a DHCP message: shorter than its header, no magic cookie, hlen above 16 or a \
         truncated option"
    )]
    NotDhcp,
    #[error(transparent)]
    Decode(#[from] dhcproto::error::DecodeError),
}

/// Decodes a request from the network. dhcproto never sees the raw bytes (it panics on some
/// malformed options, see `bootkit_common::dhcp_options`): the options are split out first
/// and only those it can decode are handed to it.
fn decode_request(packet: &[u8]) -> Result<Message, MalformedPacket> {
    let raw = dhcp_options::split(packet).ok_or(MalformedPacket::NotDhcp)?;
    Ok(Message::from_bytes(&raw.rebuild(dhcp_options::decodable))?)
}

fn ignore(counters: &Counters) -> Option<(Message, SocketAddr)> {
    counters.ignored.fetch_add(1, Ordering::Relaxed);
    None
}

impl Answers {
    /// The reply to one packet and where it goes, or `None` (counted and logged).
    fn answer(
        &mut self,
        packet: &[u8],
        port: Port,
        policy: &dyn BootPolicy,
        counters: &Counters,
    ) -> Option<(Message, SocketAddr)> {
        let request = match decode_request(packet) {
            Ok(request) => request,
            Err(error) => {
                counters.received.fetch_add(1, Ordering::Relaxed);
                counters.errors.fetch_add(1, Ordering::Relaxed);
                debug!(%error, length = packet.len(), "dropping a malformed DHCP packet");
                return None;
            }
        };
        // Replies (ours looping back as broadcasts, other servers') are not for us.
        if request.opcode() != Opcode::BootRequest {
            return None;
        }
        counters.received.fetch_add(1, Ordering::Relaxed);
        let (Some(mac), Some(kind)) = (client_mac(&request), request.opts().msg_type()) else {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            debug!(
                htype = ?request.htype(),
                "dropping a request without an Ethernet address or DHCP message type"
            );
            return None;
        };
        if let Some(buckets) = &self.per_client
            && !buckets.admit(&mac)
        {
            counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            debug!(%mac, rate = %buckets.rate(), "dropping a DHCP request over the client's rate limit");
            return None;
        }
        // Asked only for requests we would answer, so the policy sees each boot attempt once.
        let boot = || boot::decide(&request, &mac, &self.boot_files, policy);
        match &mut self.state {
            State::Proxy => {
                proxy_answer(&request, &mac, kind, port, boot, self.server_ip, counters)
            }
            State::Full { config, leases } => {
                let mut full = FullAnswers {
                    config,
                    leases,
                    server_ip: self.server_ip,
                };
                full.answer(&request, &mac, kind, boot, counters)
            }
        }
    }
}

/// The server's answers without its sockets, for the fuzz targets in `fuzz/`: each packet
/// goes through the same decoding and state machine as one received on the wire.
#[cfg(feature = "fuzzing")]
pub struct Answerer {
    answers: Answers,
    counters: Counters,
}

#[cfg(feature = "fuzzing")]
impl Answerer {
    /// The answers of a server with `config` (its `listen` and `interface` are not used).
    pub fn new(config: Config) -> Result<Self, DhcpError> {
        Ok(Answerer {
            answers: Answers {
                server_ip: config.server_ip,
                state: State::new(config.mode, config.server_ip)?,
                boot_files: config.boot_files,
                per_client: None,
            },
            counters: Counters::default(),
        })
    }

    /// The encoded reply to `packet` and where it goes, as the server would send it.
    /// `to_boot_server`: the packet came to proxy mode's PXE boot server (port 4011).
    pub fn answer(
        &mut self,
        packet: &[u8],
        to_boot_server: bool,
        policy: &dyn BootPolicy,
    ) -> Option<(Result<Vec<u8>, dhcproto::error::EncodeError>, SocketAddr)> {
        let port = if to_boot_server {
            Port::BootServer {
                from: SocketAddr::from(([192, 0, 2, 1], 68)),
            }
        } else {
            Port::Dhcp
        };
        let (reply, to) = self.answers.answer(packet, port, policy, &self.counters)?;
        Some((reply.to_vec(), to))
    }
}

/// proxyDHCP: boot information only, to PXE clients only.
fn proxy_answer(
    request: &Message,
    mac: &str,
    kind: MessageType,
    port: Port,
    boot: impl FnOnce() -> Result<Option<BootInfo>, Ignored>,
    server_ip: Ipv4Addr,
    counters: &Counters,
) -> Option<(Message, SocketAddr)> {
    let (reply_kind, to) = match (kind, port) {
        (MessageType::Discover, Port::Dhcp) => (
            MessageType::Offer,
            reply::destination(request, MessageType::Offer).into(),
        ),
        (MessageType::Request, Port::BootServer { from }) => (MessageType::Ack, from),
        (MessageType::Request, Port::Dhcp) if server_identifier(request) == Some(server_ip) => (
            MessageType::Ack,
            reply::destination(request, MessageType::Ack).into(),
        ),
        // The site's DHCP server answers everything else.
        _ => return None,
    };
    let boot = match boot() {
        Ok(Some(boot)) => boot,
        Ok(None) => {
            debug!(%mac, ?kind, "proxy mode: not a PXE client, leaving it to the site's DHCP server");
            return ignore(counters);
        }
        Err(Ignored) => return ignore(counters),
    };
    let mut reply = reply::reply_to(request, reply_kind, server_ip);
    reply::add_boot(&mut reply, &boot, server_ip);
    info!(%mac, arch = ?boot.arch, file = %boot.file, ?reply_kind, %to, "proxyDHCP boot answer");
    Some((reply, to))
}

/// Full mode: addresses from reservations and the pool, plus boot information for PXE clients.
struct FullAnswers<'a> {
    config: &'a FullConfig,
    leases: &'a mut Leases,
    server_ip: Ipv4Addr,
}

impl FullAnswers<'_> {
    fn answer(
        &mut self,
        request: &Message,
        mac: &str,
        kind: MessageType,
        boot: impl FnOnce() -> Result<Option<BootInfo>, Ignored>,
        counters: &Counters,
    ) -> Option<(Message, SocketAddr)> {
        let now = SystemTime::now();
        match kind {
            MessageType::Release => {
                info!(%mac, ip = %request.ciaddr(), "lease released");
                self.leases.release(mac, request.ciaddr(), now);
                None
            }
            MessageType::Decline => {
                let ip = requested_ip(request)?;
                warn!(%mac, %ip, "client declined its address (in use by someone else?); holding it back");
                self.leases.decline(mac, ip, now);
                None
            }
            _ => {
                let Ok(boot) = boot() else {
                    return ignore(counters);
                };
                match kind {
                    MessageType::Discover => self.offer(request, mac, boot.as_ref(), now, counters),
                    MessageType::Request => self.acknowledge(request, mac, boot.as_ref(), now),
                    MessageType::Inform => Some(self.inform(request, mac, boot.as_ref())),
                    _ => None,
                }
            }
        }
    }

    fn offer(
        &mut self,
        request: &Message,
        mac: &str,
        boot: Option<&BootInfo>,
        now: SystemTime,
        counters: &Counters,
    ) -> Option<(Message, SocketAddr)> {
        let Some(ip) = self.leases.offer(mac, requested_ip(request), now) else {
            warn!(%mac, "no address to offer: the pool is exhausted (widen the pool or shorten the lease time)");
            return ignore(counters);
        };
        info!(%mac, %ip, arch = ?boot.and_then(|boot| boot.arch), file = ?boot.map(|boot| &boot.file), "offer");
        Some(self.with_address(request, MessageType::Offer, mac, ip, boot))
    }

    fn acknowledge(
        &mut self,
        request: &Message,
        mac: &str,
        boot: Option<&BootInfo>,
        now: SystemTime,
    ) -> Option<(Message, SocketAddr)> {
        if server_identifier(request).is_some_and(|id| id != self.server_ip) {
            // RFC 2131 §4.3.2: the client chose another server's offer; stay silent.
            debug!(%mac, "client chose another DHCP server");
            self.leases.withdraw_offer(mac);
            return None;
        }
        let ciaddr = Some(request.ciaddr()).filter(|ip| !ip.is_unspecified());
        let Some(wanted) = requested_ip(request).or(ciaddr) else {
            return Some(self.refuse(request, mac, None, "no address requested"));
        };
        match self.leases.request(mac, wanted, now) {
            Ok(ip) => {
                info!(%mac, %ip, arch = ?boot.and_then(|boot| boot.arch), file = ?boot.map(|boot| &boot.file), "lease acknowledged");
                Some(self.with_address(request, MessageType::Ack, mac, ip, boot))
            }
            Err(refusal) => Some(self.refuse(request, mac, Some(wanted), refusal.reason())),
        }
    }

    fn refuse(
        &self,
        request: &Message,
        mac: &str,
        wanted: Option<Ipv4Addr>,
        reason: &str,
    ) -> (Message, SocketAddr) {
        info!(%mac, ?wanted, %reason, "request refused (NAK)");
        let nak = reply::nak(request, self.server_ip, reason);
        (nak, reply::destination(request, MessageType::Nak).into())
    }

    fn inform(
        &self,
        request: &Message,
        mac: &str,
        boot: Option<&BootInfo>,
    ) -> (Message, SocketAddr) {
        debug!(%mac, ip = %request.ciaddr(), "answering INFORM");
        let mut reply = reply::reply_to(request, MessageType::Ack, self.server_ip);
        reply.set_ciaddr(request.ciaddr());
        reply::add_network(&mut reply, &self.address_info(mac));
        if let Some(boot) = boot {
            reply::add_boot(&mut reply, boot, self.server_ip);
        }
        (reply, reply::destination(request, MessageType::Ack).into())
    }

    fn with_address(
        &self,
        request: &Message,
        kind: MessageType,
        mac: &str,
        ip: Ipv4Addr,
        boot: Option<&BootInfo>,
    ) -> (Message, SocketAddr) {
        let lease_seconds = u32::try_from(self.leases.lease_time().as_secs()).unwrap_or(u32::MAX);
        let mut reply = reply::reply_to(request, kind, self.server_ip);
        reply::add_address(&mut reply, ip, lease_seconds, &self.address_info(mac));
        if let Some(boot) = boot {
            reply::add_boot(&mut reply, boot, self.server_ip);
        }
        (reply, reply::destination(request, kind).into())
    }

    fn address_info(&self, mac: &str) -> AddressInfo<'_> {
        AddressInfo {
            netmask: self.config.netmask,
            router: self.config.router,
            dns: &self.config.dns,
            hostname: self.leases.hostname(mac),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DHCPDISCOVER from a PXE client with `extra` raw options before its end option.
    fn discover_with(extra: &[u8]) -> Vec<u8> {
        let mut message = Message::default();
        message
            .set_opcode(Opcode::BootRequest)
            .set_chaddr(&[0x52, 0x54, 0, 0, 0, 2]);
        message
            .opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Discover));
        let mut bytes = message.to_vec().expect("a discover encodes");
        assert_eq!(
            bytes.pop(),
            Some(255),
            "the encoding ends with the end option"
        );
        bytes.extend_from_slice(extra);
        bytes.push(255);
        bytes
    }

    // Found by fuzz/fuzz_targets/dhcp_server.rs: dhcproto's option decoders assert on these
    // lengths, so a debug build of the server panicked on one packet from the network.
    #[test]
    fn options_with_lengths_dhcproto_asserts_on_are_dropped_not_a_panic() {
        for bad in [
            &[153, 1, 0][..],
            &[80, 1, 1],
            &[81, 2, 0, 0],
            &[94, 2, 1, 3],
            &[151, 0],
        ] {
            let request = decode_request(&discover_with(bad))
                .unwrap_or_else(|error| panic!("{bad:?}: {error}"));
            assert_eq!(request.opts().msg_type(), Some(MessageType::Discover));
            assert!(
                request.opts().get(OptionCode::from(bad[0])).is_none(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_packet_that_is_not_dhcp_is_an_error() {
        let mut long_hlen = discover_with(&[]);
        long_hlen[2] = 17;
        assert!(matches!(
            decode_request(&long_hlen),
            Err(MalformedPacket::NotDhcp)
        ));
        // A hostname that claims 9 bytes where 2 are left: a truncated datagram.
        assert!(matches!(
            decode_request(&discover_with(&[12, 9, b'x'])),
            Err(MalformedPacket::NotDhcp)
        ));
    }
}
