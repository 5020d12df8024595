//! sha256 digests, and the `sha256sum` files published beside images, read with one rule.
//!
//! # The rule
//!
//! A checksum file is read as GNU coreutils' `sha256sum -c --strict` reads it:
//!
//! - A line is `HEX  NAME` (text mode, what `sha256sum` writes), `HEX *NAME` (binary mode),
//!   `HEX NAME` or `HEX<tab>NAME` (one blank, as BSD `sha256 -r` writes), or
//!   `SHA256 (NAME) = HEX` (`sha256sum --tag`). HEX is 64 hexadecimal digits, either case.
//!   NAME is the rest of the line as it stands, trailing blanks included; a line that starts
//!   with `\` has `\\`, `\n` and `\r` escapes in its name (how `sha256sum` writes such names).
//! - Blanks before a line are skipped, and a carriage return after it (files saved on Windows).
//! - Any other line is an error naming its number, not skipped: it may be the very line meant
//!   for the image.
//!
//! Three allowances beyond GNU, for files written by hand or by other tools: blank lines
//! (GNU: empty ones only) and lines whose first non-blank character is `#` (GNU: `#` in the
//! first column only) are skipped; a bare `HEX` line is accepted.
//!
//! # Which line is a file's
//!
//! Names count, as in `sha256sum -c`, but only their last component: checksum files are made
//! on another machine, so `out/os.raw.gz` is the line for `os.raw.gz`. A bare digest and the
//! name `-` (`sha256sum` of its standard input) name no file: they stand for whatever file the
//! checksum file is given for. The lines for the file and the nameless lines must give exactly
//! one digest: none is [`ChecksumError::NoEntry`] (which lists the names the file does hold),
//! two different ones are [`ChecksumError::Conflicting`]. Without a file name to look for (a
//! URL that ends in `/`), the whole file must give one digest.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why a digest or a checksum file could not be used. Every message names the file and says
/// what it should hold.
#[derive(Debug, thiserror::Error)]
pub enum ChecksumError {
    /// A digest given as text is not one.
    #[error("{value:?} is not a sha256: expected 64 hex digits")]
    NotSha256 {
        /// The text as given.
        value: String,
    },
    /// The checksum file could not be read. The cause is in the message, not a `source()`,
    /// so that printing the error chain does not repeat it.
    #[error("cannot read the checksum file {path}: {cause}")]
    Read {
        /// The checksum file.
        path: PathBuf,
        /// What the read failed with.
        cause: io::Error,
    },
    /// A line that is neither a checksum line nor blank nor a comment.
    #[error(
        "line {line} of the checksum file {path} is not a sha256 line: expected \
         `<64 hex digits>  NAME`, as sha256sum writes it"
    )]
    Malformed {
        /// The checksum file.
        path: PathBuf,
        /// The line's number, from 1.
        line: usize,
    },
    /// Only blank and comment lines.
    #[error("the checksum file {path} holds no sha256 line (`HEX  filename`)")]
    Empty {
        /// The checksum file.
        path: PathBuf,
    },
    /// No line names the file asked for (and no nameless line stands for it).
    #[error(
        "the checksum file {path} has no valid sha256 line for {name} (it has lines for {}); \
         it should hold `HEX  {name}` as sha256sum writes it: regenerate it where {name} is \
         with `sha256sum {name}`",
        names_list(.listed)
    )]
    NoEntry {
        /// The checksum file.
        path: PathBuf,
        /// The file name looked for (its last component).
        name: String,
        /// The names the file has lines for (`any file` for a nameless line).
        listed: Vec<String>,
    },
    /// Lines for the same file that give different digests.
    #[error("the checksum file {path} gives {name} more than one sha256; keep only the right line")]
    Conflicting {
        /// The checksum file.
        path: PathBuf,
        /// The file name looked for.
        name: String,
    },
    /// No file name to look for, and more than one digest in the file.
    #[error(
        "the checksum file {path} has lines for several files ({}) and no file name was given \
         to choose one by; give a checksum file with one line",
        names_list(.listed)
    )]
    NoNameToChooseBy {
        /// The checksum file.
        path: PathBuf,
        /// The names the file has lines for.
        listed: Vec<String>,
    },
}

