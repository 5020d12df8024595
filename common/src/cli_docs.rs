//! Shell completions and man pages generated from a binary's clap definition, and the checks
//! that keep every binary's help complete (issue 16 §3).
//!
//! # How a binary calls it
//!
//! Enable the feature in the binary's `Cargo.toml`:
//! `bootkit-common = { workspace = true, features = ["cli-docs"] }`, then give the binary a
//! hidden subcommand (or, for a binary without subcommands, a hidden flag) that writes the
//! documents, so `scripts/install-docs.sh` can run `NAME generate-docs --out DIR`:
//!
//! ```text
//! use clap::CommandFactory;
//!
//! #[derive(clap::Subcommand)]
//! enum Command {
//!     // ... the binary's own subcommands ...
//!     /// Write shell completions and man pages into DIR (scripts/install-docs.sh runs it).
//!     #[command(hide = true)]
//!     GenerateDocs(bootkit_common::cli_docs::GenerateDocsArgs),
//! }
//!
//! // in main:
//! Command::GenerateDocs(args) => {
//!     match bootkit_common::cli_docs::write_all(Cli::command(), &args.out) {
//!         Ok(paths) => { for path in paths { println!("{}", path.display()); } }
//!         Err(err) => { eprintln!("{}", bootkit_common::error_chain(&err)); std::process::exit(1); }
//!     }
//! }
//! ```
//!
//! [`write_all`] writes, for a command named `NAME`:
//!
//! - `DIR/completions/bash/NAME` (bash-completion's file name: install into
//!   `/usr/share/bash-completion/completions/`),
//! - `DIR/completions/zsh/_NAME` (into a directory on `$fpath`, e.g. `site-functions`),
//! - `DIR/completions/fish/NAME.fish` (into `vendor_completions.d`),
//! - `DIR/man/man1/NAME.1` and one `NAME-SUB.1` (`NAME-SUB-SUBSUB.1`, ...) per visible
//!   subcommand, as git and cargo name theirs.
//!
//! Hidden subcommands (such as `generate-docs` itself) get no man page (clap_complete's bash
//! script still completes them).
//!
//! A unit test of each binary asserts [`undocumented`] (no [`missing_help`], no [`missing_examples`]) is empty for
//! its `Command`, so an option added without help text fails the build's tests.

use std::path::{Path, PathBuf};

use clap::Command;
use clap_complete::Shell;

/// The arguments of every binary's hidden `generate-docs` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateDocsArgs {
    /// Directory to write `completions/{bash,zsh,fish}/` and `man/man1/` into (created if
    /// missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Why the documents could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CliDocsError {
    /// A directory or file under the output directory could not be created or written.
    #[error("cannot write {path}: check that the output directory is writable")]
    Write {
        /// The directory or file that failed.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
}

/// Writes bash, zsh and fish completions and the man pages of `cmd` and its visible
/// subcommands under `out_dir` (layout in the module documentation) and returns the files
/// written, completions first.
pub fn write_all(cmd: Command, out_dir: &Path) -> Result<Vec<PathBuf>, CliDocsError> {
    // The help subcommand is clap's own; it needs no page of its own.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let name = cmd.get_name().to_string();
    let mut written = Vec::new();
    for (shell, dir, file_name) in [
        (Shell::Bash, "bash", name.clone()),
        (Shell::Zsh, "zsh", format!("_{name}")),
        (Shell::Fish, "fish", format!("{name}.fish")),
    ] {
        let dir = out_dir.join("completions").join(dir);
        create_dir(&dir)?;
        let path = dir.join(file_name);
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, name.clone(), &mut buf);
        write(&path, &buf)?;
        written.push(path);
    }
    let man_dir = out_dir.join("man").join("man1");
    create_dir(&man_dir)?;
    write_man_pages(&cmd, &man_dir, &mut written)?;
    Ok(written)
}

