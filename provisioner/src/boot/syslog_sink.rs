//! Syslog lines into the store, under the node that sent them.
//!
//! Who sent a line: over TLS with a client certificate the node CA issued and the store holds
//! as active (not revoked, not expired), the certificate's node, whatever its address. Any
//! other line (UDP, plain TCP, TLS without a certificate or with one no longer active) goes
//! by its sender's address, which anyone on the segment can forge, so its stored source is
//! marked: `tink-worker (unauthenticated, udp)`.
//!
//! The receiver must never wait on the database: lines go through a bounded queue to one
//! writer thread (the store is synchronous SQLite) that stores them in batches, one
//! transaction per node and batch. A full queue drops lines and counts them.
//!
//! A node's address is known once device discovery reports it, but the bootkit logs from its
//! first second (the init buffers lines until the network is up): lines from an address no
//! node has yet are held, bounded, and stored under the node when it appears, so the early
//! boot is in the node's logs too (HookOS' logs never leave the machine; ours do).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bootkit_syslog_receiver::{Message, Sink};

use crate::store::{NewLogLine, Store};

/// Lines waiting for the writer; beyond this the receiver drops them.
const QUEUE_LINES: usize = 10_000;
/// A batch is stored when it has this many lines...
const BATCH_LINES: usize = 500;
/// ...or this long after its first line.
const BATCH_WINDOW: Duration = Duration::from_millis(200);
/// How long an address → node answer is trusted: a node may be discovered (or change its
/// address) at any time.
const NODE_CACHE_TTL: Duration = Duration::from_secs(5);
/// Bounds on what is remembered per address, however many senders there are.
const MAX_REMEMBERED_ADDRESSES: usize = 4096;
/// Lines held per address until its node appears; later ones are dropped (counted).
const HELD_LINES_PER_ADDRESS: usize = 2_000;
/// The mark in the stored source of a line attributed by address only.
pub const UNAUTHENTICATED: &str = "unauthenticated";
/// How long held lines wait for their node.
const HELD_FOR: Duration = Duration::from_secs(600);

/// What became of the syslog lines the receiver handed to the store, for the metrics.
#[derive(Debug, Default)]
pub struct SyslogSinkCounters {
    /// Lines stored under their node.
    pub stored: AtomicU64,
    /// Dropped because the writer fell behind.
    pub dropped: AtomicU64,
    /// From addresses of no known node (yet): held for the node, or dropped past the bounds.
    pub unknown_sender: AtomicU64,
    /// Lost because the store failed.
    pub store_failures: AtomicU64,
    /// Lines attributed by a node certificate (over TLS); the rest went by address.
    pub authenticated: AtomicU64,
}

/// The receiver's side: never blocks.
pub struct SyslogSink {
    lines: SyncSender<Message>,
    counters: Arc<SyslogSinkCounters>,
}

