//! The README's demo: issue 6's PXE provisioning scenario (see `qemu_tests::pxe`) with its
//! progress on the terminal, then the provisioner's node table and where the logs are.
//! scripts/demo.sh builds everything first and runs this as root.

use bootkit_common::error_chain;
use std::process::ExitCode;

use qemu_tests::pxe::{self, Options};

fn main() -> ExitCode {
    let missing = pxe::missing_prerequisites();
    if !missing.is_empty() {
        eprintln!("pxe-demo: cannot start, missing:");
        for line in missing {
            eprintln!("  {line}");
        }
        return ExitCode::FAILURE;
    }
    let options = Options {
        show_progress: true,
        ..Options::from_env()
    };
    eprintln!(
        "pxe-demo: three machines PXE-boot the bootkit and install the test OS ({} at once, TCG)",
        options.jobs
    );
    match pxe::run(&options) {
        Ok(report) => {
            println!();
            for node in &report.nodes {
                println!("{}", node.summary());
            }
            println!(
                "\nprovisioner node list (MAC, serial, UUID, profile, state, last action, failure):"
            );
            println!("{}", report.node_table.trim_end());
            println!(
                "\nall three provisioned and booted from their disks in {} s",
                report.total.as_secs()
            );
            for node in &report.nodes {
                println!(
                    "console of node {}: {}",
                    node.machine.name,
                    node.console_log.display()
                );
            }
            println!(
                "provisioner, registry and dnsmasq logs, database: {}",
                report.work_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("pxe-demo: error: {error}", error = error_chain(&error));
            ExitCode::FAILURE
        }
    }
}
