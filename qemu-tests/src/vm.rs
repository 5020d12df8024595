//! One QEMU virtual machine with its serial console on a pipe.
//!
//! Safety nets, because a leaked QEMU eats a whole core of a 2-core machine:
//! - `Drop` kills QEMU's whole process group and reaps it, also when the test
//!   panics (unwinding runs `Drop`);
//! - QEMU gets `PR_SET_PDEATHSIG=SIGKILL`, so it dies with the test process
//!   even when `Drop` never runs (Ctrl-C, abort, a killed test binary);
//! - every wait has a deadline.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::console::{Console, TAIL_LINES, WaitOutcome};
use crate::error::{Error, Result, describe_status};
use crate::paths::target_dir;
use crate::slots::Slot;

/// How QEMU executes the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation: works everywhere (nested KVM hangs on these machines).
    Tcg,
    /// Hardware virtualisation, where /dev/kvm works.
    Kvm,
}

impl Accel {
    /// `BOOTKIT_QEMU_ACCEL=kvm` selects KVM; anything else (or unset) is TCG.
    pub fn from_env() -> Self {
        match std::env::var("BOOTKIT_QEMU_ACCEL") {
            Ok(v) if v.trim().eq_ignore_ascii_case("kvm") => Accel::Kvm,
            _ => Accel::Tcg,
        }
    }

    fn args(self) -> Vec<String> {
        match self {
            Accel::Tcg => vec!["-accel".into(), "tcg".into()],
            Accel::Kvm => vec!["-accel".into(), "kvm".into(), "-cpu".into(), "host".into()],
        }
    }
}

/// The guest-side address of [`VmConfig::user_net_forwarding`]'s forwards.
pub const GUEST_FORWARD_ADDRESS: &str = "10.0.2.100";

/// Everything needed to start a VM. Build with [`VmConfig::new`] and the
/// chained setters.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Names the log file `target/qemu-logs/<name>.log`; use the test's name.
    pub name: String,
    /// The kernel, for direct kernel boot.
    pub kernel: PathBuf,
    /// The initramfs, for direct kernel boot.
    pub initrd: PathBuf,
    /// The kernel command line. Include `console=ttyS0` to see the console.
    pub append: String,
    /// Guest memory in MiB (default 1024).
    pub memory_mib: u32,
    /// Virtual CPUs (default 1).
    pub cpus: u32,
    /// TCG, or KVM when `BOOTKIT_QEMU_ACCEL=kvm`.
    pub accel: Accel,
    /// Extra QEMU arguments, e.g. from [`VmConfig::user_net`].
    pub extra_args: Vec<String>,
    /// The QEMU program: `BOOTKIT_QEMU` or `qemu-system-x86_64`. The harness's
    /// own tests point it at a fake to test timeouts without a kernel.
    pub qemu: PathBuf,
    /// Words run before the QEMU program, e.g. `ip netns exec NS` to start QEMU inside a
    /// network namespace (see [`crate::netns`]); empty: QEMU is started directly.
    pub wrapper: Vec<String>,
    /// What starts the guest: QEMU's direct kernel boot, SeaBIOS or OVMF.
    pub firmware: Firmware,
    /// Let a guest reboot restart the machine (firmware again, same console); otherwise
    /// (`-no-reboot`, the default) a reboot ends QEMU like a poweroff.
    pub reboot: bool,
    /// Which serial port (ttyS<n>) is the console pipe; the ones before it go nowhere. 0 unless
    /// a test boots with a command line made for another port (smee's `console=ttyS1`).
    pub console_serial_port: u8,
}

/// What starts the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Firmware {
    /// `-kernel` + `-initrd` + `-append`, no firmware boot menu.
    DirectKernel,
    /// SeaBIOS, booting the devices in `bootindex` order (a NIC's iPXE option ROM, a disk).
    Bios,
    /// OVMF with this writable copy of its variable store (boot entries live there).
    Uefi {
        /// The VM's own copy of the OVMF variable store.
        vars: PathBuf,
    },
    /// OVMF's Secure Boot build ([`OVMF_CODE_SECBOOT`]: SMM-protected variables, q35 with
    /// SMM) with this writable variable store holding the enrolled keys (see
    /// [`crate::secure_boot::SecureBootVars`]); it runs only EFI binaries signed by db.
    SecureBoot {
        /// The VM's own copy of the enrolled variable store.
        vars: PathBuf,
    },
}

