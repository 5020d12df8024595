//! `connect_lazy`: the endpoint's settings and the choice between plaintext and TLS.

use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tonic::transport::{Channel, Endpoint};

use crate::connector::lazy_tls_channel;
use crate::tls::{self, TlsSetupError};
use crate::{ClientIdentity, ServerTls};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an HTTP/2 ping may go unanswered before the connection counts as dead.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the channel bounds calls and notices a server that vanished without closing the
/// connection; each agent's calls need different ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// Bound on each call; None where a call stays open on purpose (a stream that waits to be
    /// onboarded).
    pub request_timeout: Option<Duration>,
    /// HTTP/2 pings at this interval.
    pub keep_alive_interval: Duration,
    /// Ping also while no call is open, so a dead connection is noticed before the next call.
    pub keep_alive_while_idle: bool,
}

/// Why [`connect_lazy`] cannot make a channel.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The address does not form a valid URI or endpoint.
    #[error("the server address {authority:?} is not usable: {why}")]
    Address {
        /// The address as given (`host:port`).
        authority: String,
        /// What makes it unusable.
        why: String,
    },
    /// The TLS client configuration for `tls` cannot be made.
    #[error("TLS cannot be set up")]
    TlsSetup(#[from] TlsSetupError),
}

/// A channel to `authority` (`host:port`) that connects on first use and again after
/// failures, so a server that is not up yet is an error of the first call, not of this one.
/// With `identity`, every TLS handshake presents that client certificate (ignored for
/// [`ServerTls::Plaintext`], which has no handshake). The files are read here, once.
/// Must be called inside a tokio runtime (the channel's background task starts here).
pub fn connect_lazy(
    authority: &str,
    tls: &ServerTls,
    identity: Option<&ClientIdentity>,
    liveness: Liveness,
) -> Result<Channel, ChannelError> {
    let address_error = |why: &str| ChannelError::Address {
        authority: authority.to_string(),
        why: why.to_string(),
    };
    // The scheme stays http: tonic refuses https without its own TLS; our connector encrypts.
    let endpoint = Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|error| address_error(&error.to_string()))?;
    if endpoint.uri().port_u16().is_none() {
        return Err(address_error("it has no port number"));
    }
    let endpoint = with_liveness(endpoint, liveness);
    let Some(config) = tls::config_for(tls, identity)? else {
        return Ok(endpoint.connect_lazy());
    };
    let host = endpoint
        .uri()
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let server_name =
        ServerName::try_from(host).map_err(|_| address_error("it has no valid host name"))?;
    Ok(lazy_tls_channel(endpoint, speaking_h2(config), server_name))
}

fn with_liveness(endpoint: Endpoint, liveness: Liveness) -> Endpoint {
    let endpoint = endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(liveness.keep_alive_interval)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(liveness.keep_alive_while_idle);
    match liveness.request_timeout {
        Some(timeout) => endpoint.timeout(timeout),
        None => endpoint,
    }
}

/// gRPC servers (grpc-go since 1.67) refuse TLS connections that do not negotiate h2.
fn speaking_h2(mut config: ClientConfig) -> ClientConfig {
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVENESS: Liveness = Liveness {
        request_timeout: None,
        keep_alive_interval: Duration::from_secs(20),
        keep_alive_while_idle: false,
    };

    fn address_problem(authority: &str) -> String {
        match connect_lazy(authority, &ServerTls::Plaintext, None, LIVENESS) {
            Err(error @ ChannelError::Address { .. }) => error.to_string(),
            Err(other) => panic!("{authority}: not an address error: {other}"),
            Ok(_) => panic!("{authority}: accepted"),
        }
    }

    #[test]
    fn an_address_without_a_port_or_with_junk_is_refused_and_named() {
        for (authority, why) in [
            ("provisioner.lan", "no port number"),
            ("provisioner lan:42113", "invalid"),
            ("host:port", "no port number"),
        ] {
            let message = address_problem(authority);
            assert!(message.contains(authority), "{message}");
            assert!(message.contains(why), "{message}");
        }
    }

    #[tokio::test]
    async fn host_names_and_addresses_make_channels_in_every_mode() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("ca.pem");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        std::fs::write(&bundle, params.self_signed(&key).unwrap().pem()).unwrap();
        let modes = [
            ServerTls::Plaintext,
            ServerTls::Verified {
                ca_bundle: Some(bundle),
            },
            ServerTls::Pinned { ca_sha256: [7; 32] },
            ServerTls::InsecureSkipVerify,
        ];
        for authority in ["provisioner.lan:42113", "10.0.0.1:42113", "[fd00::1]:42113"] {
            for tls in &modes {
                connect_lazy(authority, tls, None, LIVENESS)
                    .unwrap_or_else(|error| panic!("{authority} {tls:?}: {error}"));
            }
        }
    }

    #[test]
    fn a_missing_ca_bundle_is_a_tls_setup_error() {
        let tls = ServerTls::Verified {
            ca_bundle: Some("/nonexistent/ca.pem".into()),
        };

        let error = connect_lazy("provisioner.lan:42113", &tls, None, LIVENESS).unwrap_err();

        assert!(matches!(error, ChannelError::TlsSetup(_)), "{error}");
        let message = bootkit_common::error_chain(&error);
        assert!(message.contains("/nonexistent/ca.pem"), "{message}");
    }
}
