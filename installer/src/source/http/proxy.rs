//! Which proxy, if any, a download goes through: `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and
//! `NO_PROXY` (upper or lower case), with the rules curl uses. hyper-util's proxy matcher does the
//! parsing and the `NO_PROXY` matching (host suffixes, `*`, IP addresses and networks); this
//! module adds what the matcher leaves out: a proxy value that cannot be used is reported instead
//! of silently ignored, and only `http://` proxies are accepted because that is what the
//! connector speaks.

use hyper::Uri;
use hyper::header::HeaderValue;
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use url::Url;

use super::HttpError;

/// Proxy settings for HTTP(S) downloads.
#[derive(Clone, Debug, Default)]
pub struct ProxySettings {
    http: Setting,
    https: Setting,
    no_proxy: String,
}

#[derive(Clone, Debug, Default)]
enum Setting {
    #[default]
    Direct,
    Proxy(Intercept),
    Unusable {
        variable: String,
        reason: &'static str,
    },
}

/// The proxy a request goes through.
pub(super) struct Proxy {
    /// `host:port` of the proxy (never the credentials).
    pub address: String,
    pub host: String,
    pub port: u16,
    /// `Proxy-Authorization` value from credentials in the proxy URL; marked sensitive.
    pub authorization: Option<HeaderValue>,
}

impl ProxySettings {
    /// Reads `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` (each upper case first, then
    /// lower case) from the environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`ProxySettings::from_env`], with the variables read through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let first_set = |names: [&str; 2]| {
            names.into_iter().find_map(|name| {
                lookup(name)
                    .filter(|value| !value.trim().is_empty())
                    .map(|value| (name.to_owned(), value))
            })
        };
        let all = first_set(["ALL_PROXY", "all_proxy"]);
        let http = first_set(["HTTP_PROXY", "http_proxy"]).or_else(|| all.clone());
        let https = first_set(["HTTPS_PROXY", "https_proxy"]).or(all);
        let no_proxy = first_set(["NO_PROXY", "no_proxy"]).map(|(_, value)| value);
        Self {
            http: Setting::parse(http),
            https: Setting::parse(https),
            no_proxy: no_proxy.unwrap_or_default(),
        }
    }

    /// Explicit settings: the proxy for `http://` URLs, the proxy for `https://` URLs and a
    /// `NO_PROXY` list.
    pub fn new(http: Option<&str>, https: Option<&str>, no_proxy: &str) -> Self {
        let named = |variable: &str, value: Option<&str>| {
            value.map(|value| (variable.to_owned(), value.to_owned()))
        };
        Self {
            http: Setting::parse(named("the http proxy", http)),
            https: Setting::parse(named("the https proxy", https)),
            no_proxy: no_proxy.to_owned(),
        }
    }

    /// No proxy at all.
    pub fn direct() -> Self {
        Self::default()
    }

    /// The proxy for `url`, or `None` to connect directly.
    pub(super) fn route(&self, url: &Url) -> Result<Option<Proxy>, HttpError> {
        let setting = match url.scheme() {
            "https" => &self.https,
            _ => &self.http,
        };
        if self.bypasses(url) {
            return Ok(None);
        }
        match setting {
            Setting::Direct => Ok(None),
            Setting::Proxy(intercept) => Ok(Some(Proxy::from_intercept(intercept))),
            Setting::Unusable { variable, reason } => Err(HttpError::UnusableProxy {
                variable: variable.clone(),
                reason,
            }),
        }
    }

    /// Whether `NO_PROXY` covers the URL's host. hyper-util keeps its `NO_PROXY` matcher private,
    /// so ask a matcher that proxies everything except what `NO_PROXY` lists.
    fn bypasses(&self, url: &Url) -> bool {
        let Ok(uri) = url.as_str().parse::<Uri>() else {
            return false;
        };
        Matcher::builder()
            .all("http://no-proxy.invalid")
            .no(self.no_proxy.as_str())
            .build()
            .intercept(&uri)
            .is_none()
    }
}

impl Setting {
    fn parse(named_value: Option<(String, String)>) -> Self {
        let Some((variable, value)) = named_value else {
            return Setting::Direct;
        };
        let probe = Uri::from_static("http://probe.invalid/");
        match Matcher::builder()
            .all(value.trim())
            .build()
            .intercept(&probe)
        {
            None => Setting::Unusable {
                variable,
                reason: "it is not a proxy URL",
            },
            Some(intercept) if intercept.uri().scheme_str() != Some("http") => Setting::Unusable {
                variable,
                reason: "only http:// proxies are supported",
            },
            Some(intercept) => Setting::Proxy(intercept),
        }
    }
}

