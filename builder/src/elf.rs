//! Shared-library gathering for host programs, the way u-root's ldd and dracut do it:
//! follow the ELF interpreter (PT_INTERP) and every DT_NEEDED entry, resolved against
//! DT_RPATH/DT_RUNPATH and the system's library directories, recursively.
//!
//! Nothing is executed (no `ldd`): the ELF headers are read with goblin, so gathering works
//! for programs of another libc and never runs untrusted code.

use std::collections::{BTreeSet, VecDeque};
use std::fs::{self, File};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use goblin::elf::Elf;

use crate::error::{BuildError, Result};

/// Searched after a binary's own RPATH/RUNPATH, in this order (Debian multiarch first).
pub const LIBRARY_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// A host path to copy into the image at the same path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum HostEntry {
    /// A regular file.
    File(PathBuf),
    /// A symlink, copied as a symlink (its target is gathered too).
    Symlink {
        /// The symlink's path.
        path: PathBuf,
        /// What it points to, as read.
        target: PathBuf,
    },
}

impl HostEntry {
    /// The entry's host path.
    pub fn path(&self) -> &Path {
        match self {
            HostEntry::File(path) | HostEntry::Symlink { path, .. } => path,
        }
    }
}

/// What a binary needs from the dynamic loader.
struct Needs {
    interpreter: Option<String>,
    libraries: Vec<String>,
    search: Vec<PathBuf>,
    class: u8,
    machine: u16,
}

/// Every library (and the interpreter) `program` needs, sorted. A statically linked program
/// or a non-ELF file (a script) needs none.
pub fn gather_libraries(program: &Path) -> Result<Vec<HostEntry>> {
    let Some(root) = read_needs(program, program)? else {
        return Ok(Vec::new());
    };
    let (class, machine) = (root.class, root.machine);
    let mut entries = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([root]);
    while let Some(needs) = queue.pop_front() {
        let mut found = Vec::new();
        if let Some(interp) = &needs.interpreter {
            found.push(add_chain(program, Path::new(interp), &mut entries)?);
        }
        for library in &needs.libraries {
            let path = resolve(library, &needs.search, class, machine).ok_or_else(|| {
                BuildError::MissingLibrary {
                    program: program.to_path_buf(),
                    library: library.clone(),
                    searched: needs
                        .search
                        .iter()
                        .map(|dir| dir.display().to_string())
                        .chain(LIBRARY_DIRS.iter().map(|dir| dir.to_string()))
                        .collect::<Vec<_>>()
                        .join(":"),
                }
            })?;
            found.push(add_chain(program, &path, &mut entries)?);
        }
        for real in found {
            if seen.insert(real.clone())
                && let Some(more) = read_needs(program, &real)?
            {
                queue.push_back(more);
            }
        }
    }
    Ok(entries.into_iter().collect())
}

/// Parse an ELF file's dynamic needs; `None` when it is not an ELF file at all.
fn read_needs(program: &Path, path: &Path) -> Result<Option<Needs>> {
    let bytes = fs::read(path).map_err(BuildError::io(format!("read {}", path.display())))?;
    if !bytes.starts_with(b"\x7fELF") {
        return Ok(None);
    }
    let elf = Elf::parse(&bytes).map_err(|err| BuildError::Elf {
        program: program.to_path_buf(),
        reason: format!("cannot parse {}: {err}", path.display()),
    })?;
    let origin = path.parent().unwrap_or(Path::new("/"));
    // ld.so ignores DT_RPATH when DT_RUNPATH is present.
    let paths = if elf.runpaths.is_empty() {
        &elf.rpaths
    } else {
        &elf.runpaths
    };
    let search = paths
        .iter()
        .flat_map(|list| list.split(':'))
        .filter(|dir| !dir.is_empty())
        .map(|dir| expand_origin(dir, origin))
        .collect();
    Ok(Some(Needs {
        interpreter: elf.interpreter.map(str::to_string),
        libraries: elf.libraries.iter().map(|lib| lib.to_string()).collect(),
        search,
        class: elf.header.e_ident[goblin::elf::header::EI_CLASS],
        machine: elf.header.e_machine,
    }))
}

fn expand_origin(dir: &str, origin: &Path) -> PathBuf {
    let origin = origin.to_string_lossy();
    PathBuf::from(
        dir.replace("${ORIGIN}", &origin)
            .replace("$ORIGIN", &origin),
    )
}

/// Find a library by name; a name with a slash is a path already.
fn resolve(name: &str, search: &[PathBuf], class: u8, machine: u16) -> Option<PathBuf> {
    if name.contains('/') {
        return Path::new(name).exists().then(|| PathBuf::from(name));
    }
    search
        .iter()
        .cloned()
        .chain(LIBRARY_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| compatible(candidate, class, machine))
}

