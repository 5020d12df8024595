//! An in-memory file tree: what the builder decides to put in an archive, before writing it.
//!
//! Paths are kept normalised (`usr/bin/x`: relative, no `.`/`..`, no trailing slash) in a
//! sorted map, so archives come out sorted with parents before children (a path sorts
//! before every path it prefixes) and a later insert on the same path replaces the earlier
//! one: "last one wins", as overlays need.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{BuildError, Result};

/// Where a file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A host file, read when the archive is written (follows symlinks).
    Host(PathBuf),
    /// Bytes the builder generated.
    Bytes(Vec<u8>),
}

impl Source {
    /// The bytes: read from the host, or borrowed.
    pub fn read(&self) -> Result<std::borrow::Cow<'_, [u8]>> {
        match self {
            Source::Host(path) => fs::read(path)
                .map(std::borrow::Cow::Owned)
                .map_err(BuildError::io(format!("read {}", path.display()))),
            Source::Bytes(bytes) => Ok(std::borrow::Cow::Borrowed(bytes)),
        }
    }
}

/// What a tree node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A regular file and where its bytes come from.
    File(Source),
    /// A directory.
    Dir,
    /// A symbolic link to this target.
    Symlink(String),
    /// A character device node.
    CharDevice {
        /// The device's major number.
        major: u32,
        /// The device's minor number.
        minor: u32,
    },
}

/// One node of a [`Tree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// What it is.
    pub kind: NodeKind,
    /// Permission bits only (`0o7777`); the type comes from `kind`.
    pub mode: u32,
    /// Created only because a child needed a parent: an archive that already has this
    /// directory keeps its own.
    pub implicit: bool,
}

/// A filesystem tree to archive: nodes by normalised path, parents implied.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

/// Normalise an image path: strip leading `/` and `./`, drop `.` components; `..` and empty
/// paths are refused (they would point outside the image).
pub fn normalize(path: &str) -> Result<String> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(BuildError::ImagePath {
                    path: path.to_string(),
                    reason: "`..` is not allowed in image paths".into(),
                });
            }
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Tree {
        Tree::default()
    }

    /// Every node with its path, sorted by path (parents before children).
    pub fn nodes(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(path, node)| (path.as_str(), node))
    }

    /// The node at `path` (normalised first).
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// How many nodes there are, implied directories included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the tree has no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds or replaces a file at `path`; missing parents become implicit directories.
    pub fn add_file(&mut self, path: &str, source: Source, mode: u32) -> Result<()> {
        self.add(path, NodeKind::File(source), mode)
    }

    /// Adds or replaces a directory at `path`; missing parents become implicit directories.
    pub fn add_dir(&mut self, path: &str, mode: u32) -> Result<()> {
        self.add(path, NodeKind::Dir, mode)
    }

    /// Adds or replaces a symbolic link (mode 0777) at `path` to `target`.
    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<()> {
        self.add(path, NodeKind::Symlink(target.to_string()), 0o777)
    }

    /// Adds or replaces a character device node `major:minor` at `path`.
    pub fn add_char_device(&mut self, path: &str, major: u32, minor: u32, mode: u32) -> Result<()> {
        self.add(path, NodeKind::CharDevice { major, minor }, mode)
    }

    /// Add (or replace) a node; missing parents are created as implicit directories.
    pub fn add(&mut self, path: &str, kind: NodeKind, mode: u32) -> Result<()> {
        let path = normalize(path)?;
        if path.is_empty() {
            // The root itself: nothing to record, archives start inside it.
            return Ok(());
        }
        self.add_parents(&path);
        if !matches!(kind, NodeKind::Dir) {
            // A file replacing a directory takes its children with it; otherwise the
            // archive would hold children under a non-directory and fail to unpack.
            self.remove_children(&path);
        }
        self.nodes.insert(
            path,
            Node {
                kind,
                mode: mode & 0o7777,
                implicit: false,
            },
        );
        Ok(())
    }

    fn add_parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(slash) = path[end..].find('/') {
            let parent = &path[..end + slash];
            let is_dir = self
                .nodes
                .get(parent)
                .is_some_and(|node| node.kind == NodeKind::Dir);
            if !is_dir {
                self.nodes.insert(
                    parent.to_string(),
                    Node {
                        kind: NodeKind::Dir,
                        mode: 0o755,
                        implicit: true,
                    },
                );
            }
            end += slash + 1;
        }
    }

    fn remove_children(&mut self, path: &str) {
        let prefix = format!("{path}/");
        let children: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(child, _)| child.starts_with(&prefix))
            .map(|(child, _)| child.clone())
            .collect();
        for child in children {
            self.nodes.remove(&child);
        }
    }

    /// Copy a host directory recursively under `dest` (sorted, so the result does not depend
    /// on the order the host file system lists entries in).
    pub fn add_host_dir(&mut self, src: &Path, dest: &str) -> Result<()> {
        let meta = fs::metadata(src).map_err(BuildError::io(format!("read {}", src.display())))?;
        if !meta.is_dir() {
            return Err(BuildError::Config(format!(
                "rootfs directory {} is not a directory",
                src.display()
            )));
        }
        if !normalize(dest)?.is_empty() {
            self.add_dir(dest, mode_of(&meta))?;
        }
        let mut entries: Vec<_> = fs::read_dir(src)
            .map_err(BuildError::io(format!("list {}", src.display())))?
            .collect::<std::io::Result<_>>()
            .map_err(BuildError::io(format!("list {}", src.display())))?;
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let host = entry.path();
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(BuildError::ImagePath {
                    path: host.display().to_string(),
                    reason: "file name is not UTF-8".into(),
                });
            };
            let image = format!("{}/{name}", dest.trim_end_matches('/'));
            let meta = fs::symlink_metadata(&host)
                .map_err(BuildError::io(format!("read {}", host.display())))?;
            let kind = meta.file_type();
            if kind.is_symlink() {
                let target = fs::read_link(&host)
                    .map_err(BuildError::io(format!("read link {}", host.display())))?;
                self.add_symlink(&image, &target.to_string_lossy())?;
            } else if kind.is_dir() {
                self.add_host_dir(&host, &image)?;
            } else if kind.is_file() {
                self.add_file(&image, Source::Host(host), mode_of(&meta))?;
            } else {
                return Err(BuildError::Config(format!(
                    "{}: only files, directories and symlinks can be copied into the image",
                    host.display()
                )));
            }
        }
        Ok(())
    }
}

