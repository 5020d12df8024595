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
    // Linked, not copied: Debian's /usr/lib/ipxe/ipxe.efi is itself a symlink (to
    // /boot/ipxe.efi), and the default root serves it through that link, the target named
    // as served from outside the root (as `provisioner serve` does for the iPXE binaries).
    let server = TestServer::start_serving_outside(vec![IPXE_EFI.into()]).await;
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

/// curl's exit code and stderr for `tftp://server/name`.
async fn curl_fetch(server: &TestServer, name: &str) -> (Option<i32>, String) {
    let url = format!("tftp://{}/{name}", server.addr);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("timeout")
            // --path-as-is: curl sends `..` as given instead of resolving it itself.
            .args([
                "60",
                "curl",
                "--path-as-is",
                "--silent",
                "--show-error",
                "-o",
                "/dev/null",
            ])
            .arg(&url)
            .output()
            .expect("run curl")
    })
    .await
    .expect("curl thread");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}

/// 69 is CURLE_TFTP_PERM: the server answered ERROR 2, access violation.
const CURL_TFTP_ACCESS_VIOLATION: Option<i32> = Some(69);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_is_refused_links_out_of_the_root_and_served_links_inside() {
    let outside = tempfile::tempdir().expect("outside dir");
    std::fs::write(outside.path().join("boot.efi"), b"named target").expect("write");
    std::fs::write(outside.path().join("secret"), b"not to be served").expect("write");
    let named = outside.path().join("boot.efi");
    let server = TestServer::start_serving_outside(vec![named.clone()]).await;
    let expected = server.random_file("kernel", 100_000);
    std::fs::create_dir(server.path("sub")).expect("mkdir");
    let link = |target: &std::path::Path, name: &str| {
        std::os::unix::fs::symlink(target, server.path(name)).expect("link");
    };
    link("../kernel".as_ref(), "sub/kernel");
    link(&outside.path().join("secret"), "secret");
    link("/etc/passwd".as_ref(), "passwd");
    link(outside.path(), "out");
    link(&named, "boot.efi");

    // Out of the root: absolute, relative, through a linked directory; `..` in the name.
    for name in ["secret", "passwd", "out/secret", "sub/../../etc/passwd"] {
        let (code, stderr) = curl_fetch(&server, name).await;
        assert_eq!(
            code, CURL_TFTP_ACCESS_VIOLATION,
            "{name}: curl said {stderr}"
        );
    }

    // Inside the root through a link, and the one target named outside it.
    let out = tempfile::tempdir().expect("output dir");
    for (name, bytes) in [
        ("sub/kernel", expected.clone()),
        ("boot.efi", b"named target".to_vec()),
    ] {
        let output = out.path().join(name.replace('/', "_"));
        let url = format!("tftp://{}/{name}", server.addr);
        run(
            "curl",
            vec![
                "--silent".into(),
                "--show-error".into(),
                "-o".into(),
                output.display().to_string(),
                url,
            ],
        )
        .await;
        same_file(&output, &bytes);
    }
    assert_eq!(server.count(|c| &c.refused), 4);
}
