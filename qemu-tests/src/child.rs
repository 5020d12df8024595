//! Children of the tests (QEMU, dnsmasq, qemu-nbd) must not outlive them: a leaked QEMU eats a
//! core of a 2-core machine, a leaked dnsmasq holds its port.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Make the kernel kill the child with SIGKILL when this process dies, even when no `Drop`
/// runs (Ctrl-C, abort, a killed test binary).
pub(crate) fn die_with_this_process(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
