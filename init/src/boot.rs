//! The boot sequence of PID 1, stage by stage: early mounts, kernel command line, modules, root
//! filesystem in RAM, switch_root, then the supervisor until the machine goes down.

use bootkit_common::error_chain;
use std::ffi::CString;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use bootkit_common::layout::{MODULES_LOAD_DIR, SERVICES_DIR};
use bootkit_common::service_def::BootMode;

use crate::cmdline::Cmdline;
use crate::fatal::{self, Fatal};
use crate::power::{self, PowerAction};
use crate::{modules, mounts, network, panics, rootfs, shell, supervisor, targets};

/// Where the tmpfs root is mounted before switch_root.
const NEWROOT: &str = "/newroot";

/// Milliseconds spent in each stage, for the ready line.
#[derive(Debug, Default, Clone, Copy)]
struct StageTimes {
    mounts: Duration,
    modules: Duration,
    rootfs: Duration,
    services: Duration,
}

/// PID 1's main. Never returns.
pub fn run() -> ! {
    let started = Instant::now();
    // Before any thread exists, so that a panic anywhere is logged and fails its targets.
    panics::install();
    // Before any thread exists, so every thread inherits the mask.
    let signals = supervisor::block_signals();
    // SAFETY: still single-threaded; the kernel starts init with no PATH at all.
    unsafe { std::env::set_var("PATH", "/usr/sbin:/usr/bin:/sbin:/bin") };

    let mounts_started = Instant::now();
    let mounted = mounts::setup_early();
    if let Err(err) = mounts::attach_console() {
        crate::warn!(
            "init",
            "cannot open /dev/console: {err}; logging to what the kernel gave"
        );
    }
    crate::log::open_kmsg();
    crate::log::open_other_consoles();
    let mount_report = match mounted {
        Ok(report) => report,
        Err(err) => fatal::handle(
            &Fatal::caused_by(
                "cannot set up the early filesystems",
                &err,
                "the kernel needs proc, sysfs, devtmpfs and tmpfs built in (bootkit-build check-kernel)",
            ),
            crate::cmdline::OnError::Shell,
            crate::cmdline::DEFAULT_ERROR_DELAY,
        ),
    };
    let mut times = StageTimes {
        mounts: mounts_started.elapsed(),
        ..StageTimes::default()
    };
    for skipped in &mount_report.skipped {
        crate::warn!("mounts", "optional mount skipped: {skipped}");
    }

    let cmdline = read_cmdline();
    // From here on every line is also buffered for syslog_host=, sent once the network is up.
    let syslog = network::forward_logs(&cmdline.env);
    crate::info!(
        "bootkit",
        "starting in {} mode (on_error={})",
        cmdline.mode.as_str(),
        cmdline.on_error.as_str()
    );
    if let Err(err) = signals {
        crate::warn!(
            "init",
            "cannot block signals for the supervisor: {err}",
            err = error_chain(&err)
        );
    }
    power::disable_ctrl_alt_del();

    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        stages(
            &cmdline,
            started,
            &mut times,
            syslog,
            &mount_report.waiting_for_modules,
        )
    }));
    let fatal = match outcome {
        Ok(Ok(action)) => power::finish(action),
        Ok(Err(fatal)) => fatal,
        Err(panic) => Fatal::new(
            "the init crashed",
            panics::take_last_on_this_thread().map_or_else(
                || panics::payload_message(panic.as_ref()),
                |report| report.to_string(),
            ),
            "this is a bug in the bootkit: report it with the console output above",
        ),
    };
    fatal::handle(&fatal, cmdline.on_error, cmdline.on_error_delay)
}

fn read_cmdline() -> Cmdline {
    let text = fs::read_to_string("/proc/cmdline").unwrap_or_else(|err| {
        crate::warn!(
            "cmdline",
            "cannot read /proc/cmdline: {err}; using defaults"
        );
        String::new()
    });
    let cmdline = Cmdline::parse(&text);
    for warning in &cmdline.warnings {
        crate::warn!("cmdline", "{warning}");
    }
    cmdline
}

