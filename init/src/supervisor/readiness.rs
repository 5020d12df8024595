//! Readiness rules: when a started service counts as ready. Checks are cheap and bounded so
//! the supervisor's loop can poll them between signals.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
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

/// Where the init says that the built-in target reached with `reached_file` failed: beside
/// it, `.failed` appended, holding the reason.
pub fn target_failed_file(reached_file: &Path) -> PathBuf {
    let mut name = reached_file.as_os_str().to_owned();
    name.push(".failed");
    PathBuf::from(name)
}

/// Why the built-in target whose rule is `rule` failed, once the init has said so.
pub fn target_failure(rule: &ReadyRule) -> Option<String> {
    match rule {
        ReadyRule::File(path) => std::fs::read_to_string(target_failed_file(path))
            .ok()
            .map(|reason| reason.trim().to_string()),
        ReadyRule::Tcp(_) => None,
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
    fn a_target_fails_when_its_failure_file_appears() {
        let dir = tempfile::tempdir().unwrap();
        let rule = ReadyRule::File(dir.path().join("network-online"));
        assert_eq!(target_failure(&rule), None);
        std::fs::write(
            dir.path().join("network-online.failed"),
            "thread network panicked\n",
        )
        .unwrap();
        assert_eq!(
            target_failure(&rule).as_deref(),
            Some("thread network panicked")
        );
        assert!(!is_ready(&rule));
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
