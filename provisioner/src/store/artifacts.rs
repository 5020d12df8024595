//! Where a profile's files may live: the artifacts directory (`<database dir>/artifacts`, or
//! `serve --artifacts-dir`) and the extra roots of `serve --artifacts-root`.
//!
//! Why a rule: a profile names files that the boot service hands to anyone on the boot
//! network, so a profile naming `/etc/shadow` (through the admin API or a stolen admin
//! certificate) would publish it. `serve` records the roots in the database, so that
//! `profile create`/`apply` on the CLI and the admin API check against the same roots;
//! before any `serve` ran, the default directory is the only root.
//!
//! A location is an http(s) URL (not a file here), a relative path (under the artifacts
//! directory), or an absolute path under one of the roots after lexical normalisation; `..`
//! is refused. Files are opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`
//! relative to their root ([`bootkit_common::beneath`]), so a symlink inside a root that
//! leads out is refused at the open, and one that stays inside is followed.

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use bootkit_common::beneath::{BeneathError, open_beneath};
use rusqlite::{Connection, TransactionBehavior, params};
use rustix::fs::{FileType, OFlags};
use rustix::io::Errno;

use super::{Result, Store};
use crate::template::FieldError;

/// The artifacts directory and the extra roots profiles' files may be under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRoots {
    /// Relative locations resolve here; created by `serve`.
    pub dir: PathBuf,
    /// More directories absolute locations may be under (`serve --artifacts-root`).
    pub extra: Vec<PathBuf>,
}

/// A file location checked against the roots: the root it is under, and the path beneath it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPath {
    /// The root directory the file is opened beneath.
    pub root: PathBuf,
    /// The file's path beneath `root`, without `.` or `..`.
    pub relative: PathBuf,
}

/// Why a profile's file cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The location is not under a root (or has `..`): refused, not looked at.
    #[error("{0}")]
    Outside(FieldError),
    /// The file is a symlink leading out of its root.
    #[error(
        "{path} is a symlink leading out of {root}: put the file itself in the artifacts directory"
    )]
    LeadsOut {
        /// The location as the profile names it.
        path: String,
        /// Its root.
        root: String,
    },
    /// No such file.
    #[error("cannot read {path}: it does not exist; put the file there or fix the profile")]
    Missing {
        /// The location as the profile names it.
        path: String,
    },
    /// Anything else (permissions, not a regular file, ...).
    #[error("cannot read {path}: {why}; check the file and its permissions")]
    Unreadable {
        /// The location as the profile names it.
        path: String,
        /// What failed.
        why: String,
    },
}

/// Whether `location` is served from elsewhere (http or https) rather than from a file here.
pub fn is_url(location: &str) -> bool {
    location.starts_with("http://") || location.starts_with("https://")
}

/// `path` with `.` removed; None if it has a `..` component (refused rather than resolved,
/// since a symlink before it would make the lexical answer wrong).
fn normalise(path: &Path) -> Option<PathBuf> {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => return None,
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    Some(normal)
}

impl ArtifactRoots {
    /// The roots before any `serve` set them: `<database dir>/artifacts` only.
    pub fn default_for(database: &Path) -> Self {
        let dir = database
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."))
            .join("artifacts");
        Self::new(dir, Vec::new())
    }

    /// The roots `dir` and `extra`, made absolute (against the current directory) and
    /// normalised, so that absolute locations compare against them lexically.
    pub fn new(dir: PathBuf, extra: Vec<PathBuf>) -> Self {
        let absolute = |path: PathBuf| {
            let path = if path.is_absolute() {
                path
            } else {
                std::env::current_dir().unwrap_or_default().join(path)
            };
            normalise(&path).unwrap_or(path)
        };
        Self {
            dir: absolute(dir),
            extra: extra.into_iter().map(absolute).collect(),
        }
    }

    fn all(&self) -> impl Iterator<Item = &PathBuf> {
        std::iter::once(&self.dir).chain(&self.extra)
    }

