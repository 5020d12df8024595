//! The client's UDP socket: 0.0.0.0:68, broadcast allowed, tied to one interface.
//!
//! SO_BINDTODEVICE is what makes a plain UDP socket usable before the interface has an
//! address: the kernel routes limited broadcasts (255.255.255.255) out of the bound device
//! without a route, and only that device's DHCP replies reach us, so one client per
//! interface can run at once, each with its own socket on port 68.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use dhcproto::v4::CLIENT_PORT;

/// Opens the socket for `interface`. Must run inside a tokio runtime (for the reactor).
pub(crate) fn open(interface: &str) -> io::Result<tokio::net::UdpSocket> {
    // IFNAMSIZ is 16 including the NUL; a longer name cannot exist and the kernel would
    // silently truncate it to another interface's name.
    if interface.is_empty() || interface.len() >= libc::IFNAMSIZ || interface.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name {interface:?}"),
        ));
    }
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_UDP,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly created descriptor that nothing else owns; OwnedFd closes it
    // on every early return below.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };

    let one: libc::c_int = 1;
    setsockopt(&fd, libc::SO_BROADCAST, &one.to_ne_bytes())?;
    // Before bind(2): the bind then only conflicts with sockets on the same device.
    setsockopt(&fd, libc::SO_BINDTODEVICE, interface.as_bytes())?;

    bind_any(&fd, CLIENT_PORT)?;
    tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(fd))
}

/// bind(2) to 0.0.0.0:`port` (std has no bind for an existing socket).
fn bind_any(fd: &OwnedFd, port: u16) -> io::Result<()> {
    let family = libc::sa_family_t::try_from(libc::AF_INET)
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let addr = libc::sockaddr_in {
        sin_family: family,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(Ipv4Addr::UNSPECIFIED).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_in>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: addr is a valid sockaddr_in of the given length for the duration of the call.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&addr).cast::<libc::sockaddr>(),
            len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn setsockopt(fd: &OwnedFd, option: libc::c_int, value: &[u8]) -> io::Result<()> {
    let len = libc::socklen_t::try_from(value.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: value points to len readable bytes for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            value.as_ptr().cast(),
            len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
