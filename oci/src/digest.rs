//! Content digests: `sha256:<64 lower-case hex digits>`, the only algorithm images here use.

use sha2::{Digest as _, Sha256};

use crate::error::RegistryError;

/// The digest of `data`, as descriptors and registries write it.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The hex part of a well-formed sha256 digest (a blob's file name in an image layout), or
/// `None` when `digest` is not `sha256:` and 64 hex digits.
pub fn sha256_hex(digest: &str) -> Option<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `data` against the digest that names it; `what` says which document or blob it is.
pub fn verify_digest(what: &str, expected: &str, data: &[u8]) -> Result<(), RegistryError> {
    let actual = sha256_digest(data);
    if actual == expected {
        Ok(())
    } else {
        Err(RegistryError::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_names_its_content_and_only_well_formed_digests_have_a_hex_part() {
        let digest = sha256_digest(b"");
        assert_eq!(
            digest,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(sha256_hex(&digest), Some(&digest[7..]));
        for bad in [
            "sha256:12",
            "sha512:ab",
            &format!("sha256:{}", "g".repeat(64)),
        ] {
            assert_eq!(sha256_hex(bad), None, "{bad}");
        }
        assert!(verify_digest("blob", &digest, b"").is_ok());
        let error = verify_digest("blob x", &digest, b"changed").unwrap_err();
        assert!(error.to_string().contains("blob x"), "{error}");
    }
}