/// Everything after the early mounts; returns the power action the supervisor was asked for.
fn stages(
    cmdline: &Cmdline,
    started: Instant,
    times: &mut StageTimes,
    syslog: Option<bootkit_net::syslog::ForwarderTask>,
    mounts_waiting_for_modules: &[&'static mounts::MountSpec],
) -> Result<PowerAction, Fatal> {
    // The modules load in the background while the rootfs unpacks: both are mostly waiting
    // on the kernel, and a machine has more than one CPU.
    let loading = start_modules(cmdline);
    let stage = Instant::now();
    prepare_root(cmdline)?;
    times.rootfs = stage.elapsed();
    times.modules = report_modules(loading.wait());
    for failed in mounts::mount_after_modules(mounts_waiting_for_modules) {
        crate::warn!("mounts", "optional mount skipped: {failed}");
    }

    if let Some(init) = &cmdline.init {
        exec_rootfs_init(init, cmdline);
    }
    network::start(&cmdline.env, syslog);
    if cmdline.mode == BootMode::Shell {
        start_mode_shell();
    }

    let stage = Instant::now();
    let config = supervisor::Config {
        services_dir: SERVICES_DIR.into(),
        mode: cmdline.mode,
        env: cmdline.env.clone(),
        targets: targets::all(),
    };
    let mut on_ready = |report: &supervisor::ReadyReport| {
        times.services = stage.elapsed();
        crate::info!(
            "bootkit",
            "ready in {} ms (mounts {}, modules {}, rootfs {}, services {}); {} services",
            started.elapsed().as_millis(),
            times.mounts.as_millis(),
            times.modules.as_millis(),
            times.rootfs.as_millis(),
            times.services.as_millis(),
            report.services
        );
    };
    supervisor::run(config, &mut on_ready).map_err(|err| {
        Fatal::caused_by(
            "the service supervisor stopped",
            &err,
            format!("the service definitions in {SERVICES_DIR}"),
        )
    })
}

fn start_modules(cmdline: &Cmdline) -> modules::Loading {
    let mut names = modules::names_from_conf_dir(Path::new(MODULES_LOAD_DIR));
    names.extend(cmdline.modules_load.iter().cloned());
    names.extend(modules_for_network_keys(cmdline));
    let params = |name: &str| module_params(cmdline, name);
    modules::start(&modules::running_kernel_modules_dir(), &names, &params)
}

/// The parameters module `name` is loaded with: the command line's `name.param=` ones, and
/// for nbd, unless the command line sets `nbd.nbds_max=`, as many devices as `bootkit.nbd=`
/// names. nbd's own default makes 16 devices at load, each a block device the kernel
/// registers (about 100 ms of a TCG boot, issue 17 §4) and nobody uses; with no
/// `bootkit.nbd=` it makes none.
fn module_params(cmdline: &Cmdline, name: &str) -> String {
    let mut params = cmdline.module_params(name);
    if name == "nbd" && !cmdline.env.iter().any(|(key, _)| key == "nbd.nbds_max") {
        if !params.is_empty() {
            params.push(' ');
        }
        params.push_str(&format!(
            "nbds_max={}",
            network::nbd_devices_needed(&cmdline.env)
        ));
    }
    params
}

/// Drivers that the command line's network keys need and that images ship without loading
/// (`[kernel] shipped_modules`): dracut's `bond=` needs `bonding`, which is not loaded unasked
/// because loading it makes an idle `bond0` on every boot. Loaded with the rest, before the
/// network starts.
fn modules_for_network_keys(cmdline: &Cmdline) -> Vec<String> {
    let asks_for_bonds = cmdline.env.iter().any(|(key, _)| key == "bond");
    if asks_for_bonds {
        vec!["bonding".to_string()]
    } else {
        Vec::new()
    }
}

/// Log what the module load did; returns how long it took.
fn report_modules(report: modules::LoadReport) -> Duration {
    for name in &report.missing {
        crate::warn!(
            "modules",
            "module {name} is not in the image: add it to kernel.modules in the image config"
        );
    }
    for (name, why) in &report.failed {
        crate::warn!("modules", "module {name} not loaded: {why}");
    }
    crate::info!(
        "modules",
        "loaded {} in {} ms ({}){}{}",
        report.loaded.len(),
        report.elapsed.as_millis(),
        report.loaded.join(" "),
        list_suffix("already loaded", &report.already_loaded),
        list_suffix("built in", &report.builtin),
    );
    report.elapsed
}

fn list_suffix(label: &str, names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!("; {label}: {}", names.join(" "))
    }
}

