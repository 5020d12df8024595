//! What a failed call's `tonic::Status` means for a person: a transport failure's message
//! alone is just "transport error", the reason is in its chain of causes.

use std::error::Error as StdError;

use crate::connector::ConnectError;

/// The TLS handshake failure behind a failed call, if that is why it failed; such a failure
/// is about trust (the wrong CA, a bad certificate), so retrying does not help.
pub fn handshake_failure(status: &tonic::Status) -> Option<String> {
    let mut source: Option<&(dyn StdError + 'static)> = status.source();
    while let Some(error) = source {
        if let Some(ConnectError::Handshake(why)) = error.downcast_ref::<ConnectError>() {
            return Some(why.to_string());
        }
        source = error.source();
    }
    None
}

/// The status message followed by each cause that adds something ("outer: inner").
pub fn describe(status: &tonic::Status) -> String {
    let mut text = status.message().to_string();
    let mut source: Option<&(dyn StdError + 'static)> = status.source();
    while let Some(error) = source {
        let cause = error.to_string();
        if !text.contains(&cause) {
            text = if text.is_empty() {
                cause
            } else {
                format!("{text}: {cause}")
            };
        }
        source = error.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("connection lost")]
    struct Outer(#[source] ConnectError);

    fn failed_call(cause: ConnectError) -> tonic::Status {
        tonic::Status::from_error(Box::new(Outer(cause)))
    }

    #[test]
    fn a_handshake_failure_is_found_in_the_causes() {
        let status = failed_call(ConnectError::Handshake(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        )));

        let why = handshake_failure(&status).unwrap();

        assert!(why.contains("UnknownIssuer"), "{why}");
        let text = describe(&status);
        assert!(text.contains("TLS handshake failed"), "{text}");
        assert_eq!(text.matches("connection lost").count(), 1, "{text}");
    }

    #[test]
    fn other_failures_are_not_handshake_failures() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let status = failed_call(ConnectError::Io(refused));

        assert_eq!(handshake_failure(&status), None);
        assert!(
            describe(&status).contains("refused"),
            "{}",
            describe(&status)
        );
        assert_eq!(
            handshake_failure(&tonic::Status::not_found("no such node")),
            None
        );
    }
}
