//! Loading the service definitions of a services directory at boot. The schema (keys,
//! defaults, checks) is [`bootkit_common::service_def`], which the builder checks at build
//! time too; here is only the reading: a file that fails to load is reported with its name and
//! the reason and skipped, and the other services still run.

use std::path::{Path, PathBuf};

use bootkit_common::service_def::{
    MAX_FILE_BYTES, ServiceDef, ServiceDefError, name_of_file, parse,
};

/// At most this many files are read from the services directory (a bound on the loop).
const MAX_DEFINITION_FILES: usize = 4096;

/// Why one definition file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("{file}: cannot read it: {source}; check its permissions")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {size} bytes is too large for a service definition (at most {max})")]
    TooLarge { file: PathBuf, size: u64, max: u64 },
    #[error("{file}: {source}")]
    Schema {
        file: PathBuf,
        source: ServiceDefError,
    },
}

impl DefinitionError {
    /// The definition file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            DefinitionError::Read { file, .. }
            | DefinitionError::TooLarge { file, .. }
            | DefinitionError::Schema { file, .. } => file,
        }
    }
}

/// What loading a services directory found: the good definitions, sorted by name, and one
/// error per file that was skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    pub services: Vec<ServiceDef>,
    pub errors: Vec<DefinitionError>,
}

/// Load every `*.toml` file of `dir`. A missing directory means no services; any other failure
/// to list it is returned. Failures of single files are collected in `Loaded::errors`.
pub fn load_dir(dir: &Path) -> std::io::Result<Loaded> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(err) => return Err(err),
    };
    let mut files = Vec::new();
    for entry in entries.take(MAX_DEFINITION_FILES) {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            files.push(path);
        }
    }
    files.sort();
    let mut loaded = Loaded::default();
    for file in files {
        match load_file(&file) {
            Ok(service) => loaded.services.push(service),
            Err(err) => loaded.errors.push(err),
        }
    }
    Ok(loaded)
}

/// Load and validate one definition file; the service is named after the file stem.
pub fn load_file(file: &Path) -> Result<ServiceDef, DefinitionError> {
    let read_error = |source| DefinitionError::Read {
        file: file.to_owned(),
        source,
    };
    let size = std::fs::metadata(file).map_err(read_error)?.len();
    if size > MAX_FILE_BYTES {
        return Err(DefinitionError::TooLarge {
            file: file.to_owned(),
            size,
            max: MAX_FILE_BYTES,
        });
    }
    let text = std::fs::read_to_string(file).map_err(read_error)?;
    parse(&name_of_file(file), &text).map_err(|source| DefinitionError::Schema {
        file: file.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_dir_skips_bad_files_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.toml"), "command = \"/bin/b\"").unwrap();
        std::fs::write(dir.path().join("a.toml"), "command = \"/bin/a\"").unwrap();
        std::fs::write(
            dir.path().join("bad.toml"),
            "command = \"/bin/x\"\nbogus = 1",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a service").unwrap();
        let loaded = load_dir(dir.path()).unwrap();
        let names: Vec<_> = loaded.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(loaded.errors.len(), 1);
        let message = loaded.errors[0].to_string();
        assert!(
            message.contains("bad.toml: line 2: unknown field `bogus`"),
            "{message}"
        );
    }

    #[test]
    fn missing_directory_means_no_services() {
        let loaded = load_dir(Path::new("/nonexistent/bootkit/services")).unwrap();
        assert!(loaded.services.is_empty() && loaded.errors.is_empty());
    }
}
