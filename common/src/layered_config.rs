//! Settings from layers (command-line flags, the environment, an env file, the kernel command
//! line), each value carrying where it came from so that a bad one is reported with its
//! origin. The agents stack the layers in their own order (each says which wins); lookups
//! and value rules live here.
//!
//! Rules every layer shares:
//! - an empty value counts as unset (`ID=` in a unit file must not hide the next layer);
//! - booleans are spelled `true`/`false`, `1`/`0`, `yes`/`no` or `on`/`off`, in any case
//!   ([`parse_bool`]): what HookOS, EMT and the kernel command line use.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::cmdline::split_words;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The program's command-line flags.
    Flag,
    /// The process environment.
    Environment,
    /// A shell-style `KEY=VALUE` file.
    EnvFile(PathBuf),
    /// The kernel command line, read from this file (normally /proc/cmdline).
    KernelCommandLine(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag => f.write_str("the command line flags"),
            Origin::Environment => f.write_str("the environment"),
            Origin::EnvFile(path) => write!(f, "{}", path.display()),
            Origin::KernelCommandLine(path) => {
                write!(f, "the kernel command line ({})", path.display())
            }
        }
    }
}

/// A value found for a setting, with its name as written and its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub name: String,
    pub value: String,
    pub origin: Origin,
}

/// A value that does not mean anything for its setting; the message names the setting, the
/// value, where it came from and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?} (from {origin}) is not valid: {why}")]
pub struct InvalidSetting {
    pub name: String,
    pub value: String,
    pub origin: Origin,
    pub why: String,
}

impl Setting {
    /// A flag's value as a setting (`None` and empty values count as unset).
    pub fn from_flag(name: &str, value: Option<String>) -> Option<Setting> {
        value
            .filter(|value| !value.is_empty())
            .map(|value| Setting {
                name: name.to_string(),
                value,
                origin: Origin::Flag,
            })
    }

    /// The error for this value, with `why` it is not valid.
    pub fn invalid(self, why: impl Into<String>) -> InvalidSetting {
        InvalidSetting {
            name: self.name,
            value: self.value,
            origin: self.origin,
            why: why.into(),
        }
    }

    /// The value as a boolean ([`parse_bool`]'s spellings).
    pub fn boolean(self) -> Result<bool, InvalidSetting> {
        match parse_bool(&self.value) {
            Some(value) => Ok(value),
            None => Err(self.invalid(BOOL_EXPECTED)),
        }
    }
}

/// What a boolean may be written as, for error messages.
pub const BOOL_EXPECTED: &str = "expected true or false (or 1/0, yes/no, on/off)";

/// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, in any case; `None` for anything else.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// [`parse_bool`] for clap's `value_parser`, so that flags take the spellings the other
/// layers take.
pub fn parse_bool_arg(text: &str) -> Result<bool, String> {
    parse_bool(text).ok_or_else(|| format!("{text:?}: {BOOL_EXPECTED}"))
}

/// One layer of `KEY=VALUE` settings from one origin.
#[derive(Debug, Clone)]
pub struct Layer {
    origin: Origin,
    values: HashMap<String, String>,
}

impl Layer {
    pub fn new(origin: Origin, values: HashMap<String, String>) -> Layer {
        Layer { origin, values }
    }

    /// A layer that holds nothing (a source that is absent or not to be read).
    pub fn empty(origin: Origin) -> Layer {
        Layer::new(origin, HashMap::new())
    }

    /// The `key=value` words of a kernel command line read from `file`; later words win over
    /// earlier ones, as the kernel's own parameters do.
    pub fn from_cmdline(file: &Path, text: &str) -> Layer {
        let values = split_words(text)
            .into_iter()
            .filter_map(|word| {
                word.split_once('=')
                    .map(|(key, value)| (key.to_string(), value.to_string()))
            })
            .collect();
        Layer::new(Origin::KernelCommandLine(file.to_path_buf()), values)
    }

    /// The variables of an environment.
    pub fn from_env(env: impl IntoIterator<Item = (String, String)>) -> Layer {
        Layer::new(Origin::Environment, env.into_iter().collect())
    }

    /// The settings of the env file `path` with the text `text` ([`parse_env_file`]).
    pub fn from_env_file(path: &Path, text: &str) -> Layer {
        Layer::new(Origin::EnvFile(path.to_path_buf()), parse_env_file(text))
    }

