//! `check-kernel`: compare a kernel's build config with the fragment of what the bootkit
//! needs (`kernel-configs/bootkit.config`).
//!
//! In the fragment, `CONFIG_X=y` means "must be built in" (the init needs it before any
//! module can load: tmpfs, devtmpfs, initramfs decompression), `CONFIG_X=m` means "built in
//! or a module" (drivers), `# CONFIG_X is not set` means "must be off", any other value must
//! match exactly. Comment lines that precede a group of options name the group.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::error::{BuildError, Result};
use crate::kernel;
use crate::progress::Progress;

/// What the kernel has for an option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// `=y`: compiled in.
    BuiltIn,
    /// `=m`: a loadable module.
    Module,
    /// Absent or `is not set`.
    Missing,
    /// Another value (a number or a string), as written.
    Value(String),
}

impl Status {
    fn from_value(value: Option<&String>) -> Status {
        match value.map(String::as_str) {
            Some("y") => Status::BuiltIn,
            Some("m") => Status::Module,
            None | Some("n") => Status::Missing,
            Some(other) => Status::Value(other.to_string()),
        }
    }
}

/// One option of a config fragment, checked against the kernel's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The fragment's section the option is listed under, for the report.
    pub group: String,
    /// The option's name, `CONFIG_...`.
    pub option: String,
    /// `y`, `m`, `n` (for "is not set") or a literal value.
    pub wanted: String,
    /// What the kernel has.
    pub status: Status,
    /// True when the kernel has what is wanted (`m` is also met by `y`).
    pub ok: bool,
}

/// `CONFIG_X=value` lines and `# CONFIG_X is not set` (as `n`).
pub fn parse_config(text: &str) -> BTreeMap<String, String> {
    let mut options = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if let Some((name, value)) = parse_line(line) {
            options.insert(name, value);
        }
    }
    options
}

fn parse_line(line: &str) -> Option<(String, String)> {
    if let Some(rest) = line.strip_prefix("# ") {
        let name = rest.strip_suffix(" is not set")?;
        return name
            .starts_with("CONFIG_")
            .then(|| (name.to_string(), "n".to_string()));
    }
    let (name, value) = line.split_once('=')?;
    name.starts_with("CONFIG_")
        .then(|| (name.trim().to_string(), value.trim().to_string()))
}

/// The fragment's options in file order, each with the group heading above it.
pub fn parse_fragment(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut group = String::from("(ungrouped)");
    let mut in_comment_block = false;
    for line in text.lines().map(str::trim) {
        if let Some((name, value)) = parse_line(line) {
            out.push((group.clone(), name, value));
            in_comment_block = false;
        } else if let Some(comment) = line.strip_prefix('#') {
            // The first comment line after options starts a new group.
            if !in_comment_block && !comment.trim().is_empty() {
                group = comment.trim().to_string();
                in_comment_block = true;
            }
        } else if line.is_empty() {
            in_comment_block = false;
        }
    }
    out
}

/// Checks every option of `fragment` against `kernel_config` (both in `.config` syntax), in the
/// fragment's order.
pub fn check(fragment: &str, kernel_config: &str) -> Vec<Check> {
    let kernel = parse_config(kernel_config);
    parse_fragment(fragment)
        .into_iter()
        .map(|(group, option, wanted)| {
            let status = Status::from_value(kernel.get(&option));
            let ok = match (wanted.as_str(), &status) {
                ("y", Status::BuiltIn) => true,
                ("m", Status::BuiltIn | Status::Module) => true,
                ("n", Status::Missing) => true,
                (want, Status::Value(have)) => want == have,
                _ => false,
            };
            Check {
                group,
                option,
                wanted,
                status,
                ok,
            }
        })
        .collect()
}

/// The build config of a kernel directory, a .deb (via the kernel cache) or a config file.
pub fn kernel_config_text(path: &Path, progress: &Progress) -> Result<String> {
    if !path.exists() {
        return Err(BuildError::Missing {
            what: "kernel",
            path: path.to_path_buf(),
            hint: "give a kernel directory, a linux-image .deb or a kernel config file".into(),
        });
    }
    let config_path = if path.is_dir() {
        kernel::open_dir(path)?
            .config
            .ok_or_else(|| BuildError::Kernel {
                path: path.to_path_buf(),
                reason: "no boot/config-<version>, config or .config in it".into(),
            })?
    } else if path.extension().is_some_and(|ext| ext == "deb") {
        let dir = kernel::extract_deb(path, progress)?;
        kernel::open_dir(&dir)?
            .config
            .ok_or_else(|| BuildError::Kernel {
                path: path.to_path_buf(),
                reason: "the package has no boot/config-<version>".into(),
            })?
    } else {
        path.to_path_buf()
    };
    fs::read_to_string(&config_path).map_err(BuildError::io(format!(
        "read kernel config {}",
        config_path.display()
    )))
}

