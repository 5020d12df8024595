//! An entry's owner, mode, mtime and xattrs, read from its tar header and pax records, and
//! applied to what was created for it.

use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::path::Path;

use rustix::fs::{
    AtFlags, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags, chmodat, chownat, fchmod, fchown,
    fsetxattr, futimens, lsetxattr, utimensat,
};
use rustix::io::Errno;

const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";

#[derive(Debug, Clone)]
pub struct Xattr {
    pub name: String,
    pub value: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Metadata {
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timespec,
    pub xattrs: Vec<Xattr>,
}

impl Metadata {
    /// Read from the header, with pax records (`uid`, `gid`, `mtime`, `SCHILY.xattr.*`)
    /// taking precedence as the pax format says.
    pub fn from_entry<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Metadata> {
        let header = entry.header();
        let mut metadata = Metadata {
            mode: header.mode()? & 0o7777,
            uid: to_id(header.uid()?, "uid")?,
            gid: to_id(header.gid()?, "gid")?,
            mtime: Timespec {
                tv_sec: i64::try_from(header.mtime()?).unwrap_or(i64::MAX),
                tv_nsec: 0,
            },
            xattrs: Vec::new(),
        };
        if let Some(records) = entry.pax_extensions()? {
            for record in records {
                metadata.apply_pax_record(record?)?;
            }
        }
        Ok(metadata)
    }

    fn apply_pax_record(&mut self, record: tar::PaxExtension<'_>) -> io::Result<()> {
        let key = record
            .key()
            .map_err(|_| bad("a pax record key is not UTF-8"))?;
        let text = || {
            record
                .value()
                .map_err(|_| bad("a pax record value is not UTF-8"))
        };
        if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX) {
            self.xattrs.push(Xattr {
                name: name.to_string(),
                value: record.value_bytes().to_vec(),
            });
        } else if key == "uid" {
            self.uid = to_id(parse_number(text()?)?, "uid")?;
        } else if key == "gid" {
            self.gid = to_id(parse_number(text()?)?, "gid")?;
        } else if key == "mtime" {
            self.mtime = parse_pax_time(text()?)?;
        }
        Ok(())
    }

    fn timestamps(&self) -> Timestamps {
        Timestamps {
            last_access: self.mtime,
            last_modification: self.mtime,
        }
    }

    /// Owner, then mode (chown clears setuid/setgid, so the mode must come after), then
    /// xattrs (chown also drops security.capability), then times.
    pub fn apply_to_fd(&self, fd: BorrowedFd<'_>, xattrs: &mut XattrOutcome) -> io::Result<()> {
        fchown(fd, Some(uid(self.uid)), Some(gid(self.gid)))?;
        fchmod(fd, Mode::from_raw_mode(self.mode))?;
        for xattr in &self.xattrs {
            xattrs.record(
                &xattr.name,
                fsetxattr(fd, &xattr.name, &xattr.value, XattrFlags::empty()),
            )?;
        }
        futimens(fd, &self.timestamps())?;
        Ok(())
    }

