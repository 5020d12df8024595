//! Handing a negotiated NBD connection to the kernel, and keeping it attached.
//!
//! The classic ioctl interface of the nbd driver is used (not the netlink family): it is
//! in every kernel with nbd, and it is what `nbd-client` does. Per connection:
//!
//! ```text
//! open /dev/nbdN; NBD_CLEAR_SOCK (stale state); NBD_SET_BLKSIZE; NBD_SET_SIZE_BLOCKS;
//! NBD_SET_FLAGS; BLKROSET (read-only); NBD_SET_TIMEOUT; NBD_SET_SOCK;
//! NBD_DO_IT (in a thread of its own: it blocks until the connection ends);
//! NBD_CLEAR_QUE; NBD_CLEAR_SOCK.
//! ```
//!
//! [`spawn_attachment`] runs that in a supervisor thread that connects, handshakes, attaches
//! and, whenever `NBD_DO_IT` returns (the server went away, a request timed out), starts
//! again after a bounded, jittered backoff, forever. It reports [`NbdEvent`]s to a callback;
//! it prints nothing itself. Requests in flight while the connection is down fail with EIO
//! (the ioctl interface has no dead-connection grace period); requests after the reconnect
//! succeed.

use super::handshake::{ExportInfo, HandshakeError, TransmissionFlags, handshake};
use super::spec::NbdSpec;
use bootkit_common::error_chain;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bootkit_common::backoff::Backoff;

/// `_IO(type, nr)` from `asm-generic/ioctl.h`: no direction and no size bits, so just the
/// type in bits 8..16 and the number in bits 0..8.
const fn io(ty: u32, nr: u32) -> u32 {
    (ty << 8) | nr
}

/// `linux/nbd.h`: `_IO(0xab, 0)`: arg = the socket's file descriptor.
pub const NBD_SET_SOCK: u32 = io(0xab, 0);
/// `_IO(0xab, 1)`: arg = the logical block size in bytes (512..=PAGE_SIZE, a power of two).
pub const NBD_SET_BLKSIZE: u32 = io(0xab, 1);
/// `_IO(0xab, 2)`: arg = the size in bytes (an unsigned long: 32 bits on 32-bit kernels).
pub const NBD_SET_SIZE: u32 = io(0xab, 2);
/// `_IO(0xab, 3)`: runs the device until the connection ends.
pub const NBD_DO_IT: u32 = io(0xab, 3);
/// `_IO(0xab, 4)`: forgets the socket.
pub const NBD_CLEAR_SOCK: u32 = io(0xab, 4);
/// `_IO(0xab, 5)`: fails queued requests (a no-op in current kernels, kept for older ones).
pub const NBD_CLEAR_QUE: u32 = io(0xab, 5);
/// `_IO(0xab, 7)`: arg = the size in blocks of NBD_SET_BLKSIZE bytes.
pub const NBD_SET_SIZE_BLOCKS: u32 = io(0xab, 7);
/// `_IO(0xab, 8)`: sends NBD_CMD_DISC and makes NBD_DO_IT return.
pub const NBD_DISCONNECT: u32 = io(0xab, 8);
/// `_IO(0xab, 9)`: arg = the request timeout in seconds.
pub const NBD_SET_TIMEOUT: u32 = io(0xab, 9);
/// `_IO(0xab, 10)`: arg = the export's transmission flags (read-only, flush, trim, ...).
pub const NBD_SET_FLAGS: u32 = io(0xab, 10);
/// `linux/fs.h`: `_IO(0x12, 93)`: arg = a pointer to an int, nonzero for read-only.
pub const BLKROSET: u32 = io(0x12, 93);

/// The smallest logical block size the kernel's nbd driver accepts through NBD_SET_BLKSIZE,
/// in bytes.
pub const KERNEL_MIN_BLOCK: u32 = 512;
/// The largest logical block size the kernel's nbd driver accepts through NBD_SET_BLKSIZE, in
/// bytes (a page on most machines).
pub const KERNEL_MAX_BLOCK: u32 = 4096;

