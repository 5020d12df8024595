//! One read transfer on its own UDP socket (the server's TID, RFC 1350 §4): option
//! acknowledgement, then windows of DATA blocks (RFC 7440), each retransmitted on a bounded
//! backoff until acknowledged.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, BufReader};
use tokio::net::UdpSocket;

use crate::Counters;
use crate::options::{Negotiated, negotiate};
use crate::packet::{self, ErrorCode, Reply, Request};
use crate::root::{Refusal, Served};

/// Sends of one packet (or window) before the transfer is given up.
pub const MAX_SENDS: u32 = 5;
/// The first retransmission timeout when the client set none; it doubles on each retry.
pub const INITIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Large enough for any reply a client sends (ACK, ERROR with a message).
const REPLY_BUFFER: usize = 1024;
/// File bytes read ahead per transfer: 22 blocks of 1468, bounded memory per transfer.
const FILE_BUFFER: usize = 32 * 1024;

/// How a transfer ended, for the counters and the log.
#[derive(Debug)]
enum Ending {
    /// The client acknowledged the last block.
    Completed,
    /// The client sent an ERROR (OVMF does after learning tsize).
    AbortedByClient {
        code: u16,
        message: String,
    },
    TimedOut,
    Io(io::Error),
}

/// Handles one RRQ or WRQ received on the listening socket: answers from a fresh socket and
/// updates the counters. Never panics on what the client sent.
pub async fn handle(
    local_ip: IpAddr,
    peer: SocketAddr,
    request: Vec<u8>,
    served: Arc<Served>,
    listening: Arc<UdpSocket>,
    counters: Arc<Counters>,
) {
    let socket = match open_socket(local_ip, peer).await {
        Ok(socket) => socket,
        Err(error) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(client = %peer, %error, "TFTP: cannot open a socket for the transfer (out of descriptors?); asking the client to retry");
            // From the listening port, which needs no new descriptor: the client is told to
            // retry instead of waiting for a timeout.
            let busy = packet::error(ErrorCode::NotDefined, "server busy, try again");
            let _ = listening.send_to(&busy, peer).await;
            return;
        }
    };
    let accepted = packet::parse_request(&request)
        .map_err(|malformed| {
            Refusal::new(
                ErrorCode::IllegalOperation,
                format!("malformed request: {malformed}"),
            )
        })
        .and_then(|request| accept(request, &served));
    match accepted {
        Ok((request, file, size)) => {
            let transfer = Transfer {
                socket,
                peer,
                counters: &counters,
            };
            transfer.run(request, file, size).await;
        }
        Err(refusal) => {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            tracing::info!(client = %peer, reason = %refusal.reason, "TFTP request refused");
            let _ = socket
                .send(&packet::error(refusal.code, &refusal.reason))
                .await;
        }
    }
}

async fn open_socket(local_ip: IpAddr, peer: SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddr::new(local_ip, 0)).await?;
    // Connected: the kernel drops datagrams from any other address or port (another TID).
    socket.connect(peer).await?;
    Ok(socket)
}

/// Refuses writes, modes other than octet, and files outside the root or not regular.
fn accept(request: Request, served: &Served) -> Result<(Request, File, u64), Refusal> {
    if request.write {
        return Err(Refusal::new(ErrorCode::AccessViolation, "read-only server"));
    }
    if request.mode != "octet" {
        // netascii would rewrite line ends of text files; every PXE client fetches binaries.
        return Err(Refusal::new(
            ErrorCode::NotDefined,
            "only octet mode is served",
        ));
    }
    let (file, size) = served.open(&request.filename).map_err(|refusal| {
        Refusal::new(
            refusal.code,
            format!("{}: {}", request.filename, refusal.reason),
        )
    })?;
    Ok((request, file, size))
}

/// A block sent and not yet acknowledged.
struct Block {
    number: u16,
    packet: Vec<u8>,
    payload_len: usize,
    last: bool,
}

struct Transfer<'a> {
    socket: UdpSocket,
    peer: SocketAddr,
    counters: &'a Counters,
}

