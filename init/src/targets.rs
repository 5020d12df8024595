//! Built-in targets: points of the boot that the init reaches itself (the network is online,
//! the clock is set, the NBD devices are attached). Services name them in `after` and
//! `requires` like services; the supervisor sees one reached when its file appears.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::supervisor::Target;

const DIR: &str = "/run/bootkit/targets";

pub const NETWORK_ONLINE: &str = "network-online";
pub const TIME_SYNC: &str = "time-sync";
pub const NBD: &str = "nbd";

/// How long a target may take before the services that require it are given up.
const TIMEOUTS: [(&str, Duration); 3] = [
    (NETWORK_ONLINE, Duration::from_secs(120)),
    (TIME_SYNC, Duration::from_secs(180)),
    (NBD, Duration::from_secs(180)),
];

fn reached_file(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

/// The targets the supervisor offers to services.
pub fn all() -> Vec<Target> {
    TIMEOUTS
        .iter()
        .map(|(name, timeout)| Target {
            name: name.to_string(),
            reached_file: reached_file(name),
            timeout: *timeout,
        })
        .collect()
}

/// Mark `name` reached: services waiting for it start.
pub fn reach(name: &str) {
    let file = reached_file(name);
    let written = fs::create_dir_all(DIR).and_then(|()| fs::write(&file, b""));
    match written {
        Ok(()) => crate::info!("bootkit", "target {name} reached"),
        Err(err) => crate::error!(
            "bootkit",
            "cannot mark target {name} reached ({}: {err}): services waiting for it will time out",
            file.display()
        ),
    }
}
