//! Secure Boot: a site's key set (PK, KEK, db) and Authenticode signing of EFI binaries.
//!
//! Tools rather than crates, and why:
//! - Keys and certificates (RSA-2048, SHA-256: what EDK2/OVMF and shim verify) and the
//!   PKCS#7 signatures of the `.auth` updates are made by `openssl`. `ring`, the
//!   workspace's crypto, cannot generate RSA keys, and the pure-Rust `rsa` crate has an
//!   open timing side-channel advisory (RUSTSEC-2023-0071) and no PKCS#7.
//! - PE images are signed by Debian's `sbsign` (sbsigntool): no maintained Rust crate
//!   writes Authenticode signatures (the `authenticode` crate only hashes and parses), and
//!   sbsign is what distributions sign their shims, kernels and UKIs with.
//! - The signature lists and the EFI_VARIABLE_AUTHENTICATION_2 framing are fixed-layout
//!   headers written in [`efi_vars`]; efitools is the tests' oracle for them.
//!
//! A key set directory holds `PK.key PK.crt KEK.key KEK.crt db.key db.crt` (PEM, keys
//! 0600), `PK.esl KEK.esl db.esl` (EFI_SIGNATURE_LIST), `PK.auth KEK.auth db.auth`
//! (signed updates: PK by itself, KEK by PK, db by KEK, as firmware setup menus and
//! `efi-updatevar` enroll them) and `owner-guid.txt` (the signature owner GUID).
//!
//! Signatures are not reproducible byte for byte: sbsign's PKCS#7 carries a signingTime
//! attribute with the current time (RSA PKCS#1 v1.5 itself is deterministic). The signed
//! image's Authenticode digest, which is what firmware checks, does not change.

pub mod efi_vars;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use thiserror::Error;
use uuid::Uuid;

use crate::error::BuildError;
use crate::reproducible::{source_date_epoch, write_atomic};
use crate::tools::{OPENSSL, SBSIGN};
use efi_vars::{EfiTime, SECURE_BOOT_VAR_ATTRIBUTES};

/// The common name the keys' subjects start with unless one is given.
pub const DEFAULT_COMMON_NAME: &str = "bootkit";
/// How long the generated certificates are valid. Firmware does not check validity
/// periods (there is no trusted clock before boot), so this only matters to other tools.
const VALID_DAYS: &str = "3650";
/// The file holding the signature owner GUID of the lists.
pub const OWNER_GUID_FILE: &str = "owner-guid.txt";

/// One of the three Secure Boot keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// The platform key: owns the platform, signs KEK updates (and its own).
    Pk,
    /// The key exchange key: signs db/dbx updates.
    Kek,
    /// The signature database key: signs the EFI binaries firmware may run.
    Db,
}

impl KeyRole {
    /// All three, in the order they are made (each signs the next one's update).
    pub const ALL: [KeyRole; 3] = [KeyRole::Pk, KeyRole::Kek, KeyRole::Db];

    /// The UEFI variable's name, also the files' stem: `PK`, `KEK`, `db`.
    pub fn name(self) -> &'static str {
        match self {
            KeyRole::Pk => "PK",
            KeyRole::Kek => "KEK",
            KeyRole::Db => "db",
        }
    }

    /// The variable's vendor GUID.
    pub fn vendor(self) -> Uuid {
        match self {
            KeyRole::Pk | KeyRole::Kek => efi_vars::EFI_GLOBAL_VARIABLE,
            KeyRole::Db => efi_vars::EFI_IMAGE_SECURITY_DATABASE_GUID,
        }
    }

    /// The key whose signature firmware accepts on an update of this variable.
    pub fn signed_by(self) -> KeyRole {
        match self {
            KeyRole::Pk | KeyRole::Kek => KeyRole::Pk,
            KeyRole::Db => KeyRole::Kek,
        }
    }
}

