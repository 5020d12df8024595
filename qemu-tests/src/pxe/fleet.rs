//! The scenario's machines: started `jobs` at a time on the namespace's bridge, watched on
//! their consoles and through the admin API until each has booted its installed disk and
//! the provisioner shows it provisioned.

use bootkit_common::error_chain;
use std::path::Path;
use std::time::Duration;

use super::admin::{AdminApi, NodeView};
use super::{BRIDGE, INSTALLED_MARKER, Machine, NodeReport, Platform, Step};
use crate::error::{Error, Result};
use crate::netns::{Daemon, NetNs};
use crate::stack::Stack;
use crate::vm::{Vm, VmConfig, fresh_uefi_vars, scaled};

/// The installed disk: the test OS image (about 70 MB) plus room.
const DISK_BYTES: u64 = 512 << 20;
/// The bootkit holds containerd's images and the OS image stream in RAM.
const VM_MEMORY_MIB: u32 = 2048;
/// TCG on a shared 2-core machine: firmware, two network boots, the bootkit, pulling the
/// action images and writing the OS image. Scaled by `BOOTKIT_TEST_TIMEOUT_SCALE`.
const NODE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How often the consoles and the provisioner's view are checked.
const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// iPXE's DHCP line: every network boot prints it once (BIOS ROM and UEFI driver alike).
const NETWORK_BOOT: &str = "Configuring (net0";

/// What the machines share: where they run and what watches them.
pub(super) struct Context<'a> {
    pub ns: &'a NetNs,
    pub work_dir: &'a Path,
    pub stack: &'a mut Stack,
    pub site_dhcp: &'a mut Daemon,
    pub api: &'a AdminApi<'a>,
    pub say: &'a dyn Fn(&str),
}

/// A machine whose VM runs.
struct Running {
    machine: Machine,
    vm: Vm,
    steps: Vec<(Step, Duration)>,
}

impl Running {
    fn has(&self, step: &Step) -> bool {
        self.steps.iter().any(|(seen, _)| seen == step)
    }

    fn finished(&self) -> bool {
        [Step::LocalBoot, Step::LocalDisk, Step::Provisioned]
            .iter()
            .all(|step| self.has(step))
    }

    fn report(self) -> NodeReport {
        NodeReport {
            console_log: self.vm.log_path().to_path_buf(),
            machine: self.machine,
            steps: self.steps,
        }
    }
}

/// Runs `machines` to the end, at most `jobs` at once; their reports in the order they
/// finished.
pub(super) fn run(
    context: Context<'_>,
    machines: Vec<Machine>,
    jobs: usize,
) -> Result<Vec<NodeReport>> {
    let mut waiting = machines.into_iter();
    let mut running: Vec<Running> = Vec::new();
    let mut done = Vec::new();
    loop {
        while running.len() < jobs.max(1) {
            let Some(machine) = waiting.next() else {
                break;
            };
            let vm = boot(&context, &machine)?;
            (context.say)(&format!("node {}: powered on", machine.label()));
            running.push(Running {
                machine,
                vm,
                steps: Vec::new(),
            });
        }
        if running.is_empty() {
            return Ok(done);
        }
        std::thread::sleep(POLL_INTERVAL);
        context.stack.check_running()?;
        context.site_dhcp.check_running()?;
        let nodes = context.api.nodes()?;
        for machine in &mut running {
            observe(&context, &nodes, machine)?;
        }
        // Finished VMs stop as they are dropped here; the next machines start.
        let (finished, still): (Vec<Running>, Vec<Running>) =
            running.into_iter().partition(Running::finished);
        running = still;
        for machine in finished {
            let report = machine.report();
            (context.say)(&report.summary());
            done.push(report);
        }
    }
}

