//! The rules a rootfs archive's entry names must follow, shared by the init, which unpacks
//! the archive at boot, and the builder, which refuses at build time what the init would
//! refuse at boot.
//!
//! - [`EntryName`]: the lexical rule, a plain relative path (no `..`, not absolute).
//! - [`PathWalk`]: no entry (or hard link target) below a symbolic link an earlier entry
//!   made. The init has the kernel check this on the real tree (`openat2` with
//!   `RESOLVE_NO_SYMLINKS`); the builder has no tree, so this follows the archive's entries
//!   the way unpacking them would change the tree (a later entry replaces an earlier one).

/// A validated archive name: its components, none of them empty, `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryName<'a> {
    /// The path's components, in order; empty for the archive's root (`./`).
    pub components: Vec<&'a [u8]>,
}

impl<'a> EntryName<'a> {
    /// Parse a name as stored in the archive (`./usr/bin/`, `etc//passwd`, ...).
    pub fn parse(raw: &'a [u8]) -> Result<EntryName<'a>, &'static str> {
        if raw.is_empty() {
            return Err("the name is empty");
        }
        if raw.contains(&0) {
            return Err("the name contains a NUL byte");
        }
        if raw.starts_with(b"/") {
            return Err("the name is an absolute path");
        }
        let components: Vec<&[u8]> = raw
            .split(|&byte| byte == b'/')
            .filter(|component| !component.is_empty() && *component != b".")
            .collect();
        if components.iter().any(|component| *component == b"..") {
            return Err("the name contains a '..' component");
        }
        Ok(EntryName { components })
    }

    /// The directories above the entry (empty for the root and for top-level entries).
    pub fn parent(&self) -> &[&'a [u8]] {
        match self.components.split_last() {
            Some((_, parent)) => parent,
            None => &[],
        }
    }

    /// The last component; `None` for the root.
    pub fn file_name(&self) -> Option<&'a [u8]> {
        self.components.last().copied()
    }
}

/// Components joined with `/`, the form openat2 takes.
pub fn join(components: &[&[u8]]) -> Vec<u8> {
    components.join(&b'/')
}

/// An archive name as bytes, printable in a message whatever it contains.
pub fn display_name(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).escape_debug().to_string()
}

/// Why an entry is refused when `what` (its path, its hard link target) goes through the
/// symbolic link `link`: the reason the init gives at boot and the builder at build time.
pub fn through_symlink_reason(what: &str, link: &str) -> String {
    format!("{what} goes through the symbolic link '{link}', which could lead outside the new root")
}

/// What an entry makes at its path, as far as [`PathWalk`] cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind<'a> {
    /// A symbolic link: entries below it would be written through it.
    Symlink,
    /// A hard link to this (raw) name in the archive.
    HardLink(&'a [u8]),
    /// A directory, file, device node or FIFO.
    Other,
}

/// Follows an archive's entries in order and refuses, with the init's reason, every entry
/// whose path (or hard link target) goes through a symbolic link an earlier entry made.
#[derive(Debug, Default)]
pub struct PathWalk {
    symlinks: std::collections::BTreeSet<Vec<u8>>,
}

impl PathWalk {
    /// Checks the next entry, `raw` as stored in the archive; Err names the rule broken.
    pub fn check(&mut self, raw: &[u8], kind: EntryKind<'_>) -> Result<(), String> {
        let name = EntryName::parse(raw).map_err(str::to_string)?;
        self.through_symlink(name.parent(), || "its path".to_string())?;
        if let EntryKind::HardLink(raw_target) = kind {
            let shown = || format!("its hard link target '{}'", display_name(raw_target));
            let target = EntryName::parse(raw_target)
                .map_err(|reason| format!("{} is refused: {reason}", shown()))?;
            if target.components.is_empty() {
                return Err("its hard link target is the archive's root".to_string());
            }
            self.through_symlink(target.parent(), shown)?;
        }
        let path = join(&name.components);
        if kind == EntryKind::Symlink {
            self.symlinks.insert(path);
        } else {
            // Whatever was at this path, a later entry replaces it.
            self.symlinks.remove(&path);
        }
        Ok(())
    }