    /// Reads `path` as a layer of `origin`'s kind (`parse` turns its text into the layer); a
    /// missing file is an empty layer (the source is optional), any other read error is the
    /// caller's to report, since silently ignoring settings the operator wrote would be worse.
    pub fn read(path: &Path, parse: fn(&Path, &str) -> Layer) -> io::Result<Layer> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(parse(path, &text)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(parse(path, "")),
            Err(error) => Err(error),
        }
    }

    /// The value of `key`, unless unset or empty.
    pub fn get(&self, key: &str) -> Option<Setting> {
        let value = self.values.get(key).filter(|value| !value.is_empty())?;
        Some(Setting {
            name: key.to_string(),
            value: value.clone(),
            origin: self.origin.clone(),
        })
    }

    /// The first of `keys` that is set (earlier names win, as with `WORKER_ID` over `ID`).
    pub fn get_first(&self, keys: &[&str]) -> Option<Setting> {
        keys.iter().find_map(|key| self.get(key))
    }
}

/// The `KEY=VALUE` lines of a shell-style env file: `#` comments, blank lines, `export `,
/// single or double quotes around values, and trailing ` # comments` after unquoted values.
pub fn parse_env_file(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line);
            if line.starts_with('#') {
                return None;
            }
            let (key, value) = line.split_once('=')?;
            Some((key.trim().to_string(), unquote(value.trim())))
        })
        .collect()
}

fn unquote(value: &str) -> String {
    for quote in ['"', '\''] {
        if let Some(rest) = value.strip_prefix(quote)
            && let Some(end) = rest.find(quote)
        {
            return rest[..end].to_string();
        }
    }
    match value.find(" #") {
        Some(comment) => value[..comment].trim_end().to_string(),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_take_four_spellings_each_in_any_case() {
        for yes in ["true", "1", "yes", "on", "TRUE", "Yes", " on "] {
            assert_eq!(parse_bool(yes), Some(true), "{yes}");
        }
        for no in ["false", "0", "no", "off", "False", "OFF"] {
            assert_eq!(parse_bool(no), Some(false), "{no}");
        }
        for neither in ["", "maybe", "2", "y", "enabled"] {
            assert_eq!(parse_bool(neither), None, "{neither}");
        }
        let error = parse_bool_arg("maybe").unwrap_err();
        assert!(error.contains("true or false"), "{error}");
    }

    #[test]
    fn an_empty_value_is_unset_and_the_first_set_name_wins() {
        let env = Layer::from_env([
            ("ID".to_string(), "from-id".to_string()),
            ("WORKER_ID".to_string(), String::new()),
        ]);
        assert_eq!(env.get("WORKER_ID"), None);
        let found = env.get_first(&["WORKER_ID", "ID"]).unwrap();
        assert_eq!(
            (found.name.as_str(), found.value.as_str()),
            ("ID", "from-id")
        );
        assert_eq!(found.origin, Origin::Environment);
    }

    #[test]
    fn a_bad_value_names_the_setting_its_value_and_its_origin() {
        let cmdline = Layer::from_cmdline(
            Path::new("/proc/cmdline"),
            "quiet tinkerbell_tls=maybe tinkerbell_tls=perhaps",
        );
        let error = cmdline
            .get("tinkerbell_tls")
            .unwrap()
            .boolean()
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "tinkerbell_tls=\"perhaps\" (from the kernel command line (/proc/cmdline)) is not valid: expected true or false (or 1/0, yes/no, on/off)"
        );
        let flag = Setting::from_flag("--obs-svc", Some("x".into())).unwrap();
        assert!(
            flag.invalid("bad")
                .to_string()
                .contains("the command line flags")
        );
        assert_eq!(Setting::from_flag("--obs-svc", Some(String::new())), None);
    }

    #[test]
    fn env_files_tolerate_quotes_comments_and_export_and_may_be_missing() {
        let values = parse_env_file(
            "# EMT env\nexport a=\"obm.lan\"\nb='obs.lan:1234'\nc=50051 # the port\n\nbroken line\n",
        );
        assert_eq!(values["a"], "obm.lan");
        assert_eq!(values["b"], "obs.lan:1234");
        assert_eq!(values["c"], "50051");
        assert_eq!(values.len(), 3);

        let dir = tempfile::tempdir().unwrap();
        let missing = Layer::read(&dir.path().join("env_config"), Layer::from_env_file).unwrap();
        assert_eq!(missing.get("a"), None);
        let path = dir.path().join("env_config");
        std::fs::write(&path, "a=1\n").unwrap();
        let layer = Layer::read(&path, Layer::from_env_file).unwrap();
        assert_eq!(layer.get("a").unwrap().origin, Origin::EnvFile(path));
    }
}
