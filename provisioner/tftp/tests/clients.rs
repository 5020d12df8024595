//! Real TFTP clients (curl, busybox) against the server on loopback.

mod support;

use support::{TestServer, run, same_file};

const IPXE_EFI: &str = "/usr/lib/ipxe/ipxe.efi";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_downloads_a_large_file_with_blksize_byte_identical() {
    let server = TestServer::start().await;
    let expected = server.random_file("boot.efi", 1_500_000);
    let out = tempfile::tempdir().expect("output dir");
    let output = out.path().join("boot.efi");
    let url = format!("tftp://{}/boot.efi", server.addr);
    let args = ["--silent", "--show-error", "--tftp-blksize", "1428", "-o"];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.extend([output.display().to_string(), url]);
    run("curl", args).await;
    same_file(&output, &expected);
    server
        .wait_for(
            |c| c.completed.load(std::sync::atomic::Ordering::Relaxed),
            1,
        )
        .await;
    assert_eq!(server.count(|c| &c.bytes_sent), expected.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_downloads_debians_ipxe_efi_through_a_leading_slash() {
    if !std::path::Path::new(IPXE_EFI).exists() {
        eprintln!("skipped: {IPXE_EFI} is not installed (apt-get install ipxe)");
        return;
    }
    let server = TestServer::start().await;
    // Linked, not copied: Debian's /usr/lib/ipxe/ipxe.efi is itself a symlink (to
    // /boot/ipxe.efi), and the default root serves it through that link.
    std::os::unix::fs::symlink(IPXE_EFI, server.path("ipxe.efi")).expect("link ipxe.efi");
    let out = tempfile::tempdir().expect("output dir");
    let output = out.path().join("ipxe.efi");
    // curl sends the path after the host without its slash; two slashes keep one.
    let url = format!("tftp://{}//ipxe.efi", server.addr);
    let args = vec![
        "--silent".into(),
        "--show-error".into(),
        "-o".into(),
        output.display().to_string(),
        url,
    ];
    run("curl", args).await;
    same_file(&output, &std::fs::read(IPXE_EFI).expect("read ipxe.efi"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busybox_tftp_downloads_byte_identical() {
    let server = TestServer::start().await;
    let expected = server.random_file("kernel", 1_200_000);
    let out = tempfile::tempdir().expect("output dir");
    let output = out.path().join("kernel");
    let args = [
        "tftp",
        "-g",
        "-r",
        "kernel",
        "-l",
        &output.display().to_string(),
        "127.0.0.1",
        &server.addr.port().to_string(),
    ];
    run("busybox", args.iter().map(|a| a.to_string()).collect()).await;
    same_file(&output, &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reports_a_missing_file() {
    let server = TestServer::start().await;
    let url = format!("tftp://{}/missing", server.addr);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("timeout")
            .args([
                "60",
                "curl",
                "--silent",
                "--show-error",
                "-o",
                "/dev/null",
                &url,
            ])
            .output()
            .expect("run curl")
    })
    .await
    .expect("curl thread");
    // timeout(1) passes curl's exit code on; 68 is CURLE_TFTP_NOTFOUND (ERROR 1).
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(68), "curl said: {stderr}");
    assert_eq!(server.count(|c| &c.refused), 1);
}
