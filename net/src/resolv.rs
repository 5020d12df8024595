//! /etc/resolv.conf and the hostname, from leases or static configuration.
//!
//! The values come from a DHCP server, i.e. from the network: a name with a newline or a
//! space could add resolver options to the file, so names that are not plain DNS names are
//! dropped, never written.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::lease::Lease;

/// At most this many `nameserver` lines are used by glibc (MAXNS in resolv.h) and musl;
/// more would be silently ignored by the resolver, so they are not written.
pub const MAX_NAMESERVERS: usize = 3;

/// At most this many search domains: the limit of musl and of glibc before 2.26 (MAXDNSRCH);
/// newer glibc accepts more, but an image may carry either libc.
pub const MAX_SEARCH_DOMAINS: usize = 6;

/// At most this many characters on the search list (the same libcs' 256-byte buffer,
/// less the `search` keyword and the terminating NUL).
pub const MAX_SEARCH_CHARS: usize = 248;

/// Longest hostname the kernel takes (HOST_NAME_MAX).
pub const MAX_HOSTNAME_LEN: usize = 64;

/// Longest DNS name (RFC 1035: 255 octets on the wire, 253 characters in text).
const MAX_DOMAIN_LEN: usize = 253;

/// A failure to write resolv.conf or to set the hostname.
#[derive(Debug, thiserror::Error)]
pub enum ResolvError {
    /// resolv.conf's temporary file cannot be written.
    #[error("cannot write {path}")]
    Write {
        /// The file written.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The temporary file cannot be renamed over resolv.conf.
    #[error("cannot replace {path} with {temp}")]
    Rename {
        /// resolv.conf's path.
        path: PathBuf,
        /// The temporary file's path.
        temp: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The host name is not a valid one (RFC 1123).
    #[error("invalid hostname {name:?}: {why}")]
    InvalidHostname {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The current host name cannot be read.
    #[error("cannot read the current hostname")]
    GetHostname(#[source] std::io::Error),
    /// sethostname failed.
    #[error("cannot set the hostname to {name:?}")]
    SetHostname {
        /// The host name asked for.
        name: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// The text of a resolv.conf: up to [`MAX_NAMESERVERS`] distinct usable nameservers in the
/// given order, then the search list. `domain` and `search` are mutually exclusive in
/// resolv.conf (the last one wins), so one `search` line carries `search` when given
/// (DHCP option 119) and else `domain` (option 15). Unusable entries are skipped:
/// unspecified, broadcast or multicast servers, names that are not plain DNS names, and
/// search domains past the libc limits ([`MAX_SEARCH_DOMAINS`], [`MAX_SEARCH_CHARS`]).
pub fn render<A, S>(nameservers: &[A], domain: Option<&str>, search: &[S]) -> String
where
    A: Copy + Into<IpAddr>,
    S: AsRef<str>,
{
    let mut out = String::from("# Written by the bootkit.\n");
    let domains = search_list(domain, search);
    if !domains.is_empty() {
        out.push_str("search ");
        out.push_str(&domains.join(" "));
        out.push('\n');
    }
    for server in usable_nameservers(nameservers) {
        out.push_str(&format!("nameserver {server}\n"));
    }
    out
}

/// [`render`] for a lease: its DNS servers, domain and search list.
pub fn render_lease(lease: &Lease) -> String {
    render(&lease.dns, lease.domain.as_deref(), &lease.search)
}

fn usable_nameservers<A: Copy + Into<IpAddr>>(nameservers: &[A]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for server in nameservers.iter().map(|&a| a.into()) {
        let unusable = server.is_unspecified()
            || server.is_multicast()
            || matches!(server, IpAddr::V4(v4) if v4.is_broadcast());
        if !unusable && !out.contains(&server) {
            out.push(server);
        }
        if out.len() == MAX_NAMESERVERS {
            break;
        }
    }
    out
}

fn search_list<S: AsRef<str>>(domain: Option<&str>, search: &[S]) -> Vec<String> {
    let candidates: Vec<&str> = if search.is_empty() {
        domain.into_iter().collect()
    } else {
        search.iter().map(AsRef::as_ref).collect()
    };
    let mut out: Vec<String> = Vec::new();
    let mut chars = 0;
    for name in candidates {
        // A trailing dot (absolute name) means the same to the resolver; compare without it.
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if !is_dns_name(&name) || out.contains(&name) {
            continue;
        }
        let cost = name.len() + usize::from(!out.is_empty());
        if out.len() == MAX_SEARCH_DOMAINS || chars + cost > MAX_SEARCH_CHARS {
            break;
        }
        chars += cost;
        out.push(name);
    }
    out
}

/// Letters, digits, '-' and '_' in dot-separated labels of 1..=63 characters: what
/// resolv.conf and hostnames can carry safely.
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_DOMAIN_LEN
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Writes [`render`]'s text to `path` atomically: a temporary file in the same directory,
/// flushed, then renamed over `path`, so that no reader ever sees half a file.
pub fn write<A, S>(
    path: &Path,
    nameservers: &[A],
    domain: Option<&str>,
    search: &[S],
) -> Result<(), ResolvError>
where
    A: Copy + Into<IpAddr>,
    S: AsRef<str>,
{
    write_atomically(path, &render(nameservers, domain, search))
}

/// [`write`](fn@write) for a lease.
pub fn write_lease(path: &Path, lease: &Lease) -> Result<(), ResolvError> {
    write_atomically(path, &render_lease(lease))
}

fn write_atomically(path: &Path, text: &str) -> Result<(), ResolvError> {
    let temp = temp_path(path);
    let write_err = |source| ResolvError::Write {
        path: temp.clone(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|source| ResolvError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let written = fs::File::create(&temp).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(write_err(e));
    }
    fs::rename(&temp, path).map_err(|source| {
        let _ = fs::remove_file(&temp);
        ResolvError::Rename {
            path: path.to_path_buf(),
            temp: temp.clone(),
            source,
        }
    })
}

/// `.<name>.tmp.<pid>` next to `path`: on the same filesystem, so rename is atomic.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}", std::process::id()))
}

/// Sets the hostname to `name` when none is set yet (empty, `(none)` or `localhost`), so that
/// an image's own hostname wins over DHCP's. Returns whether it was set.
pub fn set_hostname_if_unset(name: &str) -> Result<bool, ResolvError> {
    set_hostname_if_unset_with(name, current_hostname, set_hostname)
}

/// [`set_hostname_if_unset`] with the reading and setting injected (tests).
pub fn set_hostname_if_unset_with(
    name: &str,
    current: impl FnOnce() -> std::io::Result<String>,
    set: impl FnOnce(&str) -> std::io::Result<()>,
) -> Result<bool, ResolvError> {
    validate_hostname(name)?;
    let now = current().map_err(ResolvError::GetHostname)?;
    if !is_unset(&now) {
        return Ok(false);
    }
    set(name).map_err(|source| ResolvError::SetHostname {
        name: name.to_string(),
        source,
    })?;
    Ok(true)
}

fn is_unset(hostname: &str) -> bool {
    let h = hostname.trim();
    h.is_empty() || h == "(none)" || h.eq_ignore_ascii_case("localhost")
}

fn validate_hostname(name: &str) -> Result<(), ResolvError> {
    let invalid = |why| {
        Err(ResolvError::InvalidHostname {
            name: name.to_string(),
            why,
        })
    };
    if name.len() > MAX_HOSTNAME_LEN {
        return invalid("longer than 64 characters");
    }
    if !is_dns_name(name) {
        return invalid("not dot-separated labels of letters, digits, '-' and '_'");
    }
    Ok(())
}

/// The kernel's hostname (of this UTS namespace).
pub fn current_hostname() -> std::io::Result<String> {
    let mut buf = [0u8; MAX_HOSTNAME_LEN + 1];
    // SAFETY: the buffer is valid for its length; the kernel writes at most that much.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..len]).into_owned())
}

fn set_hostname(name: &str) -> std::io::Result<()> {
    // SAFETY: pointer and length describe `name`'s bytes; sethostname copies them.
    let rc = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const NONE: &[&str] = &[];

    fn v4(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
        Ipv4Addr::new(a, b, c, d)
    }

    #[test]
    fn nameservers_deduped_and_limited_to_three() {
        let servers = [
            v4(10, 0, 0, 1),
            v4(10, 0, 0, 2),
            v4(10, 0, 0, 1),
            v4(10, 0, 0, 3),
            v4(10, 0, 0, 4),
        ];
        let text = render(&servers, None, NONE);
        assert_eq!(
            text,
            "# Written by the bootkit.\nnameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n"
        );
    }

    #[test]
    fn unusable_nameservers_skipped() {
        let servers = [
            v4(0, 0, 0, 0),
            v4(255, 255, 255, 255),
            v4(224, 0, 0, 1),
            v4(192, 168, 1, 1),
        ];
        let text = render(&servers, None, NONE);
        assert!(text.ends_with("\nnameserver 192.168.1.1\n"), "{text}");
        assert_eq!(text.matches("nameserver").count(), 1);
    }

    #[test]
    fn ipv6_nameservers() {
        let servers = [IpAddr::V6(Ipv6Addr::LOCALHOST), IpAddr::V4(v4(10, 0, 0, 1))];
        let text = render(&servers, None, NONE);
        assert!(
            text.contains("nameserver ::1\nnameserver 10.0.0.1\n"),
            "{text}"
        );
    }

    #[test]
    fn search_wins_over_domain() {
        let text = render(
            &[v4(10, 0, 0, 1)],
            Some("example.com"),
            &["a.example.com", "b.example.com"],
        );
        assert!(
            text.contains("search a.example.com b.example.com\n"),
            "{text}"
        );
        assert!(!text.contains("domain"), "{text}");
    }

    #[test]
    fn domain_alone_becomes_search() {
        let text = render(&[v4(10, 0, 0, 1)], Some("Example.COM."), NONE);
        assert!(text.contains("search example.com\n"), "{text}");
    }

    #[test]
    fn search_deduped_and_limited() {
        let many: Vec<String> = (0..10).map(|i| format!("d{i}.example")).collect();
        let mut with_dups = vec!["d0.example".to_string(), "D0.example.".to_string()];
        with_dups.extend(many);
        let text = render(&[v4(10, 0, 0, 1)], None, &with_dups);
        let line = text
            .lines()
            .find(|l| l.starts_with("search "))
            .expect("search line");
        assert_eq!(line.split(' ').count() - 1, MAX_SEARCH_DOMAINS, "{line}");
        assert_eq!(line.matches("d0.example").count(), 1, "{line}");
    }

    #[test]
    fn search_limited_by_length() {
        let long: Vec<String> = (0..5)
            .map(|i| format!("{}{i}.example", "x".repeat(60)))
            .collect();
        let text = render(&[v4(10, 0, 0, 1)], None, &long);
        let line = text
            .lines()
            .find(|l| l.starts_with("search "))
            .expect("search line");
        assert!(line.len() - "search ".len() <= MAX_SEARCH_CHARS, "{line}");
        assert_eq!(line.split(' ').count() - 1, 3, "{line}");
    }

    #[test]
    fn hostile_names_never_written() {
        let search = [
            "ok.example",
            "evil\noptions ndots:15",
            "sp ace",
            "",
            ".",
            "-bad.example",
        ];
        let text = render(&[v4(10, 0, 0, 1)], Some("x\nnameserver 6.6.6.6"), &search);
        assert!(text.contains("search ok.example\n"), "{text}");
        assert!(
            !text.contains("options") && !text.contains("6.6.6.6"),
            "{text}"
        );
        let text = render(&[v4(10, 0, 0, 1)], Some("x\nnameserver 6.6.6.6"), NONE);
        assert!(
            !text.contains("search") && !text.contains("6.6.6.6"),
            "{text}"
        );
    }

    #[test]
    fn empty_config_is_just_the_header() {
        assert_eq!(
            render::<Ipv4Addr, &str>(&[], None, &[]),
            "# Written by the bootkit.\n"
        );
    }

    #[test]
    fn write_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/resolv.conf");
        write(&path, &[v4(10, 0, 0, 1)], Some("a.example"), NONE).expect("first write");
        write(&path, &[v4(10, 0, 0, 2)], None, &["b.example"]).expect("second write");
        let text = fs::read_to_string(&path).expect("read back");
        assert_eq!(
            text,
            "# Written by the bootkit.\nsearch b.example\nnameserver 10.0.0.2\n"
        );
        let leftovers: Vec<_> = fs::read_dir(path.parent().expect("parent"))
            .expect("list dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("resolv.conf")]);
    }

    #[test]
    fn write_error_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should go: the rename cannot replace it.
        let path = dir.path().join("resolv.conf");
        fs::create_dir_all(path.join("sub")).expect("mkdir");
        let err = write(&path, &[v4(10, 0, 0, 1)], None, NONE).expect_err("must fail");
        assert!(err.to_string().contains("resolv.conf"), "{err}");
    }

    #[test]
    fn hostname_set_only_when_unset() {
        for current in ["", "(none)", "localhost", "LOCALHOST\n"] {
            let set_to = Cell::new(None);
            let changed = set_hostname_if_unset_with(
                "node-1",
                || Ok(current.to_string()),
                |n| {
                    set_to.set(Some(n.to_string()));
                    Ok(())
                },
            )
            .expect("set");
            assert!(changed, "{current:?}");
            assert_eq!(set_to.take().as_deref(), Some("node-1"));
        }
        let changed = set_hostname_if_unset_with(
            "node-1",
            || Ok("image-host".into()),
            |_| panic!("must not set a hostname the image has"),
        )
        .expect("keep");
        assert!(!changed);
    }

    #[test]
    fn hostname_validated_before_anything() {
        for bad in ["", "has space", "a\nb", &"x".repeat(65)] {
            let err = set_hostname_if_unset_with(bad, || panic!("read"), |_| panic!("set"))
                .expect_err("invalid");
            assert!(matches!(err, ResolvError::InvalidHostname { .. }), "{err}");
        }
    }

    #[test]
    fn hostname_errors_reported() {
        let err = set_hostname_if_unset_with(
            "node-1",
            || Ok(String::new()),
            |_| Err(std::io::Error::from_raw_os_error(libc::EPERM)),
        )
        .expect_err("EPERM");
        assert!(err.to_string().contains("node-1"), "{err}");
        let err = set_hostname_if_unset_with(
            "node-1",
            || Err(std::io::Error::from_raw_os_error(libc::EFAULT)),
            |_| Ok(()),
        )
        .expect_err("read error");
        assert!(matches!(err, ResolvError::GetHostname(_)), "{err}");
    }

    #[test]
    fn current_hostname_reads() {
        assert!(current_hostname().is_ok());
    }
}