    /// For what cannot be opened safely: symlinks (never followed) and device nodes and FIFOs
    /// (opening them can block or have side effects). `full_path` is only used for xattrs,
    /// which have no fd-relative call; its parent was just opened without symlinks and nothing
    /// else writes into the new root while it is unpacked.
    pub fn apply_by_name(
        &self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        full_path: &Path,
        is_symlink: bool,
        xattrs: &mut XattrOutcome,
    ) -> io::Result<()> {
        chownat(
            parent,
            name,
            Some(uid(self.uid)),
            Some(gid(self.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        // A symlink's permissions cannot be set and mean nothing; the node was created by us
        // just now with this name, so following it is impossible.
        if !is_symlink {
            chmodat(
                parent,
                name,
                Mode::from_raw_mode(self.mode),
                AtFlags::empty(),
            )?;
        }
        for xattr in &self.xattrs {
            xattrs.record(
                &xattr.name,
                lsetxattr(full_path, &xattr.name, &xattr.value, XattrFlags::empty()),
            )?;
        }
        utimensat(parent, name, &self.timestamps(), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }
}

/// Xattrs the target filesystem does not support are skipped (and reported once at the end)
/// rather than failing the boot; any other failure is an error.
#[derive(Debug, Default)]
pub struct XattrOutcome {
    pub applied: u64,
    pub skipped: u64,
    pub first_skipped: Option<String>,
}

impl XattrOutcome {
    fn record(&mut self, name: &str, result: rustix::io::Result<()>) -> io::Result<()> {
        match result {
            Ok(()) => self.applied += 1,
            Err(Errno::OPNOTSUPP) => {
                self.skipped += 1;
                self.first_skipped.get_or_insert_with(|| name.to_string());
            }
            Err(errno) => {
                return Err(io::Error::new(
                    io::Error::from(errno).kind(),
                    format!("extended attribute {name}: {errno}"),
                ));
            }
        }
        Ok(())
    }
}

/// Ids come through `to_id`, which refuses u32::MAX: chown reads that as "leave unchanged".
fn uid(id: u32) -> Uid {
    Uid::from_raw(id)
}

fn gid(id: u32) -> Gid {
    Gid::from_raw(id)
}

/// Numeric ids as Linux takes them; u32::MAX is "no change" to chown, so it is refused too.
fn to_id(value: u64, what: &str) -> io::Result<u32> {
    match u32::try_from(value) {
        Ok(id) if id != u32::MAX => Ok(id),
        _ => Err(bad(&format!("the {what} {value} is out of range"))),
    }
}

fn parse_number(text: &str) -> io::Result<u64> {
    text.trim()
        .parse()
        .map_err(|_| bad(&format!("'{text}' is not a number")))
}

/// pax times are decimal seconds with an optional fraction: `1700000000.123456789`, `-1.5`.
fn parse_pax_time(text: &str) -> io::Result<Timespec> {
    let invalid = || bad(&format!("'{text}' is not a pax time"));
    let text = text.trim();
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let tv_sec: i64 = seconds.parse().map_err(|_| invalid())?;
    let digits: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(9)
        .collect();
    let mut tv_nsec: i64 = digits.parse().map_err(|_| invalid())?;
    let mut tv_sec = tv_sec;
    // -1.5 means half a second before -1: whole seconds down by one, nanoseconds positive.
    if seconds.starts_with('-') && tv_nsec > 0 {
        tv_sec -= 1;
        tv_nsec = 1_000_000_000 - tv_nsec;
    }
    Ok(Timespec { tv_sec, tv_nsec })
}

fn bad(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_keep_their_fraction() {
        let t = parse_pax_time("1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = parse_pax_time("12").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (12, 0));
        let t = parse_pax_time("-1.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 750_000_000));
        let t = parse_pax_time("1.1234567891").unwrap();
        assert_eq!(t.tv_nsec, 123_456_789);
        assert!(parse_pax_time("soon").is_err());
        assert!(parse_pax_time("1.x").is_err());
    }

    #[test]
    fn ids_must_fit_linux() {
        assert_eq!(to_id(1000, "uid").unwrap(), 1000);
        assert!(to_id(u64::from(u32::MAX), "uid").is_err());
        assert!(to_id(1 << 40, "gid").is_err());
    }

    #[test]
    fn unsupported_xattrs_are_counted_not_fatal() {
        let mut outcome = XattrOutcome::default();
        outcome.record("user.a", Ok(())).unwrap();
        outcome.record("user.b", Err(Errno::OPNOTSUPP)).unwrap();
        outcome.record("user.c", Err(Errno::OPNOTSUPP)).unwrap();
        assert!(outcome.record("user.d", Err(Errno::PERM)).is_err());
        assert_eq!((outcome.applied, outcome.skipped), (1, 2));
        assert_eq!(outcome.first_skipped.as_deref(), Some("user.b"));
    }
}