impl Proxy {
    fn from_intercept(intercept: &Intercept) -> Self {
        let uri = intercept.uri();
        let host = uri.host().unwrap_or_default();
        let host = host
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        let port = uri.port_u16().unwrap_or(80);
        Self {
            address: format!("{}:{port}", uri.host().unwrap_or_default()),
            host,
            port,
            authorization: intercept.basic_auth().cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn proxy_address(settings: &ProxySettings, target: &str) -> Option<String> {
        settings
            .route(&url(target))
            .unwrap()
            .map(|proxy| proxy.address)
    }

    fn env(vars: &[(&str, &str)]) -> ProxySettings {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        ProxySettings::from_lookup(move |name| {
            vars.iter()
                .find(|(var, _)| var == name)
                .map(|(_, value)| value.clone())
        })
    }

    #[test]
    fn each_scheme_uses_its_own_proxy() {
        let settings = env(&[
            ("HTTP_PROXY", "http://plain.example:3128"),
            ("HTTPS_PROXY", "http://tunnel.example:8080"),
        ]);
        assert_eq!(
            proxy_address(&settings, "http://images.example/os.raw.gz").as_deref(),
            Some("plain.example:3128")
        );
        assert_eq!(
            proxy_address(&settings, "https://images.example/os.raw.gz").as_deref(),
            Some("tunnel.example:8080")
        );
    }

    #[test]
    fn lower_case_variables_and_all_proxy_are_read() {
        let settings = env(&[
            ("https_proxy", "tunnel.example:8080"),
            ("all_proxy", "http://fallback.example:9000"),
        ]);
        assert_eq!(
            proxy_address(&settings, "https://images.example/").as_deref(),
            Some("tunnel.example:8080"),
            "a proxy without a scheme is an http:// proxy"
        );
        assert_eq!(
            proxy_address(&settings, "http://images.example/").as_deref(),
            Some("fallback.example:9000")
        );
    }

    #[test]
    fn upper_case_wins_over_lower_case() {
        let settings = env(&[
            ("HTTPS_PROXY", "http://upper.example:1"),
            ("https_proxy", "http://lower.example:2"),
        ]);
        assert_eq!(
            proxy_address(&settings, "https://images.example/").as_deref(),
            Some("upper.example:1")
        );
    }

    #[test]
    fn proxy_port_defaults_to_80() {
        let settings = env(&[("HTTP_PROXY", "http://plain.example")]);
        assert_eq!(
            proxy_address(&settings, "http://images.example/").as_deref(),
            Some("plain.example:80")
        );
    }

    #[test]
    fn no_proxy_matches_host_suffixes_ips_networks_and_star() {
        let settings = env(&[
            ("HTTPS_PROXY", "http://tunnel.example:8080"),
            (
                "NO_PROXY",
                "internal.example, .corp.example,10.1.2.3, 192.168.0.0/16",
            ),
        ]);
        for direct in [
            "https://internal.example/",
            "https://mirror.internal.example/",
            "https://corp.example/",
            "https://a.b.corp.example:8443/",
            "https://10.1.2.3/",
            "https://192.168.44.5/",
        ] {
            assert!(
                proxy_address(&settings, direct).is_none(),
                "{direct} should bypass the proxy"
            );
        }
        for proxied in [
            "https://notinternal.example/",
            "https://10.1.2.4/",
            "https://192.169.0.1/",
        ] {
            assert!(
                proxy_address(&settings, proxied).is_some(),
                "{proxied} should use the proxy"
            );
        }

        let star = env(&[
            ("HTTP_PROXY", "http://plain.example:3128"),
            ("no_proxy", "*"),
        ]);
        assert!(proxy_address(&star, "http://anything.example/").is_none());
    }

    #[test]
    fn no_proxy_matches_ipv6_hosts() {
        let settings = ProxySettings::new(None, Some("http://tunnel.example:8080"), "::1");
        assert!(proxy_address(&settings, "https://[::1]:8443/").is_none());
        assert!(proxy_address(&settings, "https://[::2]:8443/").is_some());
    }

    #[test]
    fn credentials_become_basic_proxy_authorization_and_stay_out_of_the_address() {
        let settings = ProxySettings::new(
            Some("http://Aladdin:open%20sesame@plain.example:3128"),
            None,
            "",
        );
        let proxy = settings
            .route(&url("http://images.example/"))
            .unwrap()
            .unwrap();
        assert_eq!(proxy.address, "plain.example:3128");
        let authorization = proxy.authorization.unwrap();
        assert_eq!(authorization, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(authorization.is_sensitive());
        assert!(!format!("{settings:?}").contains("sesame"));
    }

    #[test]
    fn unusable_proxy_values_are_errors_naming_the_variable() {
        let settings = env(&[
            ("HTTPS_PROXY", "https://tls-proxy.example:443"),
            ("http_proxy", "http://[not a host"),
            ("NO_PROXY", "direct.example"),
        ]);
        let https_error = settings
            .route(&url("https://images.example/"))
            .err()
            .unwrap();
        assert!(
            https_error.to_string().contains("HTTPS_PROXY"),
            "{https_error}"
        );
        assert!(
            https_error.to_string().contains("only http:// proxies"),
            "{https_error}"
        );
        let http_error = settings
            .route(&url("http://images.example/"))
            .err()
            .unwrap();
        assert!(
            http_error.to_string().contains("http_proxy"),
            "{http_error}"
        );
        assert!(
            proxy_address(&settings, "https://direct.example/").is_none(),
            "NO_PROXY hosts never need the proxy, usable or not"
        );
    }

    #[test]
    fn no_variables_means_direct() {
        let settings = env(&[("NO_PROXY", "example.com")]);
        assert!(proxy_address(&settings, "http://images.example/").is_none());
        assert!(proxy_address(&ProxySettings::direct(), "https://images.example/").is_none());
    }
}
