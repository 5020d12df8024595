//! The node-facing boot service: DHCP (bootkit-dhcp), TFTP (bootkit-tftp), the HTTP(S) iPXE
//! scripts, artifacts and metadata, and the syslog receiver (bootkit-syslog-receiver), on the
//! store. PLACEHOLDER: being written.

/// Where and how the boot service listens. `None` fields are off.
#[derive(Debug, Clone, Default)]
pub struct BootOptions {}