/// Permission bits of a host file.
pub fn mode_of(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_strips_prefixes_and_refuses_dotdot() {
        assert_eq!(normalize("/usr/bin/x").unwrap(), "usr/bin/x");
        assert_eq!(normalize("./etc//a/./b/").unwrap(), "etc/a/b");
        assert_eq!(normalize("/").unwrap(), "");
        assert!(normalize("/etc/../x").is_err());
    }

    #[test]
    fn parents_come_first_and_last_insert_wins() {
        let mut tree = Tree::new();
        tree.add_file("/usr/bin/x", Source::Bytes(b"1".to_vec()), 0o755)
            .unwrap();
        tree.add_file("/usr/bin-x", Source::Bytes(b"2".to_vec()), 0o644)
            .unwrap();
        tree.add_file("/usr/bin/x", Source::Bytes(b"3".to_vec()), 0o700)
            .unwrap();
        let paths: Vec<&str> = tree.nodes().map(|(path, _)| path).collect();
        assert_eq!(paths, ["usr", "usr/bin", "usr/bin-x", "usr/bin/x"]);
        let node = tree.get("usr/bin/x").unwrap();
        assert_eq!(node.kind, NodeKind::File(Source::Bytes(b"3".to_vec())));
        assert_eq!(node.mode, 0o700);
        assert!(tree.get("usr").unwrap().implicit);
    }

    #[test]
    fn a_file_over_a_directory_removes_its_children() {
        let mut tree = Tree::new();
        tree.add_file("/etc/ssl/a", Source::Bytes(vec![]), 0o644)
            .unwrap();
        tree.add_symlink("/etc/ssl", "/usr/share/ssl").unwrap();
        assert!(tree.get("etc/ssl/a").is_none());
        assert_eq!(
            tree.get("etc/ssl").unwrap().kind,
            NodeKind::Symlink("/usr/share/ssl".into())
        );
    }
}