/// OVMF's firmware code and the pristine variable store that goes with it (Debian's `ovmf`).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// OVMF's pristine variable store; each UEFI VM gets its own copy.
pub const OVMF_VARS_TEMPLATE: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// OVMF built with Secure Boot and SMM (Debian's `ovmf`): its variable store can only be
/// changed through SMM, so the guest cannot drop the enrolled keys behind the firmware's back.
pub const OVMF_CODE_SECBOOT: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";

impl VmConfig {
    /// A VM named `name` booting `kernel` and `initrd` directly, with the defaults.
    pub fn new(name: &str, kernel: impl Into<PathBuf>, initrd: impl Into<PathBuf>) -> Self {
        Self {
            name: name.to_string(),
            kernel: kernel.into(),
            initrd: initrd.into(),
            append: String::new(),
            memory_mib: 1024,
            cpus: 1,
            accel: Accel::from_env(),
            extra_args: Vec::new(),
            qemu: std::env::var_os("BOOTKIT_QEMU")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("qemu-system-x86_64")),
            wrapper: Vec::new(),
            firmware: Firmware::DirectKernel,
            reboot: false,
            console_serial_port: 0,
        }
    }

    /// A machine that boots like real hardware: OVMF (UEFI) starts whatever its boot entries
    /// or the attached disks offer, no `-kernel`. `vars` is the machine's own copy of the
    /// variable store (make it with [`fresh_uefi_vars`]); reuse it to keep boot entries
    /// across boots.
    pub fn uefi(name: &str, vars: impl Into<PathBuf>) -> Self {
        let mut config = Self::new(name, PathBuf::new(), PathBuf::new());
        config.firmware = Firmware::Uefi { vars: vars.into() };
        config
    }

    /// [`VmConfig::uefi`] with Secure Boot: OVMF's Secure Boot build on q35 with SMM, and
    /// `vars` a variable store with enrolled keys (see
    /// [`crate::secure_boot::SecureBootVars::copy_for`]).
    pub fn uefi_secure_boot(name: &str, vars: impl Into<PathBuf>) -> Self {
        let mut config = Self::new(name, PathBuf::new(), PathBuf::new());
        config.firmware = Firmware::SecureBoot { vars: vars.into() };
        config
    }

    /// A legacy BIOS machine (SeaBIOS) that boots its devices in `bootindex` order, no
    /// `-kernel`. With `-nographic` SeaBIOS copies the text screen (its own and iPXE's
    /// messages) to the serial console.
    pub fn bios(name: &str) -> Self {
        let mut config = Self::new(name, PathBuf::new(), PathBuf::new());
        config.firmware = Firmware::Bios;
        config
    }

    /// A raw disk image on virtio-blk, booted by the firmware when the devices before it
    /// (see [`VmConfig::pxe_nic`]) do not boot: firmware boot order `bootindex`.
    pub fn boot_disk(self, image: &Path, bootindex: u32) -> Self {
        self.arg("-drive")
            .arg(format!(
                "file={},format=raw,if=none,id=bootdisk",
                image.display()
            ))
            .arg("-device")
            .arg(format!(
                "virtio-blk-pci,drive=bootdisk,bootindex={bootindex}"
            ))
    }

    /// A virtio-net NIC on tap `ifname` (see [`VmConfig::tap_nic`]) that the firmware
    /// network-boots from, first in the boot order. It keeps QEMU's default option ROM,
    /// Debian's iPXE (ipxe-qemu, found in QEMU's firmware path /usr/lib/ipxe/qemu), which
    /// network-boots under SeaBIOS and OVMF alike. Call it after choosing the firmware.
    ///
    /// Under OVMF the firmware's own IPv4 and IPv6 stacks are switched off, as a factory
    /// would set the firmware to boot the NIC's ROM only: otherwise, when iPXE exits to boot
    /// the disk, OVMF first tries its own PXE (which starts iPXE again) and HTTP boot over
    /// both protocols, minutes of timeouts before it reaches the disk.
    pub fn pxe_nic(self, id: &str, ifname: &str, mac: &str) -> Self {
        let uefi = matches!(
            self.firmware,
            Firmware::Uefi { .. } | Firmware::SecureBoot { .. }
        );
        let config = self
            .arg("-netdev")
            .arg(format!(
                "tap,id={id},ifname={ifname},script=no,downscript=no"
            ))
            .arg("-device")
            .arg(format!("virtio-net-pci,netdev={id},mac={mac},bootindex=1"));
        if !uefi {
            return config;
        }
        config
            .arg("-fw_cfg")
            .arg("name=opt/org.tianocore/IPv4Support,string=no")
            .arg("-fw_cfg")
            .arg("name=opt/org.tianocore/IPv6Support,string=no")
    }

    /// The machine's SMBIOS type 1 identity (what `dmidecode -t system` and
    /// /sys/class/dmi/id show): serial number and system UUID.
    pub fn smbios_system(self, serial: &str, uuid: &str) -> Self {
        // QEMU's option syntax: a comma inside a value is written twice.
        let serial = serial.replace(',', ",,");
        self.arg("-smbios")
            .arg(format!("type=1,serial={serial},uuid={uuid}"))
    }

    /// Lets a guest reboot restart the machine instead of ending QEMU (see [`VmConfig::reboot`]).
    pub fn allow_reboot(mut self) -> Self {
        self.reboot = true;
        self
    }

    /// A raw disk image on a virtio-blk controller (`/dev/vdX` in the guest).
    pub fn virtio_disk(self, image: &Path) -> Self {
        self.arg("-drive")
            .arg(format!("file={},format=raw,if=virtio", image.display()))
    }

    /// A raw disk image as a removable USB stick on an xHCI controller (`/dev/sdX`).
    pub fn usb_stick(self, id: &str, image: &Path) -> Self {
        self.arg("-drive")
            .arg(format!(
                "file={},format=raw,if=none,id={id}",
                image.display()
            ))
            .arg("-device")
            .arg("qemu-xhci,id=xhci")
            .arg("-device")
            .arg(format!("usb-storage,bus=xhci.0,drive={id},removable=on"))
    }

    /// The image from scripts/build-bootkit.sh (out/qemu-test) with its own
    /// command line and a restricted virtio NIC; errors name the command
    /// that builds a missing piece.
    pub fn test_image(name: &str) -> Result<Self> {
        let image = crate::paths::TestImage::load()?;
        Ok(Self::new(name, image.kernel, image.initrd)
            .append(&image.cmdline)
            .user_net())
    }

    /// Replaces the kernel command line.
    pub fn append(mut self, cmdline: &str) -> Self {
        self.append = cmdline.trim().to_string();
        self
    }

    /// The console pipe on ttyS`port` instead of ttyS0.
    pub fn console_on_serial_port(mut self, port: u8) -> Self {
        self.console_serial_port = port;
        self
    }

    /// Adds words to the end of the kernel command line.
    pub fn append_more(mut self, words: &str) -> Self {
        if !self.append.is_empty() {
            self.append.push(' ');
        }
        self.append.push_str(words.trim());
        self
    }

    /// Sets the guest memory in MiB.
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    /// Sets the number of virtual CPUs.
    pub fn cpus(mut self, cpus: u32) -> Self {
        self.cpus = cpus;
        self
    }

    /// Adds one QEMU argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// A virtio-net NIC on QEMU's user-mode network, `restrict=on` so the
    /// guest cannot reach anything outside this machine. `romfile=` drops the
    /// iPXE option ROM: the firmware would otherwise load it on every boot.
    pub fn user_net(self) -> Self {
        self.user_net_forwarding(&[])
    }

    /// [`VmConfig::user_net`] plus guest-to-host TCP forwards: each `(guest_port, host_port)`
    /// makes `10.0.2.100:guest_port` in the guest reach `127.0.0.1:host_port` on the host,
    /// the only way out of the restricted network (a log host, an NBD server in the test).
    pub fn user_net_forwarding(self, forwards: &[(u16, u16)]) -> Self {
        let mut netdev = "user,id=n0,restrict=on".to_string();
        for (guest_port, host_port) in forwards {
            netdev.push_str(&format!(
                ",guestfwd=tcp:{GUEST_FORWARD_ADDRESS}:{guest_port}-tcp:127.0.0.1:{host_port}"
            ));
        }
        self.arg("-netdev")
            .arg(netdev)
            .arg("-device")
            .arg("virtio-net-pci,netdev=n0,romfile=")
    }

    /// Starts QEMU through `wrapper` (a program and its arguments, which must exec QEMU in
    /// the end so that `Drop` still kills QEMU itself), e.g. `ip netns exec NS`.
    pub fn wrapped_in(mut self, wrapper: &[String]) -> Self {
        self.wrapper = wrapper.to_vec();
        self
    }

    /// A virtio-net NIC on an existing tap device `ifname` (created beforehand, e.g. in a
    /// network namespace; QEMU must run where the tap is), with a fixed MAC. `id` names the
    /// netdev and must differ between the NICs of one VM; NICs appear in the guest in the
    /// order they are added (eth0 first).
    pub fn tap_nic(self, id: &str, ifname: &str, mac: &str) -> Self {
        self.arg("-netdev")
            .arg(format!(
                "tap,id={id},ifname={ifname},script=no,downscript=no"
            ))
            .arg("-device")
            .arg(format!("virtio-net-pci,netdev={id},romfile=,mac={mac}"))
    }

    /// The program to start and its arguments before QEMU's own: QEMU itself, or the
    /// wrapper followed by QEMU.
    fn program(&self) -> (PathBuf, Vec<String>) {
        match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut args = rest.to_vec();
                args.push(self.qemu.display().to_string());
                (PathBuf::from(first), args)
            }
            None => (self.qemu.clone(), Vec::new()),
        }
    }

    /// The full QEMU argument list (without the program).
    pub fn qemu_args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec!["-nographic".into()];
        for _ in 0..self.console_serial_port {
            args.extend(["-serial".into(), "null".into()]);
        }
        args.extend([
            // The serial port is the console; the monitor stays off so nothing
            // the test types can reach QEMU itself.
            "-serial".into(),
            "stdio".into(),
            "-monitor".into(),
            "none".into(),
            // No default NIC: networking only when a test asks for it.
            "-nic".into(),
            "none".into(),
            "-m".into(),
            self.memory_mib.to_string(),
            "-smp".into(),
            self.cpus.to_string(),
        ]);
        if !self.reboot {
            args.push("-no-reboot".into());
        }
        args.extend(self.accel.args());
        match &self.firmware {
            Firmware::Uefi { vars } => args.extend([
                "-drive".into(),
                format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"),
                "-drive".into(),
                format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
            ]),
            // OVMF's Secure Boot build is built to require SMM (its variable store is
            // written only from SMM), so q35 with SMM on and the flash marked secure.
            Firmware::SecureBoot { vars } => args.extend([
                "-machine".into(),
                "q35,smm=on".into(),
                "-global".into(),
                "driver=cfi.pflash01,property=secure,value=on".into(),
                "-drive".into(),
                format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE_SECBOOT}"),
                "-drive".into(),
                format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
            ]),
            Firmware::Bios => {}
            Firmware::DirectKernel => args.extend([
                "-kernel".into(),
                self.kernel.display().to_string(),
                "-initrd".into(),
                self.initrd.display().to_string(),
                "-append".into(),
                self.append.clone(),
            ]),
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// A running VM. Dropping it kills QEMU.
pub struct Vm {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    console: Arc<Console>,
    /// Byte offset where the next `wait_for` starts searching.
    cursor: usize,
    log: PathBuf,
    started: Instant,
    status: Option<ExitStatus>,
    _slot: Slot,
}