/// How the supervisor connects and how long it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachOptions {
    /// For each TCP connection attempt.
    pub connect_timeout: Duration,
    /// For each read or write during the handshake (a silent server must not hang the boot).
    pub handshake_timeout: Duration,
    /// NBD_SET_TIMEOUT: a request unanswered this long ends the connection, and the
    /// supervisor reconnects. Whole seconds; zero leaves the kernel's default.
    pub request_timeout: Duration,
    /// The delays before reconnecting after failures in a row.
    pub backoff: Backoff,
}

/// The default reconnect delays: 1 s doubling up to 30 s, each up to a quarter shorter at
/// random so that many clients do not reconnect in step.
pub const RECONNECT_BACKOFF: Backoff =
    Backoff::new(Duration::from_secs(1), Duration::from_secs(30)).with_jitter(25);

impl Default for AttachOptions {
    fn default() -> AttachOptions {
        AttachOptions {
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            backoff: RECONNECT_BACKOFF,
        }
    }
}

/// Why one attempt to attach failed.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The device node does not exist: the nbd module is not loaded, or has fewer devices.
    #[error("{device} does not exist: is the nbd module loaded (modules-load=nbd)?")]
    NoDevice {
        /// The device node, `/dev/nbdN`.
        device: String,
    },
    /// The device node exists but could not be opened read-write.
    #[error("opening {device}")]
    OpenDevice {
        /// The device node, `/dev/nbdN`.
        device: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// The server's host name could not be resolved.
    #[error("resolving NBD server {host}")]
    Resolve {
        /// The host as given in `bootkit.nbd=`.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The server's host name resolved, but to no address.
    #[error("NBD server {host} resolves to no address")]
    NoAddress {
        /// The host as given in `bootkit.nbd=`.
        host: String,
    },
    /// No address of the server accepted a TCP connection; this is the last one tried.
    #[error("connecting to NBD server {addr}")]
    Connect {
        /// The last address tried.
        addr: SocketAddr,
        /// The error connecting to it (a timeout after `connect_timeout`, a refusal, ...).
        source: io::Error,
    },
    /// A socket option could not be set or cleared on the connection.
    #[error("setting up the socket to {addr}: {what}")]
    Socket {
        /// The server's address.
        addr: SocketAddr,
        /// The option, e.g. `TCP_NODELAY` or `keepalive`.
        what: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// The NBD handshake with the server failed.
    #[error("{addr}")]
    Handshake {
        /// The server's address.
        addr: SocketAddr,
        /// What went wrong in the handshake.
        source: HandshakeError,
    },
    /// The server needs blocks larger than [`KERNEL_MAX_BLOCK`].
    #[error(
        "the export needs blocks of at least {minimum} bytes; the kernel's nbd driver takes at most {KERNEL_MAX_BLOCK}"
    )]
    BlockSize {
        /// The server's minimum block size, in bytes.
        minimum: u32,
    },
    /// The export's size in blocks does not fit the kernel's `unsigned long` argument (on a
    /// 32-bit kernel).
    #[error("the export's {size} bytes do not fit this kernel's size argument")]
    TooLarge {
        /// The export's usable size, in bytes.
        size: u64,
    },
    /// An ioctl on the device failed, e.g. `NBD_DO_IT` with `EBUSY` when the device is in use.
    #[error("{device}: {ioctl}")]
    Ioctl {
        /// The device node, `/dev/nbdN`.
        device: String,
        /// The ioctl's name, e.g. `NBD_SET_SOCK`.
        ioctl: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// The thread that runs `NBD_DO_IT` could not be started.
    #[error("starting the NBD_DO_IT thread for {device}")]
    Thread {
        /// The device node, `/dev/nbdN`.
        device: String,
        /// The operating system's error.
        source: io::Error,
    },
}

/// What the supervisor reports; the caller logs it (`Display` gives a log line).
#[derive(Debug)]
pub enum NbdEvent {
    /// The kernel runs the device: it can be opened and read.
    Attached {
        /// The device node, `/dev/nbdN`.
        device: String,
        /// The server's address that was connected to.
        server: SocketAddr,
        /// The export name; empty for the server's default export.
        export: String,
        /// The size the kernel was given, in bytes: whole blocks only.
        size: u64,
        /// Whether the device is read-only (`:ro`, or the server allows no writes).
        read_only: bool,
    },
    /// An attempt failed before the device was running.
    Failed {
        /// The device node, `/dev/nbdN`.
        device: String,
        /// Why the attempt failed.
        error: AttachError,
    },
    /// The running device lost its connection (`error` from NBD_DO_IT, if it gave one).
    Disconnected {
        /// The device node, `/dev/nbdN`.
        device: String,
        /// NBD_DO_IT's error; `None` when it returned without one.
        error: Option<io::Error>,
    },
    /// The next attempt starts after `after`.
    Retrying {
        /// The device node, `/dev/nbdN`.
        device: String,
        /// The backoff delay before the next attempt.
        after: Duration,
        /// Which retry this is: 1 after a failure or a disconnect, counting up while attempts
        /// keep failing.
        attempt: u32,
    },
    /// [`Attachment::stop`] was called; the supervisor has ended.
    Stopped {
        /// The device node, `/dev/nbdN`.
        device: String,
    },
}

impl fmt::Display for NbdEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NbdEvent::Attached {
                device,
                server,
                export,
                size,
                read_only,
            } => {
                let mode = if *read_only {
                    "read-only"
                } else {
                    "read-write"
                };
                write!(
                    f,
                    "{device} attached to export {export:?} on {server}: {size} bytes, {mode}"
                )
            }
            NbdEvent::Failed { device, error } => write!(
                f,
                "{device}: attaching failed: {error}",
                error = error_chain(error)
            ),
            NbdEvent::Disconnected {
                device,
                error: None,
            } => {
                write!(f, "{device} disconnected: the connection ended")
            }
            NbdEvent::Disconnected {
                device,
                error: Some(e),
            } => write!(f, "{device} disconnected: {e}"),
            NbdEvent::Retrying {
                device,
                after,
                attempt,
            } => write!(
                f,
                "{device}: retrying in {:.1}s (attempt {attempt})",
                after.as_secs_f64()
            ),
            NbdEvent::Stopped { device } => write!(f, "{device}: stopped"),
        }
    }
}

