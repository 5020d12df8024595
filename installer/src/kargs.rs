//! The installed system's kernel command line (`--append-karg`, `--delete-karg`, `--console`
//! and `[boot]`'s `append_karg`, `delete_karg`, `console`), with coreos-installer's meaning:
//! arguments deleted word for word, `--console` replacing every `console=` argument, arguments
//! appended unless already there.
//!
//! The command line is edited where boot loaders read it: the `options` lines of Boot Loader
//! Specification entries, `loader/entries/*.conf` on the EFI system partition (systemd-boot,
//! as EMT boots) and `/boot/loader/entries/*.conf` in the root filesystem (GRUB's BLS entries,
//! as Fedora and CoreOS keep them). A UKI booted directly carries its command line inside the
//! (signed) image, which is not changed: an image with no entry is an error naming where
//! the installer looked.

use std::fs::File;
use std::path::{Path, PathBuf};

use bootkit_common::cmdline::split_words;

use crate::configure::{self, Change, ConfigureError};
use crate::gpt;
use crate::mount::{MountError, Mounted};
use bootkit_common::install_config::{BootEntry, InstallConfig};

/// Where the loader entries are, relative to the partition's filesystem.
const ESP_ENTRIES: &str = "/loader/entries";
const ROOT_ENTRIES: &str = "/boot/loader/entries";
const ENTRY_SUFFIX: &str = ".conf";

