//! The `bootkit-install` command as a user runs it: the `--dry-run` plan, exit codes, the
//! JSON progress and summary, and the image2disk environment interface (by argv[0] and by
//! `--from-env`, with the image served over http on 127.0.0.1). Needs root (loop devices).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

mod support;

use support::{GARBAGE, IMAGE_BYTES, LoopDevice, compressed, gpt_image, used_disk};

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bootkit-install"))
}

fn run(command: &mut Command) -> Output {
    command
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .output()
        .expect("the installer runs")
}

/// Runs `bootkit-install --image image --disk disk` with the `more` arguments after them.
fn install(image: &Path, disk: &Path, more: &[&str]) -> Output {
    run(Command::new(binary())
        .arg("--image")
        .arg(image)
        .arg("--disk")
        .arg(disk)
        .args(more))
}

/// Fails the test, showing stderr, unless stderr contains `needle`.
fn assert_stderr_contains(output: &Output, needle: &str) {
    let stderr = text(&output.stderr);
    assert!(stderr.contains(needle), "{stderr}");
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sha256_hex(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// Serves `body` to one GET on 127.0.0.1, on a thread; returns the URL.
fn serve_once(body: Vec<u8>, name: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/{name}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        // Headers end with an empty line; a bounded number of lines guards a broken client.
        for _ in 0..100 {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
        }
        let mut stream = stream;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(&body);
    });
    url
}

#[test]
#[ignore = "needs root: writes images to loop devices"]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let image = compressed(&gpt_image(dir.path()), "gz");
    let device = LoopDevice::attach(&used_disk(dir.path(), 2 * IMAGE_BYTES));
    let output = install(
        &image,
        &device.path,
        &["--sha256", &sha256_hex(&image), "--dry-run"],
    );
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(
        stdout.contains(&format!("source:  {}", image.display())),
        "{stdout}"
    );
    assert!(stdout.contains("format:  gzip"), "{stdout}");
    assert!(
        stdout.contains(&device.path.display().to_string()),
        "{stdout}"
    );
    assert!(stdout.contains("named by --disk"), "{stdout}");
    assert!(
        stdout.contains("layout:  the image's own partitions"),
        "{stdout}"
    );
    let disk = std::fs::read(&device.path).unwrap();
    assert!(
        disk.iter().all(|&b| b == GARBAGE),
        "--dry-run wrote to the disk"
    );
}

#[test]
#[ignore = "needs root: writes images to loop devices"]
fn an_install_exits_0_with_a_json_summary_and_the_image_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let raw = gpt_image(dir.path());
    let image = compressed(&raw, "zst");
    let device = LoopDevice::attach(&used_disk(dir.path(), IMAGE_BYTES));
    let sums = dir.path().join("os.raw.zst.sha256sum");
    std::fs::write(&sums, format!("{}  os.raw.zst\n", sha256_hex(&image))).unwrap();
    let output = install(
        &image,
        &device.path,
        &[
            "--sha256-file",
            sums.to_str().unwrap(),
            "--progress",
            "json",
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let lines: Vec<serde_json::Value> = text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("every stdout line is JSON"))
        .collect();
    assert!(lines.iter().any(|l| l["stage"] == "writing"));
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["sha256"], sha256_hex(&image));
    assert_eq!(summary["image_bytes"], IMAGE_BYTES);
    assert_eq!(summary["disk"], device.path.display().to_string());
    assert!(std::fs::read(&device.path).unwrap() == std::fs::read(&raw).unwrap());
}

#[test]
#[ignore = "needs root: writes images to loop devices"]
fn failures_exit_non_zero_and_say_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let image = compressed(&gpt_image(dir.path()), "gz");
    let device = LoopDevice::attach(&used_disk(dir.path(), IMAGE_BYTES));

    let wrong = "0".repeat(64);
    let output = install(
        &image,
        &device.path,
        &["--sha256", &wrong, "--progress", "plain"],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains(&format!("expected {wrong}")), "{stderr}");
    let disk = std::fs::read(&device.path).unwrap();
    assert!(
        disk[..1 << 20].iter().all(|&b| b == 0),
        "partition table left behind"
    );

    let output =
        run(Command::new(binary()).args(["--image", "/nonexistent/os.raw.gz", "--dry-run"]));
    assert_eq!(output.status.code(), Some(1));
    assert_stderr_contains(&output, "does not exist");

    let output = run(Command::new(binary()).args(["--progress", "loud"]));
    assert_eq!(
        output.status.code(),
        Some(2),
        "a usage error is exit status 2"
    );
}