/// What the kernel is told about an export: derived from the handshake and the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelPlan {
    /// The logical block size: 512 unless the server needs larger blocks, since a larger
    /// one would change how partition tables on the export are read.
    pub block_size: u32,
    /// The size in blocks; a tail shorter than a block is not reachable.
    pub size_blocks: u64,
    /// The transmission flags for NBD_SET_FLAGS, with READ_ONLY added for `:ro`.
    pub flags: u16,
    /// Whether the device is set read-only (BLKROSET): the spec's `:ro`, or the server allows
    /// no writes.
    pub read_only: bool,
}

/// Works out the kernel's parameters for an export, `read_only` being the spec's `:ro`.
pub fn plan(info: &ExportInfo, read_only: bool) -> Result<KernelPlan, AttachError> {
    let minimum = info.block_sizes.map_or(1, |b| b.minimum);
    // The handshake checked the minimum is a power of two, so this one is too.
    let block_size = minimum.max(KERNEL_MIN_BLOCK);
    if block_size > KERNEL_MAX_BLOCK {
        return Err(AttachError::BlockSize { minimum });
    }
    let read_only = read_only || info.transmission_flags.read_only();
    let mut flags = info.transmission_flags.bits();
    if read_only {
        // The kernel sets the disk read-only from this flag when the device starts, which
        // would otherwise undo BLKROSET for a writable export.
        flags |= TransmissionFlags::HAS_FLAGS | TransmissionFlags::READ_ONLY;
    }
    Ok(KernelPlan {
        block_size,
        size_blocks: info.size / u64::from(block_size),
        flags,
        read_only,
    })
}

/// A running supervisor for one device.
#[derive(Debug)]
pub struct Attachment {
    device: String,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Attachment {
    /// The device node this supervisor attaches, `/dev/nbdN`.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// True once the supervisor has ended (only after [`Attachment::stop`], or a panic in
    /// the caller's event callback).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// The supervisor thread's id, for a caller that must hear of its panic (the init fails
    /// the `nbd` target when that thread dies before the device is attached).
    pub fn thread_id(&self) -> std::thread::ThreadId {
        self.thread.thread().id()
    }

    /// Stops reconnecting, disconnects the device if it is attached, and waits for the
    /// supervisor. An attempt under way finishes first (bounded by the connect and
    /// handshake timeouts).
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.thread().unpark();
        // A panic in the caller's callback already ended the thread; nothing is left to stop.
        let _ = self.thread.join();
    }
}