/// Why a key set could not be made or read.
#[derive(Debug, Error)]
pub enum KeyError {
    /// Generating would overwrite an existing key set.
    #[error(
        "{path} already exists: refusing to overwrite a Secure Boot key set (machines may have it enrolled); choose another directory or pass --force"
    )]
    Exists {
        /// The first existing file.
        path: PathBuf,
    },
    /// A file of the key set is missing.
    #[error("key set {dir}: {file} is missing (make a key set with `bootkit-build keys --out {dir}`)", dir = dir.display())]
    Missing {
        /// The key set directory.
        dir: PathBuf,
        /// The missing file's name.
        file: String,
    },
    /// A certificate could not be read.
    #[error("certificate {path}: {reason}")]
    Certificate {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `owner-guid.txt` does not hold a GUID.
    #[error(
        "{path}: {text:?} is not a GUID (the file holds the signature owner, e.g. written by `bootkit-build keys`)"
    )]
    OwnerGuid {
        /// The file.
        path: PathBuf,
        /// What it holds.
        text: String,
    },
    /// A file operation or a tool failed.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// Why an EFI binary could not be signed.
#[derive(Debug, Error)]
pub enum SignError {
    /// The input, key or certificate does not exist.
    #[error("cannot sign: the {what} {path} does not exist")]
    Missing {
        /// `EFI binary`, `signing key`, `certificate`.
        what: &'static str,
        /// Its path.
        path: PathBuf,
    },
    /// The input is not a PE image.
    #[error("cannot sign {path}: not an EFI (PE/COFF) binary: {reason}")]
    NotPe {
        /// The input.
        path: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
    /// A file operation or sbsign failed (a key not matching its certificate is reported
    /// by sbsign).
    #[error("signing {input} failed: {cause}")]
    Failed {
        /// The input.
        input: PathBuf,
        /// What went wrong.
        cause: BuildError,
    },
}

/// A Secure Boot key set on disk (see the module docs for its files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    /// The directory holding it.
    pub dir: PathBuf,
    /// The signature owner GUID of its lists.
    pub owner: Uuid,
}

impl KeySet {
    /// Make a new key set in `dir` (created if needed), subjects `CN=<common_name> PK` etc.;
    /// refuses if any of its files exists.
    pub fn generate(dir: &Path, common_name: &str) -> Result<KeySet, KeyError> {
        Self::generate_with(dir, common_name, false)
    }

    /// [`KeySet::generate`], replacing an existing set when `force`.
    pub fn generate_with(dir: &Path, common_name: &str, force: bool) -> Result<KeySet, KeyError> {
        fs::create_dir_all(dir).map_err(BuildError::io(format!(
            "create the key directory {}",
            dir.display()
        )))?;
        if !force
            && let Some(existing) = Self::file_names()
                .iter()
                .map(|name| dir.join(name))
                .find(|path| path.exists())
        {
            return Err(KeyError::Exists { path: existing });
        }
        let owner = random_guid()?;
        let set = KeySet {
            dir: dir.to_path_buf(),
            owner,
        };
        let timestamp = auth_timestamp()?;
        let scratch = tempfile::tempdir_in(dir).map_err(BuildError::io(format!(
            "create a temporary directory in {}",
            dir.display()
        )))?;
        for role in KeyRole::ALL {
            set.make_key(role, common_name)?;
        }
        for role in KeyRole::ALL {
            let der = certificate_der(&set.cert(role))?;
            let list = efi_vars::x509_signature_list(&der, owner);
            write_atomic(&set.esl(role), &list)?;
            let payload = efi_vars::signed_payload(
                role.name(),
                role.vendor(),
                SECURE_BOOT_VAR_ATTRIBUTES,
                timestamp,
                &list,
            );
            let signature = pkcs7_sign(&set, role, &payload, scratch.path())?;
            write_atomic(
                &set.auth(role),
                &efi_vars::authenticated_update(timestamp, &signature, &list),
            )?;
        }
        write_atomic(&dir.join(OWNER_GUID_FILE), format!("{owner}\n").as_bytes())?;
        Ok(set)
    }

    /// The key set in `dir`, checking that all its files are there.
    pub fn load(dir: &Path) -> Result<KeySet, KeyError> {
        for name in Self::file_names() {
            if !dir.join(&name).is_file() {
                return Err(KeyError::Missing {
                    dir: dir.to_path_buf(),
                    file: name,
                });
            }
        }
        let path = dir.join(OWNER_GUID_FILE);
        let text = fs::read_to_string(&path)
            .map_err(BuildError::io(format!("read {}", path.display())))?;
        let owner = Uuid::parse_str(text.trim()).map_err(|_| KeyError::OwnerGuid {
            path,
            text: text.trim().to_string(),
        })?;
        Ok(KeySet {
            dir: dir.to_path_buf(),
            owner,
        })
    }