#[test]
#[ignore = "needs root: writes images to loop devices"]
fn image2disk_reads_the_action_environment_by_argv0_and_from_env() {
    let dir = tempfile::tempdir().unwrap();
    let raw = gpt_image(dir.path());
    let image = compressed(&raw, "gz");
    let image2disk = dir.path().join("image2disk");
    std::os::unix::fs::symlink(binary(), &image2disk).unwrap();

    // By argv[0], from an http URL served on loopback.
    let device = LoopDevice::attach(&used_disk(dir.path(), IMAGE_BYTES));
    let url = serve_once(std::fs::read(&image).unwrap(), "os.raw.gz");
    let output = run(Command::new(&image2disk)
        .env("IMG_URL", &url)
        .env("DEST_DISK", &device.path)
        .env("COMPRESSED", "true")
        .env("SHA256", sha256_hex(&image)));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(std::fs::read(&device.path).unwrap() == std::fs::read(&raw).unwrap());
    drop(device);

    // With --from-env, from a local path; COMPRESSED=false is only noted (gzip is found
    // by its magic bytes).
    let device = LoopDevice::attach(&used_disk(dir.path(), IMAGE_BYTES));
    let output = run(Command::new(binary())
        .arg("--from-env")
        .env("IMG_URL", &image)
        .env("DEST_DISK", &device.path)
        .env("COMPRESSED", "false"));
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("COMPRESSED=false, but the image is gzip"),
        "{stderr}"
    );
    assert!(std::fs::read(&device.path).unwrap() == std::fs::read(&raw).unwrap());

    // A missing variable is named.
    let output = run(Command::new(&image2disk)
        .env("IMG_URL", &url)
        .env_remove("DEST_DISK"));
    assert_eq!(output.status.code(), Some(1));
    assert_stderr_contains(&output, "DEST_DISK is not set");
}

#[test]
#[ignore = "needs root: writes images to loop devices"]
fn an_image_without_gpt_is_written_and_its_table_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    // A whole-disk filesystem or MBR image: no `EFI PART` header anywhere.
    let image = dir.path().join("plain.raw");
    std::fs::write(
        &image,
        support::random_bytes(support::index(IMAGE_BYTES), 7),
    )
    .unwrap();
    let device = LoopDevice::attach(&used_disk(dir.path(), 2 * IMAGE_BYTES));
    let output = install(
        &image,
        &device.path,
        &["--sha256", &sha256_hex(&image), "--progress", "plain"],
    );
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("no GPT"), "{stderr}");
    let written = std::fs::read(&device.path).unwrap();
    assert_eq!(
        &written[..support::index(IMAGE_BYTES)],
        &std::fs::read(&image).unwrap()[..]
    );
}

#[test]
#[ignore = "needs root: writes images to loop devices"]
fn a_failure_after_the_write_says_whether_the_image_was_verified() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("plain.raw");
    std::fs::write(
        &image,
        support::random_bytes(support::index(IMAGE_BYTES), 8),
    )
    .unwrap();
    let device = LoopDevice::attach(&used_disk(dir.path(), 2 * IMAGE_BYTES));
    // [layout] needs a GPT, which this image lacks: found only once it is written.
    let config = dir.path().join("install.toml");
    std::fs::write(&config, "[layout]\ngrow = 1\n").unwrap();
    let config = config.to_str().unwrap();
    let digest = sha256_hex(&image);
    for (more, said) in [
        (
            vec!["--config", config],
            "the image was written but not verified against a published checksum; it has no \
             GPT"
            .to_string(),
        ),
        (
            vec!["--config", config, "--sha256", &digest],
            "the image was written and verified against the published sha256 (--sha256); it \
             has no GPT"
                .to_string(),
        ),
    ] {
        let output = install(&image, &device.path, &more);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
        assert_stderr_contains(&output, &said);
    }
}