/// Starts a supervisor thread attaching `spec` with the default [`AttachOptions`].
pub fn spawn_attachment<F>(spec: NbdSpec, events: F) -> io::Result<Attachment>
where
    F: FnMut(NbdEvent) + Send + 'static,
{
    spawn_attachment_with(spec, AttachOptions::default(), events)
}

/// Starts a supervisor thread attaching `spec`; `events` receives every [`NbdEvent`].
pub fn spawn_attachment_with<F>(
    spec: NbdSpec,
    options: AttachOptions,
    mut events: F,
) -> io::Result<Attachment>
where
    F: FnMut(NbdEvent) + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let device = spec.device.clone();
    let thread_stop = Arc::clone(&stop);
    let thread = thread::Builder::new()
        .name(format!("nbd{}", spec.index()))
        .spawn(move || supervise(&spec, &options, &thread_stop, &mut events))?;
    Ok(Attachment {
        device,
        stop,
        thread,
    })
}

fn supervise(
    spec: &NbdSpec,
    options: &AttachOptions,
    stop: &AtomicBool,
    events: &mut dyn FnMut(NbdEvent),
) {
    let mut backoff = options.backoff.delays();
    let mut attempt: u32 = 0;
    let device = || spec.device.clone();
    while !stop.load(Ordering::SeqCst) {
        match attach_once(spec, options, stop, events) {
            Ok(error) => {
                backoff.reset();
                attempt = 0;
                events(NbdEvent::Disconnected {
                    device: device(),
                    error,
                });
            }
            Err(error) => events(NbdEvent::Failed {
                device: device(),
                error,
            }),
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        attempt = attempt.saturating_add(1);
        let after = backoff.next_delay();
        events(NbdEvent::Retrying {
            device: device(),
            after,
            attempt,
        });
        sleep_unless_stopped(after, stop);
    }
    events(NbdEvent::Stopped { device: device() });
}

/// Sleeps `delay`, returning early when [`Attachment::stop`] sets the flag and unparks.
fn sleep_unless_stopped(delay: Duration, stop: &AtomicBool) {
    let deadline = Instant::now() + delay;
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        thread::park_timeout(deadline - now);
    }
}

/// One connection, from opening the device to NBD_DO_IT returning. `Ok` carries NBD_DO_IT's
/// error, if any, once the device had been running.
fn attach_once(
    spec: &NbdSpec,
    options: &AttachOptions,
    stop: &AtomicBool,
    events: &mut dyn FnMut(NbdEvent),
) -> Result<Option<io::Error>, AttachError> {
    // The device first: without the module there is no point in bothering the server.
    let device = Arc::new(open_device(&spec.device)?);
    let (mut stream, addr) = connect(spec, options)?;
    prepare_socket(&stream, addr, options)?;
    let info = handshake(&mut stream, &spec.export)
        .map_err(|source| AttachError::Handshake { addr, source })?;
    release_timeouts(&stream, addr)?;
    let plan = plan(&info, spec.read_only)?;
    configure(&device, &spec.device, stream.as_raw_fd(), &plan, options)?;
    let attached = NbdEvent::Attached {
        device: spec.device.clone(),
        server: addr,
        export: spec.export.clone(),
        size: plan.size_blocks * u64::from(plan.block_size),
        read_only: plan.read_only,
    };
    // The kernel holds its own reference to the socket, but keeping ours open until
    // NBD_DO_IT returns costs nothing and matches what nbd-client does.
    let result = run_device(&device, &spec.device, stop, attached, events);
    drop(stream);
    result
}

fn open_device(device: &str) -> Result<File, AttachError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => AttachError::NoDevice {
                device: device.to_string(),
            },
            _ => AttachError::OpenDevice {
                device: device.to_string(),
                source,
            },
        })
}

/// Connects to the first address of the host that answers.
fn connect(
    spec: &NbdSpec,
    options: &AttachOptions,
) -> Result<(TcpStream, SocketAddr), AttachError> {
    let addrs = (spec.host.as_str(), spec.port)
        .to_socket_addrs()
        .map_err(|source| AttachError::Resolve {
            host: spec.host.clone(),
            source,
        })?;
    let mut last = AttachError::NoAddress {
        host: spec.host.clone(),
    };
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, options.connect_timeout) {
            Ok(stream) => return Ok((stream, addr)),
            Err(source) => last = AttachError::Connect { addr, source },
        }
    }
    Err(last)
}

