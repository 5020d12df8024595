//! Two network namespaces joined by a veth pair: the server runs in one (on its standard
//! ports, bound to its veth), clients in the other, so broadcasts and unicasts cross a real
//! link and nothing leaves the test. Everything is removed on drop, even when a test fails.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bootkit_dhcp::{
    BootDecision, BootFiles, BootPolicy, Config, Counters, Mode, PxeClient, Server,
};
use dhcproto::v4::{Architecture, DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Encodable};
use nix::sched::{CloneFlags, setns};
use socket2::{Domain, Protocol, Socket, Type};

pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The client side's own address: what a relay agent or an addressed client uses.
pub const CLIENT_SIDE_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
pub const SERVER_INTERFACE: &str = "vs";
pub const CLIENT_INTERFACE: &str = "vc";
/// Bounds every wait for a reply or a counter.
const WAIT: Duration = Duration::from_secs(5);

pub struct TestNet {
    server_ns: String,
    client_ns: Option<String>,
}

impl TestNet {
    pub fn new() -> TestNet {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let base = format!(
            "bkdhcp-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let server_ns = format!("{base}-s");
        let client_ns = format!("{base}-c");
        ip(&["netns", "add", &server_ns]);
        let mut net = TestNet {
            server_ns,
            client_ns: None,
        };
        ip(&["netns", "add", &client_ns]);
        net.client_ns = Some(client_ns.clone());
        ip(&[
            "link",
            "add",
            SERVER_INTERFACE,
            "netns",
            &net.server_ns,
            "type",
            "veth",
            "peer",
            "name",
            CLIENT_INTERFACE,
            "netns",
            &client_ns,
        ]);
        for (ns, interface, address) in [
            (&net.server_ns, SERVER_INTERFACE, SERVER_IP),
            (&client_ns, CLIENT_INTERFACE, CLIENT_SIDE_IP),
        ] {
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                interface,
            ]);
            ip(&["-n", ns, "link", "set", interface, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        net
    }

    pub fn client_ns(&self) -> &str {
        self.client_ns.as_deref().unwrap_or_default()
    }

    /// Runs `work` on a thread inside the client namespace; sockets it opens stay there.
    pub fn in_client<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        run_in(self.client_ns(), work)
    }

    /// Starts the server in the server namespace, bound to its veth, on `config.listen`.
    pub fn start(&self, mut config: Config, policy: Arc<dyn BootPolicy>) -> RunningServer {
        config.interface = Some(SERVER_INTERFACE.into());
        let counters = Arc::new(Counters::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let ns = self.server_ns.clone();
        let serving_counters = counters.clone();
        let thread = std::thread::spawn(move || {
            enter(&ns);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let server = match Server::bind(config).await {
                    Ok(server) => server,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok((server.local_addr(), server.boot_server_addr())));
                tokio::select! {
                    result = server.serve(policy, serving_counters) => {
                        result.unwrap();
                    }
                    _ = stop_rx => {}
                }
            });
        });
        let (addr, boot_server) = ready_rx
            .recv_timeout(WAIT)
            .expect("server thread did not start")
            .expect("server did not bind");
        RunningServer {
            addr,
            boot_server,
            counters,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let namespaces = [Some(&self.server_ns), self.client_ns.as_ref()];
        for ns in namespaces.into_iter().flatten() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {args:?} failed");
}

fn enter(ns: &str) {
    let file = File::open(format!("/var/run/netns/{ns}")).unwrap();
    setns(file, CloneFlags::CLONE_NEWNET).unwrap();
}

fn run_in<T: Send>(ns: &str, work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter(ns);
                work()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

pub struct RunningServer {
    pub addr: SocketAddr,
    pub boot_server: Option<SocketAddr>,
    pub counters: Arc<Counters>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// Waits until `counter` reaches `value`: the server has finished with those packets.
    pub fn wait_for(&self, counter: fn(&Counters) -> u64, value: u64) {
        let deadline = Instant::now() + WAIT;
        while counter(&self.counters) < value {
            assert!(Instant::now() < deadline, "counter stayed below {value}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn ignored(counters: &Counters) -> u64 {
    counters.ignored.load(Ordering::Relaxed)
}
pub fn errors(counters: &Counters) -> u64 {
    counters.errors.load(Ordering::Relaxed)
}
pub fn received(counters: &Counters) -> u64 {
    counters.received.load(Ordering::Relaxed)
}

/// A UDP socket on the client side of the link (call inside [`TestNet::in_client`]).
pub struct Endpoint {
    socket: UdpSocket,
}

impl Endpoint {
    /// Port 68 on the client's interface, as a DHCP client listens.
    pub fn dhcp_client() -> Endpoint {
        Endpoint::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68))
    }

    /// A relay agent on the client side: its own address, port 67.
    pub fn relay() -> Endpoint {
        Endpoint::bind(SocketAddrV4::new(CLIENT_SIDE_IP, 67))
    }

    pub fn bind(addr: SocketAddrV4) -> Endpoint {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        socket.set_reuse_address(true).unwrap();
        socket.set_broadcast(true).unwrap();
        socket
            .bind_device(Some(CLIENT_INTERFACE.as_bytes()))
            .unwrap();
        socket.bind(&SocketAddr::from(addr).into()).unwrap();
        let socket: UdpSocket = socket.into();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Endpoint { socket }
    }

    pub fn send(&self, message: &Message, to: SocketAddrV4) {
        self.send_bytes(&message.to_vec().unwrap(), to);
    }

    pub fn send_bytes(&self, bytes: &[u8], to: SocketAddrV4) {
        self.socket.send_to(bytes, to).unwrap();
    }

    /// The next reply with this xid (and where it came from), or `None` within the bound.
    pub fn receive(&self, xid: u32) -> Option<(Message, SocketAddr)> {
        let deadline = Instant::now() + WAIT;
        let mut buffer = [0u8; 2048];
        while Instant::now() < deadline {
            let Ok((length, from)) = self.socket.recv_from(&mut buffer) else {
                continue;
            };
            let Ok(message) = Message::from_bytes(&buffer[..length]) else {
                continue;
            };
            if message.opcode() == Opcode::BootReply && message.xid() == xid {
                return Some((message, from));
            }
        }
        None
    }

    /// Whatever replies are already queued, without waiting.
    pub fn queued_replies(&self) -> Vec<Message> {
        self.socket.set_nonblocking(true).unwrap();
        let mut buffer = [0u8; 2048];
        let mut replies = Vec::new();
        while let Ok(length) = self.socket.recv(&mut buffer) {
            if let Ok(message) = Message::from_bytes(&buffer[..length])
                && message.opcode() == Opcode::BootReply
            {
                replies.push(message);
            }
        }
        self.socket.set_nonblocking(false).unwrap();
        replies
    }
}

pub fn broadcast_to_server() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::BROADCAST, 67)
}

pub fn mac(last: u16) -> [u8; 6] {
    let [high, low] = last.to_be_bytes();
    [0x52, 0x54, 0x00, 0x10, high, low]
}

pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn message(mac: [u8; 6], kind: MessageType, xid: u32) -> Message {
    let mut message = Message::new_with_id(
        xid,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac,
    );
    message.opts_mut().insert(DhcpOption::MessageType(kind));
    message
}

/// A plain DHCP client's DISCOVER.
pub fn discover(mac: [u8; 6], xid: u32) -> Message {
    let mut discover = message(mac, MessageType::Discover, xid);
    discover
        .opts_mut()
        .insert(DhcpOption::ClassIdentifier(b"udhcp 1.35.0".to_vec()));
    discover
}

/// A PXE ROM's DISCOVER: options 60, 93, 94 and 97 as firmware sends them.
pub fn pxe_discover(mac: [u8; 6], arch: u16, xid: u32) -> Message {
    let mut discover = message(mac, MessageType::Discover, xid);
    add_pxe_options(&mut discover, arch);
    discover
}

pub fn add_pxe_options(message: &mut Message, arch: u16) {
    let options = message.opts_mut();
    options.insert(DhcpOption::ClassIdentifier(
        format!("PXEClient:Arch:{arch:05}:UNDI:003016").into_bytes(),
    ));
    options.insert(DhcpOption::ClientSystemArchitecture(Architecture::from(
        arch,
    )));
    options.insert(DhcpOption::ClientNetworkInterface(1, 3, 16));
    let mut guid = vec![0u8];
    guid.extend_from_slice(&SMBIOS_UUID_ON_THE_WIRE);
    options.insert(DhcpOption::ClientMachineIdentifier(guid));
}

/// `SMBIOS_UUID` with its first three fields little-endian, as PXE clients send it.
pub const SMBIOS_UUID_ON_THE_WIRE: [u8; 16] = [
    0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78,
];
pub const SMBIOS_UUID: &str = "12345678-1234-5678-9abc-def012345678";

/// A UEFI HTTP boot client's DISCOVER as EDK2's HttpBootDxe builds it (HttpBootDhcp4.c,
/// UEFI spec 2.10 §24.7.2): vendor class `HTTPClient:Arch:xxxxx:UNDI:003000`, option 93 the
/// architecture (16: x64 UEFI HTTP), option 94 UNDI 3.0 and option 97 the system GUID.
pub fn http_boot_discover(mac: [u8; 6], arch: u16, xid: u32) -> Message {
    let mut discover = message(mac, MessageType::Discover, xid);
    add_http_boot_options(&mut discover, arch);
    discover
}

pub fn add_http_boot_options(message: &mut Message, arch: u16) {
    let options = message.opts_mut();
    options.insert(DhcpOption::ClassIdentifier(
        format!("HTTPClient:Arch:{arch:05}:UNDI:003000").into_bytes(),
    ));
    options.insert(DhcpOption::ClientSystemArchitecture(Architecture::from(
        arch,
    )));
    options.insert(DhcpOption::ClientNetworkInterface(1, 3, 0));
    let mut guid = vec![0u8];
    guid.extend_from_slice(&SMBIOS_UUID_ON_THE_WIRE);
    options.insert(DhcpOption::ClientMachineIdentifier(guid));
}

/// What [`TestPolicy`] hands UEFI HTTP boot clients when `http_boot` is on.
pub fn http_boot_url(mac: &str) -> String {
    format!("http://{SERVER_IP}:7080/httpboot/{mac}/bootkit.efi")
}

/// What iPXE sends: user class `iPXE` on top of the PXE options.
pub fn ipxe_discover(mac: [u8; 6], arch: u16, xid: u32) -> Message {
    let mut discover = pxe_discover(mac, arch, xid);
    discover
        .opts_mut()
        .insert(DhcpOption::UserClass(b"iPXE".to_vec()));
    discover
}

pub fn request(
    mac: [u8; 6],
    requested: Ipv4Addr,
    server_id: Option<Ipv4Addr>,
    xid: u32,
) -> Message {
    let mut request = message(mac, MessageType::Request, xid);
    request
        .opts_mut()
        .insert(DhcpOption::RequestedIpAddress(requested));
    if let Some(server_id) = server_id {
        request
            .opts_mut()
            .insert(DhcpOption::ServerIdentifier(server_id));
    }
    request
}

pub fn release(mac: [u8; 6], ip: Ipv4Addr, xid: u32) -> Message {
    let mut release = message(mac, MessageType::Release, xid);
    release.set_ciaddr(ip);
    release
        .opts_mut()
        .insert(DhcpOption::ServerIdentifier(SERVER_IP));
    release
}

pub fn message_type(message: &Message) -> Option<MessageType> {
    message.opts().msg_type()
}

pub fn boot_file(message: &Message) -> Option<String> {
    match message.opts().get(OptionCode::BootfileName) {
        Some(DhcpOption::BootfileName(file)) => Some(String::from_utf8_lossy(file).into_owned()),
        _ => None,
    }
}

/// The BOOTP file field, up to its NUL terminator.
pub fn file_field(message: &Message) -> String {
    let field = message.fname().unwrap_or_default();
    let end = field
        .iter()
        .position(|byte| *byte == 0)
        .unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

pub fn script_url(mac: &str) -> String {
    format!("http://{SERVER_IP}:7080/ipxe/script/{mac}/auto.ipxe")
}

/// Boots every client with its script URL, except the MACs it refuses; remembers whom it
/// was asked about.
#[derive(Default)]
pub struct TestPolicy {
    pub refused: Vec<String>,
    pub asked: Mutex<Vec<PxeClient>>,
    /// Hand UEFI HTTP boot clients [`http_boot_url`]; off: HTTP boot is off.
    pub http_boot: bool,
}

impl BootPolicy for TestPolicy {
    fn decide(&self, client: &PxeClient) -> BootDecision {
        self.asked.lock().unwrap().push(client.clone());
        if self.refused.contains(&client.mac) {
            BootDecision::Ignore {
                reason: "not registered and no default profile".into(),
            }
        } else {
            BootDecision::Boot {
                script_url: script_url(&client.mac),
            }
        }
    }

    fn http_boot_url(&self, client: &PxeClient) -> Option<String> {
        self.http_boot.then(|| http_boot_url(&client.mac))
    }
}

pub fn config(mode: Mode) -> Config {
    Config {
        listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 67)),
        interface: None,
        server_ip: SERVER_IP,
        mode,
        boot_files: BootFiles::debian_default(),
    }
}
