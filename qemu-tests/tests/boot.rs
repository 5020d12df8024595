//! The bootkit booted for real: Debian's kernel under QEMU, our initramfs, our PID 1.
//! Each test asserts what a user of the bootkit would see on the console.

mod common;

use anyhow::{Context, Result};
use common::{
    BOOT_TIMEOUT, STEP_TIMEOUT, base_config, boot, build, image_with_services, position, service,
};
use qemu_tests::append_files;

/// (a) Boot to ready: rootfs unpacked into tmpfs, virtio_net and nbd loaded, a service's
/// output on the console, clean poweroff.
#[test]
#[ignore = "needs QEMU: boots the bootkit (minutes under TCG)"]
fn boots_to_ready_and_powers_off_cleanly() -> Result<()> {
    let check = service(
        "check",
        r#"
command = "/bin/sh"
args = ["-c", '''
for module in virtio_net nbd; do
  test -d /sys/module/$module && echo "module $module is loaded"
done
grep -q "^[^ ]* / tmpfs " /proc/mounts && echo "root is a tmpfs"
test -x /usr/bin/bootkit && echo "rootfs unpacked"
echo "grpc_authority=$grpc_authority"
poweroff
''']
after = ["hello"]
restart = "never"
"#,
    );
    let image = image_with_services("boot_to_ready", &[check])?;
    let mut vm = boot(
        "boot_to_ready",
        &image,
        "grpc_authority=tink.example:42113 bootkit.on_error=poweroff bootkit.on_error_delay=0",
    )?;
    // Services run beside the ready line, so their output may come before or after it: wait
    // for the end (the check service powers off), then look at the whole console.
    vm.wait_for("bootkit: poweroff", BOOT_TIMEOUT)?;
    let console = vm.console();
    assert!(
        console.contains("rootfs: unpacked"),
        "the rootfs was unpacked"
    );
    let ready = console
        .lines()
        .find(|line| line.contains("bootkit: ready in"))
        .context("no ready line")?;
    for stage in ["mounts", "modules", "rootfs", "services"] {
        assert!(
            ready.contains(stage),
            "ready line has {stage} timing: {ready}"
        );
    }
    for line in [
        "check: module virtio_net is loaded",
        "check: module nbd is loaded",
        "check: root is a tmpfs",
        "check: rootfs unpacked",
        "check: grpc_authority=tink.example:42113",
        "hello: hello from the bootkit",
    ] {
        assert!(console.contains(line), "{line:?} on the console");
    }
    let status = vm.wait_exit(STEP_TIMEOUT)?;
    assert!(status.success(), "QEMU exits cleanly on poweroff: {status}");
    assert!(!vm.console().contains("Kernel panic"), "no kernel panic");
    Ok(())
}

/// (b) A missing rootfs archive: one clear error, then poweroff as bootkit.on_error says.
#[test]
#[ignore = "needs QEMU: boots the bootkit (minutes under TCG)"]
fn missing_rootfs_is_a_clear_error_then_poweroff() -> Result<()> {
    let image = image_with_services("missing_rootfs", &[])?;
    let mut vm = boot(
        "missing_rootfs",
        &image,
        "bootkit.rootfs=/no-such-rootfs.tar.gz bootkit.on_error=poweroff bootkit.on_error_delay=0",
    )?;
    vm.wait_for("FATAL: no rootfs archive in the initramfs", BOOT_TIMEOUT)?;
    let cause = vm.wait_for("cause:", STEP_TIMEOUT)?;
    assert!(
        cause.contains("/no-such-rootfs.tar.gz"),
        "the cause names the path: {cause}"
    );
    vm.wait_for("check:", STEP_TIMEOUT)?;
    vm.wait_for("on_error=poweroff: poweroff in 0 s", STEP_TIMEOUT)?;
    let status = vm.wait_exit(STEP_TIMEOUT)?;
    assert!(status.success(), "the machine powered off: {status}");
    let console = vm.console();
    assert!(
        !console.contains("Kernel panic"),
        "a fatal error is not a kernel panic"
    );
    assert!(
        !console.contains("bootkit: ready"),
        "no services after a fatal error"
    );
    Ok(())
}

