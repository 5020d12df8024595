//! The lexical half of the escape checks: an archive name must be a plain relative path.
//! (The other half, symbolic links on the way, is checked by the kernel in `beneath`.)

/// A validated archive name: its components, none of them empty, `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryName<'a> {
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
