//! The PXE client's DHCP side for many simulated nodes at once.
//!
//! Every node's replies arrive on port 68 (broadcast, or unicast to the address the request came
//! from), so one socket receives for all of them and hands each reply to the node waiting on its
//! transaction id. Retransmission follows the PXE ROMs' pattern (doubling timeouts), shortened.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use dhcproto::v4::{Architecture, DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

/// Tries per exchange, the first waiting `FIRST_WAIT`, each later one twice as long.
const TRIES: u32 = 4;
const FIRST_WAIT: Duration = Duration::from_millis(500);

/// One socket on port 68 for every simulated node.
pub struct Hub {
    socket: UdpSocket,
    waiting: Mutex<HashMap<u32, oneshot::Sender<Message>>>,
}

/// A simulated PXE client.
pub struct PxeClient {
    pub mac: [u8; 6],
    pub uuid: [u8; 16],
    pub ip: Ipv4Addr,
}

/// Where the client is told to boot from.
#[derive(Debug)]
pub struct BootFile {
    pub name: String,
    pub server: Ipv4Addr,
}

impl Hub {
    /// Binds 0.0.0.0:68 on `interface` (broadcasts need a device: test namespaces have no
    /// default route) and starts delivering replies.
    pub async fn bind(interface: &str) -> anyhow::Result<Arc<Self>> {
        let socket = UdpSocket::bind("0.0.0.0:68")
            .await
            .context("binding the DHCP client port 68 failed; is another DHCP client running in this namespace?")?;
        socket.set_broadcast(true)?;
        socket
            .bind_device(Some(interface.as_bytes()))
            .with_context(|| format!("binding the DHCP client socket to {interface} failed"))?;
        let hub = Arc::new(Self {
            socket,
            waiting: Mutex::new(HashMap::new()),
        });
        tokio::spawn(Arc::clone(&hub).deliver());
        Ok(hub)
    }

    async fn deliver(self: Arc<Self>) {
        let mut buffer = vec![0u8; 1500];
        loop {
            let Ok((length, _)) = self.socket.recv_from(&mut buffer).await else {
                continue;
            };
            let Ok(message) = Message::decode(&mut Decoder::new(&buffer[..length])) else {
                continue;
            };
            if message.opcode() != Opcode::BootReply {
                continue;
            }
            let waiter = self.lock().remove(&message.xid());
            if let Some(waiter) = waiter {
                let _ = waiter.send(message);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, oneshot::Sender<Message>>> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends `request` to `to` until a reply with its xid arrives (bounded tries).
    async fn exchange(&self, request: &Message, to: SocketAddr) -> anyhow::Result<Message> {
        let bytes = request.to_vec().context("encoding the DHCP request")?;
        let mut wait = FIRST_WAIT;
        for _ in 0..TRIES {
            let (sender, receiver) = oneshot::channel();
            self.lock().insert(request.xid(), sender);
            self.socket
                .send_to(&bytes, to)
                .await
                .context("sending the DHCP request")?;
            if let Ok(Ok(reply)) = tokio::time::timeout(wait, receiver).await {
                return Ok(reply);
            }
            wait *= 2;
        }
        self.lock().remove(&request.xid());
        bail!("no DHCP reply from {to} after {TRIES} tries")
    }

    /// DISCOVER (broadcast) → OFFER from `server`.
    pub async fn discover(
        &self,
        client: &PxeClient,
        server: Ipv4Addr,
        port: u16,
    ) -> anyhow::Result<Message> {
        let request = client.request(MessageType::Discover, Ipv4Addr::UNSPECIFIED);
        let to = SocketAddr::from((Ipv4Addr::BROADCAST, port));
        let offer = self.exchange(&request, to).await?;
        if offer.opts().msg_type() != Some(MessageType::Offer) {
            bail!("expected an OFFER, got {:?}", offer.opts().msg_type());
        }
        if let Some(DhcpOption::ServerIdentifier(from)) =
            offer.opts().get(OptionCode::ServerIdentifier)
            && *from != server
        {
            bail!("the OFFER came from {from}, not the server under test {server}");
        }
        Ok(offer)
    }

    /// REQUEST to the PXE boot server (port 4011) → ACK carrying the boot file.
    pub async fn boot_request(
        &self,
        client: &PxeClient,
        server: Ipv4Addr,
        port: u16,
    ) -> anyhow::Result<Message> {
        let request = client.request(MessageType::Request, client.ip);
        let ack = self
            .exchange(&request, SocketAddr::from((server, port)))
            .await?;
        if ack.opts().msg_type() != Some(MessageType::Ack) {
            bail!(
                "expected an ACK from the boot server, got {:?}",
                ack.opts().msg_type()
            );
        }
        Ok(ack)
    }
}

impl PxeClient {
    /// A UEFI x86-64 PXE ROM's request, as OVMF sends it.
    fn request(&self, kind: MessageType, ciaddr: Ipv4Addr) -> Message {
        let xid = u32::from_be_bytes([self.mac[2], self.mac[3], self.mac[4], self.mac[5]])
            ^ (u32::from(u8::from(kind)) << 24);
        let mut message = Message::new_with_id(
            xid,
            ciaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &self.mac,
        );
        message.set_flags(Flags::default().set_broadcast());
        let options = message.opts_mut();
        options.insert(DhcpOption::MessageType(kind));
        options.insert(DhcpOption::ClassIdentifier(
            b"PXEClient:Arch:00007:UNDI:003016".to_vec(),
        ));
        options.insert(DhcpOption::ClientSystemArchitecture(Architecture::from(7)));
        options.insert(DhcpOption::ClientNetworkInterface(1, 3, 16));
        let mut guid = vec![0u8];
        guid.extend_from_slice(&self.uuid);
        options.insert(DhcpOption::ClientMachineIdentifier(guid));
        options.insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::VendorExtensions,
            OptionCode::ClassIdentifier,
            OptionCode::TFTPServerName,
            OptionCode::BootfileName,
        ]));
        message
    }
}

/// The boot file a reply names (option 67, else the `file` field), and the TFTP server
/// (next-server, else the server identifier).
pub fn boot_file(reply: &Message) -> Option<BootFile> {
    let name = match reply.opts().get(OptionCode::BootfileName) {
        Some(DhcpOption::BootfileName(name)) => String::from_utf8_lossy(name).into_owned(),
        _ => reply.fname_str()?.ok()?.to_string(),
    };
    let name = name.trim_end_matches('\0').to_string();
    if name.is_empty() {
        return None;
    }
    let server = match (
        reply.siaddr(),
        reply.opts().get(OptionCode::ServerIdentifier),
    ) {
        (next, _) if !next.is_unspecified() => next,
        (_, Some(DhcpOption::ServerIdentifier(id))) => *id,
        _ => return None,
    };
    Some(BootFile { name, server })
}