/// A rootfs archive whose second entry writes through the first, a symlink to `/`: unpacked
/// naively it would create /escaped-file in the initramfs.
fn escaping_archive() -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_uid(0);
    dir.set_gid(0);
    dir.set_mtime(0);
    builder.append_data(&mut dir, "etc/", std::io::empty())?;
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_mode(0o777);
    link.set_size(0);
    link.set_uid(0);
    link.set_gid(0);
    link.set_mtime(0);
    builder.append_link(&mut link, "escape-link", "/")?;
    let payload = b"written outside the new root\n";
    let mut file = tar::Header::new_gnu();
    file.set_mode(0o644);
    file.set_size(payload.len() as u64);
    file.set_uid(0);
    file.set_gid(0);
    file.set_mtime(0);
    builder.append_data(&mut file, "escape-link/escaped-file", &payload[..])?;
    Ok(builder.into_inner()?)
}

/// (c) A rootfs with an escaping entry is rejected, naming the entry, and nothing is written
/// outside the new root (checked from the emergency shell in the initramfs).
#[test]
#[ignore = "needs QEMU: boots the bootkit (minutes under TCG)"]
fn escaping_rootfs_entry_is_rejected_and_nothing_leaks() -> Result<()> {
    let image = image_with_services("escaping_entry", &[])?;
    let evil_initrd = common::images_dir().join("escaping_entry/initramfs-evil");
    append_files(
        &image.initrd,
        &evil_initrd,
        &[("evil.tar", &escaping_archive()?, 0o644)],
    )?;
    let evil = qemu_tests::TestImage {
        initrd: evil_initrd,
        ..image
    };
    let mut vm = boot(
        "escaping_entry",
        &evil,
        "bootkit.rootfs=/evil.tar bootkit.on_error=shell bootkit.on_error_delay=0",
    )?;
    vm.wait_for(
        "FATAL: cannot unpack the rootfs archive /evil.tar",
        BOOT_TIMEOUT,
    )?;
    let cause = vm.wait_for("cause:", STEP_TIMEOUT)?;
    assert!(
        cause.contains("escape-link/escaped-file"),
        "the error names the entry: {cause}"
    );
    vm.wait_for("starting an emergency shell", STEP_TIMEOUT)?;
    vm.wait_for_prompt("bootkit#", STEP_TIMEOUT)?;
    // The arithmetic keeps the typed command (echoed by the tty) from matching the answer.
    vm.send_line(
        "if test -e /escaped-file; then echo \"leak=$((40+2))\"; else echo \"contained=$((40+2))\"; fi",
    )?;
    let (which, line) = vm.wait_for_any(&["contained=42", "leak=42"], STEP_TIMEOUT)?;
    assert_eq!(which, 0, "nothing was written outside the new root: {line}");
    vm.send_line("exit")?;
    let status = vm.wait_exit(STEP_TIMEOUT)?;
    assert!(
        status.success(),
        "poweroff after the emergency shell: {status}"
    );
    Ok(())
}

/// (d) A crashing service is restarted per policy; a `never` service is not restarted.
#[test]
#[ignore = "needs QEMU: boots the bootkit (minutes under TCG)"]
fn crashing_service_restarts_and_never_service_does_not() -> Result<()> {
    let crasher = service(
        "crasher",
        r#"
command = "/bin/sh"
args = ["-c", "echo crasher run; exit 3"]
restart = "on-failure"
restart_delay_ms = 200
"#,
    );
    let once = service(
        "once",
        r#"
command = "/bin/sh"
args = ["-c", "echo once run; exit 1"]
restart = "never"
"#,
    );
    let image = image_with_services("restart_policy", &[crasher, once])?;
    let mut vm = boot("restart_policy", &image, "bootkit.on_error=poweroff")?;
    vm.wait_for("bootkit: ready in", BOOT_TIMEOUT)?;
    for _ in 0..3 {
        vm.wait_for("crasher: crasher run", STEP_TIMEOUT)?;
    }
    let console = vm.console();
    assert!(
        console.contains("crasher: exited with status 3"),
        "the crash is logged"
    );
    assert!(
        console.contains("crasher: exited with status 3, restarting in"),
        "the restart is logged"
    );
    assert!(
        console.contains("once: exited with status 1, restart=never: not restarting"),
        "the never service says it stays down"
    );
    assert_eq!(
        vm.count("once: once run"),
        1,
        "the never service ran exactly once"
    );
    Ok(())
}