impl Transfer<'_> {
    async fn run(&self, request: Request, file: File, size: u64) {
        let started = Instant::now();
        let negotiated = negotiate(&request.options, size);
        let mut delivered = 0u64;
        let ending = match self.acknowledge_options(&negotiated).await {
            Ok(()) => self.send_file(file, &negotiated, &mut delivered).await,
            Err(ending) => ending,
        };
        self.counters
            .bytes_sent
            .fetch_add(delivered, Ordering::Relaxed);
        let client = self.peer;
        let file = request.filename.as_str();
        let duration_ms = started.elapsed().as_millis();
        match ending {
            Ending::Completed => {
                self.counters.completed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%client, file, bytes = delivered, duration_ms, "TFTP transfer completed");
            }
            Ending::AbortedByClient { code, message } => {
                self.counters.aborted.fetch_add(1, Ordering::Relaxed);
                if negotiated.tsize_requested && delivered == 0 {
                    // UEFI PXE asks for tsize, then aborts to size its buffer: not a failure.
                    tracing::debug!(%client, file, code, message, "TFTP size probe ended by the client");
                } else {
                    tracing::info!(%client, file, bytes = delivered, code, message, "TFTP transfer aborted by the client");
                }
            }
            Ending::TimedOut => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%client, file, bytes = delivered, duration_ms, "TFTP transfer given up: the client stopped acknowledging");
                let _ = self
                    .socket
                    .send(&packet::error(ErrorCode::NotDefined, "timed out"))
                    .await;
            }
            Ending::Io(error) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%client, file, bytes = delivered, %error, "TFTP transfer failed");
                let _ = self
                    .socket
                    .send(&packet::error(ErrorCode::NotDefined, "server I/O error"))
                    .await;
            }
        }
    }

    /// Sends the OACK, if any option was accepted, and waits for its ACK (block 0).
    async fn acknowledge_options(&self, negotiated: &Negotiated) -> Result<(), Ending> {
        if negotiated.acknowledged.is_empty() {
            return Ok(());
        }
        let oack = [packet::oack(&negotiated.acknowledged)];
        self.exchange(&oack, negotiated.timeout, |ack| (ack == 0).then_some(()))
            .await
    }

    async fn send_file(&self, file: File, negotiated: &Negotiated, delivered: &mut u64) -> Ending {
        // Each read of a tokio file is a trip to the blocking pool: read many blocks per trip.
        let mut file = BufReader::with_capacity(FILE_BUFFER, tokio::fs::File::from_std(file));
        let mut window: VecDeque<Block> = VecDeque::new();
        let mut next_block: u64 = 1;
        let mut read_all = false;
        loop {
            while !read_all && window.len() < usize::from(negotiated.windowsize) {
                let block = match read_block(&mut file, next_block, negotiated.blksize).await {
                    Ok(block) => block,
                    Err(error) => return Ending::Io(error),
                };
                read_all = block.last;
                next_block += 1;
                window.push_back(block);
            }
            if window.is_empty() {
                return Ending::Completed;
            }
            let packets: Vec<&[u8]> = window.iter().map(|block| block.packet.as_slice()).collect();
            // An ACK for any block in the window moves it on; earlier (duplicate) ACKs are
            // ignored, which avoids the Sorcerer's Apprentice resend storm (RFC 1123 §4.2.3.1).
            let acknowledged = self
                .exchange(&packets, negotiated.timeout, |ack| {
                    window.iter().position(|block| block.number == ack)
                })
                .await;
            let index = match acknowledged {
                Ok(index) => index,
                Err(ending) => return ending,
            };
            for block in window.drain(..=index) {
                *delivered += block.payload_len as u64;
            }
        }
    }

    /// Sends `packets` and waits for an ACK that `accept` takes, resending on each timeout.
    async fn exchange<T, P: AsRef<[u8]>>(
        &self,
        packets: &[P],
        timeout: Option<Duration>,
        accept: impl Fn(u16) -> Option<T>,
    ) -> Result<T, Ending> {
        let mut wait = timeout.unwrap_or(INITIAL_TIMEOUT);
        for send in 0..MAX_SENDS {
            if send > 0 {
                self.counters.retransmitted.fetch_add(1, Ordering::Relaxed);
            }
            for packet in packets {
                self.socket
                    .send(packet.as_ref())
                    .await
                    .map_err(Ending::Io)?;
            }
            let deadline = tokio::time::Instant::now() + wait;
            if let Some(accepted) = self.await_reply(deadline, &accept).await? {
                return Ok(accepted);
            }
            if timeout.is_none() {
                wait *= 2;
            }
        }
        Err(Ending::TimedOut)
    }

    /// Reads replies until one is accepted (`Some`) or the deadline passes (`None`).
    async fn await_reply<T>(
        &self,
        deadline: tokio::time::Instant,
        accept: &impl Fn(u16) -> Option<T>,
    ) -> Result<Option<T>, Ending> {
        let mut buffer = [0u8; REPLY_BUFFER];
        loop {
            let received =
                match tokio::time::timeout_at(deadline, self.socket.recv(&mut buffer)).await {
                    Err(_elapsed) => return Ok(None),
                    Ok(received) => received.map_err(Ending::Io)?,
                };
            match packet::parse_reply(&buffer[..received]) {
                Ok(Reply::Ack(number)) => {
                    if let Some(accepted) = accept(number) {
                        return Ok(Some(accepted));
                    }
                }
                Ok(Reply::Error { code, message }) => {
                    return Err(Ending::AbortedByClient { code, message });
                }
                Err(malformed) => {
                    tracing::debug!(client = %self.peer, %malformed, "TFTP: ignoring a malformed reply");
                }
            }
        }
    }
}

/// Reads block `number` (1-based); a block shorter than `blksize`, possibly empty, is the last.
async fn read_block(
    file: &mut BufReader<tokio::fs::File>,
    number: u64,
    blksize: u16,
) -> io::Result<Block> {
    let blksize = usize::from(blksize);
    let mut payload = vec![0u8; blksize];
    let mut filled = 0;
    while filled < blksize {
        let read = file.read(&mut payload[filled..]).await?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    payload.truncate(filled);
    // Block numbers roll over from 65535 to 0, as tftp-hpa and iPXE expect.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the remainder is below 65,536"
    )]
    let wire_number = (number % 65_536) as u16;
    Ok(Block {
        number: wire_number,
        packet: packet::data(wire_number, &payload),
        payload_len: filled,
        last: filled < blksize,
    })
}