fn write_man_pages(
    cmd: &Command,
    man_dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), CliDocsError> {
    let man = clap_mangen::Man::new(cmd.clone());
    let path = man_dir.join(man.get_filename());
    let mut buf = Vec::new();
    man.render(&mut buf).map_err(|source| CliDocsError::Write {
        path: path.clone(),
        source,
    })?;
    write(&path, &buf)?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        write_man_pages(sub, man_dir, written)?;
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), CliDocsError> {
    std::fs::create_dir_all(dir).map_err(|source| CliDocsError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CliDocsError> {
    std::fs::write(path, bytes).map_err(|source| CliDocsError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// What `cmd`'s help lacks: the [`missing_help`] lines, then `PATH: no example` for each
/// command [`missing_examples`] names. Each binary's unit test asserts it is empty.
pub fn undocumented(cmd: &Command) -> Vec<String> {
    let mut gaps = missing_help(cmd);
    gaps.extend(
        missing_examples(cmd)
            .into_iter()
            .map(|path| format!("{path}: no example")),
    );
    gaps
}

/// Every visible argument and subcommand of `cmd` (recursively) that has no help text, as
/// `COMMAND PATH: --flag` lines; empty when the help is complete. clap's own `--help` and
/// `--version` are not counted.
pub fn missing_help(cmd: &Command) -> Vec<String> {
    let mut cmd = cmd.clone();
    cmd.build();
    let mut missing = Vec::new();
    collect_missing_help(&cmd, cmd.get_name(), &mut missing);
    missing
}

fn collect_missing_help(cmd: &Command, path: &str, missing: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if arg.is_hide_set() || id == "help" || id == "version" {
            continue;
        }
        if arg.get_help().is_none() && arg.get_long_help().is_none() {
            let shown = match (arg.get_long(), arg.get_short()) {
                (Some(long), _) => format!("--{long}"),
                (None, Some(short)) => format!("-{short}"),
                (None, None) => id.to_uppercase(),
            };
            missing.push(format!("{path}: {shown}"));
        }
    }
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        if sub.get_about().is_none() && sub.get_long_about().is_none() {
            missing.push(format!("{path}: subcommand {}", sub.get_name()));
        }
        collect_missing_help(sub, &format!("{path} {}", sub.get_name()), missing);
    }
}

/// Every visible command of `cmd` (itself and each visible subcommand) whose help shows no
/// example: no
/// `after_help` / `after_long_help` text containing `Example`. Empty when each has one.
pub fn missing_examples(cmd: &Command) -> Vec<String> {
    let mut cmd = cmd.clone();
    cmd.build();
    let mut missing = Vec::new();
    collect_missing_examples(&cmd, cmd.get_name(), &mut missing);
    missing
}

fn collect_missing_examples(cmd: &Command, path: &str, missing: &mut Vec<String>) {
    let has_example = [cmd.get_after_help(), cmd.get_after_long_help()]
        .into_iter()
        .flatten()
        .any(|text| text.to_string().contains("Example"));
    if !has_example {
        missing.push(path.to_string());
    }
    for sub in cmd.get_subcommands() {
        if !sub.is_hide_set() && sub.get_name() != "help" {
            collect_missing_examples(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn sample() -> Command {
        Command::new("sample")
            .version("1.2.3")
            .about("A sample tool")
            .after_help("Example:\n  sample run --fast")
            .subcommand_required(true)
            .subcommand(
                Command::new("run")
                    .about("Run it")
                    .after_help("Example:\n  sample run --fast")
                    .arg(
                        Arg::new("fast")
                            .long("fast")
                            .help("Go fast")
                            .action(ArgAction::SetTrue),
                    ),
            )
            .subcommand(
                Command::new("generate-docs")
                    .hide(true)
                    .arg(Arg::new("out").long("out")),
            )
    }

    fn which(tool: &str) -> bool {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|out| out.status.success())
    }

    #[test]
    fn writes_completions_and_man_pages_per_visible_subcommand() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = write_all(sample(), dir.path()).expect("write_all");
        let rel: Vec<String> = written
            .iter()
            .map(|p| {
                p.strip_prefix(dir.path())
                    .expect("under out")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            rel,
            [
                "completions/bash/sample",
                "completions/zsh/_sample",
                "completions/fish/sample.fish",
                "man/man1/sample.1",
                "man/man1/sample-run.1",
            ]
        );
    }

    /// The man page renders with the system's own roff (man-db's `man -l` through groff), an
    /// independent reader of the format, and shows the option and its help text.
    #[test]
    fn man_page_renders_with_man() {
        if !which("man") {
            panic!("man (man-db) is missing: scripts/setup.sh installs it");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        write_all(sample(), dir.path()).expect("write_all");
        let page = dir.path().join("man/man1/sample-run.1");
        let out = std::process::Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .env("LANG", "C.UTF-8")
            .output()
            .expect("run man");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "man -l failed: {out:?}");
        assert!(text.contains("sample-run"), "{text}");
        assert!(text.contains("--fast"), "{text}");
        assert!(text.contains("Go fast"), "{text}");
    }

    /// bash loads the completion and registers it for the command (`complete -p`), and the
    /// completion function offers the subcommand.
    #[test]
    fn bash_completion_loads_in_bash() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_all(sample(), dir.path()).expect("write_all");
        let file = dir.path().join("completions/bash/sample");
        let script = format!(
            "source {file}; complete -p sample; COMP_WORDS=(sample ''); COMP_CWORD=1; \
             COMP_LINE='sample '; COMP_POINT=7; _sample sample '' sample; \
             printf 'reply:%s\\n' \"${{COMPREPLY[@]}}\"",
            file = file.display()
        );
        let out = std::process::Command::new("bash")
            .args(["--norc", "-c", &script])
            .output()
            .expect("run bash");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "bash failed: {out:?}");
        assert!(text.contains("-F _sample sample"), "{text}");
        assert!(text.contains("reply:run"), "{text}");
    }

    #[test]
    fn missing_help_names_each_undocumented_option_and_subcommand() {
        let cmd = Command::new("tool")
            .arg(Arg::new("quiet").long("quiet").action(ArgAction::SetTrue))
            .arg(Arg::new("file"))
            .subcommand(Command::new("go").arg(Arg::new("n").short('n')));
        assert_eq!(
            missing_help(&cmd),
            [
                "tool: --quiet",
                "tool: FILE",
                "tool: subcommand go",
                "tool go: -n"
            ]
        );
        assert!(missing_help(&sample()).is_empty());
    }

    #[test]
    fn missing_examples_names_commands_without_one() {
        let cmd = Command::new("tool")
            .after_help("Example:\n  tool go")
            .subcommand(Command::new("go").about("Go"));
        assert_eq!(missing_examples(&cmd), ["tool go"]);
        assert!(missing_examples(&sample()).is_empty());
    }

    #[test]
    fn undocumented_lists_missing_help_then_missing_examples() {
        let cmd = Command::new("tool")
            .after_help("Example:\n  tool go")
            .subcommand(Command::new("go").arg(Arg::new("n").short('n')));
        assert_eq!(
            undocumented(&cmd),
            ["tool: subcommand go", "tool go: -n", "tool go: no example"]
        );
        assert!(undocumented(&sample()).is_empty());
    }
}