/// The services of test (e): two long-running ones in a chain and a trigger that asks for the
/// power action named on the kernel command line once both are up.
fn power_services() -> Vec<bootkit_builder::Overlay> {
    vec![
        service(
            "first",
            "command = \"/bin/sleep\"\nargs = [\"1000\"]\nrestart = \"always\"\n",
        ),
        service(
            "second",
            "command = \"/bin/sleep\"\nargs = [\"1000\"]\nafter = [\"first\"]\nrestart = \"always\"\n",
        ),
        service(
            "trigger",
            r#"
command = "/bin/sh"
args = ["-c", "sleep 1; echo asking for $power_request; exec $power_request"]
after = ["second"]
restart = "never"
"#,
        ),
    ]
}

fn assert_stops_in_reverse_order(console: &str) {
    let second = position(console, "stopping second").expect("second is stopped");
    let first = position(console, "stopping first").expect("first is stopped");
    assert!(
        second < first,
        "services stop in reverse start order:\n{console}"
    );
}

/// (e) poweroff on request: services stopped in reverse order, then a clean poweroff.
#[test]
#[ignore = "needs QEMU: boots the bootkit (minutes under TCG)"]
fn poweroff_request_stops_services_in_reverse_order() -> Result<()> {
    let image = image_with_services("poweroff_request", &power_services())?;
    let mut vm = boot("poweroff_request", &image, "power_request=poweroff")?;
    vm.wait_for("bootkit: ready in", BOOT_TIMEOUT)?;
    vm.wait_for("trigger: asking for poweroff", STEP_TIMEOUT)?;
    vm.wait_for("bootkit: poweroff", STEP_TIMEOUT)?;
    let status = vm.wait_exit(STEP_TIMEOUT)?;
    assert!(status.success(), "QEMU exits on poweroff: {status}");
    assert_stops_in_reverse_order(&vm.console());
    Ok(())
}

/// (e) reboot on request: the same orderly stop, then a reboot (QEMU runs with -no-reboot,
/// so a reboot ends it too; the console says which one happened).
#[test]
#[ignore = "needs QEMU: boots the bootkit (minutes under TCG)"]
fn reboot_request_stops_services_and_reboots() -> Result<()> {
    let image = image_with_services("reboot_request", &power_services())?;
    let mut vm = boot("reboot_request", &image, "power_request=reboot")?;
    vm.wait_for("bootkit: ready in", BOOT_TIMEOUT)?;
    vm.wait_for("trigger: asking for reboot", STEP_TIMEOUT)?;
    vm.wait_for("bootkit: reboot", STEP_TIMEOUT)?;
    vm.wait_exit(STEP_TIMEOUT)?;
    let console = vm.console();
    assert_stops_in_reverse_order(&console);
    assert!(
        !console.contains("bootkit: poweroff"),
        "a reboot, not a poweroff"
    );
    Ok(())
}

/// (f) The builder is reproducible on the real inputs: the qemu-test image built twice, into
/// two directories, gives bit-identical vmlinuz, initramfs, cmdline and manifest.
#[test]
#[ignore = "needs QEMU: boots the bootkit (minutes under TCG)"]
fn the_test_image_builds_bit_identical_twice() -> Result<()> {
    let config = base_config()?;
    let first = build("reproducible-1", &config)?;
    let second = build("reproducible-2", &config)?;
    for (a, b) in [
        (&first.kernel, &second.kernel),
        (&first.initrd, &second.initrd),
    ] {
        assert!(
            same_bytes(a, b)?,
            "{} and {} differ",
            a.display(),
            b.display()
        );
    }
    assert_eq!(first.cmdline, second.cmdline);
    let manifest = |image: &qemu_tests::TestImage| image.initrd.with_file_name("manifest.json");
    assert!(
        same_bytes(&manifest(&first), &manifest(&second))?,
        "the manifests (sha256 of every output, module list, rootfs digest) differ"
    );
    Ok(())
}

