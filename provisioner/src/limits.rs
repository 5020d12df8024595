//! Bounds that keep one request from stopping the others: the admin API's body size, time
//! budget and YAML nesting limit, and the per-source rate limits of the unauthenticated
//! node-facing endpoints (DHCP per client MAC, boot scripts and onboarding per source IP).
//!
//! Why a YAML nesting limit of its own: libyaml (under serde_yaml_ng) keeps a stack of
//! "simple key" candidates per flow level and walks it on every token, so nested flow
//! collections (`[[[[...`) cost time quadratic in their depth before serde's recursion limit
//! (128) is ever reached: 20,000 levels take 0.8 s in a release build, 70,000 levels (136 KB)
//! took 88 s. Block nesting (`- - - x`, indentation) is linear there and left to that
//! recursion limit. So the flow nesting is measured here first, by a scanner that is linear
//! in the text, and a deeper document is refused before the parser sees it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
pub use bootkit_dhcp::rate::{Rate, RateError, RateLimit, TokenBuckets};

/// The deepest nesting of YAML flow collections (`[`, `{`) accepted by default. Tinkerbell
/// templates nest a few levels (`environment: {A: [..]}`); 64 leaves room for any real one.
pub const DEFAULT_YAML_DEPTH: usize = 64;

/// The largest admin request body by default: a registration CSV of tens of thousands of
/// machines fits, a runaway upload does not.
pub const DEFAULT_ADMIN_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How long one admin request may take by default before it is answered 503.
pub const DEFAULT_ADMIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Every bound `provisioner serve` applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// The admin API's bounds.
    pub admin: AdminLimits,
    /// DHCP requests per client MAC (never per relay address: a rack behind one relay shares
    /// its giaddr). `None`: unlimited.
    pub dhcp_per_mac: Option<Rate>,
    /// Boot script requests (`/ipxe/...`) per source IP. `None`: unlimited.
    pub boot_script_per_ip: Option<Rate>,
    /// Onboarding calls (both onboarding services) per source IP. `None`: unlimited.
    pub onboarding_per_ip: Option<Rate>,
}

impl Default for Limits {
    /// Generous enough for a factory rack: a PXE boot is a handful of DHCP requests per MAC
    /// (ROM and iPXE, with retries), two scripts and a few onboarding calls per node.
    fn default() -> Self {
        Self {
            admin: AdminLimits::default(),
            dhcp_per_mac: Some(Rate {
                per_second: 2.0,
                burst: 30,
            }),
            boot_script_per_ip: Some(Rate {
                per_second: 10.0,
                burst: 100,
            }),
            onboarding_per_ip: Some(Rate {
                per_second: 5.0,
                burst: 50,
            }),
        }
    }
}

/// The admin API's bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminLimits {
    /// The largest request body, in bytes (413 beyond).
    pub body_bytes: usize,
    /// The time budget of one request (503 beyond).
    pub request_timeout: Duration,
    /// The deepest YAML flow nesting of an uploaded template (400 beyond).
    pub yaml_depth: usize,
}

impl Default for AdminLimits {
    fn default() -> Self {
        Self {
            body_bytes: DEFAULT_ADMIN_BODY_BYTES,
            request_timeout: DEFAULT_ADMIN_REQUEST_TIMEOUT,
            yaml_depth: DEFAULT_YAML_DEPTH,
        }
    }
}

/// A YAML text nested deeper than the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the YAML nests flow collections ([ or {{) deeper than {limit} levels (at line {line}); \
     write it with fewer levels (the limit is serve's --yaml-depth-limit)"
)]
pub struct DepthError {
    /// The limit.
    pub limit: usize,
    /// The 1-based line where the nesting passed it.
    pub line: usize,
}