fn boot(context: &Context<'_>, machine: &Machine) -> Result<Vm> {
    let tap = machine.tap();
    context.ns.add_tap(&tap, BRIDGE)?;
    let disk = context.work_dir.join(format!("disk-{}.raw", machine.name));
    std::fs::File::create(&disk)
        .and_then(|file| file.set_len(DISK_BYTES))
        .map_err(Error::io(format!(
            "creating the blank disk {}",
            disk.display()
        )))?;
    let config = match machine.platform {
        Platform::Bios => VmConfig::bios(&machine.vm_name()),
        Platform::Uefi => {
            let vars = context
                .work_dir
                .join(format!("OVMF_VARS-{}.fd", machine.name));
            fresh_uefi_vars(&vars)?;
            VmConfig::uefi(&machine.vm_name(), vars)
        }
    };
    Vm::boot(
        config
            .memory_mib(VM_MEMORY_MIB)
            .wrapped_in(&context.ns.exec_prefix())
            .pxe_nic("n0", &tap, machine.mac)
            .boot_disk(&disk, 2)
            .smbios_system(machine.serial, machine.uuid)
            .allow_reboot(),
    )
}

/// Records the steps `running` has newly reached; `Err` when it failed, its VM ended too
/// early, or it ran out of time.
fn observe(context: &Context<'_>, nodes: &[NodeView], running: &mut Running) -> Result<()> {
    let node = nodes.iter().find(|node| node.is(&running.machine));
    let mut reached = console_steps(&running.vm);
    if let Some(node) = node {
        reached.extend(provisioner_steps(context.api, node)?);
    }
    for step in reached {
        if !running.has(&step) {
            let at = running.vm.elapsed();
            (context.say)(&format!(
                "node {}: {step} ({} s)",
                running.machine.name,
                at.as_secs()
            ));
            running.steps.push((step, at));
        }
    }
    if let Some(node) = node.filter(|node| node.state == "failed") {
        let why = node.failure.as_deref().unwrap_or("no reason given");
        return Err(failure(
            context,
            running,
            &format!("the node failed: {why}"),
        ));
    }
    // The installed test OS powers off after its marker; before that, an exit is a failure.
    if !running.has(&Step::LocalDisk)
        && let Some(status) = running.vm.exit_status()
    {
        return Err(failure(
            context,
            running,
            &format!("QEMU exited ({status}) before the installed system booted"),
        ));
    }
    if running.vm.elapsed() > scaled(NODE_TIMEOUT) {
        return Err(failure(
            context,
            running,
            &format!("not provisioned and booted from its disk after {NODE_TIMEOUT:?}"),
        ));
    }
    Ok(())
}

/// Steps visible on the console: network boots, the bootkit, the installed system.
fn console_steps(vm: &Vm) -> Vec<Step> {
    let network_boots = vm.count(NETWORK_BOOT);
    [
        (network_boots >= 1, Step::Pxe),
        (vm.count(super::BOOTKIT_STARTED) >= 1, Step::Bootkit),
        (network_boots >= 2, Step::Reboot),
        (vm.count(INSTALLED_MARKER) >= 1, Step::LocalDisk),
    ]
    .into_iter()
    .filter_map(|(reached, step)| reached.then_some(step))
    .collect()
}

/// Steps the provisioner shows: discovery, each action, local boot, provisioned.
fn provisioner_steps(api: &AdminApi<'_>, node: &NodeView) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    if matches!(
        node.state.as_str(),
        "discovered" | "provisioning" | "provisioned" | "failed"
    ) {
        steps.push(Step::Discovered);
    }
    if let Some(progress) = &node.progress_text {
        steps.push(Step::Action(progress.clone()));
    }
    if node.state == "provisioned" {
        if api.node(&node.id)?.has_event("local-boot") {
            steps.push(Step::LocalBoot);
        }
        steps.push(Step::Provisioned);
    }
    Ok(steps)
}

fn failure(context: &Context<'_>, running: &Running, what: &str) -> Error {
    let shown = context
        .stack
        .cli(&["node", "show", running.machine.mac])
        .unwrap_or_else(|error| {
            format!("(node show failed: {error})", error = error_chain(&error))
        });
    Error::Other(format!(
        "node {}: {what}\n  console log: {}\n  stack logs: {}\n--- provisioner's view ---\n{shown}\n--- last console lines ---\n{}\n--- end ---",
        running.machine.label(),
        running.vm.log_path().display(),
        context.stack.work_dir().display(),
        running.vm.tail()
    ))
}
