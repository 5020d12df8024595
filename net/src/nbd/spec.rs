//! `bootkit.nbd=<dev>:<host>:<port>/<export>[:ro]`: which device to attach to which export.
//!
//! Examples: `nbd0:10.0.2.2:10809/disk:ro`, `/dev/nbd1:[fd00::1]:10809/exp`,
//! `nbd2:nbd.example:10809/` (the empty, default export).

use std::fmt;
use std::str::FromStr;

/// The kernel command-line key this module reads (repeatable: one device per value).
pub const KEY: &str = "bootkit.nbd";

/// The NBD protocol's limit on an export name's length, in bytes.
pub const MAX_EXPORT_NAME: usize = 4096;

/// One `bootkit.nbd=` value: attach `device` to `export` on `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NbdSpec {
    /// The device node, always in the form `/dev/nbdN`.
    pub device: String,
    /// A host name or an IP address (an IPv6 address without its brackets).
    pub host: String,
    /// The server's TCP port (10809 by convention).
    pub port: u16,
    /// The export name; may be empty (the server's default export).
    pub export: String,
    /// `:ro` was given: attach read-only even if the server allows writes.
    pub read_only: bool,
}

/// A malformed `bootkit.nbd=` value; the message names the key, the value and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{KEY}={value:?}: {problem}")]
pub struct SpecError {
    /// The value as written.
    pub value: String,
    /// What is wrong and what to write.
    pub problem: String,
}

impl NbdSpec {
    /// Parses the value of one `bootkit.nbd=` parameter.
    pub fn parse(value: &str) -> Result<NbdSpec, SpecError> {
        parse_spec(value).map_err(|problem| SpecError {
            value: value.to_string(),
            problem,
        })
    }

    /// The device's number N in `/dev/nbdN`.
    pub fn index(&self) -> u32 {
        // `parse` checked the suffix is a number; 0 is unreachable for a parsed spec.
        self.device
            .trim_start_matches("/dev/nbd")
            .parse()
            .unwrap_or(0)
    }
}

impl FromStr for NbdSpec {
    type Err = SpecError;
    fn from_str(value: &str) -> Result<NbdSpec, SpecError> {
        NbdSpec::parse(value)
    }
}

impl fmt::Display for NbdSpec {
    /// Writes the spec back in command-line form (IPv6 hosts in brackets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dev = self.device.trim_start_matches("/dev/");
        if self.host.contains(':') {
            write!(f, "{dev}:[{}]:{}/{}", self.host, self.port, self.export)?;
        } else {
            write!(f, "{dev}:{}:{}/{}", self.host, self.port, self.export)?;
        }
        if self.read_only {
            f.write_str(":ro")?;
        }
        Ok(())
    }
}

fn parse_spec(value: &str) -> Result<NbdSpec, String> {
    let (dev, rest) = value
        .split_once(':')
        .ok_or("expected <dev>:<host>:<port>/<export>[:ro]")?;
    let device = parse_device(dev)?;
    let (host, rest) = split_host(rest)?;
    let (port, rest) = rest
        .split_once('/')
        .ok_or("missing '/<export>' after the port")?;
    let port = parse_port(port)?;
    // A trailing ":ro" is the read-only flag, so an export name cannot itself end in ":ro".
    let (export, read_only) = match rest.strip_suffix(":ro") {
        Some(export) => (export, true),
        None => (rest, false),
    };
    check_export(export)?;
    Ok(NbdSpec {
        device,
        host,
        port,
        export: export.to_string(),
        read_only,
    })
}

/// `nbd0` or `/dev/nbd0` → `/dev/nbd0`; anything else is refused, so a typo cannot make
/// the bootkit issue nbd ioctls on some other device.
fn parse_device(dev: &str) -> Result<String, String> {
    let name = dev.strip_prefix("/dev/").unwrap_or(dev);
    let digits = name
        .strip_prefix("nbd")
        .ok_or_else(|| format!("device {dev:?} is not nbdN or /dev/nbdN"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("device {dev:?} is not nbdN or /dev/nbdN"));
    }
    digits
        .parse::<u32>()
        .map_err(|_| format!("device number in {dev:?} is out of range"))?;
    Ok(format!("/dev/{name}"))
}

