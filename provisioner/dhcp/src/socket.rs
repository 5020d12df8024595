//! UDP sockets a DHCP server needs: broadcast allowed, address reuse (a relay agent or the
//! proxy boot server may share the host), and optionally tied to one interface.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::DhcpError;

pub(crate) fn bind(addr: SocketAddr, interface: Option<&str>) -> Result<UdpSocket, DhcpError> {
    let socket =
        Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(DhcpError::Socket)?;
    socket.set_reuse_address(true).map_err(DhcpError::Socket)?;
    socket.set_broadcast(true).map_err(DhcpError::Socket)?;
    if let Some(interface) = interface {
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(|source| DhcpError::Interface {
                interface: interface.to_owned(),
                source,
            })?;
    }
    socket.set_nonblocking(true).map_err(DhcpError::Socket)?;
    socket
        .bind(&addr.into())
        .map_err(|source| DhcpError::Bind { addr, source })?;
    UdpSocket::from_std(socket.into()).map_err(DhcpError::Socket)
}
