//! Registry authentication: the `WWW-Authenticate` challenge, basic credentials and bearer
//! tokens (Docker's token protocol).

use std::collections::HashMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

/// A username and password for a registry. The password never shows in Debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The registry user.
    pub username: String,
    /// The user's password (or token).
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// The `Authorization` header value for HTTP basic authentication: `Basic` and the
    /// base64 of `username:password`.
    pub fn basic_header(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!("Basic {}", BASE64.encode(pair))
    }
}

/// What a registry asked for in its 401 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP basic authentication with the client's credentials.
    Basic,
    /// Docker's token protocol: get a token from `realm` and send it as a bearer token.
    Bearer {
        /// The token endpoint's URL.
        realm: String,
        /// The `service` to ask the token for, when the registry named one.
        service: Option<String>,
        /// The `scope` the registry wants the token to cover; when `None`, the client asks
        /// for the repository scope of its request.
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses `Basic realm="x"` or `Bearer realm="…",service="…",scope="…"`.
    pub fn parse(header: &str) -> Option<Challenge> {
        let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut params = parse_params(params);
        Some(Challenge::Bearer {
            realm: params.remove("realm")?,
            service: params.remove("service"),
            scope: params.remove("scope"),
        })
    }
}

/// `key="value", key2=value2`: values may be quoted and quoted values may hold commas
/// (scopes such as `repository:a:pull,push` do).
fn parse_params(text: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((value, remaining)) => (value, remaining),
                None => (quoted, ""),
            },
            None => after.split_once(',').unwrap_or((after, "")),
        };
        params.insert(key, value.to_string());
        rest = remaining.trim_start().trim_start_matches(',');
    }
    params
}

/// The token endpoint's answer: Docker Hub sends `token`, OAuth-style servers `access_token`.
#[derive(serde::Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

impl TokenResponse {
    /// The token, from `token` else `access_token`; `None` when both are absent or empty.
    pub fn into_token(self) -> Option<String> {
        self.token.or(self.access_token).filter(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_challenge_gives_realm_service_and_a_scope_with_commas() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#;
        assert_eq!(
            Challenge::parse(header),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull,push".into()),
            })
        );
    }

    #[test]
    fn basic_and_unknown_challenges() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate abc"), None);
        assert_eq!(Challenge::parse("Bearer service=x"), None);
    }

    #[test]
    fn the_password_is_not_in_debug_output_but_is_in_the_header() {
        let credentials = Credentials {
            username: "user".into(),
            password: "s3cret".into(),
        };
        assert!(!format!("{credentials:?}").contains("s3cret"));
        assert_eq!(credentials.basic_header(), "Basic dXNlcjpzM2NyZXQ=");
    }

    #[test]
    fn either_token_field_is_accepted() {
        let hub: TokenResponse = serde_json::from_str(r#"{"token":"t1"}"#).unwrap();
        assert_eq!(hub.into_token().as_deref(), Some("t1"));
        let oauth: TokenResponse = serde_json::from_str(r#"{"access_token":"t2"}"#).unwrap();
        assert_eq!(oauth.into_token().as_deref(), Some("t2"));
    }
}
