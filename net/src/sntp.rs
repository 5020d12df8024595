//! An SNTP client (RFC 4330, the client mode of RFC 5905): sets the clock from NTP servers
//! before anything checks a TLS certificate, since a wrong RTC makes valid certificates
//! "not yet valid".
//!
//! - [`query`] asks one server once and returns a [`Sample`]: the clock offset and round-trip
//!   delay.
//! - [`sync`] tries a list of servers (from DHCP option 42, `ntp=` or `ipam=`) in order and
//!   returns the first good sample, or the median of a few.
//! - [`step_clock`] applies an offset with `clock_settime(CLOCK_REALTIME)`. It needs
//!   CAP_SYS_TIME; whether and when to step is the caller's decision.
//!
//! Nothing here logs: results and errors go back to the caller (the init), which logs them.

mod packet;

pub use packet::{
    InvalidReply, LeapIndicator, NtpTimestamp, Offset, PACKET_LEN, Reply, encode_request,
    offset_and_delay, parse_reply,
};

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use tokio::net::UdpSocket;

/// The NTP port, used when a server is given without one.
pub const NTP_PORT: u16 = 123;

/// Room for a header with extension fields and a MAC; only the header is read.
const RECEIVE_BUFFER: usize = 1024;

/// One measurement against one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The server's address the query went to.
    pub server: SocketAddr,
    /// What to add to the local clock to match the server's.
    pub offset: Offset,
    /// Network round-trip time, without the server's processing time.
    pub delay: Duration,
    /// The server's stratum: 1 for a reference clock, one more per hop.
    pub stratum: u8,
    /// The server's warning of a leap second at the end of the day.
    pub leap: LeapIndicator,
    /// The server's reference: a source name at stratum 1, the upstream address above.
    pub reference_id: [u8; 4],
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "offset {} from {} (stratum {}, round trip {:.1} ms)",
            self.offset,
            self.server,
            self.stratum,
            self.delay.as_secs_f64() * 1e3
        )
    }
}

/// Why a query to one server failed.
#[derive(Debug, thiserror::Error)]
pub enum SntpError {
    /// The socket failed.
    #[error("NTP query to {server}: cannot {op}")]
    Io {
        /// The server.
        server: SocketAddr,
        /// What failed (`bind`, `send`, `receive`).
        op: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// No reply came in time.
    #[error("NTP query to {server}: no reply within {timeout:?}")]
    Timeout {
        /// The server.
        server: SocketAddr,
        /// The time waited.
        timeout: Duration,
    },
    /// The reply is not usable.
    #[error("NTP query to {server}: reply rejected: {reason}")]
    Invalid {
        /// The server.
        server: SocketAddr,
        /// Why it was rejected.
        reason: InvalidReply,
    },
}

/// Ask `server` for the time once, waiting at most `timeout` for the whole exchange.
pub async fn query(server: SocketAddr, timeout: Duration) -> Result<Sample, SntpError> {
    tokio::time::timeout(timeout, exchange(server))
        .await
        .unwrap_or(Err(SntpError::Timeout { server, timeout }))
}

async fn exchange(server: SocketAddr) -> Result<Sample, SntpError> {
    let io_error = |op| move |source| SntpError::Io { server, op, source };
    let socket = UdpSocket::bind(unspecified_for(server))
        .await
        .map_err(io_error("bind a UDP socket"))?;
    // A connected socket only receives datagrams from the server, and reports an ICMP
    // "port unreachable" as an error instead of leaving us to time out.
    socket
        .connect(server)
        .await
        .map_err(io_error("connect the UDP socket"))?;

    let sent_at = SystemTime::now();
    let started = Instant::now();
    let t1 = NtpTimestamp::from_system_time(sent_at);
    socket
        .send(&encode_request(t1))
        .await
        .map_err(io_error("send the request"))?;
    let mut buffer = [0u8; RECEIVE_BUFFER];
    let len = socket
        .recv(&mut buffer)
        .await
        .map_err(io_error("receive the reply"))?;
    // t4 from the monotonic clock, so that a clock step during the exchange cannot distort
    // the round trip.
    let t4 = NtpTimestamp::from_unix_nanos(
        packet::unix_nanos(sent_at) + started.elapsed().as_nanos() as i128,
    );

    let reply =
        parse_reply(&buffer[..len], t1).map_err(|reason| SntpError::Invalid { server, reason })?;
    Ok(sample(server, &reply, t1, t4))
}

fn unspecified_for(server: SocketAddr) -> SocketAddr {
    let ip = match server {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

fn sample(server: SocketAddr, reply: &Reply, t1: NtpTimestamp, t4: NtpTimestamp) -> Sample {
    let (offset, delay) = offset_and_delay(t1, reply.receive, reply.transmit, t4);
    Sample {
        server,
        offset,
        delay,
        stratum: reply.stratum,
        leap: reply.leap,
        reference_id: reply.reference_id,
    }
}

/// How [`sync`] asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOptions {
    /// The longest wait for one reply, and for resolving one name.
    pub timeout: Duration,
    /// Good samples to collect before choosing the median offset; 1 takes the first good one.
    /// More than one come from the same server when it answers, else from the next ones.
    pub samples: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            timeout: Duration::from_secs(3),
            samples: 1,
        }
    }
}

