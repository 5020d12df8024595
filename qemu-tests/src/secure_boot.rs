//! Secure Boot in QEMU: an OVMF variable store with a key set enrolled, for
//! [`crate::Firmware::SecureBoot`].
//!
//! Enrollment is done by `virt-fw-vars` (PyPI's `virt-firmware`, installed by
//! scripts/setup.sh), an independent implementation of EDK2's variable store format: the
//! keys it enrolls are the project's certificates, but nothing of the project writes the
//! store the firmware reads. It sets PK, KEK and db from the PEM certificates of a key set
//! (`bootkit-build keys`), turns Secure Boot on, and leaves Microsoft's keys out, so the
//! firmware trusts the test db key only. For the shim path it instead starts from OVMF's
//! Microsoft store and adds the test db certificate to shim's `MokList`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::paths::SETUP_CMD;
use crate::vm::OVMF_VARS_TEMPLATE;

/// The program that writes the variable store.
pub const VIRT_FW_VARS: &str = "virt-fw-vars";

/// Debian's OVMF variable store with Secure Boot on and a db of Microsoft's certificates
/// only (the Windows PCA 2011 and the UEFI CA 2011 that signs shims); its PK and one of its
/// two KEKs are Debian's, which only matters for variable updates.
pub const OVMF_VARS_MICROSOFT: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";

/// What OVMF's boot manager prints when an image fails Secure Boot verification:
/// `BdsDxe: failed to load Boot000N "…" from …: Access Denied`.
pub const REFUSED_MARKER: &str = "Access Denied";

/// A variable store with a key set enrolled and Secure Boot on. Each VM boots from its own
/// copy ([`SecureBootVars::copy_for`]): OVMF writes to its store (boot entries, BootNext).
#[derive(Debug, Clone)]
pub struct SecureBootVars {
    path: PathBuf,
}

impl SecureBootVars {
    /// Enrolls the key set in `keys_dir` (`PK.crt`, `KEK.crt`, `db.crt` and
    /// `owner-guid.txt`, as `bootkit-build keys` writes them) into a copy of OVMF's pristine
    /// store written to `out_vars`, with Secure Boot enabled.
    pub fn enroll(keys_dir: &Path, out_vars: &Path) -> Result<SecureBootVars> {
        let guid_file = keys_dir.join("owner-guid.txt");
        let guid = std::fs::read_to_string(&guid_file).map_err(Error::io(format!(
            "reading the key set's owner GUID {} (make the key set with `bootkit-build keys --out {}`)",
            guid_file.display(),
            keys_dir.display()
        )))?;
        let guid = guid.trim();
        let cert = |name: &str| -> Result<String> {
            let path = keys_dir.join(name);
            if path.is_file() {
                Ok(path.display().to_string())
            } else {
                Err(Error::Other(format!(
                    "the key set in {} has no {name}: make it with `bootkit-build keys --out {}`",
                    keys_dir.display(),
                    keys_dir.display()
                )))
            }
        };
        let mut cmd = Command::new(VIRT_FW_VARS);
        cmd.arg("--input")
            .arg(OVMF_VARS_TEMPLATE)
            .arg("--output")
            .arg(out_vars)
            .args(["--set-pk", guid, &cert("PK.crt")?])
            .args(["--add-kek", guid, &cert("KEK.crt")?])
            .args(["--add-db", guid, &cert("db.crt")?])
            .arg("--secure-boot");
        run(&mut cmd, "enrolling the key set")?;
        Ok(SecureBootVars {
            path: out_vars.to_path_buf(),
        })
    }

    /// OVMF's store whose db trusts Microsoft's keys only ([`OVMF_VARS_MICROSOFT`], as most
    /// machines ship), Secure Boot on, with the PEM or DER certificate `mok_cert`
    /// added to shim's `MokList` under the owner GUID `owner`, written to `out_vars`: the
    /// state `mokutil --import` and MokManager leave after an operator enrolled a MOK.
    pub fn microsoft_with_mok(
        mok_cert: &Path,
        owner: &str,
        out_vars: &Path,
    ) -> Result<SecureBootVars> {
        let mut cmd = Command::new(VIRT_FW_VARS);
        cmd.arg("--input")
            .arg(OVMF_VARS_MICROSOFT)
            .arg("--output")
            .arg(out_vars)
            .arg("--add-mok")
            .arg(owner)
            .arg(mok_cert)
            .arg("--secure-boot");
        run(&mut cmd, "adding a MOK to OVMF's Microsoft variable store")?;
        Ok(SecureBootVars {
            path: out_vars.to_path_buf(),
        })
    }

    /// The enrolled store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A copy of the enrolled store at `dest`, for one VM.
    pub fn copy_for(&self, dest: &Path) -> Result<PathBuf> {
        std::fs::copy(&self.path, dest).map_err(Error::io(format!(
            "copying the enrolled variable store {} to {}",
            self.path.display(),
            dest.display()
        )))?;
        Ok(dest.to_path_buf())
    }

    /// What `virt-fw-vars --print` says about the store, e.g. to check that
    /// `SecureBootEnable` is on and the db holds the test certificate.
    pub fn describe(&self) -> Result<String> {
        run(
            Command::new(VIRT_FW_VARS)
                .arg("--input")
                .arg(&self.path)
                .arg("--print")
                .arg("--verbose"),
            "printing the variable store",
        )
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let output = cmd.output().map_err(Error::io(format!(
        "{what}: starting {VIRT_FW_VARS} (PyPI's virt-firmware; install it with {SETUP_CMD})"
    )))?;
    if !output.status.success() {
        return Err(Error::Other(format!(
            "{what}: {VIRT_FW_VARS} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    // virt-fw-vars logs its INFO lines to stderr; the print options write to stdout.
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok(text)
}