    /// The PEM private key of `role`.
    pub fn key(&self, role: KeyRole) -> PathBuf {
        self.dir.join(format!("{}.key", role.name()))
    }

    /// The PEM certificate of `role`.
    pub fn cert(&self, role: KeyRole) -> PathBuf {
        self.dir.join(format!("{}.crt", role.name()))
    }

    /// The EFI_SIGNATURE_LIST of `role`'s certificate.
    pub fn esl(&self, role: KeyRole) -> PathBuf {
        self.dir.join(format!("{}.esl", role.name()))
    }

    /// The signed update (EFI_VARIABLE_AUTHENTICATION_2 + list) enrolling `role`.
    pub fn auth(&self, role: KeyRole) -> PathBuf {
        self.dir.join(format!("{}.auth", role.name()))
    }

    /// Every file of a key set.
    fn file_names() -> Vec<String> {
        let mut names: Vec<String> = KeyRole::ALL
            .iter()
            .flat_map(|role| {
                ["key", "crt", "esl", "auth"].map(|ext| format!("{}.{ext}", role.name()))
            })
            .collect();
        names.push(OWNER_GUID_FILE.into());
        names
    }

    /// A new RSA-2048 key and self-signed SHA-256 certificate for `role`.
    fn make_key(&self, role: KeyRole, common_name: &str) -> Result<(), KeyError> {
        let key = self.key(role);
        // Created 0600 before openssl writes into it, so the key is never readable by others.
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key)
            .map_err(BuildError::io(format!("create {}", key.display())))?;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).map_err(BuildError::io(
            format!("make {} private (0600)", key.display()),
        ))?;
        let subject = format!("/CN={} {}", common_name.replace('/', "\\/"), role.name());
        OPENSSL.run(
            [
                "req".as_ref(),
                "-x509".as_ref(),
                "-newkey".as_ref(),
                "rsa:2048".as_ref(),
                "-nodes".as_ref(),
                "-sha256".as_ref(),
                "-days".as_ref(),
                VALID_DAYS.as_ref(),
                "-subj".as_ref(),
                subject.as_ref(),
                "-keyout".as_ref(),
                key.as_os_str(),
                "-out".as_ref(),
                self.cert(role).as_os_str(),
            ] as [&std::ffi::OsStr; 14],
            &[],
            &format!("make the Secure Boot {} key", role.name()),
        )?;
        Ok(())
    }
}

/// The DER of the PEM certificate at `path`, checked to parse as X.509.
pub fn certificate_der(path: &Path) -> Result<Vec<u8>, KeyError> {
    let pem_bytes = fs::read(path).map_err(BuildError::io(format!(
        "read the certificate {}",
        path.display()
    )))?;
    let bad = |reason: String| KeyError::Certificate {
        path: path.to_path_buf(),
        reason,
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem_bytes)
        .map_err(|err| bad(format!("not a PEM certificate ({err})")))?;
    pem.parse_x509()
        .map_err(|err| bad(format!("not an X.509 certificate ({err})")))?;
    Ok(pem.contents)
}