/// Why the installed system's command line cannot be edited.
#[derive(Debug, thiserror::Error)]
pub enum KargsError {
    /// No boot loader entry was found to edit.
    #[error(
        "no boot loader entry on {disk} to put the kernel arguments in: looked for \
         loader/entries/*.conf on {looked}; an image that boots a UKI directly keeps its \
         command line inside the signed UKI, which the installer does not change: drop \
         --append-karg/--delete-karg/--console ([boot] append_karg/delete_karg/console) or \
         install an image with Boot Loader Specification entries"
    )]
    NoEntries {
        /// The disk written.
        disk: PathBuf,
        /// The places looked in, for the message.
        looked: String,
    },
    /// The written disk cannot be opened to find its partitions.
    #[error("cannot open {disk} to find its EFI system and root partitions")]
    Open {
        /// The disk written.
        disk: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A partition cannot be mounted or unmounted.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// An entry cannot be read or written.
    #[error(transparent)]
    Configure(#[from] ConfigureError),
}

/// True when the config asks for a change of the command line.
pub fn edits_requested(boot: &BootEntry) -> bool {
    !(boot.append_karg.is_empty() && boot.delete_karg.is_empty() && boot.console.is_empty())
}

/// `options` edited: `boot`'s deletions, then its consoles in place of every `console=`
/// argument, then its additions that are not there yet. Words are compared unquoted, as the
/// kernel reads them (`key="a b"` is `key=a b`).
pub fn edit_options(options: &str, boot: &BootEntry) -> String {
    let unquoted = |arg: &str| split_words(arg).concat();
    let mut words = split_words(options);
    for deleted in &boot.delete_karg {
        let deleted = unquoted(deleted.as_str());
        words.retain(|word| *word != deleted);
    }
    if !boot.console.is_empty() {
        // In place of the first console= (at the end without one), so a second run changes
        // nothing.
        let is_console = |word: &String| word.starts_with("console=");
        let place = words.iter().position(is_console).unwrap_or(words.len());
        words.retain(|word| !is_console(word));
        let consoles = boot.console.iter().map(|spec| format!("console={spec}"));
        words.splice(place.min(words.len())..place.min(words.len()), consoles);
    }
    for appended in &boot.append_karg {
        let appended = unquoted(appended.as_str());
        if !words.contains(&appended) {
            words.push(appended);
        }
    }
    words
        .iter()
        .map(|word| quoted(word))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A word as the kernel's command line writes it: the value quoted when it holds a space.
fn quoted(word: &str) -> String {
    if !word.contains(char::is_whitespace) {
        return word.to_owned();
    }
    match word.split_once('=') {
        Some((key, value)) => format!("{key}=\"{value}\""),
        None => format!("\"{word}\""),
    }
}

/// A loader entry with its `options` edited: the arguments of all its `options` lines (the
/// specification joins them) on the first one, the others removed; an entry without one gets
/// one at its end.
pub fn edit_entry(text: &str, boot: &BootEntry) -> String {
    let options: Vec<&str> = text.lines().filter_map(options_value).collect();
    let line = format!("options {}", edit_options(&options.join(" "), boot));
    let mut lines: Vec<String> = Vec::new();
    let mut placed = false;
    for existing in text.lines() {
        if options_value(existing).is_none() {
            lines.push(existing.to_owned());
        } else if !placed {
            lines.push(line.clone());
            placed = true;
        }
    }
    if !placed {
        lines.push(line);
    }
    lines.join("\n") + "\n"
}

/// The arguments of an `options` line of a loader entry; None for other lines.
fn options_value(line: &str) -> Option<&str> {
    line.trim_start()
        .strip_prefix("options")
        .filter(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
        .map(str::trim)
}

/// Edits the loader entries (`*.conf`) in `dir` of the filesystem mounted at `root`; None
/// when it has none.
pub fn edit_entries(
    root: &Path,
    dir: &str,
    boot: &BootEntry,
) -> Result<Option<Vec<Change>>, KargsError> {
    let edited =
        configure::edit_files_in(root, dir, ENTRY_SUFFIX, "kernel command line", |text| {
            edit_entry(text, boot)
        })?;
    Ok(edited)
}

/// Edits every loader entry of the disk's ESP and root filesystem; returns what changed.
/// Nothing is mounted when the config asks for no change.
pub fn apply(
    config: &InstallConfig,
    disk: &Path,
    sector_size: u64,
) -> Result<Vec<Change>, KargsError> {
    let boot = &config.boot;
    if !edits_requested(boot) {
        return Ok(Vec::new());
    }
    let mut file = File::open(disk).map_err(|source| KargsError::Open {
        disk: disk.to_owned(),
        source,
    })?;
    let mut places = Vec::new();
    if let Ok(esp) = gpt::esp_partition(&mut file, sector_size) {
        places.push((esp.number, "its EFI system partition", ESP_ENTRIES));
    }
    if let Ok(root) = configure::find_root_partition(disk, config.system.rootfs_partition.as_ref())
    {
        places.push((root, "its root filesystem", ROOT_ENTRIES));
    }
    let mut changes = Vec::new();
    let mut found = false;
    for (number, _, dir) in &places {
        let mounted = Mounted::new(&crate::disk::partition_path(disk, *number))?;
        let edited = edit_entries(mounted.path(), dir, boot)?;
        mounted.unmount()?;
        if let Some(edited) = edited {
            found = true;
            changes.extend(edited);
        }
    }
    if !found {
        let looked = places
            .iter()
            .map(|(number, what, dir)| format!("{what} (partition {number}, {dir})"))
            .collect::<Vec<_>>();
        return Err(KargsError::NoEntries {
            disk: disk.to_owned(),
            looked: if looked.is_empty() {
                "no partition: the disk has neither an EFI system partition nor a root \
                 filesystem partition"
                    .into()
            } else {
                looked.join(" and ")
            },
        });
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(append: &[&str], delete: &[&str], console: &[&str]) -> BootEntry {
        BootEntry {
            append_karg: append.iter().map(|a| a.parse().unwrap()).collect(),
            delete_karg: delete.iter().map(|a| a.parse().unwrap()).collect(),
            console: console.iter().map(|c| c.parse().unwrap()).collect(),
            ..BootEntry::default()
        }
    }

    #[test]
    fn deletions_consoles_and_additions_apply_in_coreos_installers_order() {
        let edits = boot(
            &["intel_iommu=on", "quiet", "note=\"a b\""],
            &["quiet", "rd.debug"],
            &["ttyS1,115200n8", "tty0"],
        );
        assert_eq!(
            edit_options(
                "root=PARTLABEL=rootfs console=ttyS0 quiet ro console=tty1 rd.debug",
                &edits
            ),
            // quiet was deleted, then appended again: --append-karg wins, as it is applied last.
            "root=PARTLABEL=rootfs console=ttyS1,115200n8 console=tty0 ro intel_iommu=on quiet \
             note=\"a b\""
        );
        // Appending what is there already, and deleting what is not, change nothing.
        assert_eq!(
            edit_options("ro intel_iommu=on", &boot(&["intel_iommu=on"], &["x"], &[])),
            "ro intel_iommu=on"
        );
    }

    #[test]
    fn an_entry_keeps_its_other_lines_and_gets_one_options_line() {
        let entry = "title EMT\nlinux /vmlinuz\noptions root=/dev/sda2\ninitrd /initrd\n\
                     options  console=ttyS0 quiet\n";
        assert_eq!(
            edit_entry(entry, &boot(&["rw"], &[], &["ttyS1"])),
            "title EMT\nlinux /vmlinuz\noptions root=/dev/sda2 console=ttyS1 quiet rw\n\
             initrd /initrd\n"
        );
        assert_eq!(
            edit_entry(
                "title x\nuki /EFI/Linux/emt.efi\n",
                &boot(&["rw"], &[], &[])
            ),
            "title x\nuki /EFI/Linux/emt.efi\noptions rw\n"
        );
    }

    #[test]
    fn the_entries_of_a_mounted_esp_are_edited_and_other_files_left_alone() {
        let esp = tempfile::tempdir().unwrap();
        let entries = esp.path().join("loader/entries");
        std::fs::create_dir_all(&entries).unwrap();
        std::fs::write(
            entries.join("emt.conf"),
            "title EMT\nuki /EFI/Linux/emt.efi\noptions console=tty0\n",
        )
        .unwrap();
        std::fs::write(entries.join("notes.txt"), "options console=tty0\n").unwrap();
        std::fs::write(esp.path().join("loader/loader.conf"), "timeout 3\n").unwrap();
        let edits = boot(&["rw"], &[], &["ttyS0,115200n8"]);
        let changes = edit_entries(esp.path(), ESP_ENTRIES, &edits)
            .unwrap()
            .unwrap();
        assert_eq!(
            changes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["/loader/entries/emt.conf (kernel command line)"]
        );
        assert_eq!(
            std::fs::read_to_string(entries.join("emt.conf")).unwrap(),
            "title EMT\nuki /EFI/Linux/emt.efi\noptions console=ttyS0,115200n8 rw\n"
        );
        assert_eq!(
            std::fs::read_to_string(entries.join("notes.txt")).unwrap(),
            "options console=tty0\n"
        );
        // Already so: nothing written; no entries directory: None.
        assert!(
            edit_entries(esp.path(), ESP_ENTRIES, &edits)
                .unwrap()
                .unwrap()
                .is_empty()
        );
        assert!(
            edit_entries(esp.path(), ROOT_ENTRIES, &edits)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn malformed_arguments_and_consoles_are_refused_with_the_fix() {
        for arg in ["", "a b", "key=\"open"] {
            let error = arg
                .parse::<bootkit_common::install_config::KernelArg>()
                .unwrap_err();
            assert!(error.contains("one word"), "{arg:?}: {error}");
        }
        for spec in [
            "console=ttyS0",
            "/dev/ttyS0",
            "ttyS",
            "tty S0",
            "ttyS0,115200 n8",
        ] {
            let error = spec
                .parse::<bootkit_common::install_config::ConsoleSpec>()
                .unwrap_err();
            assert!(error.contains("ttyS0,115200n8"), "{spec:?}: {error}");
        }
    }
}
