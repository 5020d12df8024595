//! How every command prints: text for people, JSON with `--json`.

use std::path::Path;

use anyhow::Context;

pub fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Prints results as text, or as JSON with `--json`.
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
            println!("{}", text(value));
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
            values.iter().for_each(|value| println!("{}", line(value)));
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