    fn through_symlink(&self, parent: &[&[u8]], what: impl Fn() -> String) -> Result<(), String> {
        for depth in 1..=parent.len() {
            let prefix = join(&parent[..depth]);
            if self.symlinks.contains(&prefix) {
                return Err(through_symlink_reason(&what(), &display_name(&prefix)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn components(raw: &str) -> Vec<&str> {
        EntryName::parse(raw.as_bytes())
            .unwrap()
            .components
            .iter()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect()
    }

    #[test]
    fn dots_and_repeated_slashes_are_dropped() {
        assert_eq!(components("./usr/bin/"), ["usr", "bin"]);
        assert_eq!(components("etc//./passwd"), ["etc", "passwd"]);
        assert_eq!(components("a.b/..c/..."), ["a.b", "..c", "..."]);
        assert!(components("./").is_empty());
        assert!(components(".").is_empty());
    }

    #[test]
    fn escapes_are_refused_with_a_reason() {
        assert_eq!(
            EntryName::parse(b"/etc/passwd"),
            Err("the name is an absolute path")
        );
        assert_eq!(
            EntryName::parse(b"../x"),
            Err("the name contains a '..' component")
        );
        assert_eq!(
            EntryName::parse(b"a/../../x"),
            Err("the name contains a '..' component")
        );
        assert_eq!(
            EntryName::parse(b"a/.."),
            Err("the name contains a '..' component")
        );
        assert_eq!(EntryName::parse(b""), Err("the name is empty"));
        assert_eq!(
            EntryName::parse(b"a\0b"),
            Err("the name contains a NUL byte")
        );
    }

    #[test]
    fn entries_below_a_symlink_are_refused_until_a_later_entry_replaces_it() {
        let mut walk = PathWalk::default();
        walk.check(b"./", EntryKind::Other).unwrap();
        walk.check(b"a", EntryKind::Symlink).unwrap();
        let refused = walk.check(b"a/etc/x", EntryKind::Other).unwrap_err();
        assert!(refused.contains("symbolic link 'a'"), "{refused}");
        let refused = walk
            .check(b"hard", EntryKind::HardLink(b"a/etc/passwd"))
            .unwrap_err();
        assert!(
            refused.contains("hard link target 'a/etc/passwd' goes through the symbolic link 'a'"),
            "{refused}"
        );
        assert!(walk.check(b"root", EntryKind::HardLink(b"./")).is_err());
        // A link to the symlink itself is fine: it links the symlink.
        walk.check(b"copy", EntryKind::HardLink(b"a")).unwrap();
        // A directory replaces the symlink: below it is fine again.
        walk.check(b"a/", EntryKind::Other).unwrap();
        walk.check(b"a/etc/x", EntryKind::Other).unwrap();
        assert!(walk.check(b"/abs", EntryKind::Other).is_err());
    }

    #[test]
    fn odd_names_are_printable() {
        assert_eq!(display_name(b"a\nb"), "a\\nb");
        assert_eq!(display_name(b"\xff"), "\u{fffd}");
    }

    #[test]
    fn parent_and_file_name_split_the_last_component() {
        let name = EntryName::parse(b"./usr/lib/libc.so").unwrap();
        assert_eq!(name.parent(), [&b"usr"[..], b"lib"]);
        assert_eq!(name.file_name(), Some(&b"libc.so"[..]));
        assert_eq!(join(name.parent()), b"usr/lib");
        let top = EntryName::parse(b"init").unwrap();
        assert!(top.parent().is_empty());
        let root = EntryName::parse(b"./").unwrap();
        assert!(root.components.is_empty() && root.file_name().is_none());
    }
}
