//! TFTP as `provisioner serve` runs it stays in its root: a symlink in the root that leads out
//! is refused (curl, the independent client, sees ERROR 2), except the iPXE binaries' own
//! links (Debian's /usr/lib/ipxe/ipxe.efi is a link to /boot/ipxe.efi), which are served.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use common::TestDb;
use provisioner::boot::{BootOptions, TftpOptions};
use provisioner::server::{RunningServer, ServeOptions};

/// curl's exit code for `tftp://server/name`, and the bytes it fetched.
async fn curl(server: SocketAddr, name: &str, output: &Path) -> (Option<i32>, Vec<u8>) {
    let url = format!("tftp://{server}/{name}");
    let target = output.to_path_buf();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["--silent", "--max-time", "20", "-o"])
            .arg(&target)
            .arg(&url)
            .status()
    })
    .await
    .unwrap()
    .unwrap();
    (status.code(), std::fs::read(output).unwrap_or_default())
}

#[tokio::test]
async fn tftp_refuses_links_out_of_its_root_but_serves_the_ipxe_binaries_through_theirs() {
    let db = TestDb::new();
    let dir = db.dir.path();
    let root = dir.join("tftp");
    let boot_dir = dir.join("boot");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&boot_dir).unwrap();
    std::fs::write(boot_dir.join("ipxe.efi"), vec![0xEF; 70_000]).unwrap();
    std::fs::write(boot_dir.join("initrd.img"), b"not to be served").unwrap();
    std::fs::write(root.join("undionly.kpxe"), b"kpxe").unwrap();
    let link = |target: &Path, name: &str| std::os::unix::fs::symlink(target, root.join(name));
    link(&boot_dir.join("ipxe.efi"), "ipxe.efi").unwrap();
    link(&boot_dir.join("initrd.img"), "initrd.img").unwrap();
    link(Path::new("/etc/shadow"), "shadow").unwrap();
    link(Path::new("undionly.kpxe"), "undionly.0").unwrap();

    let mut boot = BootOptions::new(Ipv4Addr::LOCALHOST);
    boot.tftp = Some(TftpOptions {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        root,
    });
    let options = ServeOptions {
        grpc: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        http: None,
        tls: None,
        protocols: Default::default(),
        admin: Default::default(),
        boot: Some(boot),
        // Plaintext gRPC: its clients can present no node certificate.
        node_ca: None,
        allow_unauthenticated_workers: true,
    };
    let server = RunningServer::start(Arc::new(db.open()), &options)
        .await
        .unwrap();
    let tftp = server.tftp_addr.unwrap();

    let fetched = dir.join("fetched");
    // 69: CURLE_TFTP_PERM, the server's ERROR 2 (access violation).
    for name in ["shadow", "initrd.img"] {
        let (code, bytes) = curl(tftp, name, &fetched).await;
        assert_eq!(code, Some(69), "{name} is a link out of the root");
        assert!(bytes.is_empty(), "{name}: nothing of it was sent");
    }
    let (code, bytes) = curl(tftp, "ipxe.efi", &fetched).await;
    assert_eq!(code, Some(0), "ipxe.efi is served through its link");
    assert_eq!(bytes, vec![0xEF; 70_000]);
    let (code, bytes) = curl(tftp, "undionly.0", &fetched).await;
    assert_eq!(code, Some(0), "a link inside the root is followed");
    assert_eq!(bytes, b"kpxe");
}
