//! Socket errors that a server's receive loop should step over rather than stop on.

use std::io;

/// Whether a receive error on a server socket is about one peer rather than the socket.
///
/// Linux tells a UDP socket (one that is connected, or has `IP_RECVERR` set) about an ICMP
/// "port unreachable" for an earlier datagram by failing its next receive with
/// `ConnectionRefused`; a peer that resets its end shows up as `ConnectionReset`. Either way
/// one client went away, which must not stop the server for everyone else. `Interrupted` (a
/// signal) and `WouldBlock` (a readiness wake-up that found nothing) only mean "try again".
/// Any other error belongs to the socket itself and is worth stopping for.
pub fn is_transient_socket_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    #[test]
    fn only_a_gone_peer_or_an_interruption_is_transient() {
        for (kind, transient) in [
            (io::ErrorKind::ConnectionRefused, true),
            (io::ErrorKind::ConnectionReset, true),
            (io::ErrorKind::Interrupted, true),
            (io::ErrorKind::WouldBlock, true),
            (io::ErrorKind::PermissionDenied, false),
            (io::ErrorKind::InvalidInput, false),
            (io::ErrorKind::AddrNotAvailable, false),
            (io::ErrorKind::Other, false),
        ] {
            assert_eq!(
                is_transient_socket_error(&kind.into()),
                transient,
                "{kind:?}"
            );
        }
    }

    /// The case the rule exists for: a datagram to a port nobody listens on comes back as an
    /// error on the next receive, and the socket still works afterwards.
    #[test]
    fn an_icmp_port_unreachable_is_transient_and_the_socket_keeps_working() {
        let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = gone.local_addr().unwrap();
        drop(gone);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        socket.connect(peer).unwrap();
        socket.send(b"reply").unwrap();

        let error = socket.recv(&mut [0u8; 16]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error:?}");
        assert!(is_transient_socket_error(&error));

        let back = UdpSocket::bind(peer).unwrap();
        back.send_to(b"next", socket.local_addr().unwrap()).unwrap();
        let mut buffer = [0u8; 16];
        let len = socket.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..len], b"next");
    }
}
