//! What the next stage reads: the credentials (mode 0600) and then, last, the env file whose
//! existence tells the init's supervisor that the tink-worker may start.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::Admission;
use crate::enroll::NodeCredential;
use crate::identity::Identity;
use crate::onboard::Credentials;

/// A credentials file cannot be written; the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}; check that its directory is writable (a tmpfs under /run)")]
pub struct OutputError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// Writes `contents` to `path` through a temporary file in the same directory and a rename, so
/// a reader sees the old file or the whole new one; the mode is set before any byte is written.
fn write_atomically(path: &Path, contents: &str, mode: u32) -> Result<(), OutputError> {
    let error = |source| OutputError {
        path: path.to_path_buf(),
        source,
    };
    let directory = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(directory).map_err(error)?;
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = directory.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)
        .and_then(|mut file| {
            // The mode given to open is masked by the umask; set it exactly.
            file.set_permissions(fs::Permissions::from_mode(mode))?;
            file.write_all(contents.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temporary, path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written.map_err(error)
}

/// `client_id`, `client_secret` and `project_id`, each in its own 0600 file (EMT's layout).
pub fn write_credentials(directory: &Path, credentials: &Credentials) -> Result<(), OutputError> {
    for (name, value) in [
        ("client_id", &credentials.client_id),
        ("client_secret", &credentials.client_secret),
        ("project_id", &credentials.project_id),
    ] {
        write_atomically(&directory.join(name), value, 0o600)?;
    }
    Ok(())
}

/// The node credential's files in `directory`, as the worker reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCredentialFiles {
    /// `node.pem`: the client certificate.
    pub cert: PathBuf,
    /// `node-key.pem` (0600): its private key.
    pub key: PathBuf,
    /// `node-ca.pem`: the node CA.
    pub ca: PathBuf,
}

impl NodeCredentialFiles {
    /// The file names in `directory`.
    pub fn in_directory(directory: &Path) -> Self {
        NodeCredentialFiles {
            cert: directory.join("node.pem"),
            key: directory.join("node-key.pem"),
            ca: directory.join("node-ca.pem"),
        }
    }
}

/// Writes the node credential into `directory`: the key first and 0600 from its creation (it
/// never exists with wider permissions), then the certificate and the CA (0644, public).
pub fn write_node_credential(
    directory: &Path,
    credential: &NodeCredential,
) -> Result<NodeCredentialFiles, OutputError> {
    let files = NodeCredentialFiles::in_directory(directory);
    write_atomically(&files.key, &credential.key_pem, 0o600)?;
    write_atomically(&files.cert, &credential.cert_pem, 0o644)?;
    write_atomically(&files.ca, &credential.ca_pem, 0o644)?;
    Ok(files)
}

/// The env file's text; values are quoted only when the shell would need it. `NODE_ID` and
/// `PROJECT_ID` are empty unless onboarded; `ONBOARDING` says how the worker was let start
/// (`onboarded`, `not-served` or `off`). With `node_credential`, `TINKERBELL_CLIENT_CERT` and
/// `TINKERBELL_CLIENT_KEY` name its files for the tink-worker.
pub fn env_file_text(
    identity: &Identity,
    admission: &Admission,
    node_credential: Option<&NodeCredentialFiles>,
) -> String {
    let optional = |value: &Option<String>| value.clone().unwrap_or_default();
    let credential = |pick: fn(&Credentials) -> &String| {
        admission
            .credentials()
            .map(|credentials| pick(credentials).clone())
            .unwrap_or_default()
    };
    [
        ("WORKER_ID", identity.boot_mac.clone()),
        ("HW_ADDR", identity.boot_mac.clone()),
        ("NODE_ID", credential(|credentials| &credentials.client_id)),
        ("SERIAL", optional(&identity.serial)),
        ("UUID", optional(&identity.uuid)),
        ("IP", optional(&identity.ip)),
        (
            "PROJECT_ID",
            credential(|credentials| &credentials.project_id),
        ),
        ("ONBOARDING", admission.name().to_string()),
    ]
    .into_iter()
    .chain(node_credential.into_iter().flat_map(|files| {
        [
            ("TINKERBELL_CLIENT_CERT", files.cert.display().to_string()),
            ("TINKERBELL_CLIENT_KEY", files.key.display().to_string()),
        ]
    }))
    .map(|(key, value)| format!("{key}={}\n", shell_value(&value)))
    .collect()
}

fn shell_value(value: &str) -> String {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '-' | '_' | '/'));
    if plain {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// The readiness file: readable by all (it holds no secret), written after the credentials.
pub fn write_env_file(path: &Path, text: &str) -> Result<(), OutputError> {
    write_atomically(path, text, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_values_are_quoted_for_the_shell() {
        assert_eq!(shell_value("aa:bb:cc:dd:ee:ff"), "aa:bb:cc:dd:ee:ff");
        assert_eq!(shell_value(""), "");
        assert_eq!(shell_value("SN 1'2"), r"'SN 1'\''2'");
    }

    #[test]
    fn rewriting_keeps_the_mode_and_replaces_the_content() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nested/secret");
        write_atomically(&path, "one", 0o600).unwrap();
        write_atomically(&path, "two", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers = fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }
}
