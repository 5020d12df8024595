//! The same engine as a Tinkerbell action: `image2disk` (by `argv[0]`) or
//! `bootkit-install --from-env` reads the action's environment instead of options
//! (`image2disk --help` lists it, from [`HELP`]).
//!
//! - `IMG_URL` (required): an http(s) URL, or a local path / block device.
//! - `DEST_DISK` (required): the disk to write, as for `--disk`.
//! - `COMPRESSED` (optional, `true`/`false`): accepted for compatibility. The format is found by
//!   magic bytes whatever it says, so a wrong value cannot write compressed bytes raw onto the
//!   disk (Tinkerbell's own action would); a mismatch is noted in the log.
//! - `SHA256` (optional): the sha256 of the image as published.
//! - `TLS_CA_CERT` (optional): PEM certificates, inline or as a file path, trusted for https.
//! - `HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY` (and lower case): proxies.

use std::path::PathBuf;

use crate::install::InstallRequest;
use crate::source::http::{HttpOptions, ProxySettings};

/// What `image2disk --help` shows after its usage: every variable [`request_from_env`] reads,
/// an example and the exit status.
pub const HELP: &str = concat!(
    "Environment:\n",
    "  IMG_URL      (required) the image: an http(s) URL, a file or a block device\n",
    "  DEST_DISK    (required) the disk to write, as bootkit-install --disk takes it\n",
    "  COMPRESSED   (optional) true/false, accepted for compatibility: the format (raw, gzip,\n",
    "               zstd, xz) is found by its magic bytes, a mismatch is only noted\n",
    "  SHA256       (optional) the sha256 of the image file as published\n",
    "  TLS_CA_CERT  (optional) PEM certificates, inline or as a file path, trusted for https\n",
    "  HTTP_PROXY, HTTPS_PROXY, NO_PROXY (and lower case)  proxies for the image URL\n",
    "\n",
    "Example (a Tinkerbell template's action):\n",
    "  image: image2disk\n",
    "  environment:\n",
    "    IMG_URL: http://10.0.0.2:8080/emt.raw.gz\n",
    "    DEST_DISK: /dev/nvme0n1\n",
    "    SHA256: 3f0c...\n",
    "\n",
    "Exit status: 0 when the image was written and its checks passed: its sha256 against\n",
    "SHA256, or else against IMG_URL.sha256sum or IMG_URL.sha256 when the server has one (with\n",
    "neither the log says \"not verified against a published checksum\"); 1 on any failure,\n",
    "2 on a usage error.",
);

/// Why the image2disk action's environment cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A required variable is unset; carries its name and what it is for.
    #[error("{0} is not set: the image2disk action needs it ({1})")]
    Missing(&'static str, &'static str),
    /// A variable's value does not parse.
    #[error("{name}={value:?} is not valid: {expected}")]
    Invalid {
        /// The variable's name.
        name: &'static str,
        /// Its value as set.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
}

/// The install request described by the environment, read through `lookup`.
pub fn request_from_env(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<InstallRequest, EnvError> {
    let set = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
    let image = set("IMG_URL").ok_or(EnvError::Missing(
        "IMG_URL",
        "the image's http(s) URL or path",
    ))?;
    let disk = set("DEST_DISK").ok_or(EnvError::Missing(
        "DEST_DISK",
        "the disk to write, such as /dev/nvme0n1",
    ))?;
    let compressed = match set("COMPRESSED") {
        None => None,
        Some(value) => Some(parse_bool(&value).ok_or(EnvError::Invalid {
            name: "COMPRESSED",
            value,
            expected: "true or false",
        })?),
    };
    let sha256 = match set("SHA256") {
        Some(value) if crate::verify::Sha256Digest::parse(&value).is_err() => {
            return Err(EnvError::Invalid {
                name: "SHA256",
                value,
                expected: "64 hex digits, the sha256 of the image file as published",
            });
        }
        other => other,
    };
    let mut http = HttpOptions {
        proxy: ProxySettings::from_lookup(&lookup),
        ..HttpOptions::default()
    };
    if let Some(ca) = set("TLS_CA_CERT") {
        if ca.trim_start().starts_with("-----BEGIN") {
            http.ca_pem = Some(ca.into_bytes());
        } else if std::path::Path::new(ca.trim()).is_file() {
            http.ca_file = Some(PathBuf::from(ca.trim()));
        } else {
            return Err(EnvError::Invalid {
                name: "TLS_CA_CERT",
                value: ca,
                expected: "PEM certificates (-----BEGIN CERTIFICATE-----...) or the path of a PEM file",
            });
        }
    }
    Ok(InstallRequest {
        image: Some(image),
        disk: Some(disk),
        sha256,
        compressed,
        http,
        ..InstallRequest::default()
    })
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn request(vars: &[(&str, &str)]) -> Result<InstallRequest, EnvError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        request_from_env(|name| map.get(name).cloned())
    }

    #[test]
    fn the_action_environment_becomes_a_request() {
        let sha = "ab".repeat(32);
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let request = request(&[
            ("IMG_URL", "https://images.test/os.raw.gz"),
            ("DEST_DISK", "/dev/nvme0n1"),
            ("COMPRESSED", "True"),
            ("SHA256", &sha),
            ("TLS_CA_CERT", pem),
        ])
        .unwrap();
        assert_eq!(
            request.image.as_deref(),
            Some("https://images.test/os.raw.gz")
        );
        assert_eq!(request.disk.as_deref(), Some("/dev/nvme0n1"));
        assert_eq!(request.compressed, Some(true));
        assert_eq!(request.sha256.as_deref(), Some(sha.as_str()));
        assert_eq!(request.http.ca_pem.as_deref(), Some(pem.as_bytes()));
    }

    #[test]
    fn missing_and_invalid_variables_are_named() {
        let missing = request(&[("DEST_DISK", "/dev/sda")]).unwrap_err();
        assert!(
            missing.to_string().contains("IMG_URL is not set"),
            "{missing}"
        );
        let missing = request(&[("IMG_URL", "http://h/i.raw")]).unwrap_err();
        assert!(missing.to_string().contains("DEST_DISK"), "{missing}");
        let base = [("IMG_URL", "http://h/i.raw"), ("DEST_DISK", "/dev/sda")];
        for (name, value) in [
            ("COMPRESSED", "maybe"),
            ("SHA256", "1234"),
            ("TLS_CA_CERT", "/nonexistent/ca.pem"),
        ] {
            let mut vars = base.to_vec();
            vars.push((name, value));
            let error = request(&vars).unwrap_err().to_string();
            assert!(error.starts_with(&format!("{name}=")), "{error}");
        }
    }
}