fn describe(status: &Status) -> String {
    match status {
        Status::BuiltIn => "built in (=y)".into(),
        Status::Module => "module (=m)".into(),
        Status::Missing => "missing".into(),
        Status::Value(value) => format!("={value}"),
    }
}

fn requirement(wanted: &str) -> String {
    match wanted {
        "y" => "must be built in".into(),
        "m" => "needed, as a module or built in".into(),
        "n" => "must be off".into(),
        other => format!("must be {other}"),
    }
}

/// A report grouped like the fragment, with a summary line.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    let mut group = "";
    for check in checks {
        if check.group != group {
            group = &check.group;
            let _ = writeln!(out, "# {group}");
        }
        let mark = if check.ok { "ok " } else { "BAD" };
        let _ = write!(
            out,
            "  {mark} {:<32} {}",
            check.option,
            describe(&check.status)
        );
        if !check.ok {
            let _ = write!(out, "; {}", requirement(&check.wanted));
        }
        out.push('\n');
    }
    let count = |status: Status| checks.iter().filter(|c| c.status == status).count();
    let problems = checks.iter().filter(|c| !c.ok).count();
    let _ = writeln!(
        out,
        "{} options: {} built in, {} modules, {} missing; {problems} problem{}",
        checks.len(),
        count(Status::BuiltIn),
        count(Status::Module),
        count(Status::Missing),
        if problems == 1 { "" } else { "s" }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAGMENT: &str = "\
# Filesystems in RAM
CONFIG_TMPFS=y
CONFIG_DEVTMPFS=y

# Drivers
# (modules are fine)
CONFIG_VIRTIO_NET=m
CONFIG_BLK_DEV_NBD=m
CONFIG_E1000E=m
# CONFIG_MODULE_SIG_FORCE is not set
CONFIG_RD_ZSTD=y
";

    const KERNEL: &str = "\
CONFIG_TMPFS=y
CONFIG_DEVTMPFS=m
CONFIG_VIRTIO_NET=m
CONFIG_BLK_DEV_NBD=y
# CONFIG_E1000E is not set
# CONFIG_MODULE_SIG_FORCE is not set
";

    #[test]
    fn reports_builtin_module_and_missing() {
        let checks = check(FRAGMENT, KERNEL);
        let by_name: BTreeMap<&str, &Check> =
            checks.iter().map(|c| (c.option.as_str(), c)).collect();
        assert_eq!(by_name["CONFIG_TMPFS"].status, Status::BuiltIn);
        assert!(by_name["CONFIG_TMPFS"].ok);
        // =y wanted, module present: a problem.
        assert_eq!(by_name["CONFIG_DEVTMPFS"].status, Status::Module);
        assert!(!by_name["CONFIG_DEVTMPFS"].ok);
        assert!(by_name["CONFIG_VIRTIO_NET"].ok);
        // =m wanted, built in: fine.
        assert!(by_name["CONFIG_BLK_DEV_NBD"].ok);
        assert_eq!(by_name["CONFIG_E1000E"].status, Status::Missing);
        assert!(!by_name["CONFIG_E1000E"].ok);
        assert!(by_name["CONFIG_MODULE_SIG_FORCE"].ok);
        assert_eq!(by_name["CONFIG_RD_ZSTD"].status, Status::Missing);
        assert_eq!(by_name["CONFIG_TMPFS"].group, "Filesystems in RAM");
        assert_eq!(by_name["CONFIG_E1000E"].group, "Drivers");
        let text = render(&checks);
        assert!(text.contains("BAD CONFIG_DEVTMPFS"), "{text}");
        assert!(text.contains("must be built in"), "{text}");
        assert!(
            text.ends_with("7 options: 2 built in, 2 modules, 3 missing; 3 problems\n"),
            "{text}"
        );
    }

    #[test]
    fn the_shipped_fragment_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-configs/bootkit.config");
        let text = fs::read_to_string(path).expect("kernel-configs/bootkit.config");
        let options = parse_fragment(&text);
        let names: Vec<&str> = options.iter().map(|(_, name, _)| name.as_str()).collect();
        for required in [
            "CONFIG_DEVTMPFS",
            "CONFIG_TMPFS",
            "CONFIG_BLK_DEV_INITRD",
            "CONFIG_RD_ZSTD",
        ] {
            let (_, _, wanted) = options
                .iter()
                .find(|(_, n, _)| n == required)
                .expect(required);
            assert_eq!(wanted, "y", "{required}");
        }
        assert!(names.contains(&"CONFIG_BLK_DEV_NBD"));
        assert!(names.contains(&"CONFIG_VIRTIO_NET"));
    }
}
