//! The host tools the disk images are made with, run so that a missing tool or a failure
//! names the Debian package to install or the tool's own complaint.
//!
//! Filesystems are made by their reference tools (mkfs.vfat, mtools, mke2fs) rather than
//! by a crate: no maintained Rust crate writes ext4 with a journal, and these are the tools
//! every distribution checks its own images with.

use std::ffi::OsStr;
use std::io::ErrorKind;
use std::process::{Command, Stdio};

use crate::error::{BuildError, Result};

/// A host program and the Debian package that ships it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tool {
    /// The program's name, looked up in PATH.
    pub program: &'static str,
    /// The Debian package that ships it, for the error message.
    pub package: &'static str,
}

/// Makes the UKI (binutils).
pub const OBJCOPY: Tool = Tool::new("objcopy", "binutils");
/// Makes the ESP's FAT filesystem.
pub const MKFS_VFAT: Tool = Tool::new("mkfs.vfat", "dosfstools");
/// Makes directories in a FAT image.
pub const MMD: Tool = Tool::new("mmd", "mtools");
/// Copies files into a FAT image.
pub const MCOPY: Tool = Tool::new("mcopy", "mtools");
/// Makes ext4 filesystems.
pub const MKFS_EXT4: Tool = Tool::new("mkfs.ext4", "e2fsprogs");
/// Edits ext4 images in place.
pub const DEBUGFS: Tool = Tool::new("debugfs", "e2fsprogs");
/// Checks an ext4 filesystem after it was edited.
pub const E2FSCK: Tool = Tool::new("e2fsck", "e2fsprogs");
/// Signs EFI binaries (Authenticode): see [`crate::secure_boot`] for why not a crate.
pub const SBSIGN: Tool = Tool::new("sbsign", "sbsigntool");
/// Makes the Secure Boot keys and the PKCS#7 signatures of their `.auth` updates.
pub const OPENSSL: Tool = Tool::new("openssl", "openssl");

/// How much of a failing tool's output goes into the error.
const OUTPUT_TAIL_LINES: usize = 15;

impl Tool {
    /// The tool `program` from Debian package `package`.
    pub const fn new(program: &'static str, package: &'static str) -> Self {
        Self { program, package }
    }

    /// Run the tool with `args` and `envs`; `purpose` completes "needed to ..." and
    /// "failed to ..." in the errors.
    pub fn run<I, S>(&self, args: I, envs: &[(&str, &str)], purpose: &str) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.output(args, envs, purpose).map(drop)
    }

    /// [`Tool::run`], returning what the tool printed on stdout.
    pub fn output<I, S>(&self, args: I, envs: &[(&str, &str)], purpose: &str) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(self.program);
        command
            .args(args)
            // Untranslated messages, and no user mtools config changing the result.
            .env("LC_ALL", "C")
            .env("MTOOLSRC", "/dev/null")
            .envs(envs.iter().copied())
            .stdin(Stdio::null());
        let output = command.output().map_err(|err| {
            if err.kind() == ErrorKind::NotFound {
                BuildError::ToolMissing {
                    program: self.program,
                    package: self.package,
                    purpose: purpose.to_string(),
                }
            } else {
                BuildError::io(format!("run {} to {purpose}", self.program))(err)
            }
        })?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let text = String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout);
        let lines: Vec<&str> = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .collect();
        let tail = lines[lines.len().saturating_sub(OUTPUT_TAIL_LINES)..].join("; ");
        Err(BuildError::ToolFailed {
            program: self.program,
            purpose: purpose.to_string(),
            status: output.status.to_string(),
            output: if tail.is_empty() {
                "no output".into()
            } else {
                tail
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message of a run that must fail.
    fn run_error(tool: Tool, args: &[&str], purpose: &str) -> String {
        tool.run(args, &[], purpose)
            .expect_err("the run should fail")
            .to_string()
    }

    #[test]
    fn a_missing_tool_names_its_package() {
        let tool = Tool::new("bootkit-no-such-tool", "bootkit-no-such-package");
        let text = run_error(tool, &["x"], "make a test image");
        assert!(text.contains("install the Debian package bootkit-no-such-package"));
        assert!(text.contains("make a test image"), "{text}");
    }

    #[test]
    fn a_failing_tool_reports_its_own_message() {
        let tool = Tool::new("sh", "dash");
        let text = run_error(tool, &["-c", "echo 'disk full' >&2; exit 3"], "format");
        assert!(text.contains("disk full"), "{text}");
        assert!(text.contains("failed to format"), "{text}");
    }
}
