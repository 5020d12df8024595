//! The OCI runtime spec of an action container, built as EMT's worker and Docker's
//! `--privileged` make it: every capability, no seccomp or AppArmor, all host devices, the
//! host's network and (on request) PID namespace.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// The `type_url` containerd expects for a runtime spec in `Container.spec`.
pub const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

/// Every Linux capability up to CAP_CHECKPOINT_RESTORE (Linux 5.9), in bit order.
const ALL_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// /dev subdirectories that hold no devices an action should be given.
const SKIPPED_DEV_DIRS: &[&str] = &["pts", "shm", "mqueue", "fd"];

/// A bind mount into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

/// What differs from one action container to the next.
#[derive(Debug, Clone)]
pub struct SpecInput {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub binds: Vec<BindMount>,
    pub host_network: bool,
    pub host_pid: bool,
    pub cgroups_path: String,
}

pub fn runtime_spec(input: &SpecInput) -> Value {
    let capabilities = capabilities_in(bounding_set());
    let mut mounts = vec![json!({
        "destination": "/proc", "type": "proc", "source": "proc",
        "options": ["nosuid", "noexec", "nodev"]
    })];
    mounts.extend(input.binds.iter().map(bind_mount));
    let mut namespaces = vec![
        json!({"type": "mount"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
    ];
    if !input.host_pid {
        namespaces.push(json!({"type": "pid"}));
    }
    if !input.host_network {
        namespaces.push(json!({"type": "network"}));
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": input.args,
            "env": input.env,
            "cwd": input.cwd,
            "capabilities": {
                "bounding": capabilities,
                "effective": capabilities,
                "permitted": capabilities,
                "inheritable": capabilities,
                "ambient": capabilities,
            },
            "noNewPrivileges": false,
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "",
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": input.cgroups_path,
            "devices": host_devices(Path::new("/dev")),
            "resources": {"devices": [{"allow": true, "access": "rwm"}]},
            "maskedPaths": [],
            "readonlyPaths": [],
        },
    })
}

/// Privileged means every capability the worker itself may hold (as containerd's
/// `WithAllCurrentCapabilities`): asking runc for one outside our bounding set fails.
fn bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let mask = status
                .lines()
                .find_map(|line| line.strip_prefix("CapBnd:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        })
        .unwrap_or(u64::MAX)
}

fn capabilities_in(mask: u64) -> Vec<&'static str> {
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, name)| *name)
        .collect()
}

fn bind_mount(bind: &BindMount) -> Value {
    let access = if bind.read_only { "ro" } else { "rw" };
    json!({
        "destination": bind.destination,
        "type": "bind",
        "source": bind.source,
        "options": ["rbind", "rprivate", access],
    })
}

/// The character and block devices under `/dev` (two levels deep, as /dev/disk/by-* and
/// /dev/mapper need), in OCI form.
fn host_devices(dev: &Path) -> Vec<Value> {
    let mut devices = Vec::new();
    collect_devices(dev, 2, &mut devices);
    devices
}

fn collect_devices(dir: &Path, depth: u32, devices: &mut Vec<Value>) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            let skipped = SKIPPED_DEV_DIRS
                .iter()
                .any(|name| entry.file_name() == *name);
            if depth > 0 && !skipped {
                collect_devices(&path, depth - 1, devices);
            }
            continue;
        }
        let kind = if file_type.is_char_device() {
            "c"
        } else if file_type.is_block_device() {
            "b"
        } else {
            continue;
        };
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        let rdev = metadata.rdev();
        devices.push(json!({
            "path": path,
            "type": kind,
            "major": libc::major(rdev),
            "minor": libc::minor(rdev),
            "fileMode": metadata.mode() & 0o777,
            "uid": metadata.uid(),
            "gid": metadata.gid(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> SpecInput {
        SpecInput {
            args: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            binds: vec![BindMount {
                source: "/lib/modules".into(),
                destination: "/lib/modules".into(),
                read_only: true,
            }],
            host_network: true,
            host_pid: false,
            cgroups_path: "/tinkerbell/a".into(),
        }
    }

    fn namespaces(spec: &Value) -> Vec<String> {
        spec["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn privileged_all_capabilities_all_devices_allowed_nothing_masked() {
        let spec = runtime_spec(&input());
        let bounding = spec["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap();
        assert!(bounding.iter().any(|c| c == "CAP_SYS_ADMIN"));
        assert_eq!(bounding.len(), capabilities_in(bounding_set()).len());
        assert_eq!(spec["linux"]["resources"]["devices"][0]["allow"], true);
        assert!(spec["linux"]["maskedPaths"].as_array().unwrap().is_empty());
        assert!(spec["linux"].get("seccomp").is_none());
        assert!(spec["process"].get("apparmorProfile").is_none());
    }

    #[test]
    fn capabilities_follow_the_bounding_set_bits() {
        assert_eq!(capabilities_in(u64::MAX).len(), ALL_CAPABILITIES.len());
        let without_sys_resource = capabilities_in(0x1_ffef_ffff_ffff & !(1 << 24));
        assert!(!without_sys_resource.contains(&"CAP_SYS_RESOURCE"));
        assert!(without_sys_resource.contains(&"CAP_SYS_TIME"));
        assert_eq!(capabilities_in(0b101), ["CAP_CHOWN", "CAP_DAC_READ_SEARCH"]);
    }

    #[test]
    fn host_network_by_default_and_a_pid_namespace_unless_host_pid() {
        let spec = runtime_spec(&input());
        assert!(!namespaces(&spec).contains(&"network".to_string()));
        assert!(namespaces(&spec).contains(&"pid".to_string()));
        let isolated = SpecInput {
            host_network: false,
            host_pid: true,
            ..input()
        };
        let spec = runtime_spec(&isolated);
        assert!(namespaces(&spec).contains(&"network".to_string()));
        assert!(!namespaces(&spec).contains(&"pid".to_string()));
    }

    #[test]
    fn read_only_binds_say_ro() {
        let spec = runtime_spec(&input());
        let modules = &spec["mounts"][1];
        assert_eq!(modules["destination"], "/lib/modules");
        assert!(
            modules["options"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o == "ro")
        );
    }

    #[test]
    fn host_devices_include_dev_null_as_a_character_device() {
        let devices = host_devices(Path::new("/dev"));
        let null = devices.iter().find(|d| d["path"] == "/dev/null").unwrap();
        assert_eq!(null["type"], "c");
        assert_eq!(
            (null["major"].as_u64(), null["minor"].as_u64()),
            (Some(1), Some(3))
        );
    }
}
