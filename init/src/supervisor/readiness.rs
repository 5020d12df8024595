//! Readiness rules: when a started service counts as ready. Checks are cheap and bounded so
//! the supervisor's loop can poll them between signals.

use std::net::TcpStream;
use std::time::Duration;

use bootkit_common::service_def::ReadyRule;

/// How often pending readiness rules are checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The longest a TCP readiness probe may hold up the supervisor's loop. A local port that is
/// not open yet refuses at once; this only matters for an address that drops packets.
const TCP_PROBE_TIMEOUT: Duration = Duration::from_millis(100);

/// Whether `rule` holds now.
pub fn is_ready(rule: &ReadyRule) -> bool {
    match rule {
        ReadyRule::File(path) => path.symlink_metadata().is_ok(),
        ReadyRule::Tcp(address) => TcpStream::connect_timeout(address, TCP_PROBE_TIMEOUT).is_ok(),
    }
}

/// How a rule reads in log lines.
pub fn describe(rule: &ReadyRule) -> String {
    match rule {
        ReadyRule::File(path) => format!("file {}", path.display()),
        ReadyRule::Tcp(address) => format!("tcp {address}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn file_rule_waits_for_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let rule = ReadyRule::File(dir.path().join("ready"));
        assert!(!is_ready(&rule));
        std::fs::write(dir.path().join("ready"), "").unwrap();
        assert!(is_ready(&rule));
    }

    #[test]
    fn tcp_rule_waits_for_a_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        assert!(is_ready(&ReadyRule::Tcp(address)));
        drop(listener);
        assert!(!is_ready(&ReadyRule::Tcp(address)));
        assert_eq!(describe(&ReadyRule::Tcp(address)), format!("tcp {address}"));
    }
}