impl Sink for SyslogSink {
    fn receive(&self, message: Message) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.lines.try_send(message)
        {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl SyslogSink {
    /// The sink and its writer thread, which stores what is queued and ends once every sink
    /// is dropped.
    pub fn start(
        store: Arc<Store>,
        counters: Arc<SyslogSinkCounters>,
    ) -> std::io::Result<(Arc<SyslogSink>, JoinHandle<()>)> {
        let (lines, queue) = std::sync::mpsc::sync_channel(QUEUE_LINES);
        let mut writer = Writer {
            store,
            counters: Arc::clone(&counters),
            nodes: HashMap::new(),
            certificates: HashMap::new(),
            held: HashMap::new(),
            warned: HashSet::new(),
        };
        let thread = std::thread::Builder::new()
            .name("syslog-writer".to_string())
            .spawn(move || writer.run(&queue))?;
        Ok((Arc::new(SyslogSink { lines, counters }), thread))
    }
}

struct CachedNode {
    node_id: String,
    until: Instant,
}

/// Lines from an address no node has yet.
struct Held {
    lines: Vec<NewLogLine>,
    since: Instant,
}

struct Writer {
    store: Arc<Store>,
    counters: Arc<SyslogSinkCounters>,
    /// Known nodes only: an unknown address is asked again (once per batch), so its node is
    /// found as soon as discovery reports it.
    nodes: HashMap<IpAddr, CachedNode>,
    /// Certificate fingerprint → node, for active credentials only (a revoked one is asked
    /// again, so revocation takes effect within [`NODE_CACHE_TTL`]).
    certificates: HashMap<String, CachedNode>,
    held: HashMap<IpAddr, Held>,
    /// Addresses already reported as unknown, so that a chatty stranger is logged once.
    warned: HashSet<IpAddr>,
}

impl Writer {
    fn run(&mut self, queue: &Receiver<Message>) {
        while let Ok(first) = queue.recv() {
            let (batch, closed) = next_batch(queue, first);
            self.store_batch(batch);
            if closed {
                return;
            }
        }
    }

    fn store_batch(&mut self, batch: Vec<Message>) {
        let now = Instant::now();
        self.held
            .retain(|_, held| now.duration_since(held.since) < HELD_FOR);
        let mut by_node: BTreeMap<String, Vec<NewLogLine>> = BTreeMap::new();
        let mut unknown_in_batch = HashSet::new();
        for message in batch {
            if let Some(node_id) = self.node_by_certificate(&message) {
                self.counters.authenticated.fetch_add(1, Ordering::Relaxed);
                by_node
                    .entry(node_id)
                    .or_default()
                    .push(log_line(message, true));
                continue;
            }
            let peer = message.peer;
            let node = if unknown_in_batch.contains(&peer) {
                None
            } else {
                self.node_at(peer)
            };
            match node {
                Some(node_id) => {
                    let lines = by_node.entry(node_id).or_default();
                    if let Some(held) = self.held.remove(&peer) {
                        lines.extend(held.lines);
                    }
                    lines.push(log_line(message, false));
                }
                None => {
                    unknown_in_batch.insert(peer);
                    self.hold(peer, log_line(message, false));
                }
            }
        }
        for (node_id, lines) in by_node {
            let count = lines.len() as u64;
            match self.store.append_logs(&node_id, &lines) {
                Ok(()) => self.counters.stored.fetch_add(count, Ordering::Relaxed),
                Err(error) => {
                    tracing::error!(%node_id, "storing {count} syslog lines failed: {error}");
                    self.counters
                        .store_failures
                        .fetch_add(count, Ordering::Relaxed)
                }
            };
        }
    }

    /// The node whose active credential the message came with; None without a certificate
    /// or when the certificate is not (or no longer) an active credential here.
    fn node_by_certificate(&mut self, message: &Message) -> Option<String> {
        let certificate = message.client_certificate.as_deref()?;
        let fingerprint = crate::node_ca::sha256_hex(certificate);
        let now = Instant::now();
        if let Some(cached) = self
            .certificates
            .get(&fingerprint)
            .filter(|cached| cached.until > now)
        {
            return Some(cached.node_id.clone());
        }
        let node_id = match self.store.active_credential(&fingerprint) {
            Ok(node_id) => node_id?,
            Err(error) => {
                tracing::error!(%fingerprint, "looking up a syslog client certificate failed: {error}");
                return None;
            }
        };
        if self.certificates.len() >= MAX_REMEMBERED_ADDRESSES {
            self.certificates.retain(|_, cached| cached.until > now);
        }
        if self.certificates.len() < MAX_REMEMBERED_ADDRESSES {
            let until = now + NODE_CACHE_TTL;
            let node_id = node_id.clone();
            self.certificates
                .insert(fingerprint, CachedNode { node_id, until });
        }
        Some(node_id)
    }

    fn node_at(&mut self, peer: IpAddr) -> Option<String> {
        let now = Instant::now();
        if let Some(cached) = self.nodes.get(&peer).filter(|cached| cached.until > now) {
            return Some(cached.node_id.clone());
        }
        let node_id = match self.store.node_by_ip(&peer.to_string()) {
            Ok(node) => node.map(|node| node.id)?,
            Err(error) => {
                tracing::error!(%peer, "finding the node of a syslog sender failed: {error}");
                return None;
            }
        };
        if self.nodes.len() >= MAX_REMEMBERED_ADDRESSES {
            self.nodes.retain(|_, cached| cached.until > now);
        }
        if self.nodes.len() < MAX_REMEMBERED_ADDRESSES {
            let until = now + NODE_CACHE_TTL;
            let node_id = node_id.clone();
            self.nodes.insert(peer, CachedNode { node_id, until });
        }
        Some(node_id)
    }

    /// Keeps a line of an unknown address for its node, within the bounds.
    fn hold(&mut self, peer: IpAddr, line: NewLogLine) {
        self.counters.unknown_sender.fetch_add(1, Ordering::Relaxed);
        if self.held.len() >= MAX_REMEMBERED_ADDRESSES && !self.held.contains_key(&peer) {
            return;
        }
        let held = self.held.entry(peer).or_insert_with(|| Held {
            lines: Vec::new(),
            since: Instant::now(),
        });
        if held.lines.len() < HELD_LINES_PER_ADDRESS {
            held.lines.push(line);
        }
        if self.warned.len() < MAX_REMEMBERED_ADDRESSES && self.warned.insert(peer) {
            tracing::info!(
                %peer,
                "syslog lines from an address no node has yet: held for {} s, then stored under \
                 the node device discovery reports at this address",
                HELD_FOR.as_secs()
            );
        }
    }
}

/// `first` and what follows it within [`BATCH_WINDOW`], up to [`BATCH_LINES`]; and whether
/// the queue is closed.
fn next_batch(queue: &Receiver<Message>, first: Message) -> (Vec<Message>, bool) {
    let deadline = Instant::now() + BATCH_WINDOW;
    let mut batch = vec![first];
    while batch.len() < BATCH_LINES {
        match queue.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(message) => batch.push(message),
            Err(RecvTimeoutError::Timeout) => return (batch, false),
            Err(RecvTimeoutError::Disconnected) => return (batch, true),
        }
    }
    (batch, false)
}

/// The stored line; `authenticated` when a node certificate vouched for the sender, else the
/// source says the line went by address only, and over which transport.
fn log_line(message: Message, authenticated: bool) -> NewLogLine {
    let program = message.app_name.unwrap_or_else(|| "syslog".to_string());
    let source = if authenticated {
        program
    } else {
        format!(
            "{program} ({UNAUTHENTICATED}, {})",
            message.transport.name()
        )
    };
    NewLogLine {
        source,
        severity: message.severity,
        sent_at: message.timestamp,
        text: message.text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootkit_syslog_receiver::Transport;

    fn message(text: &str) -> Message {
        Message {
            peer: IpAddr::from([10, 0, 0, 5]),
            facility: 3,
            severity: 6,
            timestamp: None,
            hostname: None,
            app_name: None,
            proc_id: None,
            msg_id: None,
            text: text.to_string(),
            transport: Transport::Udp,
            client_certificate: None,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking_the_receiver() {
        let (lines, queue) = std::sync::mpsc::sync_channel(1);
        let counters = Arc::new(SyslogSinkCounters::default());
        let sink = SyslogSink {
            lines,
            counters: Arc::clone(&counters),
        };
        sink.receive(message("kept"));
        sink.receive(message("dropped"));
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(queue.try_recv().unwrap().text, "kept");
    }

    #[test]
    fn batches_hold_at_most_batch_lines_and_say_when_the_queue_closed() {
        let (lines, queue) = std::sync::mpsc::sync_channel(BATCH_LINES + 100);
        for number in 0..BATCH_LINES + 100 {
            lines.send(message(&number.to_string())).unwrap();
        }
        drop(lines);
        let first = queue.recv().unwrap();
        let (batch, closed) = next_batch(&queue, first);
        assert_eq!((batch.len(), closed), (BATCH_LINES, false));
        let first = queue.recv().unwrap();
        let (batch, closed) = next_batch(&queue, first);
        assert_eq!((batch.len(), closed), (100, true));
        assert_eq!(batch[99].text, (BATCH_LINES + 99).to_string());
    }

    #[test]
    fn lines_without_an_app_name_are_stored_as_syslog() {
        let line = log_line(message("hello"), true);
        assert_eq!((line.source.as_str(), line.severity), ("syslog", 6));
    }

    #[test]
    fn lines_attributed_by_address_are_marked_with_their_transport() {
        let line = log_line(message("hello"), false);
        assert_eq!(line.source, "syslog (unauthenticated, udp)");
    }
}
