//! Code that both sides of the bootkit need: the builder writes what the init reads.
//!
//! - [`layout`]: the paths and names the builder writes and the init and installer look for.
//! - [`service_def`]: the service definition schema (`/etc/bootkit/services/*.toml`) and the
//!   boot modes.
//! - [`toml_parse`]: TOML into a schema, with errors naming the line, column and key.
//! - [`install_config`]: the install config schema (`install.toml`), which the builder checks
//!   when it makes a USB stick and the installer reads before it touches a disk.
//! - [`compress`]: recognise gzip, zstd and xz streams by their magic bytes and decode them.
//! - [`kmod`]: kernel module names, `modules.dep` / `modules.builtin` indexes and dependency order.
//! - [`bmap`]: bmaptool's block maps (which ranges of a sparse image hold data), read and made.
//! - [`power`]: reboot or power off through the system's own commands.
//! - [`cmdline`]: the kernel command line split into words, as the kernel splits it.
//! - [`mac`]: the Ethernet MAC address type every crate parses and shows MACs with.
//! - [`identity`]: which serials and UUIDs name a machine (OEM placeholders do not), and the
//!   one stored form of a UUID.
//! - [`blockdev`]: disks and partitions from sysfs (transport, serial/WWN, sector sizes), read
//!   one way by the installer, hwinfo and device discovery.
//! - [`size`]: byte counts for people (`59.6 GiB`).
//! - [`error_text`]: an error with all its causes, for messages people read.
//! - [`layered_config`]: settings from flags, the environment, env files and the kernel
//!   command line, each with its origin, and the one boolean spelling rule.
//! - [`net_errors`]: which socket errors a server's receive loop steps over.
//! - [`archive_name`]: the rules a rootfs archive's entry names follow, for the init and
//!   the builder alike.
//! - [`backoff`]: exponential backoff with jitter, the one rule of every retry loop.
//! - [`beneath`]: opening a file confined to a directory (`openat2` with `RESOLVE_BENEATH`).
//! - [`checksum`]: sha256 digests and `sha256sum` files, read with one rule.
//! - [`shown`]: text from outside made safe to show on a terminal or in a log.
//! - [`dhcp_options`]: a DHCP message's options read from its bytes, before dhcproto sees them.
//! - `cli_docs` (feature `cli-docs`): shell completions and man pages from a binary's clap
//!   definition, and the checks that every option has help and every command an example.

pub mod archive_name;
pub mod backoff;
pub mod beneath;
pub mod blockdev;
pub mod bmap;
pub mod checksum;
#[cfg(feature = "cli-docs")]
pub mod cli_docs;
pub mod cmdline;
pub mod compress;
pub mod dhcp_options;
pub mod error_text;
pub mod identity;
pub mod install_config;
pub mod kmod;
pub mod layered_config;
pub mod layout;
pub mod mac;
pub mod net_errors;
pub mod power;
pub mod service_def;
pub mod shown;
pub mod size;
#[cfg(feature = "tls")]
pub mod tls_pin;
pub mod toml_parse;

pub use error_text::error_chain;