fn names_list(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("{name:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A sha256 digest (the 32 bytes), parsed from hex; shown as lowercase hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// Parses 64 hex digits in either case; blanks around them are ignored.
    pub fn parse(hex_text: &str) -> Result<Self, ChecksumError> {
        let not_sha256 = || ChecksumError::NotSha256 {
            value: hex_text.to_string(),
        };
        let bytes = hex::decode(hex_text.trim()).map_err(|_| not_sha256())?;
        Ok(Self(bytes.try_into().map_err(|_| not_sha256())?))
    }

    /// The digest the checksum file at `path` gives `file_name` (see the [module](self) for
    /// the rule).
    pub fn from_sha256sum_file(
        path: &Path,
        file_name: Option<&str>,
    ) -> Result<Self, ChecksumError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ChecksumError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        let entries = parse_entries(&text).map_err(|line| ChecksumError::Malformed {
            path: path.to_path_buf(),
            line,
        })?;
        digest_for(&entries, file_name, path)
    }

    /// The digest as 64 lowercase hex digits, as `sha256sum` prints it.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// The checksum file line that gives this digest to `name`, newline included: GNU
    /// `sha256sum`'s text-mode line (`HEX  NAME`), with its escapes when the name holds a
    /// backslash, a newline or a carriage return (the line then starts with `\\`). `name` is
    /// written as given: pass the file name without directories, so that the file can be
    /// checked wherever it is copied.
    pub fn sha256sum_line(self, name: &str) -> String {
        let needs_escapes = name.contains(['\\', '\n', '\r']);
        if !needs_escapes {
            return format!("{self}  {name}\n");
        }
        let escaped = name
            .replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\r', "\\r");
        format!("\\{self}  {escaped}\n")
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// One line of a checksum file: a digest and the file it is for (`None`: any file).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    digest: Sha256Digest,
    name: Option<String>,
}

/// The entries of a checksum file's text; `Err` holds the number (from 1) of the first line
/// that is none.
fn parse_entries(text: &str) -> Result<Vec<Entry>, usize> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        match parse_line(line) {
            Ok(Some(entry)) => entries.push(entry),
            Ok(None) => {}
            Err(NotAnEntry) => return Err(index + 1),
        }
    }
    Ok(entries)
}

struct NotAnEntry;

/// `Ok(None)` for a blank or comment line.
fn parse_line(line: &str) -> Result<Option<Entry>, NotAnEntry> {
    const BLANKS: [char; 2] = [' ', '\t'];
    let line = line.strip_suffix('\r').unwrap_or(line);
    let line = line.trim_start_matches(BLANKS);
    if line.trim_end_matches(BLANKS).is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (escaped, line) = match line.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let (hex, name) = match line.strip_prefix("SHA256 (") {
        Some(tagged) => {
            let (name, hex) = tagged.rsplit_once(") = ").ok_or(NotAnEntry)?;
            (hex, Some(name))
        }
        None => {
            // `get` is `None` short of 64 bytes or inside a multi-byte character: no digest.
            let hex = line.get(..64).ok_or(NotAnEntry)?;
            let rest = &line[64..];
            if rest.trim_end_matches(BLANKS).is_empty() {
                (hex, None)
            } else {
                let rest = rest.strip_prefix(BLANKS).ok_or(NotAnEntry)?;
                (hex, Some(rest.strip_prefix([' ', '*']).unwrap_or(rest)))
            }
        }
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NotAnEntry);
    }
    let digest = Sha256Digest::parse(hex).map_err(|_| NotAnEntry)?;
    let name = match name {
        Some("") => return Err(NotAnEntry),
        Some(name) if escaped => Some(unescape(name)?),
        Some(name) => Some(name.to_string()),
        None => None,
    };
    Ok(Some(Entry {
        digest,
        name: name.filter(|name| name != "-"),
    }))
}

/// A name written with `sha256sum`'s escapes: `\\`, `\n`, `\r`.
fn unescape(name: &str) -> Result<String, NotAnEntry> {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '\\' => match chars.next() {
                Some('\\') => '\\',
                Some('n') => '\n',
                Some('r') => '\r',
                _ => return Err(NotAnEntry),
            },
            c => c,
        });
    }
    Ok(out)
}

