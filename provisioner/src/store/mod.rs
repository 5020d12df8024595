//! The embedded store: SQLite in WAL mode, every change in one transaction.
//!
//! The server and the CLI may open the same file at once; SQLite serializes writers and
//! the busy timeout makes the second one wait instead of failing.

mod artifacts;
mod audit;
mod credential;
mod credentials;
mod hardware;
mod identity;
mod logs;
mod nodes;
mod outcome;
mod profiles;
mod refusals;
mod registering;
mod registrations;
mod templates;
pub mod text;
mod work;
mod workflows;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

pub use artifacts::{ArtifactError, ArtifactPath, ArtifactRoots, is_url};
pub use audit::{
    AuditEntry, MAX_AUDIT_ENTRIES, MAX_AUDIT_READ, MAX_UNAUTHENTICATED_ENTRIES, NewAuditEntry,
};
pub use credential::Credential;
pub use credentials::{Enrolled, EnrollmentRefused, Revocation};
pub use hardware::{Hardware, HardwareSpec};
pub use identity::Identity;
pub use logs::{LogLine, MAX_LOG_LINES_PER_NODE, NewLogLine};
pub use nodes::{BootPlan, Discovered, Discovery, Event, Node, NodeDetail, NodeState, Progress};
pub use outcome::Outcome;
pub use profiles::{Profile, ProfileSpec};
pub use refusals::{MAX_REFUSALS, Refusal};
pub use registering::Registered;
#[cfg(feature = "fuzzing")]
pub use registrations::parse_registrations_csv;
pub use registrations::{Match, Registration, RegistrationSpec};
pub use templates::TemplateRecord;
pub use work::{ActionReport, NextAction, ReportTarget, WorkflowContext};
pub use workflows::{ActionRecord, Workflow, WorkflowSpan};

use crate::state::ReportError;
use crate::template::FieldError;

/// Everything the store can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An input field is wrong; says which and why.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// No record of this kind with this id.
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// What was looked up (`node`, `profile`, ...).
        kind: &'static str,
        /// The id or name asked for.
        id: String,
    },
    /// The change contradicts what is stored (a duplicate name, id or MAC); says what to do.
    #[error("{0}")]
    Conflict(String),
    /// A worker's report cannot be applied.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The caller may not do this (for example a worker reporting another worker's action).
    #[error("{0}")]
    PermissionDenied(String),
    // Not a `source`: the message carries SQLite's reason already, and error chains
    // would print it twice.
    /// SQLite failed.
    #[error("database: {0} (check that the --db file is writable and is a provisioner database)")]
    Database(rusqlite::Error),
    /// A stored value does not parse back (a database written by something else).
    #[error("database holds a value it cannot read back: {0}")]
    Corrupt(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Database(error)
    }
}

