//! OEP's registration CSV: `Serial,UUID,OSProfile,Site,Secure,RemoteUser,Metadata`, the header
//! optional and case-insensitive, a `MAC` (and `Hostname`) column accepted anywhere. OEP's
//! Site, Secure, RemoteUser and Metadata columns, and any `meta.KEY` column, are kept in the
//! registration's metadata (under `site`, ..., `KEY`); any other header is refused, so that a
//! misspelt `UID` is not silently taken as metadata.

use std::collections::BTreeMap;

use super::RegistrationSpec;
use crate::store::{Result, StoreError};
use crate::template::FieldError;

/// OEP's column order, used when the file has no header.
const OEP_COLUMNS: [&str; 7] = [
    "Serial",
    "UUID",
    "OSProfile",
    "Site",
    "Secure",
    "RemoteUser",
    "Metadata",
];

/// What a column fills in a registration.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    Serial,
    Uuid,
    Mac,
    Profile,
    Hostname,
    Metadata(String),
}

/// The headers a file may use, as the error about an unknown one lists them.
const KNOWN_COLUMNS: &str = "Serial, UUID, MAC, OSProfile (or Profile), Hostname, Site, Secure, \
                             RemoteUser, Metadata, and meta.KEY for any metadata KEY";

/// What a header fills; None for a header that is not a known column.
fn known_target(header: &str) -> Option<Target> {
    let header = header.trim();
    if let Some(key) = header
        .get(..5)
        .filter(|prefix| prefix.eq_ignore_ascii_case("meta."))
        .and(header.get(5..))
        .filter(|key| !key.is_empty())
    {
        return Some(Target::Metadata(key.to_string()));
    }
    Some(match header.to_ascii_lowercase().as_str() {
        "serial" | "serialnumber" => Target::Serial,
        "uuid" => Target::Uuid,
        "mac" | "macaddress" => Target::Mac,
        "osprofile" | "profile" => Target::Profile,
        "hostname" => Target::Hostname,
        oep @ ("site" | "secure" | "remoteuser" | "metadata") => Target::Metadata(oep.to_string()),
        _ => return None,
    })
}

/// A header's target; unknown ones (refused in a header line) as metadata under their
/// lower-case name, for the generated `columnN` names of header-less rows.
fn target(header: &str) -> Target {
    known_target(header).unwrap_or_else(|| Target::Metadata(header.trim().to_ascii_lowercase()))
}

/// The header's first unknown column, as an error naming it and the known ones.
fn check_header(headers: &[String]) -> Result<()> {
    let Some((index, unknown)) = headers
        .iter()
        .enumerate()
        .find(|(_, header)| known_target(header).is_none())
    else {
        return Ok(());
    };
    let known = [
        "Serial",
        "UUID",
        "MAC",
        "OSProfile",
        "Profile",
        "Hostname",
        "Site",
        "Secure",
        "RemoteUser",
        "Metadata",
    ];
    let near = crate::hints::nearest(unknown.trim(), known)
        .map_or_else(String::new, |name| format!("did you mean {name}? "));
    Err(FieldError::new(
        format!("line 1, column {}", index + 1),
        format!(
            "{unknown:?} is not a known column; {near}known columns: {KNOWN_COLUMNS} \
             (e.g. meta.{} to keep it as metadata)",
            unknown.trim().to_ascii_lowercase()
        ),
    )
    .into())
}

/// A parsed row, with what is needed to point an error at its line and column.
pub(super) struct Row {
    pub(super) line: u64,
    headers: Vec<String>,
    targets: Vec<Target>,
    pub(super) spec: RegistrationSpec,
}

impl Row {
    fn column_of(&self, field: &str) -> String {
        let wanted = match field {
            "serial" => Target::Serial,
            "uuid" => Target::Uuid,
            "mac" => Target::Mac,
            "profile" => Target::Profile,
            "hostname" => Target::Hostname,
            other => match other.strip_prefix("metadata.") {
                Some(key) => Target::Metadata(key.to_string()),
                None => return field.to_string(),
            },
        };
        self.targets
            .iter()
            .position(|target| *target == wanted)
            .map(|index| self.headers[index].clone())
            .unwrap_or_else(|| field.to_string())
    }

    /// The error of storing this row, told with its line and column.
    pub(super) fn locate(&self, error: StoreError) -> StoreError {
        match error {
            StoreError::Invalid(field_error) => FieldError::new(
                format!(
                    "line {}, column {}",
                    self.line,
                    self.column_of(&field_error.field)
                ),
                field_error.reason,
            )
            .into(),
            StoreError::Conflict(message) => {
                StoreError::Conflict(format!("line {}: {message}", self.line))
            }
            other => other,
        }
    }
}

pub(super) fn parse(text: &str) -> Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut headers: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|error| {
            let line = error.position().map_or(0, |position| position.line());
            FieldError::new(format!("line {line}"), format!("not valid CSV: {error}"))
        })?;
        let line = record
            .position()
            .map_or(index as u64 + 1, |position| position.line());
        let cells: Vec<&str> = record.iter().collect();
        if cells.iter().all(|cell| cell.is_empty()) {
            continue;
        }
        if index == 0 && is_header(&cells) {
            let header: Vec<String> = cells.iter().map(|cell| cell.to_string()).collect();
            check_header(&header)?;
            headers = Some(header);
            continue;
        }
        let headers = headers
            .clone()
            .unwrap_or_else(|| default_headers(cells.len()));
        rows.push(row(line, headers, &cells)?);
    }
    Ok(rows)
}

/// A first line naming Serial, UUID, MAC, a profile or a hostname, or a `meta.` column, is
/// a header; OEP's files may come without one.
fn is_header(cells: &[&str]) -> bool {
    cells.iter().any(|cell| {
        let cell = cell.trim();
        !matches!(target(cell), Target::Metadata(_))
            || cell
                .get(..5)
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case("meta."))
    })
}

fn default_headers(count: usize) -> Vec<String> {
    (0..count)
        .map(|index| {
            OEP_COLUMNS
                .get(index)
                .map_or_else(|| format!("column{}", index + 1), |name| name.to_string())
        })
        .collect()
}

fn row(line: u64, headers: Vec<String>, cells: &[&str]) -> Result<Row> {
    if cells.len() > headers.len() {
        return Err(FieldError::new(
            format!("line {line}"),
            format!(
                "{} cells but the header names {} columns",
                cells.len(),
                headers.len()
            ),
        )
        .into());
    }
    let targets: Vec<Target> = headers.iter().map(|header| target(header)).collect();
    let mut spec = RegistrationSpec::default();
    let mut metadata = BTreeMap::new();
    for (target, cell) in targets.iter().zip(cells) {
        if cell.is_empty() {
            continue;
        }
        let value = Some(cell.to_string());
        match target {
            Target::Serial => spec.serial = value,
            Target::Uuid => spec.uuid = value,
            Target::Mac => spec.mac = value,
            Target::Profile => spec.profile = cell.to_string(),
            Target::Hostname => spec.hostname = value,
            Target::Metadata(key) => {
                metadata.insert(key.clone(), cell.to_string());
            }
        }
    }
    spec.metadata = metadata;
    let row = Row {
        line,
        headers,
        targets,
        spec,
    };
    if row.spec.profile.is_empty() {
        return Err(row.locate(
            FieldError::new("profile", "empty; every row needs the profile to install").into(),
        ));
    }
    Ok(row)
}
