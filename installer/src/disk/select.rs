//! The automatic choice of the target disk.

use std::fmt;

use bootkit_common::size::human_size;

use super::{Disk, DiskError, SelectPolicy, SizePreference, Transport};

/// Why a disk was not chosen automatically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The bootkit runs from it (the USB stick, the disk holding the image).
    BootMedium,
    /// A USB disk: an installer stick or an external drive.
    Usb,
    /// Loop, ram, zram, device-mapper, md, optical, NBD, eMMC or unknown.
    Transport(Transport),
    /// The kernel marks it removable (`removable` is 1 in sysfs).
    Removable,
    /// The kernel marks it read-only (`ro` is 1 in sysfs).
    ReadOnly,
    /// Empty: a card reader without a card.
    NoMedium,
    /// Smaller than the image or the policy's minimum.
    TooSmall {
        /// The disk's size, in bytes.
        size: u64,
        /// The smallest size accepted, in bytes: the image's size or the policy's minimum,
        /// whichever is larger.
        needed: u64,
    },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::BootMedium => f.write_str("the bootkit was started from it"),
            Rejection::Usb => f.write_str("a USB disk (an installer stick or an external drive)"),
            Rejection::Transport(transport) => {
                write!(
                    f,
                    "{} devices are never chosen automatically",
                    transport.label()
                )
            }
            Rejection::Removable => f.write_str("removable"),
            Rejection::ReadOnly => f.write_str("read-only"),
            Rejection::NoMedium => f.write_str("no medium (size 0)"),
            Rejection::TooSmall { size, needed } => write!(
                f,
                "too small ({}, at least {} needed)",
                human_size(*size),
                human_size(*needed)
            ),
        }
    }
}

const ELIGIBLE_TRANSPORTS: [Transport; 4] = [
    Transport::Sata,
    Transport::Nvme,
    Transport::Virtio,
    Transport::Scsi,
];

fn rejections(disk: &Disk, needed: u64, exclude: &[Disk]) -> Vec<Rejection> {
    let mut reasons = Vec::new();
    if exclude
        .iter()
        .any(|excluded| (excluded.major, excluded.minor) == (disk.major, disk.minor))
    {
        reasons.push(Rejection::BootMedium);
    }
    if disk.transport == Transport::Usb {
        reasons.push(Rejection::Usb);
    } else if !ELIGIBLE_TRANSPORTS.contains(&disk.transport) {
        reasons.push(Rejection::Transport(disk.transport));
    }
    if disk.removable {
        reasons.push(Rejection::Removable);
    }
    if disk.read_only {
        reasons.push(Rejection::ReadOnly);
    }
    if disk.size_bytes == 0 {
        reasons.push(Rejection::NoMedium);
    } else if disk.size_bytes < needed {
        reasons.push(Rejection::TooSmall {
            size: disk.size_bytes,
            needed,
        });
    }
    reasons
}

