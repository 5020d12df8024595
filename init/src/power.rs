//! How the machine ends: power off, reboot or halt.

/// What the user (or a fatal error) asked the machine to do at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Poweroff,
    Reboot,
    Halt,
}
