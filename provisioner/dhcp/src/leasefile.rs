//! Bound leases on disk, one `mac ip expires-unix-seconds` line each. A tiny text format
//! of our own: nothing else reads it, and a crate for it would weigh more than these lines.

use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::warn;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredLease {
    pub mac: String,
    pub ip: Ipv4Addr,
    pub expires: SystemTime,
}

/// Reads the leases; a missing file is no leases, a garbled line is skipped with a warning.
pub(crate) fn load(path: &Path) -> io::Result<Vec<StoredLease>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let leases = text
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let lease = parse_line(line);
            if lease.is_none() {
                warn!(path = %path.display(), %line, "skipping a garbled line in the DHCP lease file");
            }
            lease
        })
        .collect();
    Ok(leases)
}

fn parse_line(line: &str) -> Option<StoredLease> {
    let mut fields = line.split_whitespace();
    let mac = fields.next()?.to_owned();
    let ip = fields.next()?.parse().ok()?;
    let expires = UNIX_EPOCH + Duration::from_secs(fields.next()?.parse().ok()?);
    fields
        .next()
        .is_none()
        .then_some(StoredLease { mac, ip, expires })
}

/// Replaces the file atomically (temp file in the same directory, then rename), so a crash
/// mid-write leaves the previous leases, never half of them.
pub(crate) fn save(path: &Path, leases: &[StoredLease]) -> io::Result<()> {
    let mut text = String::from("# bootkit-dhcp leases: mac ip expires-unix-seconds\n");
    for lease in leases {
        let expires = lease
            .expires
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        text.push_str(&format!("{} {} {expires}\n", lease.mac, lease.ip));
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = Path::new(&temporary);
    let mut file = std::fs::File::create(temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_leases_load_back_and_garbage_is_skipped() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("leases");
        assert_eq!(load(&path).unwrap(), Vec::new());
        let lease = StoredLease {
            mac: "52:54:00:00:00:01".into(),
            ip: Ipv4Addr::new(10, 0, 0, 50),
            expires: UNIX_EPOCH + Duration::from_secs(2_000_000_000),
        };
        save(&path, std::slice::from_ref(&lease)).unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("not a lease\n52:54:00:00:00:02 999.1.1.1 5\n");
        std::fs::write(&path, text).unwrap();
        assert_eq!(load(&path).unwrap(), vec![lease]);
    }
}