/// TCP_NODELAY (requests are small and latency-bound), keepalive (a server that vanished
/// without a reset is noticed even when the device is idle), handshake timeouts.
fn prepare_socket(
    stream: &TcpStream,
    addr: SocketAddr,
    options: &AttachOptions,
) -> Result<(), AttachError> {
    let fail = |what| move |source| AttachError::Socket { addr, what, source };
    stream.set_nodelay(true).map_err(fail("TCP_NODELAY"))?;
    set_keepalive(stream).map_err(fail("keepalive"))?;
    let timeout = Some(options.handshake_timeout).filter(|t| !t.is_zero());
    stream
        .set_read_timeout(timeout)
        .map_err(fail("read timeout"))?;
    stream
        .set_write_timeout(timeout)
        .map_err(fail("write timeout"))
}

/// The kernel reads and writes the socket itself, and would take an SO_RCVTIMEO expiry
/// on an idle device for a dead connection: the handshake's timeouts must go.
fn release_timeouts(stream: &TcpStream, addr: SocketAddr) -> Result<(), AttachError> {
    let fail = |source| AttachError::Socket {
        addr,
        what: "clearing the handshake timeouts",
        source,
    };
    stream.set_read_timeout(None).map_err(fail)?;
    stream.set_write_timeout(None).map_err(fail)
}

/// Probes after 30 s idle, every 10 s, 3 times: a dead peer is found in about a minute.
fn set_keepalive(stream: &TcpStream) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 30)?;
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 10)?;
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3)
}