/// The store's results; errors are [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS hardware (
    id TEXT PRIMARY KEY,
    ips TEXT NOT NULL,
    attributes TEXT NOT NULL,
    agent_attributes TEXT,
    agent_seen_ms INTEGER,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS hardware_macs (
    mac TEXT PRIMARY KEY,
    hardware_id TEXT NOT NULL REFERENCES hardware(id) ON DELETE CASCADE,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS templates (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS workflows (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    template_id TEXT NOT NULL,
    hardware_map TEXT NOT NULL,
    global_timeout INTEGER NOT NULL,
    state TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    started_ms INTEGER,
    stopped_ms INTEGER
);
CREATE TABLE IF NOT EXISTS actions (
    workflow_id TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    task_id TEXT NOT NULL,
    task_name TEXT NOT NULL,
    worker TEXT NOT NULL,
    action_id TEXT NOT NULL,
    name TEXT NOT NULL,
    image TEXT NOT NULL,
    timeout INTEGER NOT NULL,
    command TEXT NOT NULL,
    on_timeout TEXT NOT NULL,
    on_failure TEXT NOT NULL,
    volumes TEXT NOT NULL,
    environment TEXT NOT NULL,
    pid TEXT NOT NULL,
    state TEXT NOT NULL,
    started_ms INTEGER,
    stopped_ms INTEGER,
    duration_ms INTEGER,
    message TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (workflow_id, position)
);
CREATE TABLE IF NOT EXISTS artifact_roots (
    position INTEGER PRIMARY KEY,
    path TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS profiles (
    name TEXT PRIMARY KEY,
    kernel TEXT NOT NULL,
    initramfs TEXT NOT NULL,
    cmdline TEXT NOT NULL,
    template_id TEXT NOT NULL,
    os_image TEXT NOT NULL,
    os_image_sha256 TEXT,
    is_default INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS profiles_single_default ON profiles(is_default) WHERE is_default = 1;
CREATE TABLE IF NOT EXISTS registrations (
    id TEXT PRIMARY KEY,
    serial TEXT UNIQUE,
    uuid TEXT UNIQUE,
    mac TEXT UNIQUE,
    profile TEXT NOT NULL REFERENCES profiles(name),
    hostname TEXT,
    metadata TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY,
    serial TEXT,
    uuid TEXT,
    macs TEXT NOT NULL,
    ip TEXT,
    hostname TEXT,
    profile TEXT,
    registration_id TEXT,
    state TEXT NOT NULL,
    workflow_id TEXT,
    failure TEXT,
    secret_sha256 TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS nodes_by_ip ON nodes(ip, updated_ms);
CREATE INDEX IF NOT EXISTS nodes_by_workflow ON nodes(workflow_id);
CREATE INDEX IF NOT EXISTS nodes_by_serial ON nodes(serial);
CREATE INDEX IF NOT EXISTS nodes_by_uuid ON nodes(uuid);
CREATE TABLE IF NOT EXISTS node_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id TEXT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS node_events_by_node ON node_events(node_id, seq);
CREATE TABLE IF NOT EXISTS node_logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    severity INTEGER NOT NULL,
    sent_at TEXT,
    text TEXT NOT NULL
);
-- The node's latest in-band hardware inventory (Tinkerbell's status.attributes.inBand), from
-- device discovery; a report without one keeps the last.
CREATE TABLE IF NOT EXISTS node_inventory (
    node_id TEXT PRIMARY KEY REFERENCES nodes(id) ON DELETE CASCADE,
    in_band TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS node_logs_by_node ON node_logs(node_id, seq);
-- Node credentials (store/credentials.rs): certificates the node CA issued (fingerprint: SHA-256
-- hex of the DER) and onboarding client secrets (SHA-256 hex of the secret).
CREATE TABLE IF NOT EXISTS node_credentials (
    fingerprint TEXT PRIMARY KEY,
    node_id TEXT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    issued_ms INTEGER NOT NULL,
    not_after_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
CREATE INDEX IF NOT EXISTS node_credentials_by_node ON node_credentials(node_id);
-- Admin API changes and refusals, and the local CLI's changes (store/audit.rs).
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    address TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    summary TEXT NOT NULL,
    status INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_by_time ON audit_log(at_ms);
CREATE INDEX IF NOT EXISTS audit_log_by_status ON audit_log(status, seq);
-- Nodes the provisioner refused, with the reason, for the status page (store/refusals.rs).
CREATE TABLE IF NOT EXISTS refusals (
    key TEXT PRIMARY KEY,
    mac TEXT,
    serial TEXT,
    uuid TEXT,
    ip TEXT,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS refusals_by_time ON refusals(last_ms);
";

/// The provisioner's database.
pub struct Store {
    connection: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let mut connection = Connection::open(path)?;
        connection.busy_timeout(Duration::from_secs(10))?;
        // Transactions take the write lock when they begin, not at their first write: a
        // deferred one that read first and then writes fails at once with "database is locked"
        // (no busy wait) if another process (the CLI beside `serve`) wrote in between.
        connection.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        connection.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a report acknowledged to a worker survives a power cut of the server.
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.execute_batch(SCHEMA)?;
        add_missing_columns(&connection)?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    /// The connection. Queries are short, so async handlers take it directly rather than
    /// moving each one to a blocking thread.
    fn connection(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll
        // back on drop), so a poisoned lock is still safe to use.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Columns added to a table after its `CREATE TABLE` in [`SCHEMA`] was first released. They
/// are defined here only, so that a new database and one made by an older provisioner get
/// them the same way (`CREATE TABLE IF NOT EXISTS` leaves an existing table as it is).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("actions", "network", "TEXT NOT NULL DEFAULT ''"),
    ("actions", "worker_address", "TEXT NOT NULL DEFAULT ''"),
    // The Tinkerbell objects records were applied from (`provisioner apply`), as JSON.
    ("hardware", "object", "TEXT"),
    ("templates", "object", "TEXT"),
    ("workflows", "object", "TEXT"),
];

fn add_missing_columns(connection: &Connection) -> Result<()> {
    for (table, column, definition) in ADDED_COLUMNS {
        let present: bool = connection.query_row(
            &format!("SELECT COUNT(*) > 0 FROM pragma_table_info('{table}') WHERE name = ?1"),
            [column],
            |row| row.get(0),
        )?;
        if !present {
            connection.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    Ok(())
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Milliseconds since the epoch as RFC 3339, for output.
pub(crate) fn rfc3339(ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(time).to_string()
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|error| StoreError::Corrupt(error.to_string()))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt(format!("{error} in {text:?}")))
}

pub(crate) fn parse_state(text: &str) -> Result<crate::state::State> {
    text.parse().map_err(StoreError::Corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database an older provisioner made has `actions` without `network`: opening it adds
    /// the column (empty for the actions already there), and opening again changes nothing.
    #[test]
    fn an_older_database_gets_the_columns_added_since() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        // SCHEMA without ADDED_COLUMNS is what an older provisioner created.
        let old = Connection::open(&path).unwrap();
        old.execute_batch(SCHEMA).unwrap();
        drop(old);
        for _ in 0..2 {
            drop(Store::open(&path).unwrap());
        }
        let connection = Connection::open(&path).unwrap();
        let columns: Vec<String> = connection
            .prepare("SELECT name FROM pragma_table_info('actions')")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        for added in ["network", "worker_address"] {
            assert_eq!(
                columns.iter().filter(|name| *name == added).count(),
                1,
                "{added}: {columns:?}"
            );
        }
    }
}