/// tmpfs, unpack, switch_root.
fn prepare_root(cmdline: &Cmdline) -> Result<(), Fatal> {
    if let Some(root) = cmdline.root.as_deref().filter(|root| *root != "tmpfs") {
        return Err(Fatal::new(
            format!("root={root} is not supported"),
            "the bootkit runs its root filesystem from RAM",
            "boot with root=tmpfs, or without root=",
        ));
    }
    let newroot = Path::new(NEWROOT);
    rootfs::mount_tmpfs(newroot, cmdline.rootflags.as_deref()).map_err(|err| {
        Fatal::caused_by(
            format!("cannot mount the tmpfs root on {NEWROOT}"),
            &err,
            "rootflags= on the kernel command line (e.g. rootflags=mode=0755,size=1G)",
        )
    })?;
    let archive = rootfs::find_archive(cmdline.rootfs.as_deref()).map_err(|err| {
        Fatal::caused_by(
            "no rootfs archive in the initramfs",
            &err,
            "the initramfs was built with a rootfs (bootkit-build inspect INITRAMFS), or bootkit.rootfs= names it",
        )
    })?;
    rootfs::unpack(&archive, newroot).map_err(|err| {
        Fatal::caused_by(
            format!("cannot unpack the rootfs archive {}", archive.display()),
            &err,
            "the rootfs archive (bootkit-build inspect INITRAMFS lists it); when out of space, the RAM \
             given to the machine and rootflags=size=",
        )
    })?;
    ensure_tmp(newroot);
    rootfs::switch_root(newroot).map_err(|err| {
        Fatal::caused_by(
            "cannot switch to the new root",
            &err,
            "that the initramfs is a real initramfs (the init must run as /init of it)",
        )
    })
}

/// Programs (and tempfile) expect a world-writable, sticky /tmp, but a rootfs archive may
/// have none: EMT's drops ./tmp, and a rootfs made of services and programs has no reason to
/// carry it. A failure is only a warning: most services never use /tmp.
fn ensure_tmp(newroot: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = newroot.join("tmp");
    if tmp.exists() {
        return;
    }
    let made = fs::create_dir(&tmp)
        .and_then(|()| fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)));
    if let Err(err) = made {
        crate::warn!("rootfs", "cannot create /tmp in the new root: {err}");
    }
}

/// `init=`: hand the machine to the rootfs's own init. Returns only if exec failed, after
/// reporting why; the supervisor then takes over.
fn exec_rootfs_init(init: &str, cmdline: &Cmdline) {
    crate::info!("bootkit", "init={init}: handing over to it");
    let Ok(program) = CString::new(init) else {
        crate::error!(
            "bootkit",
            "init={init:?} contains a NUL byte; supervising instead"
        );
        return;
    };
    let env: Vec<CString> = cmdline
        .env
        .iter()
        .filter_map(|(key, value)| CString::new(format!("{key}={value}")).ok())
        .collect();
    let Err(err) = nix::unistd::execve(&program, std::slice::from_ref(&program), &env);
    crate::error!(
        "bootkit",
        "cannot exec init={init}: {err}; supervising instead"
    );
}

fn start_mode_shell() {
    if !shell::available() {
        crate::warn!(
            "bootkit",
            "bootkit.mode=shell but the image has no {}",
            shell::SHELL
        );
        return;
    }
    // The supervisor reaps it like any orphan; the child handle is not needed.
    match shell::spawn_on_console() {
        Ok(child) => crate::info!("bootkit", "shell on the console (pid {})", child.id()),
        Err(err) => crate::warn!("bootkit", "cannot start the shell: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bond_on_the_command_line_asks_for_the_bonding_driver() {
        let bonded = Cmdline::parse("console=ttyS0 bond=bond0:eth0,eth1:mode=active-backup");
        assert_eq!(modules_for_network_keys(&bonded), ["bonding"]);
        let plain = Cmdline::parse("console=ttyS0 ip=dhcp vlan=eth0.42:eth0");
        assert!(modules_for_network_keys(&plain).is_empty());
    }

    #[test]
    fn nbd_makes_only_the_devices_the_command_line_names() {
        let two = Cmdline::parse(
            "bootkit.nbd=nbd0:10.0.2.2:10809/a bootkit.nbd=/dev/nbd2:10.0.2.2:10809/b nbd.max_part=4",
        );
        assert_eq!(module_params(&two, "nbd"), "max_part=4 nbds_max=3");
        assert_eq!(module_params(&Cmdline::parse("quiet"), "nbd"), "nbds_max=0");
        let asked = Cmdline::parse("nbd.nbds_max=8 bootkit.nbd=nbd0:10.0.2.2:10809/a");
        assert_eq!(
            module_params(&asked, "nbd"),
            "nbds_max=8",
            "the operator's word wins"
        );
        assert_eq!(module_params(&two, "virtio_net"), "");
    }
}