impl Vm {
    /// Starts QEMU. Waits first for a free VM slot (see `crate::slots`), so
    /// timeouts only count time the VM actually runs.
    pub fn boot(config: VmConfig) -> Result<Vm> {
        let files = match &config.firmware {
            Firmware::Uefi { vars } => vec![
                ("UEFI firmware", Path::new(OVMF_CODE)),
                ("UEFI variables", vars.as_path()),
            ],
            Firmware::SecureBoot { vars } => vec![
                ("Secure Boot UEFI firmware", Path::new(OVMF_CODE_SECBOOT)),
                ("UEFI variables with enrolled keys", vars.as_path()),
            ],
            Firmware::Bios => Vec::new(),
            Firmware::DirectKernel => {
                vec![("kernel", &*config.kernel), ("initrd", &*config.initrd)]
            }
        };
        for (what, path) in files {
            if !path.exists() {
                return Err(Error::Other(format!(
                    "VM `{}`: {what} {} does not exist",
                    config.name,
                    path.display()
                )));
            }
        }
        let slot = Slot::acquire();

        let log = log_path(&config.name);
        let mut log_file = open_log(&log, &config)?;

        let (program, mut args) = config.program();
        args.extend(config.qemu_args());
        let mut cmd = Command::new(&program);
        cmd.args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so Drop can kill QEMU and anything it
            // started, and a terminal's Ctrl-C goes to the test process only.
            .process_group(0);
        crate::child::die_with_this_process(&mut cmd);
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|e| Error::Io {
            context: format!(
                "starting {} (install it with {}, or set BOOTKIT_QEMU)",
                program.display(),
                crate::paths::SETUP_CMD
            ),
            source: e,
        })?;

