//! The PXE bootkit booted as HookOS is: with the kernel command line of smee's iPXE script and
//! a control plane that is only Tinkerbell's workflow service, no OEP onboarding. The server
//! is `current_server.py` (Python grpcio, code generated from Tinkerbell's workflow `.proto`:
//! none of our provisioner), so grpcio itself answers UNIMPLEMENTED for `onboardingmgr.v1`;
//! device discovery must say so and let the tink-worker start, and the worker must run the
//! workflow it is given (the reboot action, pulled from Debian's docker-registry).
//!
//! The servers run in a network namespace of their own; the guest is on QEMU's user-mode
//! network, where `10.0.2.2` is that namespace's loopback (see pxe_bootkit.rs).

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use qemu_tests::stack::{ActionRegistry, REBOOT_IMAGE, pxe_bootkit_image};
use qemu_tests::{NetNs, Vm, VmConfig};
use serde_json::{Value, json};
use tink_proto::python_peer::{Protocol, PythonPeer};

const MAC: &str = "52:54:00:12:34:57";
const HOST: &str = "10.0.2.2";
const REGISTRY_PORT: u16 = 5000;
const GRPC_PORT: u16 = 42113;
const WORKFLOW_ID: &str = "default/hookos-workflow";

/// The kernel line of smee's `HookScript` (tinkerbell/smee internal/ipxe/script/hook.go),
/// filled in as smee fills it: `vlan_id` left out (no VLAN), the operator's
/// `ExtraKernelParams` right after the kernel (here the site's plain-HTTP registry, which a
/// Tinkerbell operator names with `insecure_registries=` there too), then smee's own keys,
/// `modules=`, the IOMMU keys, `initrd=` and the consoles, ttyS1 last.
fn smee_hook_line(extra_kernel_params: &[&str]) -> String {
    let extra = extra_kernel_params.join(" ");
    format!(
        "{extra} facility=onprem syslog_host={HOST} grpc_authority={HOST}:{GRPC_PORT} \
         tinkerbell_tls=false worker_id={MAC} hw_addr={MAC} \
         modules=loop,squashfs,sd-mod,usb-storage intel_iommu=on iommu=pt \
         initrd=initramfs-x86_64 console=tty0 console=ttyS1,115200"
    )
}

#[test]
#[ignore = "needs root (network namespace) and QEMU: boots the PXE bootkit"]
fn smees_command_line_and_a_tinkerbell_only_server_run_a_workflow() -> Result<()> {
    let bootkit = pxe_bootkit_image()?;
    let ns = NetNs::create("hookos")?;
    let _registry = ActionRegistry::start(format!("127.0.0.1:{REGISTRY_PORT}").parse()?, Some(&ns))
        .context("starting the registry")?;
    let scenario = json!({
        "listen": format!("127.0.0.1:{GRPC_PORT}"),
        "get_action": [{"action": {
            "workflow_id": WORKFLOW_ID,
            "task_id": "hookos-task",
            "agent_id": MAC,
            "action_id": "01J000000000000000000HOOK1",
            "name": "reboot",
            "image": format!("{HOST}:{REGISTRY_PORT}/{REBOOT_IMAGE}"),
            "timeout": 120,
        }}],
    });
    let server = PythonPeer::start_wrapped(
        &ns.exec_prefix(),
        "current_server.py",
        Protocol::Current,
        &[&scenario.to_string()],
    )
    .context("starting the Python Tinkerbell server")?;
    let first = server.next_line(Duration::from_secs(30));
    ensure!(
        first.as_deref() == Some(&format!("port {GRPC_PORT}")),
        "the Python server did not listen on {GRPC_PORT}: {first:?}"
    );

    let registry = format!("insecure_registries={HOST}:{REGISTRY_PORT}");
    let mut vm = Vm::boot(
        // The image's kernel and initramfs, and nothing of its own command line: smee's only.
        VmConfig::new("hookos_boot", bootkit.kernel, bootkit.initrd)
            .append(&smee_hook_line(&[&registry]))
            .console_on_serial_port(1)
            .memory_mib(2048)
            .wrapped_in(&ns.exec_prefix())
            .arg("-netdev")
            .arg("user,id=n0")
            .arg("-device")
            .arg(format!("virtio-net-pci,netdev=n0,romfile=,mac={MAC}")),
    )?;

    let line = vm
        .wait_for("does not serve OEP onboarding", Duration::from_secs(300))
        .context("device discovery did not say why the worker starts without onboarding")?;
    ensure!(line.contains(MAC), "the line names the node: {line}");

    let reports = wait_for_reports(&server, &vm, 2, Duration::from_secs(600))?;
    let states: Vec<&str> = reports
        .iter()
        .filter_map(|report| report["state"].as_str())
        .collect();
    ensure!(
        states == ["STATE_TYPE_RUNNING", "STATE_TYPE_SUCCESS"],
        "the action ran and succeeded: {reports:?}"
    );
    ensure!(
        reports
            .iter()
            .all(|report| report["workflow_id"] == WORKFLOW_ID),
        "reports carry the upstream-shaped workflow id: {reports:?}"
    );
    // The reboot action's request: once the server has nothing more, the worker reboots, and
    // -no-reboot ends QEMU.
    vm.wait_exit(Duration::from_secs(120))
        .context("the node did not reboot after its workflow")?;
    ensure!(
        vm.count("cannot reboot after workflow") == 0,
        "the worker's reboot command survived the services' stop:\n{}",
        vm.tail()
    );
    Ok(())
}

/// The first `count` ReportActionStatus requests the server logged.
fn wait_for_reports(
    server: &PythonPeer,
    vm: &Vm,
    count: usize,
    timeout: Duration,
) -> Result<Vec<Value>> {
    let deadline = std::time::Instant::now() + timeout;
    let mut reports = Vec::new();
    while reports.len() < count {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Some(line) = server.next_line(left) else {
            bail!(
                "the server got {} of {count} reports in {timeout:?}: {reports:?}; console:\n{}",
                reports.len(),
                vm.tail()
            );
        };
        let request: Value =
            serde_json::from_str(&line).with_context(|| format!("the server printed {line:?}"))?;
        if request["rpc"] == "ReportActionStatus" {
            reports.push(request);
        }
    }
    Ok(reports)
}
