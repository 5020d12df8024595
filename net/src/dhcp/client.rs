//! The tokio driver: runs a [`Machine`] on a real socket with real time.
//!
//! The client only talks DHCP; the caller applies what it learns (addresses, routes, DNS)
//! from [`LeaseEvent`]s. It must do so before the lease's renewal time, because RENEWING
//! sends its REQUEST unicast from the leased address.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use dhcproto::v4::{Encodable, MIN_PACKET_SIZE, SERVER_PORT};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::machine::{Action, Config, Destination, LossReason, Machine, State};
use super::socket;
use crate::lease::Lease;

/// What goes wrong talking DHCP.
#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    /// The DHCP socket cannot be opened or bound to the interface.
    #[error("DHCP socket on {interface}")]
    Socket {
        /// The interface the client runs on.
        interface: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A message cannot be sent.
    #[error("sending DHCP message on {interface}")]
    Send {
        /// The interface the client runs on.
        interface: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Receiving failed.
    #[error("receiving DHCP message on {interface}")]
    Receive {
        /// The interface the client runs on.
        interface: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A message cannot be encoded (a bug, or an option too long).
    #[error("encoding DHCP message")]
    Encode(#[from] dhcproto::error::EncodeError),
    /// No lease came within the time allowed.
    #[error("no DHCP lease on {interface} within {timeout:?}")]
    Timeout {
        /// The interface the client runs on.
        interface: String,
        /// The time allowed.
        timeout: Duration,
    },
}

/// What [`run`] tells its caller. Each variant is worth one log line: states are reported
/// when they change, not on every retransmission, and an error only when it differs from the
/// previous one.
#[derive(Debug)]
pub enum LeaseEvent {
    /// The client entered a new state.
    State {
        /// The interface the client runs on.
        interface: String,
        /// The new state.
        state: State,
    },
    /// Configure this lease on its interface.
    Acquired(Lease),
    /// Same address, new timers or options: re-apply.
    Renewed(Lease),
    /// Remove this lease's address and routes; a new DISCOVER is under way.
    Lost {
        /// The lease that is gone.
        lease: Lease,
        /// Why it is gone.
        reason: LossReason,
    },
    /// A transient failure; the client keeps trying.
    Error {
        /// The interface the client runs on.
        interface: String,
        /// What failed.
        error: DhcpError,
    },
}

/// Runs the client on `config.interface` for as long as anyone listens: it returns only when
/// `events`' receiver is dropped (or when the task is aborted). Network errors never end it:
/// the socket is reopened with backoff (the interface may not exist yet or may be renamed)
/// and sends are retried by the state machine's own retransmissions.
pub async fn run(config: Config, events: mpsc::Sender<LeaseEvent>) {
    let interface = config.interface.clone();
    let first = config
        .timing
        .first_retransmit
        .max(Duration::from_millis(100));
    let cap = config.timing.max_retransmit.max(first);
    let mut machine = Machine::new(config);
    let start = Instant::now();
    let mut reporter = Reporter {
        interface: interface.clone(),
        events,
        last_state: None,
        last_error: None,
    };
    let mut buf = vec![0u8; 4096];
    let mut retry = first;
    let mut started = false;
    loop {
        let socket = match socket::open(&interface) {
            Ok(socket) => socket,
            Err(source) => {
                let error = DhcpError::Socket {
                    interface: interface.clone(),
                    source,
                };
                if !reporter.error(error).await {
                    return;
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(cap);
                continue;
            }
        };
        let mut actions = if started {
            Vec::new()
        } else {
            started = true;
            machine.start(start.elapsed())
        };
        loop {
            for action in actions.drain(..) {
                let event = match action {
                    Action::Send { message, to } => {
                        let Err(error) = send(&socket, &interface, &message, to).await else {
                            continue;
                        };
                        if !reporter.error(error).await {
                            return;
                        }
                        continue;
                    }
                    Action::Acquired(lease) => LeaseEvent::Acquired(lease),
                    Action::Renewed(lease) => LeaseEvent::Renewed(lease),
                    Action::Lost { lease, reason } => LeaseEvent::Lost { lease, reason },
                };
                reporter.last_error = None;
                if !reporter.emit(event).await {
                    return;
                }
            }
            if !reporter.state(machine.state()).await {
                return;
            }
            match next_actions(&socket, &mut machine, start, &mut buf).await {
                Ok(next) => {
                    retry = first;
                    actions = next;
                }
                Err(source) => {
                    let error = DhcpError::Receive {
                        interface: interface.clone(),
                        source,
                    };
                    if !reporter.error(error).await {
                        return;
                    }
                    break;
                }
            }
        }
        // The socket failed: wait, then reopen it; the machine keeps its state and timers.
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(cap);
    }
}

/// Acquires one lease and stops: for tests and one-shot tools. Any error ends it, unlike
/// [`run`].
pub async fn acquire_once(config: Config, timeout: Duration) -> Result<Lease, DhcpError> {
    let interface = config.interface.clone();
    let attempt = async {
        let socket = socket::open(&interface).map_err(|source| DhcpError::Socket {
            interface: interface.clone(),
            source,
        })?;
        let mut machine = Machine::new(config);
        let start = Instant::now();
        let mut buf = vec![0u8; 4096];
        let mut actions = machine.start(start.elapsed());
        loop {
            for action in actions.drain(..) {
                match action {
                    Action::Send { message, to } => {
                        send(&socket, &interface, &message, to).await?;
                    }
                    Action::Acquired(lease) => return Ok(lease),
                    Action::Renewed(_) | Action::Lost { .. } => {}
                }
            }
            actions = next_actions(&socket, &mut machine, start, &mut buf)
                .await
                .map_err(|source| DhcpError::Receive {
                    interface: interface.clone(),
                    source,
                })?;
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(DhcpError::Timeout {
                interface: interface.clone(),
                timeout,
            })
        })
}

enum Input {
    Packet(usize),
    Timeout,
}

/// Waits for a datagram or the machine's next deadline, and feeds it to the machine.
async fn next_actions(
    socket: &UdpSocket,
    machine: &mut Machine,
    start: Instant,
    buf: &mut [u8],
) -> io::Result<Vec<Action>> {
    let input = match machine.wake_at() {
        Some(at) => {
            tokio::select! {
                received = socket.recv_from(buf) => Input::Packet(received?.0),
                () = tokio::time::sleep_until(start + at) => Input::Timeout,
            }
        }
        None => Input::Packet(socket.recv_from(buf).await?.0),
    };
    let now = start.elapsed();
    Ok(match input {
        Input::Packet(len) => machine.on_bytes(buf.get(..len).unwrap_or_default(), now),
        Input::Timeout => machine.on_timeout(now),
    })
}

async fn send(
    socket: &UdpSocket,
    interface: &str,
    message: &dhcproto::v4::Message,
    to: Destination,
) -> Result<(), DhcpError> {
    let mut bytes = message.to_vec()?;
    // RFC 1542 §2.1: BOOTP messages are at least 300 bytes; some relays and servers drop
    // shorter ones. Zero bytes after the End option are Pad.
    if bytes.len() < MIN_PACKET_SIZE {
        bytes.resize(MIN_PACKET_SIZE, 0);
    }
    let ip = match to {
        Destination::Broadcast => Ipv4Addr::BROADCAST,
        Destination::Unicast(ip) => ip,
    };
    socket
        .send_to(&bytes, SocketAddrV4::new(ip, SERVER_PORT))
        .await
        .map(|_| ())
        .map_err(|source| DhcpError::Send {
            interface: interface.to_string(),
            source,
        })
}

/// Sends events, dropping repeats: the "log each state change once" rule.
struct Reporter {
    interface: String,
    events: mpsc::Sender<LeaseEvent>,
    last_state: Option<State>,
    last_error: Option<String>,
}

impl Reporter {
    /// False when nobody listens any more.
    async fn emit(&mut self, event: LeaseEvent) -> bool {
        self.events.send(event).await.is_ok()
    }

    async fn state(&mut self, state: State) -> bool {
        if self.last_state == Some(state) {
            return true;
        }
        self.last_state = Some(state);
        let interface = self.interface.clone();
        self.emit(LeaseEvent::State { interface, state }).await
    }

    async fn error(&mut self, error: DhcpError) -> bool {
        let text = error.to_string();
        if self.last_error.as_deref() == Some(text.as_str()) {
            return true;
        }
        self.last_error = Some(text);
        let interface = self.interface.clone();
        self.emit(LeaseEvent::Error { interface, error }).await
    }
}