        let console = Arc::new(Console::default());
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        if let Some(out) = stdout {
            let c = Arc::clone(&console);
            // The log file moves into the reader; a failed clone only costs the log.
            let file = log_file.take();
            std::thread::Builder::new()
                .name(format!("qemu-stdout-{}", config.name))
                .spawn(move || c.pump_stdout(out, file))
                .map_err(Error::io("spawning the console reader thread"))?;
        }
        if let Some(err) = stderr {
            let c = Arc::clone(&console);
            std::thread::Builder::new()
                .name(format!("qemu-stderr-{}", config.name))
                .spawn(move || c.pump_stderr(err))
                .map_err(Error::io("spawning the stderr reader thread"))?;
        }

        Ok(Vm {
            name: config.name,
            stdin: child.stdin.take(),
            child,
            console,
            cursor: 0,
            log,
            started,
            status: None,
            _slot: slot,
        })
    }

    /// The VM's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The console log file, kept after the test for debugging.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Time since QEMU was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Types `line` and a newline into the serial console.
    pub fn send_line(&mut self, line: &str) -> Result<()> {
        self.send(format!("{line}\n").as_bytes())
    }

    /// Writes raw bytes to the serial console.
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let name = self.name.clone();
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| Error::Other(format!("VM `{name}`: console input is closed")))?;
        stdin
            .write_all(bytes)
            .and_then(|()| stdin.flush())
            .map_err(Error::io(format!(
                "VM `{name}`: writing to the serial console"
            )))
    }

    /// Waits for a whole console line containing `pattern` (substring, no
    /// regex) and returns that line.
    ///
    /// Searching starts after the line matched by the previous `wait_for*`
    /// (expect-style), so waiting twice for the same text finds two
    /// occurrences. [`Vm::count`] and [`Vm::console`] see the whole transcript.
    /// The timeout is multiplied by `BOOTKIT_TEST_TIMEOUT_SCALE` (default 1).
    pub fn wait_for(&mut self, pattern: &str, timeout: Duration) -> Result<String> {
        self.wait_for_any(&[pattern], timeout).map(|(_, line)| line)
    }

    /// Waits for a line containing any of `patterns`; returns which one
    /// matched (its index) and the line. Use it to fail fast on an error
    /// marker instead of waiting out the timeout.
    pub fn wait_for_any(
        &mut self,
        patterns: &[&str],
        timeout: Duration,
    ) -> Result<(usize, String)> {
        self.wait_inner(patterns, false, timeout)
    }

    /// Waits until a console line anywhere in the transcript (before or after
    /// the `wait_for` cursor) contains `pattern`; the cursor does not move.
    /// For lines whose order against the ones already waited for is a race.
    pub fn wait_for_anywhere(&mut self, pattern: &str, timeout: Duration) -> Result<String> {
        let cursor = self.cursor;
        self.cursor = 0;
        let found = self.wait_for(pattern, timeout);
        self.cursor = cursor;
        found
    }

    /// Like [`Vm::wait_for`], but also matches the unfinished last line, for
    /// prompts printed without a newline (`login: `, `# `). Returns the text
    /// of that line so far; the next wait starts after it.
    pub fn wait_for_prompt(&mut self, pattern: &str, timeout: Duration) -> Result<String> {
        self.wait_inner(&[pattern], true, timeout)
            .map(|(_, line)| line)
    }

    fn wait_inner(
        &mut self,
        patterns: &[&str],
        partial: bool,
        timeout: Duration,
    ) -> Result<(usize, String)> {
        let timeout = scaled(timeout);
        match self.console.wait(self.cursor, patterns, partial, timeout) {
            WaitOutcome::Found(found) => {
                self.cursor = found.next;
                Ok((found.index, found.line))
            }
            WaitOutcome::Eof => {
                // stdout closes a moment before QEMU is reapable.
                let status = self.try_reap(Duration::from_secs(2));
                Err(Error::Exited {
                    vm: self.name.clone(),
                    wanted: describe_patterns(patterns),
                    status: describe_status(status),
                    log: self.log.clone(),
                    tail: self.console.tail(TAIL_LINES),
                })
            }
            WaitOutcome::TimedOut => Err(Error::Timeout {
                vm: self.name.clone(),
                wanted: describe_patterns(patterns),
                after: timeout,
                log: self.log.clone(),
                tail: self.console.tail(TAIL_LINES),
            }),
        }
    }

    /// Waits for QEMU to exit (guest poweroff, or reboot with `-no-reboot`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let timeout = scaled(timeout);
        match self.try_reap(timeout) {
            Some(status) => {
                // Let the reader drain the last bytes into the transcript/log.
                self.console.wait_eof(Duration::from_secs(2));
                Ok(status)
            }
            None => Err(Error::StillRunning {
                vm: self.name.clone(),
                after: timeout,
                log: self.log.clone(),
                tail: self.console.tail(TAIL_LINES),
            }),
        }
    }

    /// QEMU's exit status if it has ended (guest poweroff, a crash), without waiting.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.try_reap(Duration::ZERO)
    }

    /// The whole console transcript so far (`\r` removed).
    pub fn console(&self) -> String {
        self.console.text()
    }

    /// What QEMU itself wrote to stderr.
    pub fn qemu_stderr(&self) -> String {
        self.console.stderr()
    }

    /// How many console lines so far contain `pattern`.
    pub fn count(&self, pattern: &str) -> usize {
        self.console.count(pattern)
    }

    /// Moves the `wait_for` cursor to the end of what has arrived so far, so
    /// the next wait only sees new output (e.g. after `send_line`).
    pub fn skip_to_end(&mut self) {
        self.cursor = self.console.len();
    }

    /// The last console lines and QEMU's stderr, for custom failure messages.
    pub fn tail(&self) -> String {
        self.console.tail(TAIL_LINES)
    }

    /// Kills QEMU now (Drop does the same).
    pub fn kill(&mut self) {
        if self.status.is_none() {
            // Kill the group while its leader is unreaped, so the id cannot
            // have been reused by an unrelated process.
            if let Ok(pid) = i32::try_from(self.child.id()) {
                // SAFETY: plain syscall; a stale group only yields ESRCH.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
        self.stdin = None;
        self.console.wait_eof(Duration::from_secs(2));
    }

    /// Polls for exit until `timeout`; QEMU offers no exit notification we can
    /// block on with a deadline, and 20 ms is well below any boot step.
    fn try_reap(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.status {
                return Some(status);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

fn describe_patterns(patterns: &[&str]) -> String {
    let quoted: Vec<String> = patterns.iter().map(|p| format!("{p:?}")).collect();
    quoted.join(" or ")
}

/// Applies `BOOTKIT_TEST_TIMEOUT_SCALE` (for slow machines or debugging).
pub fn scaled(timeout: Duration) -> Duration {
    let scale = std::env::var("BOOTKIT_TEST_TIMEOUT_SCALE")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    timeout.mul_f64(scale)
}

/// `target/qemu-logs/<name>.log`, the name reduced to safe characters.
pub fn log_path(name: &str) -> PathBuf {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    target_dir().join("qemu-logs").join(format!("{safe}.log"))
}

fn open_log(path: &Path, config: &VmConfig) -> Result<Option<std::fs::File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    }
    let mut f =
        std::fs::File::create(path).map_err(Error::io(format!("creating {}", path.display())))?;
    // The exact command line first, so a failed boot can be rerun by hand.
    let (program, mut args) = config.program();
    args.extend(config.qemu_args());
    let mut header = format!("# {}", shell_quote(&program.display().to_string()));
    for a in args {
        header.push(' ');
        header.push_str(&shell_quote(&a));
    }
    header.push('\n');
    f.write_all(header.as_bytes())
        .map_err(Error::io(format!("writing {}", path.display())))?;
    Ok(Some(f))
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=.,/:+@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A fresh UEFI variable store for one machine at `dest`: a copy of OVMF's template.
pub fn fresh_uefi_vars(dest: &Path) -> Result<()> {
    std::fs::copy(OVMF_VARS_TEMPLATE, dest)
        .map(|_| ())
        .map_err(Error::io(format!(
            "copying {OVMF_VARS_TEMPLATE} to {} (install Debian's ovmf: {})",
            dest.display(),
            crate::paths::SETUP_CMD
        )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_pair(args: &[String], flag: &str, value: &str) -> bool {
        args.windows(2)
            .any(|pair| pair[0] == flag && pair[1] == value)
    }

    #[test]
    fn a_network_booted_bios_machine_boots_nic_then_disk_and_survives_reboots() {
        let args = VmConfig::bios("pxe")
            .pxe_nic("n0", "tap0", "52:54:00:00:00:01")
            .boot_disk(Path::new("/tmp/disk.raw"), 2)
            .smbios_system("SN, with comma", "6e0d6a1a-0000-4000-8000-000000000001")
            .allow_reboot()
            .qemu_args();
        assert!(
            !args
                .iter()
                .any(|arg| arg == "-kernel" || arg == "-no-reboot")
        );
        assert!(has_pair(
            &args,
            "-device",
            "virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01,bootindex=1"
        ));
        assert!(has_pair(
            &args,
            "-device",
            "virtio-blk-pci,drive=bootdisk,bootindex=2"
        ));
        assert!(has_pair(
            &args,
            "-smbios",
            "type=1,serial=SN,, with comma,uuid=6e0d6a1a-0000-4000-8000-000000000001"
        ));
        assert!(!args.iter().any(|arg| arg.contains("tianocore")));
    }

    #[test]
    fn a_network_booted_uefi_machine_leaves_network_boot_to_the_nic_rom() {
        let args = VmConfig::uefi("pxe", "/tmp/vars.fd")
            .pxe_nic("n0", "tap0", "52:54:00:00:00:02")
            .qemu_args();
        for stack in ["IPv4Support", "IPv6Support"] {
            assert!(has_pair(
                &args,
                "-fw_cfg",
                &format!("name=opt/org.tianocore/{stack},string=no")
            ));
        }
        assert!(args.iter().any(|arg| arg.contains("file=/tmp/vars.fd")));
        assert!(
            args.iter().any(|arg| arg == "-no-reboot"),
            "reboot ends QEMU unless allowed"
        );
    }
}
