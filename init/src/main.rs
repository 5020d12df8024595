//! The bootkit's multicall binary: PID 1 (`/init`), and the `poweroff`, `reboot`, `halt`
//! commands that ask it to stop the machine.

mod log;
mod power;
mod rootfs;
mod supervisor;

fn main() {
    info!("init", "bootkit starting");
}
