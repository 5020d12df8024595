//! Image references as Docker writes them: `[registry/]repository[:tag][@digest]`.

use std::fmt;
use std::str::FromStr;

use crate::digest::sha256_hex;
use crate::error::RegistryError;

/// Docker Hub: the registry of references that name none, and the host its API lives on.
pub const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// A parsed image reference with Docker's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host (and port) as written, `docker.io` when none was.
    pub registry: String,
    /// Repository path; Docker Hub's official images get `library/`.
    pub repository: String,
    /// The tag (`latest` when neither tag nor digest was written); None when only a digest was.
    pub tag: Option<String>,
    /// The pinned digest (`sha256:<hex>`), when written.
    pub digest: Option<String>,
}

impl Reference {
    /// What to ask the registry's manifest endpoint for: the digest if pinned, else the tag.
    pub fn manifest_selector(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The host the v2 API is reached on (Docker Hub's API is not on docker.io itself).
    pub fn api_host(&self) -> &str {
        api_host_of(&self.registry)
    }
}

/// The host the v2 API of `registry` is on: Docker Hub's is `registry-1.docker.io`, any other
/// registry's is the registry itself.
pub fn api_host_of(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API_HOST
    } else {
        registry
    }
}

impl FromStr for Reference {
    type Err = RegistryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |why: &str| RegistryError::InvalidReference {
            reference: text.to_string(),
            why: why.to_string(),
        };
        if text.is_empty() || text.chars().any(char::is_whitespace) {
            return Err(invalid("it is empty or contains whitespace"));
        }
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => {
                if sha256_hex(digest).is_none() {
                    return Err(invalid("the digest is not sha256:<64 hex digits>"));
                }
                (name, Some(digest.to_string()))
            }
            None => (text, None),
        };
        // A tag is after the last ':' that comes after the last '/' (a port is before it).
        let (name, tag) = match name.rfind(':') {
            Some(colon) if !name[colon..].contains('/') => {
                (&name[..colon], Some(name[colon + 1..].to_string()))
            }
            _ => (name, None),
        };
        if tag.as_deref() == Some("") {
            return Err(invalid("the tag after ':' is empty"));
        }
        if let Some(tag) = &tag
            && !valid_tag(tag)
        {
            return Err(invalid(
                "the tag must be up to 128 letters, digits, '.', '_' and '-', not starting with '.' or '-'",
            ));
        }
        let (registry, repository) = match name.split_once('/') {
            // Docker's rule: the first component is a registry if it looks like a host.
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        if repository.is_empty() || repository.split('/').any(str::is_empty) {
            return Err(invalid(
                "the repository path is empty or has an empty component",
            ));
        }
        if repository.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid("repository names must be lowercase"));
        }
        if !repository
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
        {
            return Err(invalid(
                "the repository may hold only lower-case letters, digits, '.', '_', '-' and '/'",
            ));
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

/// The distribution spec's tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Reference {
    /// A reference that must say which registry it means (a push target): `HOST[:PORT]/…`,
    /// where the host has a dot or a port or is `localhost`, as Docker tells hosts from
    /// repository paths. Without that rule `registry/app` would silently mean Docker Hub.
    pub fn with_explicit_registry(text: &str) -> Result<Reference, RegistryError> {
        let reference: Reference = text.parse()?;
        if !text.starts_with(&format!("{}/", reference.registry)) {
            return Err(RegistryError::InvalidReference {
                reference: text.to_string(),
                why: "it names no registry: write HOST[:PORT]/REPOSITORY[:TAG], e.g. 127.0.0.1:5000/image2disk:latest (a host without a dot or a port means a Docker Hub path)".to_string(),
            });
        }
        Ok(reference)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Reference {
        text.parse().unwrap()
    }

    #[test]
    fn short_names_are_docker_hub_official_images_at_latest() {
        let reference = parse("alpine");
        assert_eq!(reference.registry, "docker.io");
        assert_eq!(reference.repository, "library/alpine");
        assert_eq!(reference.tag.as_deref(), Some("latest"));
        assert_eq!(reference.api_host(), "registry-1.docker.io");
        assert_eq!(reference.to_string(), "docker.io/library/alpine:latest");
    }

    #[test]
    fn a_host_with_a_port_is_a_registry_and_its_colon_is_not_a_tag() {
        let reference = parse("127.0.0.1:5000/actions/disk-wipe");
        assert_eq!(reference.registry, "127.0.0.1:5000");
        assert_eq!(reference.repository, "actions/disk-wipe");
        assert_eq!(reference.manifest_selector(), "latest");
        let tagged = parse("quay.io/tinkerbell/actions/image2disk:v1.0.0");
        assert_eq!(tagged.registry, "quay.io");
        assert_eq!(tagged.repository, "tinkerbell/actions/image2disk");
        assert_eq!(tagged.manifest_selector(), "v1.0.0");
    }

    #[test]
    fn a_digest_is_what_the_manifest_is_fetched_by() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let reference = parse(&format!("user/app:1@{digest}"));
        assert_eq!(reference.repository, "user/app");
        assert_eq!(reference.manifest_selector(), digest);
    }

    #[test]
    fn malformed_references_are_refused_with_the_reason() {
        for bad in [
            "",
            "a b",
            "Upper/case",
            "repo:",
            "host.io//x",
            "x@sha256:12",
            "host.io/x:bad tag",
            "host.io/x:-dash",
            "host.io/a+b",
        ] {
            let error = bad.parse::<Reference>().unwrap_err().to_string();
            assert!(error.contains("image reference"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_push_target_splits_host_repository_and_tag() {
        let full =
            Reference::with_explicit_registry("127.0.0.1:5000/actions/image2disk:v1").unwrap();
        assert_eq!(
            (
                full.registry.as_str(),
                full.repository.as_str(),
                full.tag.as_deref()
            ),
            ("127.0.0.1:5000", "actions/image2disk", Some("v1"))
        );
        for bad in [
            "image2disk",
            "/x",
            "host/Upper",
            "host/x:bad tag",
            "host/a//b",
        ] {
            assert!(
                Reference::with_explicit_registry(bad).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn a_push_target_must_name_its_registry() {
        let target = Reference::with_explicit_registry("registry:5000/reboot").unwrap();
        assert_eq!(target.to_string(), "registry:5000/reboot:latest");
        assert!(Reference::with_explicit_registry("docker.io/library/alpine").is_ok());
        for implied in ["image2disk", "registry/reboot"] {
            let error = Reference::with_explicit_registry(implied).unwrap_err();
            assert!(error.to_string().contains("names no registry"), "{error}");
        }
    }
}
