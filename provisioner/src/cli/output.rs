//! How every command prints: text for people, JSON with `--json`.

use std::path::Path;

use anyhow::Context;
use provisioner::store::text::shown;

pub fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Prints results as text, or as JSON with `--json`. Text goes through [`shown`]: what a
/// record holds came from a node or the API (a serial, a log line, a template), and a control
/// character in it (ESC[2J, CR, NUL) must not act on the operator's terminal. JSON needs
/// nothing more: serde_json escapes every control character.
pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn one<T: serde::Serialize>(
        &self,
        value: &T,
        text: fn(&T) -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            // A record's text is laid out by its formatter in lines (and a template's YAML may
            // be indented with tabs): LF and TAB are kept, every other control escaped.
            println!("{}", shown(&text(value), &['\n', '\t']));
        }
        Ok(())
    }

    pub fn many<T: serde::Serialize>(
        &self,
        values: &[T],
        line: fn(&T) -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(values)?);
        } else {
            // One value, one line: a LF or TAB inside a value would add a row or shift a
            // column, so they are escaped too.
            values
                .iter()
                .for_each(|value| println!("{}", shown(&line(value), &[])));
        }
        Ok(())
    }

    pub fn done(&self, message: &str) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::json!({ "result": message }));
        } else {
            println!("{message}");
        }
        Ok(())
    }
}

/// A header and rows as aligned columns, two spaces apart (as `kubectl get` prints). Each
/// cell goes through [`shown`] first: a control character from a node must neither act on the
/// terminal nor shift a column; widths count characters.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let rows: Vec<Vec<String>> =
        std::iter::once(header.iter().map(|title| title.to_string()).collect())
            .chain(rows)
            .map(|row: Vec<String>| {
                row.iter()
                    .map(|cell| shown(cell, &[]).into_owned())
                    .collect()
            })
            .collect();
    let mut widths = vec![0; header.len()];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text
}