    /// The roots, for messages: `/a, /b`.
    pub fn describe(&self) -> String {
        self.all()
            .map(|root| root.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Where the file `location` of field `field` is; None for a URL. Refuses `..` and
    /// locations outside every root with an error naming the field, the path and the roots.
    pub fn locate(&self, field: &str, location: &str) -> Result<Option<ArtifactPath>, FieldError> {
        let location = location.trim();
        if is_url(location) {
            return Ok(None);
        }
        if location.is_empty() {
            return Err(FieldError::new(
                field,
                "empty; give a path under the artifacts directory or an http(s) URL",
            ));
        }
        let outside = |why: &str| {
            FieldError::new(
                field,
                format!(
                    "{location} {why}; the artifact roots are {roots}: put the file in {dir} or \
                     add --artifacts-root DIR to `provisioner serve`",
                    roots = self.describe(),
                    dir = self.dir.display()
                ),
            )
        };
        let path = normalise(Path::new(location)).ok_or_else(|| outside("has a `..` component"))?;
        if path.is_relative() {
            return Ok(Some(ArtifactPath {
                root: self.dir.clone(),
                relative: path,
            }));
        }
        self.all()
            .find_map(|root| {
                let relative = path.strip_prefix(root).ok()?;
                (!relative.as_os_str().is_empty()).then(|| ArtifactPath {
                    root: root.clone(),
                    relative: relative.to_path_buf(),
                })
            })
            .map(Some)
            .ok_or_else(|| outside("is outside the artifact roots"))
    }

    /// Opens the file `location` (field `field`) read-only beneath its root; returns it with
    /// its size. None for a URL.
    pub fn open(&self, field: &str, location: &str) -> Result<Option<(File, u64)>, ArtifactError> {
        let Some(found) = self
            .locate(field, location)
            .map_err(ArtifactError::Outside)?
        else {
            return Ok(None);
        };
        let path = location.trim().to_string();
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        let fd = open_beneath(&found.root, &found.relative.to_string_lossy(), flags).map_err(
            |error| match error {
                BeneathError::LeadsOut => ArtifactError::LeadsOut {
                    path: path.clone(),
                    root: found.root.display().to_string(),
                },
                BeneathError::Open(Errno::NOENT | Errno::NOTDIR) => {
                    ArtifactError::Missing { path: path.clone() }
                }
                BeneathError::Root {
                    errno: Errno::NOENT,
                    ..
                } => ArtifactError::Missing { path: path.clone() },
                other => ArtifactError::Unreadable {
                    path: path.clone(),
                    why: other.to_string(),
                },
            },
        )?;
        let stat = rustix::fs::fstat(&fd).map_err(|errno| ArtifactError::Unreadable {
            path: path.clone(),
            why: errno.to_string(),
        })?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(ArtifactError::Unreadable {
                path,
                why: "not a regular file".to_string(),
            });
        }
        // st_size of a regular file is never negative.
        let size = u64::try_from(stat.st_size).unwrap_or_default();
        Ok(Some((File::from(fd), size)))
    }
}

/// Position 0 is the artifacts directory, then the extra roots in order.
pub(super) fn load_roots(connection: &Connection) -> Result<ArtifactRoots> {
    let mut statement = connection.prepare("SELECT path FROM artifact_roots ORDER BY position")?;
    let mut paths = statement
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(PathBuf::from);
    if let Some(dir) = paths.next() {
        return Ok(ArtifactRoots {
            dir,
            extra: paths.collect(),
        });
    }
    // No serve ran yet.
    default_roots(connection)
}

/// `<database dir>/artifacts`, from where SQLite has the database open.
fn default_roots(connection: &Connection) -> Result<ArtifactRoots> {
    let file: String = connection.query_row(
        "SELECT file FROM pragma_database_list WHERE name = 'main'",
        [],
        |row| row.get(0),
    )?;
    Ok(ArtifactRoots::default_for(Path::new(&file)))
}

impl Store {
    /// The roots profiles' files are checked against (as the last `serve` recorded them).
    pub fn artifact_roots(&self) -> Result<ArtifactRoots> {
        load_roots(&self.connection())
    }

    /// `<database dir>/artifacts` and no extra root: `serve`'s default.
    pub fn default_artifact_roots(&self) -> Result<ArtifactRoots> {
        default_roots(&self.connection())
    }

    /// Records the roots `serve` uses, for the CLI and the admin API to check against.
    pub fn set_artifact_roots(&self, roots: &ArtifactRoots) -> Result<()> {
        let mut connection = self.connection();
        // Unchanged (the usual restart, or the default on a fresh database): no write, so
        // that a CLI writing while `serve` starts never meets this transaction.
        if load_roots(&connection)? == *roots {
            return Ok(());
        }
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        transaction.execute("DELETE FROM artifact_roots", [])?;
        for (position, root) in roots.all().enumerate() {
            transaction.execute(
                "INSERT INTO artifact_roots (position, path) VALUES (?1, ?2)",
                params![
                    i64::try_from(position).unwrap_or(i64::MAX),
                    root.to_string_lossy()
                ],
            )?;
        }
        transaction.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> ArtifactRoots {
        ArtifactRoots::new("/srv/artifacts".into(), vec!["/data/images".into()])
    }

    #[test]
    fn locations_resolve_under_a_root_or_are_refused_naming_field_path_and_roots() {
        let roots = roots();
        let found = |location| roots.locate("kernel", location).unwrap().unwrap();
        assert_eq!(found("vmlinuz").root, Path::new("/srv/artifacts"));
        assert_eq!(found("./a/vmlinuz").relative, Path::new("a/vmlinuz"));
        assert_eq!(
            found("/data/images/./os.img").root,
            Path::new("/data/images")
        );
        assert_eq!(roots.locate("os_image", "https://x/os.img").unwrap(), None);
        for bad in [
            "/etc/shadow",
            "/srv/artifacts/../../etc/shadow",
            "../x",
            "/srv/artifactsX/k",
        ] {
            let error = roots.locate("kernel", bad).unwrap_err();
            assert_eq!(error.field, "kernel");
            assert!(error.reason.contains(bad), "{error}");
            assert!(
                error.reason.contains("/srv/artifacts, /data/images"),
                "{error}"
            );
            assert!(error.reason.contains("--artifacts-root"), "{error}");
        }
    }
}
