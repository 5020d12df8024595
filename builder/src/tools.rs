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
    pub program: &'static str,
    pub package: &'static str,
}

pub const OBJCOPY: Tool = Tool {
    program: "objcopy",
    package: "binutils",
};
pub const MKFS_VFAT: Tool = Tool {
    program: "mkfs.vfat",
    package: "dosfstools",
};
pub const MMD: Tool = Tool {
    program: "mmd",
    package: "mtools",
};
pub const MCOPY: Tool = Tool {
    program: "mcopy",
    package: "mtools",
};
pub const MKFS_EXT4: Tool = Tool {
    program: "mkfs.ext4",
    package: "e2fsprogs",
};
pub const DEBUGFS: Tool = Tool {
    program: "debugfs",
    package: "e2fsprogs",
};

/// How much of a failing tool's output goes into the error.
const OUTPUT_TAIL_LINES: usize = 15;

impl Tool {
    /// Run the tool with `args` and `envs`; `purpose` completes "needed to ..." and
    /// "failed to ..." in the errors.
    pub fn run<I, S>(&self, args: I, envs: &[(&str, &str)], purpose: &str) -> Result<()>
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
            return Ok(());
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

    #[test]
    fn a_missing_tool_names_its_package() {
        let tool = Tool {
            program: "bootkit-no-such-tool",
            package: "bootkit-no-such-package",
        };
        let err = tool
            .run(["x"], &[], "make a test image")
            .expect_err("no such tool");
        let text = err.to_string();
        assert!(text.contains("install the Debian package bootkit-no-such-package"));
        assert!(text.contains("make a test image"), "{text}");
    }

    #[test]
    fn a_failing_tool_reports_its_own_message() {
        let tool = Tool {
            program: "sh",
            package: "dash",
        };
        let err = tool
            .run(["-c", "echo 'disk full' >&2; exit 3"], &[], "format")
            .expect_err("exit 3");
        let text = err.to_string();
        assert!(text.contains("disk full"), "{text}");
        assert!(text.contains("failed to format"), "{text}");
    }
}
