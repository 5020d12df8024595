//! Code that both sides of the bootkit need: the builder writes what the init reads.
//!
//! - [`compress`]: recognise gzip, zstd and xz streams by their magic bytes and decode them.
//! - [`kmod`]: kernel module names, `modules.dep` / `modules.builtin` indexes and dependency order.
//! - [`bmap`]: bmaptool's block maps (which ranges of a sparse image hold data), read and made.
//! - [`power`]: reboot or power off through the system's own commands.
//! - [`cmdline`]: the kernel command line split into words, as the kernel splits it.
//! - [`mac`]: the Ethernet MAC address type every crate parses and shows MACs with.
//! - [`net_errors`]: which socket errors a server's receive loop steps over.
//! - [`backoff`]: exponential backoff with jitter, the one rule of every retry loop.
//! - [`checksum`]: sha256 digests and `sha256sum` files, read with one rule.

pub mod backoff;
pub mod bmap;
pub mod checksum;
pub mod cmdline;
pub mod compress;
pub mod kmod;
pub mod mac;
pub mod net_errors;
pub mod power;