/// Why one configured server gave no sample.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The text is not an address, host name or `host:port`.
    #[error("not an address, host name or host:port: {reason}")]
    BadAddress {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The name cannot be resolved.
    #[error("cannot resolve the name")]
    Resolve(#[source] io::Error),
    /// Resolving took longer than allowed; carries the limit.
    #[error("resolving the name took longer than {0:?}")]
    ResolveTimeout(Duration),
    /// The name resolves to no IPv4 or IPv6 address.
    #[error("the name resolves to no address")]
    NoAddress,
    /// The query failed.
    #[error(transparent)]
    Query(#[from] SntpError),
}

/// One server's failure, as the operator wrote the server.
#[derive(Debug, thiserror::Error)]
#[error("{server}")]
pub struct ServerFailure {
    /// The server as configured.
    pub server: String,
    /// Why it gave no sample.
    #[source]
    pub error: ServerError,
}

/// Why [`sync`] found no time.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The server list is empty.
    #[error("no NTP servers configured")]
    NoServers,
    /// Every server failed; one entry each, in the configured order.
    #[error("no NTP server gave the time: {}", join(.0))]
    AllFailed(Vec<ServerFailure>),
}

fn join(failures: &[ServerFailure]) -> String {
    failures
        .iter()
        .map(|failure| bootkit_common::error_chain(failure))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Get the time from the first of `servers` that answers well.
///
/// Each server is an IP address (`192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`), an address and
/// port (`192.0.2.1:123`, `[2001:db8::1]:123`), or a host name with an optional port. Names
/// go through `tokio::net::lookup_host`, i.e. glibc's getaddrinfo: in a static binary glibc
/// cannot load its NSS modules, so `files` and `dns` lookups work only partly (or not at
/// all); DHCP and the command line give addresses, which never need a lookup.
///
/// With `options.samples > 1` the median offset of that many good samples is returned.
pub async fn sync<S: AsRef<str>>(
    servers: &[S],
    options: &SyncOptions,
) -> Result<Sample, SyncError> {
    if servers.is_empty() {
        return Err(SyncError::NoServers);
    }
    let wanted = options.samples.max(1);
    let mut samples = Vec::with_capacity(wanted);
    let mut failures = Vec::new();
    'servers: for server in servers.iter().map(AsRef::as_ref) {
        let addresses = match resolve(server, options.timeout).await {
            Ok(addresses) => addresses,
            Err(error) => {
                failures.push(failure(server, error));
                continue;
            }
        };
        for address in addresses {
            while samples.len() < wanted {
                match query(address, options.timeout).await {
                    Ok(sample) => samples.push(sample),
                    Err(error) => {
                        failures.push(failure(server, error.into()));
                        // This address is not answering; try the next one.
                        break;
                    }
                }
            }
            if samples.len() == wanted {
                break 'servers;
            }
        }
    }
    median(samples).ok_or(SyncError::AllFailed(failures))
}

fn failure(server: &str, error: ServerError) -> ServerFailure {
    ServerFailure {
        server: server.to_string(),
        error,
    }
}

/// The sample with the median offset (the lower middle one of an even count).
fn median(mut samples: Vec<Sample>) -> Option<Sample> {
    samples.sort_by_key(|sample| sample.offset);
    let middle = samples.len().checked_sub(1)? / 2;
    Some(samples.swap_remove(middle))
}

/// A server as written: an address that needs no lookup, or a name to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Address(SocketAddr),
    Name(String, u16),
}