/// The last component of a name as written in a checksum file.
fn base_name(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

fn digest_for(
    entries: &[Entry],
    file_name: Option<&str>,
    path: &Path,
) -> Result<Sha256Digest, ChecksumError> {
    let listed = || {
        entries
            .iter()
            .map(|entry| entry.name.clone().unwrap_or_else(|| "any file".to_string()))
            .collect()
    };
    let wanted = file_name.map(base_name);
    let mut matching = entries
        .iter()
        .filter(|entry| match (&entry.name, wanted) {
            (Some(name), Some(wanted)) => base_name(name) == wanted,
            _ => true,
        })
        .map(|entry| entry.digest);
    if entries.is_empty() {
        return Err(ChecksumError::Empty {
            path: path.to_path_buf(),
        });
    }
    let Some(digest) = matching.next() else {
        // Without a name every entry matches: only a wanted name can miss.
        return Err(ChecksumError::NoEntry {
            path: path.to_path_buf(),
            name: wanted.unwrap_or_default().to_string(),
            listed: listed(),
        });
    };
    if matching.any(|other| other != digest) {
        return Err(match wanted {
            Some(name) => ChecksumError::Conflicting {
                path: path.to_path_buf(),
                name: name.to_string(),
            },
            None => ChecksumError::NoNameToChooseBy {
                path: path.to_path_buf(),
                listed: listed(),
            },
        });
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const HEX: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    /// The digest `text` gives `name`, as a checksum file.
    fn lookup(text: &str, name: &str) -> Result<String, ChecksumError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("SHA256SUMS");
        std::fs::write(&path, text).unwrap();
        Sha256Digest::from_sha256sum_file(&path, Some(name)).map(Sha256Digest::to_hex)
    }

    #[test]
    fn sha256sum_line_for_the_image_is_found_in_text_and_binary_mode() {
        let text = format!("{}  other.raw.gz\n{HEX}  os.raw.gz\n", "0".repeat(64));
        assert_eq!(lookup(&text, "os.raw.gz").unwrap(), HEX);
        let binary = format!("{}  *./out/os.raw.gz\n", HEX.to_uppercase());
        assert_eq!(lookup(&binary, "os.raw.gz").unwrap(), HEX);
        let binary = format!("{HEX} *out/os.raw.gz\n");
        assert_eq!(lookup(&binary, "os.raw.gz").unwrap(), HEX);
        assert!(lookup(&text, "missing.raw.gz").is_err());
        assert!(lookup("abc  os.raw.gz\n", "os.raw.gz").is_err());
    }

    #[test]
    fn sha256sum_files_are_read_by_image_name() {
        let other = "1".repeat(64);
        let text = format!("{other}  other.raw.gz\n{EMPTY_SHA256} *build/out/os.raw.gz\n");
        assert_eq!(lookup(&text, "os.raw.gz").unwrap(), EMPTY_SHA256);
        let missing = lookup(&text, "absent.raw").unwrap_err();
        assert!(
            matches!(missing, ChecksumError::NoEntry { .. }),
            "{missing}"
        );
        let message = missing.to_string();
        assert!(
            message.contains("absent.raw") && message.contains("\"build/out/os.raw.gz\""),
            "{message}"
        );
    }

    #[test]
    fn a_line_naming_another_file_does_not_count_but_a_bare_digest_does() {
        let single = format!("{EMPTY_SHA256}  /home/builder/os.raw.gz\n");
        let error = lookup(&single, "renamed.raw.gz").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("no valid sha256 line for renamed.raw.gz"),
            "{error}"
        );
        assert_eq!(
            lookup(&format!("{EMPTY_SHA256}\n"), "renamed.raw.gz").unwrap(),
            EMPTY_SHA256
        );
        assert_eq!(
            lookup(&format!("{EMPTY_SHA256}  -\n"), "renamed.raw.gz").unwrap(),
            EMPTY_SHA256
        );
    }

    #[test]
    fn blanks_after_a_bare_digest_leave_it_bare() {
        assert_eq!(lookup(&format!("{HEX}  \n"), "os.raw.gz").unwrap(), HEX);
    }

    #[test]
    fn comments_blank_lines_and_windows_line_ends_are_skipped() {
        let text = format!("# made by the build\n\n   \n  # indented\r\n{HEX}  os.raw.gz\r\n");
        assert_eq!(lookup(&text, "os.raw.gz").unwrap(), HEX);
    }

    #[test]
    fn a_malformed_line_is_an_error_naming_its_number() {
        let text = format!("{HEX}  os.raw.gz\nnot a checksum\n");
        let error = lookup(&text, "os.raw.gz").unwrap_err();
        assert!(
            matches!(error, ChecksumError::Malformed { line: 2, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("line 2 of"), "{error}");
        for bad in [
            format!("{}  os.raw.gz", &HEX[..63]),
            format!("{}g  os.raw.gz", &HEX[..63]),
            format!("{HEX}x  os.raw.gz"),
            format!("é{HEX}  os.raw.gz"),
            format!("\\{HEX}  bad\\escape"),
            format!("SHA256 (os.raw.gz) {HEX}"),
        ] {
            assert!(
                matches!(
                    lookup(&bad, "os.raw.gz"),
                    Err(ChecksumError::Malformed { line: 1, .. })
                ),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn conflicting_lines_and_empty_files_are_refused() {
        let text = format!("{HEX}  a/os.raw.gz\n{EMPTY_SHA256}  b/os.raw.gz\n");
        assert!(matches!(
            lookup(&text, "os.raw.gz"),
            Err(ChecksumError::Conflicting { .. })
        ));
        let same = format!("{HEX}  a/os.raw.gz\n{HEX}  b/os.raw.gz\n");
        assert_eq!(lookup(&same, "os.raw.gz").unwrap(), HEX);
        assert!(matches!(
            lookup("# nothing\n\n", "os.raw.gz"),
            Err(ChecksumError::Empty { .. })
        ));
    }

    #[test]
    fn without_a_file_name_the_file_must_give_one_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sums");
        std::fs::write(&path, format!("{HEX}  os.raw.gz\n")).unwrap();
        let digest = Sha256Digest::from_sha256sum_file(&path, None).unwrap();
        assert_eq!(digest.to_string(), HEX);
        std::fs::write(&path, format!("{HEX}  a\n{EMPTY_SHA256}  b\n")).unwrap();
        let error = Sha256Digest::from_sha256sum_file(&path, None).unwrap_err();
        assert!(
            matches!(error, ChecksumError::NoNameToChooseBy { .. }),
            "{error}"
        );
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let error = Sha256Digest::from_sha256sum_file(Path::new("/nonexistent/x.sha256sum"), None)
            .unwrap_err();
        assert!(error.to_string().contains("/nonexistent/x.sha256sum"));
    }

    #[test]
    fn malformed_digests_are_refused() {
        assert!(Sha256Digest::parse("abc").is_err());
        assert!(Sha256Digest::parse(&"g".repeat(64)).is_err());
        assert!(Sha256Digest::parse(&EMPTY_SHA256.to_uppercase()).is_ok());
    }

    /// What GNU `sha256sum` writes (text, binary, tagged, escaped names) reads back as the same
    /// digests, and `sha256sum -c --strict` accepts the files the rule reads.
    #[test]
    fn files_written_by_gnu_sha256sum_read_back() {
        use std::process::Command;
        let sha256sum = |dir: &Path, args: &[&str]| {
            let output = Command::new("sha256sum")
                .args(args)
                .current_dir(dir)
                .output();
            match output {
                Ok(output) => Some(output),
                // Coreutils is on every machine this builds on; say so rather than fail.
                Err(error) if error.kind() == io::ErrorKind::NotFound => None,
                Err(error) => panic!("running sha256sum: {error}"),
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let files = [
            ("os.raw.gz", &b"abc"[..]),
            ("empty.raw", b""),
            ("back\\slash.raw", b"x"),
            ("two words.raw", b"y"),
        ];
        std::fs::create_dir(dir.path().join("out")).unwrap();
        for (name, data) in files {
            std::fs::write(dir.path().join("out").join(name), data).unwrap();
        }
        let names: Vec<String> = files
            .iter()
            .map(|(name, _)| format!("out/{name}"))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        for mode in [&["--text"][..], &["--binary"], &["--tag"]] {
            let args: Vec<&str> = mode.iter().chain(&names).copied().collect();
            let Some(output) = sha256sum(dir.path(), &args) else {
                eprintln!("sha256sum not installed: GNU comparison skipped");
                return;
            };
            assert!(output.status.success(), "sha256sum {args:?}");
            let sums = dir.path().join("SHA256SUMS");
            std::fs::write(&sums, &output.stdout).unwrap();
            let check = sha256sum(dir.path(), &["-c", "--strict", "SHA256SUMS"]).unwrap();
            assert!(check.status.success(), "sha256sum -c {mode:?}");
            for (name, data) in files {
                use sha2::Digest as _;
                let expected = hex::encode(sha2::Sha256::digest(data));
                let digest = Sha256Digest::from_sha256sum_file(&sums, Some(name))
                    .unwrap_or_else(|error| panic!("{mode:?} {name}: {error}"));
                assert_eq!(digest.to_hex(), expected, "{mode:?} {name}");
            }
        }
    }

    /// Each line form the rule reads, `sha256sum -c --strict` reads too (the allowances beyond
    /// GNU aside).
    #[test]
    fn gnu_sha256sum_accepts_the_line_forms_read_here() {
        use std::process::Command;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"").unwrap();
        for line in [
            format!("{EMPTY_SHA256}  a\n"),
            format!("{EMPTY_SHA256} *a\n"),
            format!("{EMPTY_SHA256} a\n"),
            format!("{EMPTY_SHA256}\ta\n"),
            format!("  {EMPTY_SHA256}  a\r\n"),
            format!("#c\n{}  a\n", EMPTY_SHA256.to_uppercase()),
            format!("SHA256 (a) = {EMPTY_SHA256}\n"),
        ] {
            let sums = dir.path().join("sums");
            std::fs::write(&sums, &line).unwrap();
            let Ok(check) = Command::new("sha256sum")
                .args(["-c", "--strict", "sums"])
                .current_dir(dir.path())
                .output()
            else {
                eprintln!("sha256sum not installed: GNU comparison skipped");
                return;
            };
            assert!(check.status.success(), "GNU refuses {line:?}");
            let digest = Sha256Digest::from_sha256sum_file(&sums, Some("a")).unwrap();
            assert_eq!(digest.to_hex(), EMPTY_SHA256, "{line:?}");
        }
    }

    #[test]
    fn the_writer_writes_what_sha256sum_writes_and_the_reader_reads_it_back() {
        let digest = Sha256Digest::parse(HEX).unwrap();
        assert_eq!(
            digest.sha256sum_line("os.raw.gz"),
            format!("{HEX}  os.raw.gz\n")
        );
        assert_eq!(
            digest.sha256sum_line("a\\b\nc"),
            format!("\\{HEX}  a\\\\b\\nc\n")
        );
        for name in [
            "os.raw.gz",
            "two words.raw",
            "back\\slash",
            "new\nline",
            "cr\rname",
        ] {
            let read = lookup(&digest.sha256sum_line(name), name);
            assert_eq!(read.unwrap(), HEX, "{name:?}");
        }
    }

    /// What [`Sha256Digest::sha256sum_line`] writes, `sha256sum -c --strict` checks.
    #[test]
    fn gnu_sha256sum_checks_the_files_written_here() {
        use sha2::Digest as _;
        use std::process::Command;
        let dir = tempfile::tempdir().unwrap();
        let files = [
            ("os.raw.gz", &b"abc"[..]),
            ("two words.raw", b""),
            ("back\\slash.raw", b"x"),
            ("new\nline.raw", b"y"),
        ];
        let mut sums = String::new();
        for (name, data) in files {
            std::fs::write(dir.path().join(name), data).unwrap();
            sums += &Sha256Digest(sha2::Sha256::digest(data).into()).sha256sum_line(name);
        }
        std::fs::write(dir.path().join("SHA256SUMS"), &sums).unwrap();
        let Ok(check) = Command::new("sha256sum")
            .args(["-c", "--strict", "SHA256SUMS"])
            .current_dir(dir.path())
            .output()
        else {
            eprintln!("sha256sum not installed: GNU comparison skipped");
            return;
        };
        assert!(
            check.status.success(),
            "sha256sum -c refuses {sums:?}: {}",
            String::from_utf8_lossy(&check.stdout)
        );
        // And a wrong digest is caught: the check above is not vacuous.
        std::fs::write(dir.path().join("os.raw.gz"), b"abd").unwrap();
        let check = Command::new("sha256sum")
            .args(["-c", "--strict", "SHA256SUMS"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!check.status.success());
    }
}