#[test]
#[ignore = "needs root: writes images to loop devices"]
fn the_plan_shows_the_kernel_arguments_and_the_copied_network() {
    let dir = tempfile::tempdir().unwrap();
    let image = compressed(&gpt_image(dir.path()), "gz");
    let device = LoopDevice::attach(&used_disk(dir.path(), IMAGE_BYTES));
    let output = install(
        &image,
        &device.path,
        &[
            "--dry-run",
            "--append-karg",
            "intel_iommu=on",
            "--delete-karg",
            "quiet",
            "--console",
            "ttyS0,115200n8",
            "--copy-network",
        ],
    );
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    for line in [
        "kernel:  delete quiet\n",
        "kernel:  consoles console=ttyS0,115200n8\n",
        "kernel:  append intel_iommu=on\n",
        // This machine's kernel command line has no ip=: DHCP, as the bootkit would run it.
        "network: /etc/systemd/network/20-bootkit-copied-1.network (copied from the bootkit)\n",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    // Flags add to the config's arguments; --console replaces its consoles.
    let config = dir.path().join("install.toml");
    std::fs::write(
        &config,
        "[boot]\nappend_karg = [\"rw\"]\nconsole = [\"tty0\"]\n",
    )
    .unwrap();
    let output = install(
        &image,
        &device.path,
        &[
            "--dry-run",
            "--config",
            config.to_str().unwrap(),
            "--append-karg",
            "intel_iommu=on",
            "--console",
            "ttyS1",
        ],
    );
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("kernel:  consoles console=ttyS1\n")
            && stdout.contains("kernel:  append rw intel_iommu=on\n"),
        "{stdout}"
    );
    let output = install(
        &image,
        &device.path,
        &["--dry-run", "--console", "console=ttyS0"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert_stderr_contains(&output, "must not start with \"console=\"");
}

/// The `writing` lines of `--progress json` output.
fn json_writing_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    text(stdout)
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("JSON lines"))
        .filter(|line| line["stage"] == "writing")
        .collect()
}

#[test]
#[ignore = "needs root: writes images to loop devices"]
fn a_gz_image_shows_percent_and_eta_against_its_compressed_size() {
    let dir = tempfile::tempdir().unwrap();
    let image = compressed(&gpt_image(dir.path()), "gz");
    let gz_bytes = std::fs::metadata(&image).unwrap().len();
    let device = LoopDevice::attach(&used_disk(dir.path(), IMAGE_BYTES));

    // Plain lines (a serial console log): the last one is the whole compressed file.
    let output = install(&image, &device.path, &["--progress", "plain"]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let last = stderr
        .lines()
        .rfind(|line| line.starts_with("writing: "))
        .unwrap_or_else(|| panic!("no writing line: {stderr}"));
    assert!(
        last.contains("MB compressed (100%)") && last.contains("eta"),
        "{stderr}"
    );

    // JSON, from a file (its size) and from http (its Content-Length).
    let url = serve_once(std::fs::read(&image).unwrap(), "os.raw.gz");
    for source in [image.display().to_string(), url] {
        let output = run(Command::new(binary()).args([
            "--image",
            &source,
            "--disk",
            device.path.to_str().unwrap(),
            "--progress",
            "json",
            // serve_once answers one GET, so no lookup of a checksum beside the URL.
            "--sha256",
            &sha256_hex(&image),
        ]));
        assert!(output.status.success(), "{}", text(&output.stderr));
        let lines = json_writing_lines(&output.stdout);
        assert!(
            lines
                .iter()
                .all(|line| line["bytes_total"] == gz_bytes
                    && line["counting"] == "compressed source"),
            "{source}: {lines:?}"
        );
        let last = lines.last().unwrap();
        assert_eq!(last["percent"], 100, "{source}: {lines:?}");
        assert_eq!(last["source_bytes_read"], gz_bytes, "{source}: {lines:?}");
        assert_eq!(last["bytes_written"], IMAGE_BYTES - (1 << 20), "{last}");
    }

    // A bar on a terminal (util-linux `script` gives the installer a pty): a percentage of
    // the compressed size, and no byte counts on stages that have none.
    let command = format!(
        "{} --image {} --disk {}",
        binary().display(),
        image.display(),
        device.path.display()
    );
    let output = run(Command::new("script").args(["-qec", &command, "/dev/null"]));
    let terminal = text(&output.stdout);
    assert!(output.status.success(), "{terminal}");
    assert!(terminal.contains("100% of"), "{terminal}");
    assert!(terminal.contains("compressed"), "{terminal}");
    assert!(!terminal.contains("0 B/0 B"), "{terminal}");
    assert!(
        std::fs::read(&device.path).unwrap()[..]
            == std::fs::read(dir.path().join("os.raw")).unwrap()[..]
    );
}

#[test]
fn no_image_on_a_workstation_fails_at_once_naming_the_flag() {
    // This machine was not booted with bootkit.mode=standalone, so nothing waits for a stick.
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    assert!(!cmdline.contains("bootkit.mode=standalone"), "{cmdline}");
    let started = std::time::Instant::now();
    let output = run(&mut Command::new(binary()));
    assert_eq!(output.status.code(), Some(1));
    assert_stderr_contains(&output, "--image is missing");
    assert_stderr_contains(&output, "--usb");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "it waited {:?}",
        started.elapsed()
    );
}