/// Refuses YAML whose flow collections nest deeper than `limit`, in time linear in the
/// text. Quoted scalars, comments and block scalars (`|`, `>`) are skipped, and a `[` or
/// `{` inside a plain scalar in block context (`echo a[1]`) does not count, so scripts in
/// templates are not mistaken for nesting.
pub fn check_yaml_depth(text: &str, limit: usize) -> Result<(), DepthError> {
    let mut flow = 0usize;
    let mut quote: Option<char> = None;
    // The indentation of the line that opened a block scalar; deeper lines are its text.
    let mut block_scalar: Option<usize> = None;
    for (index, line) in text.split('\n').enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if let Some(parent) = block_scalar {
            if line.trim().is_empty() || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        let mut token_start = true;
        let mut chars = line.chars().peekable();
        let mut previous = ' ';
        while let Some(c) = chars.next() {
            match quote {
                Some('"') => {
                    if c == '\\' {
                        chars.next();
                    } else if c == '"' {
                        quote = None;
                        token_start = false;
                    }
                    previous = c;
                    continue;
                }
                Some(_) => {
                    if c == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            quote = None;
                            token_start = false;
                        }
                    }
                    previous = c;
                    continue;
                }
                None => {}
            }
            let next_is_space = chars.peek().is_none_or(|next| next.is_whitespace());
            match c {
                '#' if previous.is_whitespace() => break,
                '"' | '\'' if token_start => quote = Some(c),
                '[' | '{' if token_start || flow > 0 => {
                    flow += 1;
                    if flow > limit {
                        return Err(DepthError {
                            limit,
                            line: index + 1,
                        });
                    }
                    token_start = true;
                }
                ']' | '}' if flow > 0 => {
                    flow -= 1;
                    token_start = false;
                }
                ',' if flow > 0 => token_start = true,
                ':' if next_is_space || flow > 0 => token_start = true,
                '-' | '?' if token_start && next_is_space => {}
                '&' | '!' if token_start => {
                    // An anchor or tag: skip its name; what follows still starts a value.
                    while chars.peek().is_some_and(|next| !next.is_whitespace()) {
                        chars.next();
                    }
                }
                '|' | '>' if token_start && flow == 0 => {
                    let rest: String = chars.by_ref().collect();
                    let header = rest.trim_start_matches(['-', '+', '1', '2', '3', '4', '5']);
                    let header = header.trim_start_matches(['-', '+']).trim();
                    if header.is_empty() || header.starts_with('#') {
                        block_scalar = Some(indent);
                    }
                    break;
                }
                c if c.is_whitespace() => {}
                _ => token_start = false,
            }
            previous = c;
        }
    }
    Ok(())
}

/// How many requests each rate limit refused, by endpoint (`/metrics`).
#[derive(Debug, Default)]
pub struct RateLimitCounters {
    /// Boot script requests answered 429.
    pub boot_script: AtomicU64,
    /// Onboarding calls answered RESOURCE_EXHAUSTED.
    pub onboarding: AtomicU64,
}

/// The boot HTTP listener's rate limit on scripts, as an axum middleware's state.
#[derive(Clone)]
pub struct BootScriptLimit {
    buckets: Arc<TokenBuckets<IpAddr>>,
    counters: Arc<RateLimitCounters>,
}

impl BootScriptLimit {
    /// Limits each source IP to `rate` script requests.
    pub fn new(rate: Rate, counters: Arc<RateLimitCounters>) -> Self {
        Self {
            buckets: Arc::new(TokenBuckets::new(rate)),
            counters,
        }
    }
}

/// Middleware: script requests (`/ipxe/...`) beyond the source's rate are answered 429 with
/// `Retry-After`; artifacts and metadata pass (a node fetches each once per boot, and a
/// kernel download must not be cut by its own script's budget).
pub async fn limit_boot_scripts(
    State(limit): State<BootScriptLimit>,
    request: Request,
    next: Next,
) -> Response {
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let Some(source) = source
        && request.uri().path().starts_with("/ipxe/")
        && !limit.buckets.admit(&source)
    {
        limit.counters.boot_script.fetch_add(1, Ordering::Relaxed);
        let rate = limit.buckets.rate();
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "#!ipxe\necho {source} is over the boot script rate limit ({rate} per source \
                 address); retrying. The operator can raise it with serve's \
                 --boot-script-rate-limit\nsleep 5\nchain ${{self}}\n"
            ),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return response;
    }
    next.run(request).await
}

