//! Shared by no_starvation.rs and rate_limits.rs: a provisioner with every boot listener on
//! loopback (DHCP proxy with its 4011 boot server, TFTP, boot HTTP, gRPC, admin), and the
//! node-side requests of a PXE boot, each made as the real client makes it.

#![allow(dead_code)] // each test file uses its own part of this module

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use provisioner::boot::{BootOptions, DhcpOptions, TftpOptions};
use provisioner::limits::Limits;
use provisioner::server::{RunningServer, ServeOptions};
use provisioner::store::{ProfileSpec, Store};

use crate::common::{TEMPLATE, TestDb, admin};

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A provisioner whose default profile boots every node, so every request gets an answer.
pub struct Site {
    pub db: TestDb,
    pub store: Arc<Store>,
    pub server: RunningServer,
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

impl Site {
    pub async fn start(limits: &Limits) -> Self {
        let db = TestDb::new();
        let store = Arc::new(db.open());
        // Profiles name files inside the artifact root (by default `artifacts/` beside the
        // database).
        let dir = &db.dir.path().join("artifacts");
        std::fs::create_dir_all(dir).unwrap();
        let template = store.create_template(TEMPLATE, Some("install")).unwrap();
        store
            .create_profile(&ProfileSpec {
                name: "edge".into(),
                kernel: write_file(dir, "vmlinuz", b"kernel").display().to_string(),
                initramfs: write_file(dir, "initramfs", b"initramfs")
                    .display()
                    .to_string(),
                cmdline: "quiet".into(),
                template: template.id,
                os_image: write_file(dir, "os.img", b"os image").display().to_string(),
                os_image_sha256: None,
                default: true,
            })
            .unwrap();
        let tftp = dir.join("tftp");
        std::fs::create_dir(&tftp).unwrap();
        write_file(&tftp, "ipxe.efi", &[0xEF; 1000]);
        write_file(&tftp, "undionly.kpxe", b"kpxe");
        let loopback = SocketAddr::from((LOOPBACK, 0));
        let mut boot = BootOptions::new(LOOPBACK);
        boot.http = Some(loopback);
        boot.tftp = Some(TftpOptions {
            listen: loopback,
            root: tftp,
        });
        boot.dhcp = Some(DhcpOptions {
            listen: loopback,
            interface: None,
            mode: bootkit_dhcp::Mode::Proxy,
        });
        let options = ServeOptions {
            grpc: loopback,
            http: Some(loopback),
            admin: admin::token_options(),
            boot: Some(boot),
            // Plaintext gRPC: its clients can present no node certificate.
            allow_unauthenticated_workers: true,
            ..ServeOptions::default()
        };
        let server = RunningServer::start_limited(Arc::clone(&store), &options, limits)
            .await
            .unwrap();
        Self { db, store, server }
    }

    pub fn admin(&self) -> admin::AdminClient {
        admin::AdminClient::new(
            format!("http://{}", self.server.http_addr.unwrap()),
            Some(admin::ADMIN_TOKEN),
        )
    }

    pub fn script_url(&self, mac: &str) -> String {
        format!(
            "http://{}/ipxe/boot.ipxe?mac={mac}&platform=efi&arch=x86_64",
            self.server.boot_http_addr.unwrap()
        )
    }

    /// One boot script GET: its status code.
    pub async fn get_script(&self, mac: &str) -> u16 {
        let client = crate::common::http_client().build().unwrap();
        let response = client.get(self.script_url(mac)).send().await.unwrap();
        response.status().as_u16()
    }

    /// A PXE ROM's REQUEST to the proxyDHCP boot server (4011) from `source`, as
    /// `mac`: the boot file named in the answer, or None when none came within 2 s.
    pub async fn pxe_request(&self, source: Ipv4Addr, mac: [u8; 6]) -> Option<String> {
        use dhcproto::v4::{Architecture, DhcpOption, Message, MessageType, Opcode};
        use dhcproto::{Decodable, Encodable};

        let mut message = Message::default();
        message
            .set_opcode(Opcode::BootRequest)
            .set_xid(0x1234_5678)
            .set_chaddr(&mac);
        let options = message.opts_mut();
        options.insert(DhcpOption::MessageType(MessageType::Request));
        options.insert(DhcpOption::ClassIdentifier(
            b"PXEClient:Arch:00007:UNDI:003016".to_vec(),
        ));
        options.insert(DhcpOption::ClientSystemArchitecture(Architecture::from(
            7u16,
        )));
        options.insert(DhcpOption::ClientNetworkInterface(1, 3, 16));
        let socket = tokio::net::UdpSocket::bind((source, 0)).await.unwrap();
        let server = self.server.dhcp_boot_server_addr.unwrap();
        socket
            .send_to(&message.to_vec().unwrap(), server)
            .await
            .unwrap();
        let mut buffer = vec![0; 1500];
        let (length, _) =
            tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buffer))
                .await
                .ok()?
                .unwrap();
        let reply = Message::from_bytes(&buffer[..length]).unwrap();
        let file = reply.fname().unwrap_or_default();
        Some(
            String::from_utf8_lossy(file)
                .trim_end_matches('\0')
                .to_string(),
        )
    }

    /// `undionly.kpxe` over TFTP, fetched by curl (an independent TFTP client).
    pub async fn tftp_fetch(&self) -> Vec<u8> {
        let url = format!("tftp://{}/undionly.kpxe", self.server.tftp_addr.unwrap());
        let request = url.clone();
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["--silent", "--show-error", "--max-time", "20", &request])
                .output()
        })
        .await
        .unwrap()
        .expect("curl runs");
        assert!(
            output.status.success(),
            "curl {url}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    /// One gRPC call (GetAction for a worker without a workflow): whether an answer came.
    pub async fn grpc_call(&self) -> bool {
        let url = format!("http://{}", self.server.grpc_addr);
        let mut client =
            tink_proto::current::workflow_service_client::WorkflowServiceClient::connect(url)
                .await
                .unwrap();
        let request = tink_proto::current::ActionRequest {
            agent_id: Some("52:54:00:aa:bb:cc".into()),
            agent_attributes: None,
        };
        // Any answer (an action or a status such as NOT_FOUND) is the service answering.
        match client.get_action(request).await {
            Ok(_) => true,
            Err(status) => status.code() != tonic::Code::Unavailable,
        }
    }
}