/// Whether a candidate is an ELF of the same class and machine (ld.so skips a 32-bit libc
/// found first in a shared directory; so do we).
fn compatible(path: &Path, class: u8, machine: u16) -> bool {
    let mut head = [0u8; 64];
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    if file.read_exact(&mut head).is_err() {
        return false;
    }
    match Elf::parse_header(&head) {
        Ok(header) => {
            header.e_ident[goblin::elf::header::EI_CLASS] == class && header.e_machine == machine
        }
        Err(_) => false,
    }
}

/// Record `path` and, when it is a symlink, the chain down to the real file, returning it.
fn add_chain(program: &Path, path: &Path, entries: &mut BTreeSet<HostEntry>) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        let meta = fs::symlink_metadata(&current).map_err(|err| BuildError::Elf {
            program: program.to_path_buf(),
            reason: format!("needs {}: {err}", current.display()),
        })?;
        if !meta.file_type().is_symlink() {
            entries.insert(HostEntry::File(current.clone()));
            return Ok(current);
        }
        let target = fs::read_link(&current)
            .map_err(BuildError::io(format!("read link {}", current.display())))?;
        entries.insert(HostEntry::Symlink {
            path: current.clone(),
            target: target.clone(),
        });
        let parent = current.parent().unwrap_or(Path::new("/"));
        current = lexical_join(parent, &target);
    }
    Err(BuildError::Elf {
        program: program.to_path_buf(),
        reason: format!("too many levels of symlinks at {}", path.display()),
    })
}

/// `base/target` with `.` and `..` folded, so the recorded paths are clean.
fn lexical_join(base: &Path, target: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in base.join(target).components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(entries: &[HostEntry]) -> Vec<String> {
        entries
            .iter()
            .filter_map(|entry| entry.path().file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_dynamic_program_brings_its_loader_and_libc() {
        let entries = gather_libraries(Path::new("/bin/ls")).unwrap();
        let names = names(&entries);
        assert!(
            names.iter().any(|n| n == "ld-linux-x86-64.so.2"),
            "{names:?}"
        );
        assert!(names.iter().any(|n| n == "libc.so.6"), "{names:?}");
        // Every symlink's target is gathered too, as a file or another symlink.
        for entry in &entries {
            if let HostEntry::Symlink { path, target } = entry {
                let resolved = lexical_join(path.parent().unwrap(), target);
                assert!(
                    entries.iter().any(|other| other.path() == resolved),
                    "{} -> {} target missing",
                    path.display(),
                    target.display()
                );
            }
        }
    }

    #[test]
    fn a_static_program_or_script_needs_nothing() {
        assert!(
            gather_libraries(Path::new("/bin/busybox"))
                .unwrap()
                .is_empty()
        );
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s.sh");
        fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        assert!(gather_libraries(&script).unwrap().is_empty());
    }

    #[test]
    fn a_missing_library_names_program_and_library() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("p.c");
        fs::write(&src, "int main(void){return 0;}\n").unwrap();
        let lib_src = dir.path().join("l.c");
        fs::write(&lib_src, "int f(void){return 1;}\n").unwrap();
        let lib = dir.path().join("libgone.so");
        let ok = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&lib)
            .arg(&lib_src)
            .status()
            .unwrap();
        assert!(ok.success());
        let program = dir.path().join("p");
        let ok = std::process::Command::new("cc")
            .arg("-o")
            .arg(&program)
            .arg(&src)
            .arg("-L")
            .arg(dir.path())
            .args(["-Wl,--no-as-needed", "-lgone"])
            .status()
            .unwrap();
        assert!(ok.success());
        fs::remove_file(&lib).unwrap();
        let err = gather_libraries(&program).unwrap_err().to_string();
        assert!(err.contains("libgone.so"), "{err}");
        assert!(err.contains(&program.display().to_string()), "{err}");
    }

    #[test]
    fn origin_rpath_is_searched() {
        let dir = tempfile::tempdir().unwrap();
        let lib_src = dir.path().join("l.c");
        fs::write(&lib_src, "int f(void){return 1;}\n").unwrap();
        fs::create_dir(dir.path().join("lib")).unwrap();
        let ok = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(dir.path().join("lib/libmine.so"))
            .arg(&lib_src)
            .status()
            .unwrap();
        assert!(ok.success());
        let src = dir.path().join("p.c");
        fs::write(&src, "int f(void); int main(void){return f();}\n").unwrap();
        let program = dir.path().join("p");
        let ok = std::process::Command::new("cc")
            .arg("-o")
            .arg(&program)
            .arg(&src)
            .arg(format!("-L{}", dir.path().join("lib").display()))
            .args(["-lmine", "-Wl,-rpath,$ORIGIN/lib"])
            .status()
            .unwrap();
        assert!(ok.success());
        let entries = gather_libraries(&program).unwrap();
        assert!(entries.contains(&HostEntry::File(dir.path().join("lib/libmine.so"))));
    }
}