fn setsockopt(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the pointer and length describe a live c_int for the duration of the call.
    let rc = unsafe { libc::setsockopt(fd, level, name, (&raw const value).cast(), len) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The ioctls before NBD_DO_IT, in nbd-client's order.
fn configure(
    dev: &File,
    device: &str,
    sock: RawFd,
    plan: &KernelPlan,
    options: &AttachOptions,
) -> Result<(), AttachError> {
    let call = |ioctl: &'static str, request: u32, arg: libc::c_ulong| {
        nbd_ioctl(dev, request, arg).map_err(|source| AttachError::Ioctl {
            device: device.to_string(),
            ioctl,
            source,
        })
    };
    // A socket left by a session that died (a crashed init) would make NBD_SET_SOCK fail
    // with EBUSY; with nothing to clear, the call fails harmlessly.
    let _ = nbd_ioctl(dev, NBD_CLEAR_SOCK, 0);
    let size_blocks =
        libc::c_ulong::try_from(plan.size_blocks).map_err(|_| AttachError::TooLarge {
            size: plan.size_blocks * u64::from(plan.block_size),
        })?;
    call("NBD_SET_BLKSIZE", NBD_SET_BLKSIZE, plan.block_size.into())?;
    call("NBD_SET_SIZE_BLOCKS", NBD_SET_SIZE_BLOCKS, size_blocks)?;
    call("NBD_SET_FLAGS", NBD_SET_FLAGS, plan.flags.into())?;
    if plan.read_only {
        set_read_only(dev).map_err(|source| AttachError::Ioctl {
            device: device.to_string(),
            ioctl: "BLKROSET",
            source,
        })?;
    }
    let timeout =
        libc::c_ulong::try_from(options.request_timeout.as_secs()).unwrap_or(libc::c_ulong::MAX);
    if timeout > 0 {
        call("NBD_SET_TIMEOUT", NBD_SET_TIMEOUT, timeout)?;
    }
    let sock = libc::c_ulong::try_from(sock).map_err(|_| AttachError::Ioctl {
        device: device.to_string(),
        ioctl: "NBD_SET_SOCK",
        source: io::Error::from_raw_os_error(libc::EBADF),
    })?;
    call("NBD_SET_SOCK", NBD_SET_SOCK, sock)
}

/// How often the supervisor looks at the running device (started yet? stop asked?).
const POLL: Duration = Duration::from_millis(100);
/// Announce the device after this long even if sysfs does not show it running (no /sys).
const ANNOUNCE_AFTER: Duration = Duration::from_secs(2);

/// Runs NBD_DO_IT in a thread of its own, announces the device once the kernel runs it,
/// forwards a stop request as NBD_DISCONNECT, and cleans up when NBD_DO_IT returns.
fn run_device(
    dev: &Arc<File>,
    device: &str,
    stop: &AtomicBool,
    attached: NbdEvent,
    events: &mut dyn FnMut(NbdEvent),
) -> Result<Option<io::Error>, AttachError> {
    let (done_tx, done) = mpsc::channel();
    let do_it_dev = Arc::clone(dev);
    thread::Builder::new()
        .name(format!("{}-do-it", device.trim_start_matches("/dev/")))
        .spawn(move || {
            let _ = done_tx.send(nbd_ioctl(&do_it_dev, NBD_DO_IT, 0));
        })
        .map_err(|source| {
            // The socket is set but will never run: free the device for the next attempt.
            let _ = nbd_ioctl(dev, NBD_CLEAR_SOCK, 0);
            AttachError::Thread {
                device: device.to_string(),
                source,
            }
        })?;
    let started = Instant::now();
    let mut attached = Some(attached);
    let mut disconnecting = false;
    let result = loop {
        match done.recv_timeout(POLL) {
            Ok(result) => break result,
            // The thread sends before it ends; losing it means NBD_DO_IT is over.
            Err(RecvTimeoutError::Disconnected) => break Ok(()),
            Err(RecvTimeoutError::Timeout) => {}
        }
        let due = |_: &mut NbdEvent| kernel_running(device) || started.elapsed() >= ANNOUNCE_AFTER;
        if let Some(event) = attached.take_if(due) {
            events(event);
        }
        if stop.load(Ordering::SeqCst) && !disconnecting {
            disconnecting = true;
            let _ = nbd_ioctl(dev, NBD_DISCONNECT, 0);
        }
    };
    // Fails queued requests on old kernels, and frees the device for the next NBD_SET_SOCK;
    // there is nothing useful to do if either fails.
    let _ = nbd_ioctl(dev, NBD_CLEAR_QUE, 0);
    let _ = nbd_ioctl(dev, NBD_CLEAR_SOCK, 0);
    match (attached, result) {
        // Never ran: NBD_DO_IT itself was refused (EBUSY: the device is in use elsewhere).
        (Some(_), Err(source)) => Err(AttachError::Ioctl {
            device: device.to_string(),
            ioctl: "NBD_DO_IT",
            source,
        }),
        (_, result) => Ok(result.err()),
    }
}

/// The kernel creates /sys/block/nbdN/pid when NBD_DO_IT has started the device.
fn kernel_running(device: &str) -> bool {
    let name = device.trim_start_matches("/dev/");
    Path::new("/sys/block").join(name).join("pid").exists()
}

fn nbd_ioctl(dev: &File, request: u32, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the nbd ioctls used here take an integer argument (or none), never a pointer.
    let rc = unsafe { libc::ioctl(dev.as_raw_fd(), request as libc::Ioctl, arg) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn set_read_only(dev: &File) -> io::Result<()> {
    let read_only: libc::c_int = 1;
    // SAFETY: BLKROSET reads one int through the pointer, which is live for the call.
    let rc = unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            BLKROSET as libc::Ioctl,
            &raw const read_only,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nbd::handshake::{BlockSizes, Negotiation};

    fn info(size: u64, flags: u16, minimum: Option<u32>) -> ExportInfo {
        ExportInfo {
            size,
            transmission_flags: TransmissionFlags(flags),
            block_sizes: minimum.map(|minimum| BlockSizes {
                minimum,
                preferred: minimum.max(4096),
                maximum: 32 << 20,
            }),
            negotiation: Negotiation::Go,
        }
    }

    #[test]
    fn ioctl_numbers_match_linux_nbd_h() {
        assert_eq!(NBD_SET_SOCK, 0xab00);
        assert_eq!(NBD_SET_BLKSIZE, 0xab01);
        assert_eq!(NBD_SET_SIZE, 0xab02);
        assert_eq!(NBD_DO_IT, 0xab03);
        assert_eq!(NBD_CLEAR_SOCK, 0xab04);
        assert_eq!(NBD_CLEAR_QUE, 0xab05);
        assert_eq!(NBD_SET_SIZE_BLOCKS, 0xab07);
        assert_eq!(NBD_DISCONNECT, 0xab08);
        assert_eq!(NBD_SET_TIMEOUT, 0xab09);
        assert_eq!(NBD_SET_FLAGS, 0xab0a);
        assert_eq!(BLKROSET, 0x125d);
    }

    #[test]
    fn plan_defaults_to_512_byte_blocks() {
        let p = plan(&info(1 << 20, 1, None), false).unwrap();
        assert_eq!(
            p,
            KernelPlan {
                block_size: 512,
                size_blocks: 2048,
                flags: 1,
                read_only: false
            }
        );
        // A preferred size of 4096 does not change the logical block size.
        assert_eq!(
            plan(&info(1 << 20, 1, Some(1)), false).unwrap().block_size,
            512
        );
    }

    #[test]
    fn plan_honours_a_larger_minimum() {
        let p = plan(&info(10_000, 1, Some(4096)), false).unwrap();
        assert_eq!((p.block_size, p.size_blocks), (4096, 2));
        let err = plan(&info(1 << 20, 1, Some(8192)), false).unwrap_err();
        assert!(err.to_string().contains("at least 8192 bytes"), "{err}");
    }

    #[test]
    fn plan_read_only_from_spec_or_server() {
        let p = plan(&info(512, 1, None), true).unwrap();
        assert!(p.read_only);
        assert_eq!(
            p.flags,
            TransmissionFlags::HAS_FLAGS | TransmissionFlags::READ_ONLY
        );
        let p = plan(&info(512, 1 | TransmissionFlags::READ_ONLY, None), false).unwrap();
        assert!(p.read_only);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8))
            .with_jitter(RECONNECT_BACKOFF.jitter_percent())
            .delays();
        let delays: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        let bases = [1, 2, 4, 8, 8, 8];
        for (delay, base) in delays.iter().zip(bases) {
            let base = Duration::from_secs(base);
            assert!(
                *delay <= base && *delay >= base.mul_f64(0.75),
                "{delay:?} vs {base:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
        // An initial delay above the maximum is capped.
        let mut b = Backoff::new(Duration::from_secs(60), Duration::from_secs(5)).delays();
        assert!(b.next_delay() <= Duration::from_secs(5));
    }

    #[test]
    fn events_read_as_log_lines() {
        let e = NbdEvent::Retrying {
            device: "/dev/nbd0".into(),
            after: Duration::from_millis(1500),
            attempt: 2,
        };
        assert_eq!(e.to_string(), "/dev/nbd0: retrying in 1.5s (attempt 2)");
        let e = NbdEvent::Failed {
            device: "/dev/nbd3".into(),
            error: AttachError::NoDevice {
                device: "/dev/nbd3".into(),
            },
        };
        assert!(e.to_string().contains("modules-load=nbd"), "{e}");
    }

    #[test]
    fn a_missing_device_fails_and_retries_until_stopped() {
        let spec = NbdSpec::parse("nbd4000:127.0.0.1:9/disk").unwrap();
        let options = AttachOptions {
            backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(20)),
            ..AttachOptions::default()
        };
        let (tx, rx) = mpsc::channel();
        let attachment = spawn_attachment_with(spec, options, move |e| {
            let _ = tx.send(e);
        })
        .unwrap();
        assert_eq!(attachment.device(), "/dev/nbd4000");
        let mut seen = Vec::new();
        while seen.len() < 6 {
            seen.push(rx.recv_timeout(Duration::from_secs(10)).unwrap());
        }
        attachment.stop();
        let rest: Vec<NbdEvent> = rx.iter().collect();
        assert!(matches!(
            seen[0],
            NbdEvent::Failed {
                error: AttachError::NoDevice { .. },
                ..
            }
        ));
        assert!(matches!(seen[1], NbdEvent::Retrying { attempt: 1, .. }));
        assert!(matches!(seen[3], NbdEvent::Retrying { attempt: 2, .. }));
        assert!(
            matches!(rest.last(), Some(NbdEvent::Stopped { .. })),
            "{rest:?}"
        );
    }
}
