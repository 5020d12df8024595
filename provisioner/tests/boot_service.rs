//! The boot service wired into `RunningServer`, on loopback with port 0 everywhere: per-node
//! iPXE scripts, artifacts with Range, metadata by the requester's address, syslog into node
//! logs, TFTP, HTTPS, and DHCP's answers to PXE clients.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::fleet::report;
use common::{TEMPLATE, TestDb};
use provisioner::boot::{BootOptions, DhcpOptions, HttpsOptions, KernelOptions, TftpOptions};
use provisioner::https::TlsFiles;
use provisioner::server::{RunningServer, ServeOptions};
use provisioner::state::State;
use provisioner::store::{Discovery, Identity, ProfileSpec, RegistrationSpec, Store};

const REGISTERED_MAC: &str = "52:54:00:00:00:01";
/// What `serve --http-boot-uki` serves in these tests.
const SITE_UKI: &[u8] = b"MZ signed UKI";
const ADVERTISE: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A store with one template and a profile whose files are on disk, and a server on it.
struct Fixture {
    db: TestDb,
    store: Arc<Store>,
    server: RunningServer,
    kernel: Vec<u8>,
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((ADVERTISE, port))
}

/// gRPC on loopback and `boot`; no admin listener.
fn serving(boot: BootOptions) -> ServeOptions {
    ServeOptions {
        grpc: loopback(0),
        http: None,
        tls: None,
        protocols: Default::default(),
        admin: Default::default(),
        boot: Some(boot),
        // Plaintext gRPC: its clients can present no node certificate.
        node_ca: None,
        allow_unauthenticated_workers: true,
    }
}

impl Fixture {
    /// `default`: whether unregistered nodes get the profile.
    async fn start(default: bool, configure: impl FnOnce(&Path, &mut BootOptions)) -> Self {
        let db = TestDb::new();
        let store = Arc::new(db.open());
        let dir = &common::fleet::artifacts_dir(db.dir.path());
        let kernel: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let template = store.create_template(TEMPLATE, Some("install")).unwrap();
        store
            .create_profile(&ProfileSpec {
                name: "edge".into(),
                kernel: write_file(dir, "vmlinuz", &kernel).display().to_string(),
                initramfs: write_file(dir, "initramfs", b"initramfs bytes")
                    .display()
                    .to_string(),
                cmdline: "quiet bootkit.mode=provision".into(),
                template: template.id,
                os_image: write_file(dir, "os.img", b"os image").display().to_string(),
                os_image_sha256: None,
                default,
            })
            .unwrap();
        let mut boot = BootOptions::new(ADVERTISE);
        boot.http = Some(loopback(0));
        boot.syslog = Some(loopback(0));
        // These tests ask metadata by address, as cloud-init does (node_trust_grpc asks
        // by node certificate, and the default's 401).
        boot.metadata_by_address = true;
        boot.kernel = KernelOptions {
            vlan_id: Some(7),
            extra_args: "bootkit.debug".into(),
            ..KernelOptions::default()
        };
        configure(dir, &mut boot);
        let server = RunningServer::start(Arc::clone(&store), &serving(boot))
            .await
            .unwrap();
        Fixture {
            db,
            store,
            server,
            kernel,
        }
    }

    /// `serve --http-boot-uki --ipxe-uki`, [`REGISTERED_MAC`] registered.
    async fn serving_the_uki_to_a_registered_node() -> Self {
        let fixture = Fixture::start(false, |dir, boot| {
            boot.http_boot_uki = Some(write_file(dir, "bootkit.efi", SITE_UKI));
            boot.ipxe_uki = true;
        })
        .await;
        fixture.register(REGISTERED_MAC, &[]);
        fixture
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.boot_http_addr.unwrap())
    }

    fn register(&self, mac: &str, metadata: &[(&str, &str)]) {
        self.store
            .register(&RegistrationSpec {
                mac: Some(mac.into()),
                profile: "edge".into(),
                hostname: Some("node-1".into()),
                metadata: metadata
                    .iter()
                    .map(|(key, value)| (key.to_string(), value.to_string()))
                    .collect(),
                ..RegistrationSpec::default()
            })
            .unwrap();
    }

    /// Device discovery reports `mac` at `ip`.
    fn discover(&self, mac: &str, ip: &str) -> String {
        let discovered = self
            .store
            .discover(&Discovery {
                identity: Identity::new(None, None, &[mac]),
                ip: Some(ip.into()),
                artifact_base: Some(self.url("")),
                ..Discovery::default()
            })
            .unwrap();
        discovered.node.id
    }

    /// Runs the node's workflow to SUCCESS as a worker would report it.
    fn provision(&self, mac: &str) {
        for _ in 0..10 {
            let Some(next) = self.store.next_action(mac).unwrap() else {
                return;
            };
            report(
                &self.store,
                &next.workflow_id,
                &next.action.action_id,
                mac,
                State::Success,
                "",
            );
        }
        panic!("the workflow of {mac} did not end within 10 actions");
    }
}