fn parse_target(server: &str) -> Result<Target, ServerError> {
    let server = server.trim();
    if server.is_empty() {
        return Err(ServerError::BadAddress { reason: "empty" });
    }
    if let Ok(address) = server.parse::<SocketAddr>() {
        return Ok(Target::Address(address));
    }
    let bare = server
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(server);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(Target::Address(SocketAddr::new(ip, NTP_PORT)));
    }
    let (host, port) = match server.rsplit_once(':') {
        Some((host, port)) => {
            let port = port.parse::<u16>().map_err(|_| ServerError::BadAddress {
                reason: "the port is not a number from 0 to 65535",
            })?;
            (host, port)
        }
        None => (server, NTP_PORT),
    };
    if host.is_empty() || !host.chars().all(is_host_name_char) {
        return Err(ServerError::BadAddress {
            reason: "a host name has only letters, digits, '-', '_' and '.'",
        });
    }
    Ok(Target::Name(host.to_string(), port))
}

fn is_host_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'
}

async fn resolve(server: &str, timeout: Duration) -> Result<Vec<SocketAddr>, ServerError> {
    let (host, port) = match parse_target(server)? {
        Target::Address(address) => return Ok(vec![address]),
        Target::Name(host, port) => (host, port),
    };
    let addresses = tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port)))
        .await
        .map_err(|_| ServerError::ResolveTimeout(timeout))?
        .map_err(ServerError::Resolve)?
        .collect::<Vec<_>>();
    if addresses.is_empty() {
        return Err(ServerError::NoAddress);
    }
    Ok(addresses)
}

/// Why the clock could not be stepped.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// clock_gettime failed.
    #[error("cannot read the clock (clock_gettime)")]
    Read(#[source] io::Error),
    /// The stepped time would not fit in `time_t`; carries the offset.
    #[error("stepping the clock by {0} would leave the range of time_t")]
    OutOfRange(Offset),
    /// clock_settime failed (it needs CAP_SYS_TIME).
    #[error("cannot set the clock (clock_settime, needs CAP_SYS_TIME)")]
    Set(#[source] io::Error),
}

/// Step CLOCK_REALTIME by `offset` (from a [`Sample`] taken moments ago).
///
/// A step, not a slew: at boot the clock may be years off, and services must not start with
/// the wrong time. Needs CAP_SYS_TIME.
pub fn step_clock(offset: Offset) -> Result<(), StepError> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the call's duration.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) } != 0 {
        return Err(StepError::Read(io::Error::last_os_error()));
    }
    let stepped = shifted(now, offset)?;
    // SAFETY: `stepped` is a valid timespec with 0 <= tv_nsec < 1e9.
    if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &stepped) } != 0 {
        return Err(StepError::Set(io::Error::last_os_error()));
    }
    Ok(())
}

/// `now + offset` as a timespec, refusing times before 1970 or beyond time_t.
fn shifted(now: libc::timespec, offset: Offset) -> Result<libc::timespec, StepError> {
    let out_of_range = || StepError::OutOfRange(offset);
    let nanos = i128::from(now.tv_sec) * 1_000_000_000
        + i128::from(now.tv_nsec)
        + i128::from(offset.as_nanos());
    if nanos < 0 {
        return Err(out_of_range());
    }
    let tv_sec = libc::time_t::try_from(nanos / 1_000_000_000).map_err(|_| out_of_range())?;
    let tv_nsec = libc::c_long::try_from(nanos % 1_000_000_000).map_err(|_| out_of_range())?;
    Ok(libc::timespec { tv_sec, tv_nsec })
}

#[cfg(test)]
mod tests;
