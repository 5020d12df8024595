//! TOML files read into typed schemas, with errors that say where: the line and column of the
//! problem and the key it is about (`network.mac`, `users[1].name`), so that both the builder,
//! checking a file at build time, and the node, reading it at boot, can point at it.

use std::fmt;

use serde::de::DeserializeOwned;

/// Why a TOML text does not fit its schema, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlError {
    /// 1-based line of the problem, when the parser knows it.
    pub line: Option<usize>,
    /// 1-based column (in characters) of the problem, when the parser knows it.
    pub column: Option<usize>,
    /// The dotted path of the key the problem is about (`None` when the text is not TOML at
    /// all, or the problem is the document's, such as a missing key).
    pub key: Option<String>,
    /// What is wrong, as the parser or the schema's check says it.
    pub message: String,
}

/// `line 2: `network.mac`: MAC address "x" is malformed: ... (column 7)`: the line first, so a
/// message reads like a compiler's, and the column after the message, where it does not get in
/// the way of reading it.
impl fmt::Display for TomlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        // An unknown top-level key is already named in the message: do not say it twice.
        if let Some(key) = self
            .key
            .as_ref()
            .filter(|key| !self.message.contains(&format!("`{key}`")))
        {
            write!(f, "`{key}`: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(column) = self.column {
            write!(f, " (column {column})")?;
        }
        Ok(())
    }
}

impl std::error::Error for TomlError {}

/// Parse `text` into `T`, naming the line, column and key of the first problem.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, TomlError> {
    let deserializer =
        toml::Deserializer::parse(text).map_err(|error| located(text, &error, None))?;
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        // `.` is the document itself; `?` a place the tracker could not name.
        let key = (path != "." && path != "?").then_some(path);
        located(text, error.inner(), key)
    })
}

fn located(text: &str, error: &toml::de::Error, key: Option<String>) -> TomlError {
    let position = error.span().map(|span| line_and_column(text, span.start));
    TomlError {
        line: position.map(|(line, _)| line),
        column: position.map(|(_, column)| column),
        key,
        message: error.message().trim_end().to_owned(),
    }
}

/// 1-based line and column (in characters) of byte offset `offset` in `text`; an offset past
/// the end or inside a character counts as the nearest character boundary before it.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read only to be checked
    struct Schema {
        name: String,
        #[serde(default)]
        port: u16,
        #[serde(default)]
        items: Vec<Item>,
        section: Option<Section>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        id: u32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Section {
        depth: u8,
    }

    fn problem(text: &str) -> TomlError {
        parse::<Schema>(text).unwrap_err()
    }

    #[test]
    fn an_unknown_top_level_key_is_named_with_its_line_and_column() {
        let error = problem("name = \"a\"\nnmae = \"b\"\n");
        assert_eq!((error.line, error.column), (Some(2), Some(1)));
        assert_eq!(error.key.as_deref(), Some("nmae"));
        assert!(error.message.contains("unknown field `nmae`"), "{error}");
        assert!(
            error
                .to_string()
                .starts_with("line 2: unknown field `nmae`")
        );
        assert!(error.to_string().ends_with("(column 1)"), "{error}");
    }

    #[test]
    fn a_wrong_value_names_its_key_path_in_tables_and_arrays() {
        let error = problem("name = \"a\"\nport = \"http\"\n");
        assert_eq!((error.line, error.key.as_deref()), (Some(2), Some("port")));
        assert_eq!(error.column, Some(8));
        let error = problem("name = \"a\"\n[[items]]\nid = 1\n[[items]]\nid = -1\n");
        assert_eq!(error.line, Some(5));
        assert_eq!(error.key.as_deref(), Some("items[1].id"));
        let error = problem("name = \"a\"\n[section]\ndepth = 1\nwidth = 2\n");
        assert_eq!(error.line, Some(4));
        assert!(
            error
                .to_string()
                .starts_with("line 4: `section.width`: unknown field `width`"),
            "{error}"
        );
    }

    #[test]
    fn broken_toml_and_missing_keys_are_located() {
        let error = problem("name = \"a\"\nport = \n");
        assert_eq!(error.line, Some(2));
        assert!(error.to_string().starts_with("line 2: "), "{error}");
        let error = problem("port = 1\n");
        assert!(error.message.contains("missing field `name`"), "{error}");
    }

    #[test]
    fn columns_count_characters_and_offsets_never_split_one() {
        assert_eq!(line_and_column("é = 1", 2), (1, 2));
        assert_eq!(line_and_column("é = 1", 1), (1, 1));
        assert_eq!(line_and_column("a\nb", 99), (2, 2));
        assert_eq!(line_and_column("", 0), (1, 1));
    }
}
