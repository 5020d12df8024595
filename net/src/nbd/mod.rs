//! Network block devices: attaching `/dev/nbdN` to an NBD server, as asked on the kernel
//! command line with `bootkit.nbd=<dev>:<host>:<port>/<export>[:ro]` (repeatable).
//!
//! The work is split the way the protocol is:
//!
//! - [`spec`]: parsing the command-line value into an [`NbdSpec`].
//! - [`handshake`](mod@handshake): the client side of the fixed-newstyle handshake
//!   (`NBD_OPT_GO`, with a fallback to `NBD_OPT_EXPORT_NAME`), over any blocking
//!   `Read + Write` stream, giving an [`ExportInfo`] (size, transmission flags, block sizes).
//! - [`transmission`]: a minimal transmission-phase client (read, disconnect), used to check
//!   the protocol end to end on a host that has no nbd kernel module.
//! - [`attach`]: handing the connected socket to the kernel with the nbd ioctls, and
//!   [`spawn_attachment`], a supervisor thread that reconnects with backoff whenever the
//!   connection drops, reporting [`NbdEvent`]s to the caller (which logs them: this crate
//!   prints nothing).
//!
//! The protocol is the one documented by the NBD project (`doc/proto.md`); the ioctl numbers
//! come from `linux/nbd.h`.

pub mod attach;
pub mod handshake;
#[cfg(test)]
mod scripted;
pub mod spec;
pub mod transmission;

pub use attach::{
    AttachError, AttachOptions, Attachment, KernelPlan, NbdEvent, RECONNECT_BACKOFF,
    spawn_attachment, spawn_attachment_with,
};
pub use handshake::{
    BlockSizes, ExportInfo, HandshakeError, Negotiation, TransmissionFlags, handshake,
};
pub use spec::{KEY, NbdSpec, SpecError};