/// `init=`: after switch_root the rootfs's own init runs as PID 1 instead of the supervisor.
#[test]
#[ignore = "needs QEMU: boots the bootkit (minutes under TCG)"]
fn init_key_hands_pid_1_to_the_rootfs_init() -> Result<()> {
    let mut config = base_config()?;
    let mut own_init = bootkit_builder::Overlay::inline(
        "/sbin/own-init",
        "#!/bin/sh\necho \"own init runs as pid $$\"\nexec /usr/sbin/poweroff -f\n",
    );
    own_init.mode = Some(0o755);
    config.overlay.push(own_init);
    let image = build("own_init", &config)?;
    let mut vm = boot("own_init", &image, "init=/sbin/own-init")?;
    vm.wait_for("own init runs as pid 1", BOOT_TIMEOUT)?;
    let status = vm.wait_exit(STEP_TIMEOUT)?;
    assert!(
        status.success(),
        "its poweroff -f powered the machine off: {status}"
    );
    assert!(
        !vm.console().contains("bootkit: ready"),
        "the supervisor did not run"
    );
    Ok(())
}

/// A rootfs larger than the tmpfs: the error says how big both are and what to change.
#[test]
#[ignore = "needs QEMU: boots the bootkit (minutes under TCG)"]
fn a_tmpfs_too_small_for_the_rootfs_says_both_sizes() -> Result<()> {
    let image = image_with_services("tmpfs_too_small", &[])?;
    let mut vm = boot(
        "tmpfs_too_small",
        &image,
        "rootflags=mode=0755,size=1m bootkit.on_error=poweroff bootkit.on_error_delay=0",
    )?;
    vm.wait_for("FATAL: cannot unpack the rootfs archive", BOOT_TIMEOUT)?;
    let cause = vm.wait_for("cause:", STEP_TIMEOUT)?;
    assert!(
        cause.contains("1.0 MiB"),
        "the tmpfs size is given: {cause}"
    );
    assert!(cause.contains("size="), "the fix is named: {cause}");
    let status = vm.wait_exit(STEP_TIMEOUT)?;
    assert!(status.success(), "poweroff per bootkit.on_error: {status}");
    Ok(())
}

/// `bootkit.mode=shell`: a shell on the console, beside the services.
#[test]
#[ignore = "needs QEMU: boots the bootkit (minutes under TCG)"]
fn shell_mode_gives_a_shell_on_the_console() -> Result<()> {
    let image = image_with_services("shell_mode", &[])?;
    let mut vm = boot("shell_mode", &image, "bootkit.mode=shell")?;
    // The prompt and the ready line race: the shell starts just before the services.
    vm.wait_for_prompt("bootkit#", BOOT_TIMEOUT)?;
    vm.send_line("echo \"answer=$((6*7))\"")?;
    vm.wait_for("answer=42", STEP_TIMEOUT)?;
    // The services run beside the shell; under TCG their ready line can come after the answer.
    vm.wait_for_anywhere("bootkit: ready in", BOOT_TIMEOUT)?;
    vm.send_line("poweroff")?;
    let status = vm.wait_exit(STEP_TIMEOUT)?;
    assert!(status.success(), "poweroff from the shell: {status}");
    Ok(())
}

