//! `provisioner audit`, and the audit entries of the CLI's own changes: the CLI opens the
//! database directly, past the admin API's audit layer, so it records what it changed itself.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::ArgMatches;
use provisioner::store::{AuditEntry, MAX_AUDIT_READ, NewAuditEntry, Store};

use super::remote::Backend;

/// `provisioner audit`: what changed, by whom, from where.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  provisioner audit --since 1h\n  provisioner audit --since 2026-12-07T17:00:00Z -o json"
)]
pub struct AuditArgs {
    /// Only entries since then: a time ago (`1h`, `30m`, `2days`) or an RFC 3339 instant
    /// (`2026-12-07T17:00:00Z`).
    #[arg(long, value_name = "AGO|TIME")]
    since: Option<String>,
    /// At most this many entries, the newest.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// `table` for people, `json` for programs.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Format,
}

/// How `audit` prints.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One line per entry.
    Table,
    /// The entries as the API's JSON.
    Json,
}

/// Prints the audit log (`--json` as `-o json`).
pub fn audit(backend: &Backend, args: &AuditArgs, json: bool) -> anyhow::Result<()> {
    let since = args
        .since
        .as_deref()
        .map(since_ms)
        .transpose()?
        .unwrap_or(0);
    anyhow::ensure!(
        (1..=MAX_AUDIT_READ).contains(&args.limit),
        "--limit {} is out of range: give 1 to {MAX_AUDIT_READ}, and --since to see older entries",
        args.limit
    );
    let entries = backend.audit_log(since, args.limit)?;
    if json || args.output == Format::Json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    print!("{}", table(&entries));
    Ok(())
}

/// Aligned columns; the summary last, as it is the longest.
fn table(entries: &[AuditEntry]) -> String {
    let rows = entries
        .iter()
        .map(|entry| {
            let entry_fields = &entry.entry;
            vec![
                entry.at.clone(),
                entry_fields.status.to_string(),
                entry_fields.actor.clone(),
                entry_fields.address.clone(),
                format!(
                    "{} {}: {}",
                    entry_fields.method, entry_fields.path, entry_fields.summary
                ),
            ]
        })
        .collect();
    super::output::table(&["TIME", "STATUS", "WHO", "FROM", "WHAT"], rows)
}

/// `1h` ago, or an RFC 3339 instant, as ms since the epoch.
fn since_ms(text: &str) -> anyhow::Result<i64> {
    let instant = match humantime::parse_duration(text) {
        Ok(ago) => SystemTime::now()
            .checked_sub(ago)
            .context("--since reaches back before 1970")?,
        Err(_) => humantime::parse_rfc3339_weak(text).with_context(|| {
            format!(
                "--since {text:?} is neither a time ago (`1h`, `30m`) nor an RFC 3339 instant \
                 (`2026-12-07T17:00:00Z`)"
            )
        })?,
    };
    let ms = instant
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis();
    Ok(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// Commands that only read (by their last word): not recorded.
const READS: [&str; 8] = [
    "list",
    "show",
    "get",
    "logs",
    "registrations",
    "audit",
    // The server records the API's changes itself; init does not touch the database.
    "serve",
    "init",
];

/// A CLI command that changes the store, as its audit entry will name it.
pub struct LocalChange {
    command: String,
    summary: String,
}

impl LocalChange {
    /// The change `matches` asks for, or `None` for a command that only reads. Named by its
    /// words and positional values (ids and names) only: flag values may hold metadata,
    /// which can be secret.
    pub fn of(command: &clap::Command, matches: &ArgMatches) -> Option<Self> {
        let mut words = Vec::new();
        let mut values = Vec::new();
        let (mut command, mut matches) = (command, matches);
        while let Some((name, sub_matches)) = matches.subcommand() {
            words.push(name.to_string());
            command = command.find_subcommand(name)?;
            matches = sub_matches;
            for positional in command.get_positionals() {
                if let Ok(Some(raw)) = matches.try_get_raw(positional.get_id().as_str()) {
                    values.extend(raw.map(|value| format!("{:?}", value.to_string_lossy())));
                }
            }
        }
        if READS.contains(&words.last()?.as_str()) {
            return None;
        }
        let command = words.join(" ");
        let summary = std::iter::once(command.clone())
            .chain(values)
            .collect::<Vec<_>>();
        Some(Self {
            command,
            summary: summary.join(" "),
        })
    }

    /// Records the change with its outcome in the database at `db`. A failure to record is
    /// said on stderr but does not fail the command, whose change is made already.
    pub fn record(&self, db: &Path, succeeded: bool) {
        let entry = NewAuditEntry {
            actor: format!("local CLI (uid {})", rustix::process::getuid().as_raw()),
            address: "local".into(),
            method: "CLI".into(),
            path: self.command.clone(),
            summary: self.summary.clone(),
            status: if succeeded { 0 } else { 1 },
        };
        let recorded = Store::open(db).and_then(|store| store.record_audit(&entry));
        if let Err(error) = recorded {
            eprintln!(
                "provisioner: warning: `{}` is not in the audit log of {}: {error}",
                self.summary,
                db.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_ago_or_an_instant() {
        let now = since_ms("0s").unwrap();
        let hour_ago = since_ms("1h").unwrap();
        assert!(
            (now - hour_ago - 3_600_000).abs() < 1_000,
            "{now} {hour_ago}"
        );
        assert_eq!(since_ms("1970-01-01T00:00:01Z").unwrap(), 1_000);
        let error = since_ms("yesterday").unwrap_err().to_string();
        assert!(error.contains("RFC 3339"), "{error}");
    }
}