async fn get(url: &str) -> (u16, String) {
    let client = common::http_client().build().unwrap();
    let response = client.get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn node_script_url(fixture: &Fixture, mac: &str, platform: &str) -> String {
    fixture.url(&format!(
        "/ipxe/boot.ipxe?mac={mac}&uuid=&serial=To%20Be%20Filled%20By%20O.E.M.&platform={platform}&arch=x86_64"
    ))
}

#[tokio::test]
async fn auto_ipxe_chains_to_the_node_script_with_the_identity_only_ipxe_knows() {
    let fixture = Fixture::start(true, |_, _| {}).await;
    let (status, script) = get(&fixture.url("/ipxe/auto.ipxe")).await;
    assert_eq!(status, 200);
    let port = fixture.server.boot_http_addr.unwrap().port();
    assert!(script.starts_with("#!ipxe\n"), "{script}");
    assert!(
        script.contains(&format!(
            "chain --autofree http://127.0.0.1:{port}/ipxe/boot.ipxe?mac=${{netX/mac}}&uuid=${{uuid}}&serial=${{smbios/serial:uristring}}&platform=${{platform}}&arch=${{buildarch}}"
        )),
        "{script}"
    );
}

#[tokio::test]
async fn a_registered_node_gets_its_profiles_bootkit_with_every_kernel_parameter() {
    let fixture = Fixture::start(false, |_, _| {}).await;
    fixture.register(REGISTERED_MAC, &[]);
    let (status, script) = get(&node_script_url(&fixture, "52-54-00-00-00-01", "efi")).await;
    assert_eq!(status, 200);
    let http = fixture.server.boot_http_addr.unwrap().port();
    let grpc = fixture.server.grpc_addr.port();
    let syslog = fixture.server.syslog_udp_addr.unwrap().port();
    let kernel_line = script
        .lines()
        .find(|line| line.starts_with("kernel "))
        .unwrap_or_else(|| panic!("no kernel line in {script}"));
    assert_eq!(
        kernel_line,
        format!(
            "kernel --name kernel http://127.0.0.1:{http}/artifacts/profiles/edge/kernel \
             initrd=initramfs grpc_authority=127.0.0.1:{grpc} worker_id={REGISTERED_MAC} \
             hw_addr={REGISTERED_MAC} syslog_host=127.0.0.1 syslog_port={syslog} \
             tinkerbell_tls=false vlan_id=7 console=tty0 console=ttyS0,115200 quiet \
             bootkit.mode=provision bootkit.debug && goto initrd || sleep 5"
        )
    );
    assert!(
        script.contains(&format!(
            "initrd --name initramfs http://127.0.0.1:{http}/artifacts/profiles/edge/initramfs"
        )),
        "{script}"
    );
    assert!(script.contains("\nboot ||\n"), "{script}");
    assert_eq!(
        fixture.server.metrics.http.scripts.load(Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn with_ipxe_uki_uefi_x64_nodes_chain_the_site_uki_and_bios_nodes_keep_kernel_and_initrd() {
    let fixture = Fixture::serving_the_uki_to_a_registered_node().await;
    let http = fixture.server.boot_http_addr.unwrap().port();
    let (status, script) = get(&node_script_url(&fixture, REGISTERED_MAC, "efi")).await;
    assert_eq!(status, 200);
    assert!(
        script.contains(&format!(
            "imgfetch --name bootkit.efi http://127.0.0.1:{http}/httpboot/bootkit.efi && goto boot"
        )),
        "{script}"
    );
    // The site's line (what /httpboot/cmdline serves and the UKI has baked in), not the
    // profile's or the node's.
    let (_, site_line) = get(&fixture.url("/httpboot/cmdline")).await;
    assert!(
        script.contains(&format!("\nboot bootkit.efi {} ||\n", site_line.trim())),
        "{script}"
    );
    assert!(
        !script.contains("kernel --name") && !script.contains("bootkit.mode=provision"),
        "{script}"
    );
    let (_, bios) = get(&node_script_url(&fixture, REGISTERED_MAC, "pcbios")).await;
    assert!(
        bios.contains("kernel --name kernel ") && !bios.contains("httpboot"),
        "{bios}"
    );
}

#[tokio::test]
async fn a_known_nodes_uki_download_is_its_last_event_when_the_firmware_then_refuses_the_uki() {
    let fixture = Fixture::serving_the_uki_to_a_registered_node().await;
    // Discovered at the address the test's requests come from, then booted again.
    let node_id = fixture.discover(REGISTERED_MAC, "127.0.0.1");
    get(&node_script_url(&fixture, REGISTERED_MAC, "efi")).await;
    let uki_url = fixture.url("/httpboot/bootkit.efi");
    // HttpBootDxe's HEAD for the size is not a download.
    let client = common::http_client().build().unwrap();
    let head = client.head(&uki_url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let (status, _) = get(&uki_url).await;
    assert_eq!(status, 200);

    let events = fixture.store.node_events(&node_id).unwrap();
    let kinds: Vec<&str> = events.iter().map(|event| event.kind.as_str()).collect();
    assert!(
        kinds.ends_with(&["pxe", "uki"]),
        "the boot script, then one UKI download: {kinds:?}"
    );
    let fetched = &events.last().unwrap().message;
    assert!(
        fetched.contains(&format!("fetched the boot UKI ({} bytes)", SITE_UKI.len())),
        "{fetched}"
    );
}

#[tokio::test]
async fn an_unregistered_node_is_refused_without_a_default_profile_and_booted_with_one() {
    let refusing = Fixture::start(false, |_, _| {}).await;
    let (status, script) = get(&node_script_url(&refusing, "52:54:00:00:00:99", "efi")).await;
    assert_eq!(status, 200);
    assert!(
        script.contains("echo provisioner: not booting this node"),
        "{script}"
    );
    assert!(script.ends_with("sleep 30\nexit\n"), "{script}");
    assert!(!script.contains("kernel "), "{script}");

    let admitting = Fixture::start(true, |_, _| {}).await;
    let (_, script) = get(&node_script_url(&admitting, "52:54:00:00:00:99", "efi")).await;
    assert!(
        script.contains("worker_id=52:54:00:00:00:99"),
        "the default profile boots it: {script}"
    );
}

#[tokio::test]
async fn a_provisioned_node_boots_its_local_disk_on_bios_and_on_efi() {
    let fixture = Fixture::start(false, |_, _| {}).await;
    fixture.register(REGISTERED_MAC, &[]);
    let node_id = fixture.discover(REGISTERED_MAC, "127.0.0.9");
    fixture.provision(REGISTERED_MAC);

    let (_, bios) = get(&node_script_url(&fixture, REGISTERED_MAC, "pcbios")).await;
    assert!(
        bios.contains("sanboot --no-describe --drive 0x80"),
        "{bios}"
    );
    assert!(!bios.contains("kernel "), "{bios}");
    let (_, efi) = get(&node_script_url(&fixture, REGISTERED_MAC, "efi")).await;
    assert!(
        !efi.contains("sanboot") && efi.ends_with("exit 1\n"),
        "{efi}"
    );
    let local_boots = fixture
        .store
        .node_events(&node_id)
        .unwrap()
        .into_iter()
        .filter(|event| event.kind == "local-boot")
        .count();
    assert_eq!(local_boots, 2);
}

#[tokio::test]
async fn a_script_request_without_a_mac_is_a_bad_request() {
    let fixture = Fixture::start(true, |_, _| {}).await;
    let (status, body) = get(&fixture.url("/ipxe/boot.ipxe?mac=x%0Ashell&platform=efi")).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn artifacts_are_served_whole_and_by_range() {
    let fixture = Fixture::start(true, |_, _| {}).await;
    let client = common::http_client().build().unwrap();
    let url = fixture.url("/artifacts/profiles/edge/kernel");
    let whole = client.get(&url).send().await.unwrap();
    assert_eq!(whole.status().as_u16(), 200);
    assert_eq!(
        whole.bytes().await.unwrap().as_ref(),
        fixture.kernel.as_slice()
    );

    let part = client
        .get(&url)
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status().as_u16(), 206);
    let range = part.headers()["content-range"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(range, format!("bytes 1000-1999/{}", fixture.kernel.len()));
    assert_eq!(
        part.bytes().await.unwrap().as_ref(),
        &fixture.kernel[1000..2000]
    );

    let (status, image) = get(&fixture.url("/artifacts/profiles/edge/os-image")).await;
    assert_eq!((status, image.as_str()), (200, "os image"));
    let (status, _) = get(&fixture.url("/artifacts/profiles/nope/kernel")).await;
    assert_eq!(status, 404);
    let http = &fixture.server.metrics.http;
    assert_eq!(http.artifacts.load(Ordering::Relaxed), 3);
    let sent = fixture.kernel.len() as u64 + 1000 + "os image".len() as u64;
    assert_eq!(http.artifact_bytes.load(Ordering::Relaxed), sent);
}

#[tokio::test]
async fn metadata_answers_the_requesting_node_only() {
    let fixture = Fixture::start(false, |_, _| {}).await;
    fixture.register(
        REGISTERED_MAC,
        &[("user_data", "#cloud-config\nhostname: node-1\n")],
    );
    let node_id = fixture.discover(REGISTERED_MAC, "127.0.0.2");
    let as_node = common::http_client()
        .local_address(IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let fetch = |path: &str| {
        let request = as_node.get(fixture.url(path));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(
        fetch("/2009-04-04/meta-data/instance-id").await,
        (200, node_id)
    );
    assert_eq!(
        fetch("/2009-04-04/meta-data/local-ipv4").await,
        (200, "127.0.0.2".to_string())
    );
    assert_eq!(
        fetch("/2009-04-04/meta-data/mac").await,
        (200, REGISTERED_MAC.to_string())
    );
    assert_eq!(
        fetch("/2009-04-04/meta-data/hostname").await,
        (200, "node-1".to_string())
    );
    assert_eq!(
        fetch("/2009-04-04/user-data").await,
        (200, "#cloud-config\nhostname: node-1\n".to_string())
    );
    let (status, index) = fetch("/2009-04-04/meta-data").await;
    assert_eq!(status, 200);
    for item in ["instance-id", "hostname", "local-ipv4", "mac"] {
        assert!(index.lines().any(|line| line == item), "{item} in {index}");
    }
    // 127.0.0.1 is no node's address.
    let (status, _) = get(&fixture.url("/2009-04-04/meta-data/instance-id")).await;
    assert_eq!(status, 404);
}

/// Polls (bounded) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 5 s");
}

#[tokio::test]
async fn syslog_lines_from_a_node_land_in_its_logs_early_ones_too_and_strangers_are_not_stored() {
    use bootkit_net::syslog::{Forwarder, ForwarderConfig, Severity};

    let fixture = Fixture::start(true, |_, _| {}).await;
    let syslog = fixture.server.syslog_udp_addr.unwrap();
    let counters = Arc::clone(&fixture.server.metrics.syslog_sink);
    // Before discovery the node's address is nobody's: its early boot line is held.
    let early = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    early
        .send_to(
            b"<30>1 2026-11-22T06:00:00Z node-1 bootkit - - - early boot",
            syslog,
        )
        .unwrap();
    eventually("the early line held", || {
        counters.unknown_sender.load(Ordering::Relaxed) == 1
    })
    .await;
    // Loopback traffic leaves from 127.0.0.1 whatever the destination: the node is there.
    let node_id = fixture.discover(REGISTERED_MAC, "127.0.0.1");
    let mut config = ForwarderConfig::new("127.0.0.1");
    config.port = fixture.server.syslog_udp_addr.unwrap().port();
    config.hostname = "node-1".into();
    let (forwarder, task) = Forwarder::new(config);
    forwarder.push("tink-worker", Severity::Warning, "action 1/3 started");
    forwarder.push("tink-worker", Severity::Informational, "action 1/3 done");
    drop(forwarder);
    tokio::time::timeout(Duration::from_secs(10), task.run(|_| {}))
        .await
        .unwrap();
    eventually("three stored lines", || {
        fixture.store.node_logs(&node_id, 0, 10).unwrap().len() == 3
    })
    .await;
    let lines = fixture.store.node_logs(&node_id, 0, 10).unwrap();
    assert_eq!(
        (lines[0].source.as_str(), lines[0].text.as_str()),
        ("bootkit (unauthenticated, udp)", "early boot")
    );
    // UDP: attributed by address only, and marked so.
    assert_eq!(lines[1].source, "tink-worker (unauthenticated, udp)");
    assert_eq!(lines[1].severity, 4);
    assert_eq!(lines[1].text, "action 1/3 started");
    assert_eq!(lines[2].text, "action 1/3 done");

    let stranger = std::net::UdpSocket::bind("127.0.0.3:0").unwrap();
    stranger
        .send_to(b"<14>1 2026-11-22T06:00:00Z other app - - - hello", syslog)
        .unwrap();
    eventually("the stranger's line counted", || {
        counters.unknown_sender.load(Ordering::Relaxed) == 2
    })
    .await;
    assert_eq!(fixture.store.node_logs(&node_id, 0, 10).unwrap().len(), 3);
}

/// A TFTP root holding stand-ins for the iPXE binaries.
fn tftp_root(dir: &Path) -> PathBuf {
    let root = dir.join("tftp");
    std::fs::create_dir(&root).unwrap();
    write_file(&root, "ipxe.efi", &vec![0xEF; 70_000]);
    write_file(&root, "undionly.kpxe", b"kpxe");
    root
}

#[tokio::test]
async fn tftp_serves_the_ipxe_binaries_from_its_root() {
    let fixture = Fixture::start(true, |dir, boot| {
        boot.tftp = Some(TftpOptions {
            listen: loopback(0),
            root: tftp_root(dir),
        });
    })
    .await;
    let target = fixture.db.dir.path().join("fetched.efi");
    let url = format!("tftp://{}/ipxe.efi", fixture.server.tftp_addr.unwrap());
    let (output, request) = (target.clone(), url.clone());
    // Blocking: the server runs on this test's runtime.
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "20", "-o"])
            .arg(&output)
            .arg(&request)
            .status()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(status.success(), "curl {url}");
    assert_eq!(std::fs::read(&target).unwrap(), vec![0xEF; 70_000]);
}

#[tokio::test]
async fn a_tftp_root_without_the_ipxe_binaries_is_refused_at_start_naming_them() {
    let db = TestDb::new();
    let mut boot = BootOptions::new(ADVERTISE);
    boot.tftp = Some(TftpOptions {
        listen: loopback(0),
        root: db.dir.path().to_path_buf(),
    });
    let error = RunningServer::start(Arc::new(db.open()), &serving(boot))
        .await
        .err()
        .expect("a TFTP root without iPXE is refused");
    let message = format!("{error:#}");
    assert!(
        message.contains("undionly.kpxe and ipxe.efi") && message.contains("--tftp-root"),
        "{message}"
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
fn test_ca(dir: &Path) -> (rcgen::Certificate, TlsFiles) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();
    let files = TlsFiles {
        cert: write_file(dir, "boot.pem", server.pem().as_bytes()),
        key: write_file(dir, "boot-key.pem", server_key.serialize_pem().as_bytes()),
    };
    (ca, files)
}

/// GET over TLS trusting `ca` only; the whole response as text.
async fn https_get(addr: SocketAddr, ca: &rcgen::Certificate, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::from(addr.ip());
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    response
}

#[tokio::test]
async fn scripts_fetched_over_https_point_at_https_artifacts_and_metadata_works_over_tls() {
    let mut ca = None;
    let fixture = Fixture::start(true, |dir, boot| {
        let (authority, tls) = test_ca(dir);
        ca = Some(authority);
        boot.https = Some(HttpsOptions {
            listen: loopback(0),
            tls,
        });
    })
    .await;
    let ca = ca.unwrap();
    let https = fixture.server.boot_https_addr.unwrap();
    let response = https_get(
        https,
        &ca,
        "/ipxe/boot.ipxe?mac=52:54:00:00:00:42&platform=efi",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains(&format!(
            "kernel --name kernel https://127.0.0.1:{}/artifacts/profiles/edge/kernel",
            https.port()
        )),
        "{response}"
    );
    // Metadata over TLS too: the requester's address reaches the handler.
    fixture.register(REGISTERED_MAC, &[]);
    fixture.discover(REGISTERED_MAC, "127.0.0.1");
    let metadata = https_get(https, &ca, "/2009-04-04/meta-data/local-ipv4").await;
    assert!(
        metadata.starts_with("HTTP/1.1 200") && metadata.ends_with("127.0.0.1"),
        "{metadata}"
    );
}

/// A PXE client's REQUEST to the proxyDHCP boot server (port 4011), answered by unicast.
async fn pxe_request(server: SocketAddr, mac: [u8; 6], ipxe: bool) -> Option<String> {
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
    if ipxe {
        options.insert(DhcpOption::UserClass(b"iPXE".to_vec()));
    }
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(&message.to_vec().unwrap(), server)
        .await
        .unwrap();
    let mut buffer = vec![0; 1500];
    let (length, _) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buffer))
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

#[tokio::test]
async fn proxy_dhcp_hands_pxe_roms_the_binary_and_ipxe_the_script_and_ignores_refused_nodes() {
    let fixture = Fixture::start(false, |dir, boot| {
        boot.tftp = Some(TftpOptions {
            listen: loopback(0),
            root: tftp_root(dir),
        });
        boot.dhcp = Some(DhcpOptions {
            listen: loopback(0),
            interface: None,
            mode: bootkit_dhcp::Mode::Proxy,
        });
    })
    .await;
    fixture.register(REGISTERED_MAC, &[]);
    let boot_server = fixture.server.dhcp_boot_server_addr.unwrap();
    let registered = [0x52, 0x54, 0, 0, 0, 1];
    assert_eq!(
        pxe_request(boot_server, registered, false).await.as_deref(),
        Some("ipxe.efi")
    );
    assert_eq!(
        pxe_request(boot_server, registered, true).await,
        Some(fixture.url("/ipxe/auto.ipxe"))
    );
    assert_eq!(
        pxe_request(boot_server, [0x52, 0x54, 0, 0, 0, 0x99], false).await,
        None,
        "an unregistered node without a default profile gets no answer"
    );
}

#[tokio::test]
async fn a_port_in_use_is_refused_at_start_naming_its_flag() {
    let db = TestDb::new();
    let taken = std::net::TcpListener::bind(loopback(0)).unwrap();
    let mut boot = BootOptions::new(ADVERTISE);
    boot.http = Some(taken.local_addr().unwrap());
    let error = RunningServer::start(Arc::new(db.open()), &serving(boot))
        .await
        .err()
        .expect("a boot HTTP port in use is refused");
    let message = format!("{error:#}");
    assert!(message.contains("(--boot-http) failed"), "{message}");
}

#[tokio::test]
async fn a_node_registered_by_a_serial_with_spaces_is_found_by_its_uri_encoded_serial() {
    let fixture = Fixture::start(false, |_, _| {}).await;
    fixture
        .store
        .register(&RegistrationSpec {
            serial: Some("SN 0042 A&B".into()),
            profile: "edge".into(),
            ..RegistrationSpec::default()
        })
        .unwrap();
    // What iPXE's ${smbios/serial:uristring} makes of it.
    let url = fixture.url(
        "/ipxe/boot.ipxe?mac=52:54:00:00:00:07&uuid=&serial=SN%200042%20A%26B&platform=efi&arch=x86_64",
    );
    let (_, script) = get(&url).await;
    assert!(script.contains("worker_id=52:54:00:00:00:07"), "{script}");
}

#[tokio::test]
async fn a_failing_listener_stops_every_listener_with_an_error_naming_it() {
    let db = TestDb::new();
    let mut boot = BootOptions::new(ADVERTISE);
    boot.http = Some(loopback(0));
    let mut options = serving(boot);
    // The admin API refuses to serve without authentication configured.
    options.http = Some(loopback(0));
    let mut server = RunningServer::start(Arc::new(db.open()), &options)
        .await
        .unwrap();
    let boot_http = server.boot_http_addr.unwrap();
    let error = tokio::time::timeout(Duration::from_secs(10), server.wait())
        .await
        .expect("the server stops by itself")
        .unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("the admin API (--http) failed"),
        "{message}"
    );
    assert!(
        tokio::net::TcpStream::connect(boot_http).await.is_err(),
        "the boot HTTP listener is closed too"
    );
}