/// A tonic interceptor limiting onboarding calls per source IP.
#[derive(Clone)]
pub struct OnboardingLimit {
    buckets: Option<Arc<TokenBuckets<IpAddr>>>,
    counters: Arc<RateLimitCounters>,
}

impl OnboardingLimit {
    /// Limits each source IP to `rate` calls; `None` admits every call.
    pub fn new(rate: Option<Rate>, counters: Arc<RateLimitCounters>) -> Self {
        Self {
            buckets: rate.map(|rate| Arc::new(TokenBuckets::new(rate))),
            counters,
        }
    }
}

impl tonic::service::Interceptor for OnboardingLimit {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let (Some(buckets), Some(source)) = (&self.buckets, request.remote_addr()) else {
            return Ok(request);
        };
        if buckets.admit(&source.ip()) {
            return Ok(request);
        }
        self.counters.onboarding.fetch_add(1, Ordering::Relaxed);
        Err(tonic::Status::resource_exhausted(format!(
            "{} is over the onboarding rate limit ({} per source address); retry in a few \
             seconds (the operator can raise it with serve's --onboarding-rate-limit)",
            source.ip(),
            buckets.rate()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape seen in the issue: flow sequences nested 70,000 deep (136 KB).
    fn hostile(levels: usize) -> String {
        format!(
            "version: \"0.1\"\nname: x\ntasks: {}{}\n",
            "[".repeat(levels),
            "]".repeat(levels)
        )
    }

    #[test]
    fn deep_flow_nesting_is_refused_naming_the_limit_and_line() {
        let error = check_yaml_depth(&hostile(70_000), 64).unwrap_err();
        assert_eq!(error, DepthError { limit: 64, line: 3 });
        let message = error.to_string();
        assert!(
            message.contains("64") && message.contains("--yaml-depth-limit"),
            "{message}"
        );
        assert!(check_yaml_depth(&hostile(64), 64).is_ok());
        assert!(check_yaml_depth(&hostile(65), 64).is_err());
        // Mappings count the same, and an unclosed document is measured as far as it goes.
        assert!(check_yaml_depth(&"{a: ".repeat(100), 64).is_err());
    }

    #[test]
    fn brackets_in_scripts_quotes_comments_and_block_scalars_do_not_count() {
        let template = r#"
version: "0.1"
tasks:
  - name: t # [[[[[[ a comment
    environment: {A: "[[[[[[[[", B: '{{{{{{''{{{{'}
    actions:
      - name: a
        image: quay.io/x:[1]
        command: ["sh", "-c", "if [ -f /x ]; then echo [[[[[[[[; fi"]
        script: |
          if [ -f /x ]; then
            echo [[[[[[[[[[[[[[[[[[[
          fi
        other: >-
          {{{{{{{{{{{{{{{{{{
      - name: b
        args: &anchor [x, [y, {z: [1]}]]
        plain: a[b{c
"#;
        assert!(check_yaml_depth(template, 4).is_ok());
        assert!(
            check_yaml_depth(template, 3).is_err(),
            "args nests four levels"
        );
        // The reference: the parser reads the same document, brackets in scalars as text.
        let parsed: serde_json::Value = serde_yaml_ng::from_str(template).unwrap();
        let action = &parsed["tasks"][0]["actions"][0];
        assert_eq!(action["image"], "quay.io/x:[1]");
        assert!(action["script"].as_str().unwrap().contains("echo [[[["));
    }

    /// The reference: what the parser itself makes of the same documents. A document the
    /// scanner admits parses to exactly that depth.
    #[test]
    fn the_scanner_agrees_with_the_yaml_parser_on_nesting() {
        fn depth(value: &serde_json::Value) -> usize {
            match value {
                serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
                serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
                _ => 0,
            }
        }
        for levels in [1, 5, 20, 63] {
            let text = format!("a: {}1{}", "[".repeat(levels), "]".repeat(levels));
            let parsed: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
            // The top-level mapping is one level; the flow sequences are the rest.
            assert_eq!(depth(&parsed), levels + 1);
            assert!(check_yaml_depth(&text, levels).is_ok());
            assert!(check_yaml_depth(&text, levels - 1).is_err());
        }
    }
}