pub(super) fn choose(
    disks: Vec<Disk>,
    policy: &SelectPolicy,
    image_size: u64,
    exclude: &[Disk],
) -> Result<Disk, DiskError> {
    let needed = image_size.max(policy.min_size_bytes.unwrap_or(0));
    let (eligible, seen): (Vec<_>, Vec<_>) = disks
        .into_iter()
        .map(|disk| {
            let reasons = rejections(&disk, needed, exclude);
            (disk, reasons)
        })
        .partition(|(_, reasons)| reasons.is_empty());
    let mut eligible: Vec<Disk> = eligible.into_iter().map(|(disk, _)| disk).collect();
    // Stable order: by size as the policy wants, then by name.
    eligible.sort_by(|a, b| {
        let by_size = match policy.prefer {
            SizePreference::Smallest => a.size_bytes.cmp(&b.size_bytes),
            SizePreference::Largest => b.size_bytes.cmp(&a.size_bytes),
        };
        by_size.then_with(|| a.name.cmp(&b.name))
    });
    eligible
        .into_iter()
        .next()
        .ok_or(DiskError::NoEligibleDisk {
            image_size,
            min_size: needed,
            seen,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::fake::FakeMachine;

    const GIB: u64 = 1 << 30;

    fn policy(prefer: SizePreference, min_size_bytes: Option<u64>) -> SelectPolicy {
        SelectPolicy {
            prefer,
            min_size_bytes,
        }
    }

    #[test]
    fn the_smallest_eligible_disk_wins_by_default() {
        let machine = FakeMachine::new();
        machine.disk("nvme0n1").nvme().size_gib(512).add();
        machine.disk("sda").sata().size_gib(128).add();
        machine.disk("sdb").usb().size_gib(16).add();
        machine.disk("loop0").size_gib(4).add();
        let chosen = machine
            .root()
            .choose(&SelectPolicy::default(), 2 * GIB, &[])
            .unwrap();
        assert_eq!(chosen.name, "sda");
    }

    #[test]
    fn the_largest_wins_when_asked_and_ties_go_by_name() {
        let machine = FakeMachine::new();
        machine.disk("vdb").virtio().size_gib(64).add();
        machine.disk("vda").virtio().size_gib(64).add();
        machine.disk("sdc").scsi().size_gib(32).add();
        let root = machine.root();
        let largest = policy(SizePreference::Largest, None);
        assert_eq!(root.choose(&largest, GIB, &[]).unwrap().name, "vda");
        let smallest = SelectPolicy::default();
        assert_eq!(root.choose(&smallest, GIB, &[]).unwrap().name, "sdc");
    }

    #[test]
    fn the_minimum_size_of_the_policy_applies_even_when_the_image_fits() {
        let machine = FakeMachine::new();
        machine.disk("sda").sata().size_gib(16).add();
        machine.disk("sdb").sata().size_gib(128).add();
        let chosen = machine
            .root()
            .choose(&policy(SizePreference::Smallest, Some(100 * GIB)), GIB, &[])
            .unwrap();
        assert_eq!(chosen.name, "sdb");
    }

    #[test]
    fn the_boot_medium_is_never_chosen() {
        let machine = FakeMachine::new();
        machine.disk("sda").sata().size_gib(32).add();
        machine.disk("sdb").sata().size_gib(64).add();
        let root = machine.root();
        let boot = machine.listed("sda");
        let chosen = root.choose(&SelectPolicy::default(), GIB, &[boot]).unwrap();
        assert_eq!(chosen.name, "sdb");
    }

    #[test]
    fn every_rejection_is_reported_for_every_disk() {
        let machine = FakeMachine::new();
        machine.disk("sda").sata().size_gib(32).add();
        machine.disk("sdb").usb().size_gib(64).add();
        machine.disk("sdc").scsi().size_gib(64).removable().add();
        machine.disk("sdd").sata().size_gib(64).read_only().add();
        machine.disk("sde").scsi().size_bytes(0).removable().add();
        machine.disk("vda").virtio().size_gib(1).add();
        machine.disk("loop0").size_gib(64).add();
        machine.disk("zram0").size_gib(64).add();
        machine.disk("dm-0").size_gib(64).add();
        machine.disk("md0").size_gib(64).add();
        machine.disk("sr0").size_gib(64).add();
        machine.disk("mmcblk0").size_gib(64).add();
        let root = machine.root();
        let boot = machine.listed("sda");
        let error = root
            .choose(&SelectPolicy::default(), 2 * GIB, &[boot])
            .unwrap_err();
        let DiskError::NoEligibleDisk { seen, .. } = &error else {
            panic!("expected NoEligibleDisk, got {error}");
        };
        let reasons = |name: &str| {
            seen.iter()
                .find(|(disk, _)| disk.name == name)
                .map(|(_, reasons)| reasons.clone())
                .unwrap()
        };
        assert_eq!(reasons("sda"), vec![Rejection::BootMedium]);
        assert_eq!(reasons("sdb"), vec![Rejection::Usb]);
        assert_eq!(reasons("sdc"), vec![Rejection::Removable]);
        assert_eq!(reasons("sdd"), vec![Rejection::ReadOnly]);
        assert_eq!(
            reasons("sde"),
            vec![Rejection::Removable, Rejection::NoMedium]
        );
        assert_eq!(
            reasons("vda"),
            vec![Rejection::TooSmall {
                size: GIB,
                needed: 2 * GIB
            }]
        );
        assert_eq!(
            reasons("loop0"),
            vec![Rejection::Transport(Transport::Loop)]
        );
        assert_eq!(
            reasons("zram0"),
            vec![Rejection::Transport(Transport::Zram)]
        );
        assert_eq!(
            reasons("dm-0"),
            vec![Rejection::Transport(Transport::DeviceMapper)]
        );
        assert_eq!(reasons("md0"), vec![Rejection::Transport(Transport::Md)]);
        assert_eq!(
            reasons("sr0"),
            vec![Rejection::Transport(Transport::Optical)]
        );
        assert_eq!(
            reasons("mmcblk0"),
            vec![Rejection::Transport(Transport::Mmc)]
        );
        assert_eq!(seen.len(), 12);
        let message = error.to_string();
        assert!(
            message.contains("no disk can be chosen automatically"),
            "{message}"
        );
        assert!(
            message.contains("dev/sdb (USB, 64.0 GiB): a USB disk"),
            "{message}"
        );
        assert!(
            message.contains(
                "dev/vda (virtio, 1.0 GiB): too small (1.0 GiB, at least 2.0 GiB needed)"
            ),
            "{message}"
        );
        assert!(message.contains("Name the disk with --disk"), "{message}");
    }

    #[test]
    fn no_disk_at_all_is_said_plainly() {
        let machine = FakeMachine::new();
        let error = machine
            .root()
            .choose(&SelectPolicy::default(), GIB, &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("no disk at all in /sys/block"), "{error}");
    }
}