/// With the screen as /dev/console (the last `console=`, as on EMT's USB installer) the serial
/// line still gets every line of the init and its services.
#[test]
#[ignore = "needs QEMU: boots the bootkit (minutes under TCG)"]
fn lines_reach_every_console_not_only_dev_console() -> Result<()> {
    let image = image_with_services("two_consoles", &[])?;
    let mut vm = boot("two_consoles", &image, "console=tty0")?;
    // The service's output and the ready line race: wait for the end, then check both.
    vm.wait_for("hello: exited", BOOT_TIMEOUT)?;
    let console = vm.console();
    assert!(
        console.contains("hello: hello from the bootkit"),
        "service output"
    );
    assert!(
        console.contains("bootkit: ready in"),
        "the init's own lines"
    );
    Ok(())
}

/// `.ko.xz`, `.ko.zst` and `.ko.gz` modules load like plain `.ko` ones.
#[test]
#[ignore = "needs QEMU: boots the bootkit (minutes under TCG)"]
fn compressed_modules_load() -> Result<()> {
    let kernel_dir = compressed_kernel_dir()?;
    let mut config = base_config()?;
    config.kernel.deb = None;
    config.kernel.dir = Some(kernel_dir);
    let check = service(
        "check",
        r#"
command = "/bin/sh"
args = ["-c", "for m in nbd virtio_blk failover virtio_net; do test -d /sys/module/$m && echo loaded $m; done; ls /lib/modules/*/kernel/drivers/block"]
restart = "never"
"#,
    );
    config.overlay.push(check);
    let image = build("compressed_modules", &config)?;
    let mut vm = boot("compressed_modules", &image, "")?;
    // The check service's output and the ready line race: wait for its end, then look.
    vm.wait_for("check: exited with status 0", BOOT_TIMEOUT)?;
    let console = vm.console();
    for line in [
        "check: loaded nbd",
        "check: loaded virtio_blk",
        "check: loaded failover",
        "check: loaded virtio_net",
        "check: nbd.ko.xz",
        "check: virtio_blk.ko.zst",
    ] {
        assert!(console.contains(line), "{line:?} on the console");
    }
    assert!(!console.contains("not loaded"), "no module failed");
    Ok(())
}

/// A kernel directory with the test image's modules, some of them compressed the three ways
/// the kernel knows (xz with the CRC32 check the kernel's own decoder needs).
fn compressed_kernel_dir() -> Result<std::path::PathBuf> {
    use bootkit_builder::config::KernelSource;
    use std::io::Write;
    let deb = qemu_tests::require_kernel_deb()?;
    let tree = bootkit_builder::kernel::open(
        &KernelSource::Deb(deb),
        &bootkit_builder::Progress::hidden(),
    )?;
    let requested: Vec<String> = base_config()?.kernel.all_modules();
    let set = bootkit_builder::modules::select(&tree.modules_dir, &requested)?;
    let dir = common::images_dir().join("compressed-kernel");
    let _ = std::fs::remove_dir_all(&dir);
    let modules = dir.join("lib/modules").join(&tree.version);
    std::fs::create_dir_all(&modules)?;
    std::fs::copy(&tree.vmlinuz, dir.join("vmlinuz"))?;
    for index in ["modules.builtin", "modules.order"] {
        std::fs::copy(tree.modules_dir.join(index), modules.join(index))?;
    }
    for (relative, host) in &set.files {
        let data = std::fs::read(host)?;
        let (suffix, packed) = match relative.rsplit('/').next().unwrap_or("") {
            "nbd.ko" => {
                let mut encoder = liblzma::write::XzEncoder::new_stream(
                    Vec::new(),
                    liblzma::stream::Stream::new_easy_encoder(6, liblzma::stream::Check::Crc32)?,
                );
                encoder.write_all(&data)?;
                (".xz", encoder.finish()?)
            }
            "virtio_blk.ko" => (".zst", zstd::encode_all(&data[..], 3)?),
            "failover.ko" => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                encoder.write_all(&data)?;
                (".gz", encoder.finish()?)
            }
            _ => ("", data),
        };
        let target = modules.join(format!("{relative}{suffix}"));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(target, packed)?;
    }
    Ok(dir)
}

fn same_bytes(a: &std::path::Path, b: &std::path::Path) -> Result<bool> {
    Ok(std::fs::read(a)? == std::fs::read(b)?)
}