#[test]
#[ignore = "needs root: writes images to loop devices"]
fn a_checksum_file_beside_the_image_is_used_and_its_absence_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let image = compressed(&gpt_image(dir.path()), "gz");
    let device = LoopDevice::attach(&used_disk(dir.path(), IMAGE_BYTES));
    let sums = dir.path().join("os.raw.gz.sha256sum");

    // A wrong digest beside the image stops the install: it was read.
    std::fs::write(&sums, format!("{}  os.raw.gz\n", "0".repeat(64))).unwrap();
    let output = install(&image, &device.path, &["--progress", "plain"]);
    assert_eq!(output.status.code(), Some(1));
    assert_stderr_contains(&output, &format!("expected {}", "0".repeat(64)));

    // GNU sha256sum's own line: used, and the summary says it matched.
    let line = support::run("sha256sum", &[image.to_str().unwrap()]);
    let digest = line.split_whitespace().next().unwrap().to_string();
    std::fs::write(&sums, format!("{digest}  os.raw.gz\n")).unwrap();
    let output = install(&image, &device.path, &["--progress", "plain"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let verified = format!(
        "written and verified against the published sha256 ({})",
        sums.display()
    );
    assert_stderr_contains(&output, &verified);
    assert!(
        text(&output.stdout).contains(&verified),
        "{}",
        text(&output.stdout)
    );

    // No checksum anywhere: said so, and refused with --require-checksum.
    std::fs::remove_file(&sums).unwrap();
    let output = install(&image, &device.path, &["--progress", "plain"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("not verified against a published checksum"),
        "{}",
        text(&output.stdout)
    );
    let output = install(&image, &device.path, &["--require-checksum"]);
    assert_eq!(output.status.code(), Some(1));
    assert_stderr_contains(&output, "no published checksum for");
    let config = dir.path().join("install.toml");
    std::fs::write(&config, "[image]\nrequire_checksum = true\n").unwrap();
    let output = install(
        &image,
        &device.path,
        &["--config", config.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_stderr_contains(&output, "no published checksum for");

    // Over http, served by Python's http.server (404 for the .sha256sum, then the .sha256).
    let served = tempfile::tempdir().unwrap();
    std::fs::copy(&image, served.path().join("os.raw.gz")).unwrap();
    std::fs::write(
        served.path().join("os.raw.gz.sha256"),
        format!("{}\n", "1".repeat(64)),
    )
    .unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(served.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 runs");
    let url = format!("http://127.0.0.1:{port}/os.raw.gz");
    let ready = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(ready.elapsed().as_secs() < 10, "http.server did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = run(Command::new(binary()).args([
        "--image",
        &url,
        "--disk",
        device.path.to_str().unwrap(),
        "--dry-run",
    ]));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!("{} (from {url}.sha256)", "1".repeat(64))),
        "{stdout}{}",
        text(&output.stderr)
    );
    std::fs::write(
        served.path().join("os.raw.gz.sha256"),
        format!("{digest}\n"),
    )
    .unwrap();
    let output = run(Command::new(binary()).args([
        "--image",
        &url,
        "--disk",
        device.path.to_str().unwrap(),
    ]));
    let _ = server.kill();
    let _ = server.wait();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains(&format!(
            "written and verified against the published sha256 ({url}.sha256)"
        )),
        "{}",
        text(&output.stdout)
    );
}