/// A detached DER PKCS#7 SignedData over `payload` by `signer`, SHA-256 and no signed
/// attributes: the form EDK2 verifies in EFI_VARIABLE_AUTHENTICATION_2 (what efitools'
/// sign-efi-sig-list makes). The update of `role` is signed by the key above it.
fn pkcs7_sign(
    set: &KeySet,
    role: KeyRole,
    payload: &[u8],
    scratch: &Path,
) -> Result<Vec<u8>, KeyError> {
    let signer = role.signed_by();
    let input = scratch.join("payload");
    let output = scratch.join("signature.p7");
    fs::write(&input, payload).map_err(BuildError::io(format!("write {}", input.display())))?;
    OPENSSL.run(
        [
            "smime".as_ref(),
            "-sign".as_ref(),
            "-binary".as_ref(),
            "-noattr".as_ref(),
            "-md".as_ref(),
            "sha256".as_ref(),
            "-outform".as_ref(),
            "DER".as_ref(),
            "-signer".as_ref(),
            set.cert(signer).as_os_str(),
            "-inkey".as_ref(),
            set.key(signer).as_os_str(),
            "-in".as_ref(),
            input.as_os_str(),
            "-out".as_ref(),
            output.as_os_str(),
        ] as [&std::ffi::OsStr; 16],
        &[],
        &format!(
            "sign the {} update with the {} key",
            role.name(),
            signer.name()
        ),
    )?;
    let der = fs::read(&output).map_err(BuildError::io(format!("read {}", output.display())))?;
    efi_vars::signed_data_of(&der)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| {
            KeyError::Build(BuildError::ToolFailed {
                program: OPENSSL.program,
                purpose: format!("sign the {} update", role.name()),
                status: "exit status 0".into(),
                output: "its output is not a DER PKCS#7 SignedData ContentInfo".into(),
            })
        })
}

/// The timestamp of the signed updates: SOURCE_DATE_EPOCH when set (reproducible
/// builds), else now. Firmware only requires later updates to carry later timestamps.
fn auth_timestamp() -> Result<EfiTime, KeyError> {
    let seconds = if std::env::var_os("SOURCE_DATE_EPOCH").is_some() {
        source_date_epoch()?
    } else {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or(0)
    };
    let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
    EfiTime::from_unix(seconds).ok_or_else(|| {
        KeyError::Build(BuildError::Config(format!(
            "SOURCE_DATE_EPOCH={seconds} is outside the years EFI_TIME can hold"
        )))
    })
}

/// A random (version 4) GUID from the kernel's random source.
fn random_guid() -> Result<Uuid, KeyError> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(BuildError::io("read /dev/urandom for the owner GUID"))?;
    Ok(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// Sign the EFI binary `input` with Authenticode (`key`/`cert`, PEM) into `output`; in
/// place when they are the same path. An already signed input gets one more signature.
pub fn sign_pe(input: &Path, output: &Path, key: &Path, cert: &Path) -> Result<(), SignError> {
    for (what, path) in [
        ("EFI binary", input),
        ("signing key", key),
        ("certificate", cert),
    ] {
        if !path.is_file() {
            return Err(SignError::Missing {
                what,
                path: path.to_path_buf(),
            });
        }
    }
    let failed = |cause: BuildError| SignError::Failed {
        input: input.to_path_buf(),
        cause,
    };
    let image = fs::read(input)
        .map_err(|err| failed(BuildError::io(format!("read {}", input.display()))(err)))?;
    goblin::pe::PE::parse(&image).map_err(|err| SignError::NotPe {
        path: input.to_path_buf(),
        reason: err.to_string(),
    })?;
    let parent = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // sbsign writes next to the output, then the rename makes it appear whole (and lets
    // input == output work).
    let staged = tempfile::Builder::new()
        .prefix(".signing-")
        .tempfile_in(parent)
        .map_err(|err| {
            failed(BuildError::io(format!(
                "create a temporary file in {}",
                parent.display()
            ))(err))
        })?;
    SBSIGN
        .run(
            [
                "--key".as_ref(),
                key.as_os_str(),
                "--cert".as_ref(),
                cert.as_os_str(),
                "--output".as_ref(),
                staged.path().as_os_str(),
                input.as_os_str(),
            ] as [&std::ffi::OsStr; 7],
            &[],
            &format!("sign {}", input.display()),
        )
        .map_err(failed)?;
    let mode = fs::metadata(input)
        .map(|meta| meta.permissions())
        .map_err(|err| failed(BuildError::io(format!("stat {}", input.display()))(err)))?;
    fs::set_permissions(staged.path(), mode).map_err(|err| {
        failed(BuildError::io(format!(
            "set the mode of {}",
            staged.path().display()
        ))(err))
    })?;
    staged.persist(output).map_err(|err| {
        failed(BuildError::io(format!("write {}", output.display()))(
            err.error,
        ))
    })?;
    Ok(())
}