/// Splits `<host>:<rest>`, where host is a name, an IPv4 address or `[<IPv6 address>]`.
fn split_host(s: &str) -> Result<(String, &str), String> {
    if let Some(bracketed) = s.strip_prefix('[') {
        let (addr, rest) = bracketed
            .split_once(']')
            .ok_or("IPv6 address has no closing ']'")?;
        addr.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("{addr:?} is not an IPv6 address"))?;
        let rest = rest
            .strip_prefix(':')
            .ok_or("expected ':<port>' after the IPv6 address")?;
        return Ok((addr.to_string(), rest));
    }
    let (host, rest) = s
        .split_once(':')
        .ok_or("missing ':<port>' after the host")?;
    check_host(host)?;
    Ok((host.to_string(), rest))
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_';
    if !host.bytes().all(valid) {
        return Err(format!(
            "host {host:?} is not a host name or IPv4 address (IPv6 goes in brackets)"
        ));
    }
    Ok(())
}

fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(0) => Err("port 0 is not a valid port".into()),
        Ok(p) => Ok(p),
        Err(_) => Err(format!("port {port:?} is not a number from 1 to 65535")),
    }
}

fn check_export(export: &str) -> Result<(), String> {
    if export.len() > MAX_EXPORT_NAME {
        return Err(format!(
            "export name is {} bytes, more than the protocol's {MAX_EXPORT_NAME}",
            export.len()
        ));
    }
    if export.contains('\0') {
        return Err("export name contains a NUL byte".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dev: &str, host: &str, port: u16, export: &str, ro: bool) -> NbdSpec {
        NbdSpec {
            device: dev.into(),
            host: host.into(),
            port,
            export: export.into(),
            read_only: ro,
        }
    }

    #[test]
    fn ipv4_read_only() {
        let s = NbdSpec::parse("nbd0:10.0.2.2:10809/disk:ro").unwrap();
        assert_eq!(s, spec("/dev/nbd0", "10.0.2.2", 10809, "disk", true));
        assert_eq!(s.index(), 0);
    }

    #[test]
    fn ipv6_full_device_path() {
        let s = NbdSpec::parse("/dev/nbd1:[fd00::1]:10809/exp").unwrap();
        assert_eq!(s, spec("/dev/nbd1", "fd00::1", 10809, "exp", false));
        assert_eq!(s.index(), 1);
    }

    #[test]
    fn host_name_and_default_export() {
        let s = NbdSpec::parse("nbd12:nbd-server.lan:1234/").unwrap();
        assert_eq!(s, spec("/dev/nbd12", "nbd-server.lan", 1234, "", false));
        assert_eq!(s.index(), 12);
    }

    #[test]
    fn export_with_slashes_and_colons() {
        let s = NbdSpec::parse("nbd0:h:1/a/b:c:ro").unwrap();
        assert_eq!(s.export, "a/b:c");
        assert!(s.read_only);
    }

    #[test]
    fn display_round_trips() {
        for v in [
            "nbd0:10.0.2.2:10809/disk:ro",
            "nbd1:[fd00::1]:10809/exp",
            "nbd3:host:1/",
        ] {
            let s = NbdSpec::parse(v).unwrap();
            assert_eq!(s.to_string(), v);
            assert_eq!(NbdSpec::parse(&s.to_string()).unwrap(), s);
        }
    }

    fn problem(value: &str) -> String {
        let err = NbdSpec::parse(value).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("bootkit.nbd="), "{text}");
        assert!(text.contains(&format!("{value:?}")), "{text}");
        err.problem
    }

    #[test]
    fn errors_name_key_value_and_problem() {
        assert!(problem("").contains("expected <dev>"));
        assert!(problem("sda:h:1/e").contains("not nbdN"));
        assert!(problem("nbd:h:1/e").contains("not nbdN"));
        assert!(problem("nbdx:h:1/e").contains("not nbdN"));
        assert!(problem("nbd99999999999:h:1/e").contains("out of range"));
        assert!(problem("nbd0:h").contains("port"));
        assert!(problem("nbd0::1/e").contains("host is empty"));
        assert!(problem("nbd0:fd00::1:1/e").contains("not a number"));
        assert!(problem("nbd0:[fd00::1:1/e").contains("closing"));
        assert!(problem("nbd0:[zz]:1/e").contains("not an IPv6"));
        assert!(problem("nbd0:[::1]1/e").contains("':<port>'"));
        assert!(problem("nbd0:h:1").contains("'/<export>'"));
        assert!(problem("nbd0:h:0/e").contains("port 0"));
        assert!(problem("nbd0:h:65536/e").contains("1 to 65535"));
        assert!(problem("nbd0:h:port/e").contains("not a number"));
        assert!(problem("nbd0:h h:1/e").contains("not a host name"));
        assert!(problem("nbd0:h:1/a\0b").contains("NUL"));
        let long = format!("nbd0:h:1/{}", "x".repeat(MAX_EXPORT_NAME + 1));
        assert!(problem(&long).contains("more than"));
    }
}
