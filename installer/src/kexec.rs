//! `after = "kexec"`: start the installed system by kexec instead of a reboot through the
//! firmware (on a server that skips minutes of POST and option ROMs).
//!
//! The installed system's kernel, initrd and command line are read from its EFI system
//! partition, in the order a firmware and systemd-boot would start them:
//! 1. the loader the boot entry starts (`[boot] loader`), when it is a unified kernel image:
//!    its `.linux`, `.initrd` and `.cmdline` PE sections;
//! 2. else systemd-boot's entries (`/loader/entries/*.conf`, Boot Loader Specification type
//!    #1): `loader/loader.conf`'s `default`, or the entry whose name sorts last (the newest
//!    version, the way kernel-install names them);
//! 3. else the UKIs in `/EFI/Linux` (type #2), the one whose name sorts last.
//!
//! They are loaded with kexec_file_load(2), which lets a locked-down kernel (Secure Boot)
//! check the kernel's signature itself. The init's reboot then starts the loaded kernel
//! (init/src/power.rs); when loading fails, the caller reboots through the firmware instead.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use goblin::pe::PE;

use crate::disk::partition_path;
use crate::gpt::{self, GptError};
use crate::mount::{MountError, Mounted};

/// systemd-boot's entry directory and its configuration, relative to the ESP's root.
const ENTRIES_DIR: &str = "loader/entries";
const LOADER_CONF: &str = "loader/loader.conf";
/// Where type #2 UKIs live on the ESP.
const UKI_DIR: &str = "EFI/Linux";

/// What kexec needs to start the installed system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFiles {
    /// Where they came from, for the console: `\EFI\BOOT\BOOTX64.EFI (UKI)`.
    pub origin: String,
    /// The kernel image (a bzImage on x86).
    pub kernel: Vec<u8>,
    /// The initrd; empty when the system has none.
    pub initrd: Vec<u8>,
    /// The kernel command line.
    pub cmdline: String,
}

/// Why the installed system cannot be started by kexec; the installer reboots instead.
#[derive(Debug, thiserror::Error)]
pub enum KexecError {
    /// The written disk cannot be reopened to find its ESP.
    #[error("cannot open {path} to find its EFI system partition")]
    Open {
        /// The installed disk.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The written partition table has no usable ESP.
    #[error("cannot find the installed disk's EFI system partition")]
    Esp(#[from] GptError),
    /// The ESP cannot be mounted or unmounted.
    #[error("cannot read the installed EFI system partition")]
    Mount(#[from] MountError),
    /// Nothing on the ESP names a kernel.
    #[error(
        "no kernel found on the installed EFI system partition: {loader} is not a unified \
         kernel image (no .linux section), and there is no systemd-boot entry \
         (/{ENTRIES_DIR}/*.conf) and no UKI in /{UKI_DIR}"
    )]
    NoKernel {
        /// The boot entry's loader (`[boot] loader`).
        loader: String,
    },
    /// A file on the ESP cannot be read.
    #[error("cannot read {path} on the installed EFI system partition")]
    Read {
        /// The file, under the ESP's mount point.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A UKI's PE image is damaged.
    #[error("{path} on the installed EFI system partition is not a readable PE image: {reason}")]
    Pe {
        /// The file, under the ESP's mount point.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A systemd-boot entry names no kernel.
    #[error("systemd-boot entry {path} names no kernel (no `linux` or `efi` line)")]
    Entry {
        /// The entry, under the ESP's mount point.
        path: PathBuf,
    },
    /// The kernel or initrd cannot be handed to the running kernel.
    #[error("cannot stage the installed kernel in memory for kexec_file_load")]
    Stage(#[source] io::Error),
    /// The running kernel was built without kexec_file_load.
    #[error(
        "the running kernel has no kexec_file_load (CONFIG_KEXEC_FILE is off); use a kernel \
         with it, or after = \"reboot\""
    )]
    Unsupported,
    /// Lockdown (Secure Boot) refused a kernel not signed by a key the running kernel trusts.
    #[error(
        "the running kernel refused {origin}: it is locked down (Secure Boot) and the \
         installed kernel itself (a UKI's .linux, whose own signature kexec checks, not the \
         UKI's) is not signed by a key it trusts (its built-in keys and the firmware's db \
         certificates); sign that kernel with the site's db key or add its signer's \
         certificate to db, or use after = \"reboot\""
    )]
    Refused {
        /// Where the kernel came from.
        origin: String,
        /// ENOKEY, ENODATA, EKEYREJECTED, EPERM ...
        source: io::Error,
    },
    /// kexec_file_load failed otherwise (not a bzImage, out of memory, ...).
    #[error("the running kernel cannot load {origin} for kexec")]
    Load {
        /// Where the kernel came from.
        origin: String,
        /// The kernel's error.
        source: io::Error,
    },
}

/// Reads the installed system's boot files from the ESP of `disk` and loads them for kexec.
/// Returns where they came from; the next reboot starts them.
pub fn load_installed(
    disk: &Path,
    sector_size: u64,
    loader: &str,
) -> Result<BootFiles, KexecError> {
    let files = read_installed(disk, sector_size, loader)?;
    load(&files)?;
    Ok(files)
}

/// The boot files on the ESP of `disk`, read without loading them.
pub(crate) fn read_installed(
    disk: &Path,
    sector_size: u64,
    loader: &str,
) -> Result<BootFiles, KexecError> {
    let mut file = File::open(disk).map_err(|source| KexecError::Open {
        path: disk.to_owned(),
        source,
    })?;
    let esp = gpt::esp_partition(&mut file, sector_size)?;
    drop(file);
    let mounted = Mounted::new(&partition_path(disk, esp.number))?;
    let found = find_boot_files(mounted.path(), loader);
    mounted.unmount()?;
    found
}

/// The boot files on an ESP mounted at `esp`, in the order the module documentation gives.
pub fn find_boot_files(esp: &Path, loader: &str) -> Result<BootFiles, KexecError> {
    let loader_path = esp.join(esp_relative(loader));
    if loader_path.is_file()
        && let Some(files) = read_uki(&loader_path, format!("{loader} (UKI)"))?
    {
        return Ok(files);
    }
    if let Some(entry) = chosen_entry(esp)? {
        return read_entry(esp, &entry);
    }
    for uki in sorted_files(&esp.join(UKI_DIR), "efi")?.iter().rev() {
        let origin = format!("\\{}\\{} (UKI)", UKI_DIR.replace('/', "\\"), file_name(uki));
        if let Some(files) = read_uki(uki, origin)? {
            return Ok(files);
        }
    }
    Err(KexecError::NoKernel {
        loader: loader.to_owned(),
    })
}

/// `\EFI\BOOT\BOOTX64.EFI` or `/EFI/Linux/x.efi` as a path relative to the ESP's root
/// (vfat looks names up without regard to case, as the firmware does).
fn esp_relative(path: &str) -> PathBuf {
    PathBuf::from(path.replace('\\', "/").trim_start_matches('/'))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, KexecError> {
    std::fs::read(path).map_err(|source| KexecError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The boot files in a UKI; `None` when the PE image has no `.linux` (a boot loader).
fn read_uki(path: &Path, origin: String) -> Result<Option<BootFiles>, KexecError> {
    let data = read(path)?;
    let sections = uki_sections(&data).map_err(|reason| KexecError::Pe {
        path: path.to_owned(),
        reason,
    })?;
    Ok(sections.map(|sections| BootFiles {
        origin,
        kernel: sections.linux.to_vec(),
        initrd: sections.initrd.unwrap_or_default().to_vec(),
        cmdline: section_text(sections.cmdline.unwrap_or_default()),
    }))
}

/// The sections of a UKI that kexec needs, borrowed from the file's bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct UkiSections<'a> {
    /// `.linux`: the kernel.
    pub linux: &'a [u8],
    /// `.initrd`, if present.
    pub initrd: Option<&'a [u8]>,
    /// `.cmdline`, if present.
    pub cmdline: Option<&'a [u8]>,
}

/// The `.linux`, `.initrd` and `.cmdline` sections of a PE image; `None` without `.linux`.
pub fn uki_sections(data: &[u8]) -> Result<Option<UkiSections<'_>>, String> {
    let pe = PE::parse(data).map_err(|err| format!("not a PE image: {err}"))?;
    let section = |name: &str| -> Result<Option<&[u8]>, String> {
        let Some(section) = pe.sections.iter().find(|s| s.name().ok() == Some(name)) else {
            return Ok(None);
        };
        // The file holds SizeOfRawData bytes padded to FileAlignment; VirtualSize is the
        // content's own size (0 in some linkers' output: then the raw size).
        let raw = section.size_of_raw_data as usize;
        let size = match section.virtual_size as usize {
            0 => raw,
            virtual_size => virtual_size.min(raw),
        };
        let start = section.pointer_to_raw_data as usize;
        data.get(start..start.saturating_add(size))
            .map(Some)
            .ok_or_else(|| format!("section {name} runs past the end of the file"))
    };
    let Some(linux) = section(".linux")? else {
        return Ok(None);
    };
    Ok(Some(UkiSections {
        linux,
        initrd: section(".initrd")?,
        cmdline: section(".cmdline")?,
    }))
}

/// A `.cmdline` section's text: objcopy and ukify may leave a NUL or a newline at its end.
fn section_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches('\0')
        .trim()
        .to_owned()
}

/// A systemd-boot (type #1) entry: what the keys of its `.conf` say.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoaderEntry {
    /// `linux`: the kernel, relative to the ESP's root.
    pub linux: Option<String>,
    /// `initrd` lines, in order (the kernel takes concatenated archives).
    pub initrd: Vec<String>,
    /// `options` lines, joined by spaces.
    pub options: String,
    /// `efi`: an EFI program, a UKI for kexec's purposes.
    pub efi: Option<String>,
}

/// Parses an entry's text: `key value` lines, `#` comments, unknown keys ignored (the
/// specification lets loaders skip keys they do not use).
pub fn parse_entry(text: &str) -> LoaderEntry {
    let mut entry = LoaderEntry::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(key, value)| (key, value.trim()));
        match key {
            "linux" => entry.linux = Some(value.to_owned()),
            "initrd" => entry.initrd.push(value.to_owned()),
            "efi" => entry.efi = Some(value.to_owned()),
            "options" => {
                if !entry.options.is_empty() {
                    entry.options.push(' ');
                }
                entry.options.push_str(value);
            }
            _ => {}
        }
    }
    entry
}

/// The entry systemd-boot would start: `default` in loader.conf (a glob on the entry's
/// name, with or without `.conf`), else the entry whose name sorts last.
fn chosen_entry(esp: &Path) -> Result<Option<PathBuf>, KexecError> {
    let entries = sorted_files(&esp.join(ENTRIES_DIR), "conf")?;
    let conf = esp.join(LOADER_CONF);
    let default = if conf.is_file() {
        default_pattern(&String::from_utf8_lossy(&read(&conf)?))
    } else {
        None
    };
    let chosen = default
        .and_then(|pattern| {
            entries.iter().rev().find(|entry| {
                let name = file_name(entry);
                let id = name.strip_suffix(".conf").unwrap_or(&name);
                crate::save::fnmatch(&pattern, &name) || crate::save::fnmatch(&pattern, id)
            })
        })
        .or(entries.last());
    Ok(chosen.cloned())
}

/// loader.conf's `default` value, unless it is one of systemd's `@saved` style names.
fn default_pattern(conf: &str) -> Option<String> {
    conf.lines()
        .filter_map(|line| line.trim().strip_prefix("default"))
        .filter(|rest| rest.starts_with(char::is_whitespace))
        .map(|rest| rest.trim().to_owned())
        .rfind(|value| !value.is_empty() && !value.starts_with('@'))
}

fn read_entry(esp: &Path, path: &Path) -> Result<BootFiles, KexecError> {
    let entry = parse_entry(&String::from_utf8_lossy(&read(path)?));
    let origin = format!("systemd-boot entry {}", file_name(path));
    if let Some(linux) = &entry.linux {
        let mut initrd = Vec::new();
        for name in &entry.initrd {
            initrd.extend(read(&esp.join(esp_relative(name)))?);
        }
        return Ok(BootFiles {
            origin,
            kernel: read(&esp.join(esp_relative(linux)))?,
            initrd,
            cmdline: entry.options,
        });
    }
    let uki = match &entry.efi {
        Some(efi) => read_uki(&esp.join(esp_relative(efi)), origin)?,
        None => None,
    };
    if let Some(mut files) = uki {
        // systemd's stub lets an entry's options replace the UKI's .cmdline only with Secure
        // Boot off; the .cmdline the image carries is kept, the options used without one.
        if files.cmdline.is_empty() {
            files.cmdline = entry.options;
        }
        return Ok(files);
    }
    Err(KexecError::Entry {
        path: path.to_owned(),
    })
}

/// The files in `dir` ending in `.ext` (any case), sorted by name; none when `dir` is absent.
fn sorted_files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, KexecError> {
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(KexecError::Read {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut files: Vec<PathBuf> = listing
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.is_file()
                && path
                    .extension()
                    .is_some_and(|found| found.eq_ignore_ascii_case(ext))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Hands the boot files to the running kernel, which keeps them until the reboot.
pub fn load(files: &BootFiles) -> Result<(), KexecError> {
    let kernel = memfd_with("bootkit-kexec-kernel", &files.kernel)?;
    let initrd = if files.initrd.is_empty() {
        None
    } else {
        Some(memfd_with("bootkit-kexec-initrd", &files.initrd)?)
    };
    // A NUL inside the command line would end it there for the kernel anyway.
    let cmdline = CString::new(files.cmdline.replace('\0', " "))
        .map_err(|error| KexecError::Stage(io::Error::other(error)))?;
    kexec_file_load(kernel.as_fd(), initrd.as_ref().map(AsFd::as_fd), &cmdline)
        .map_err(|source| classify(&files.origin, source))
}

/// Which failure a kexec_file_load errno is.
fn classify(origin: &str, source: io::Error) -> KexecError {
    match source.raw_os_error() {
        Some(libc::ENOSYS) => KexecError::Unsupported,
        // Lockdown refuses a kernel whose signature does not check with the check's own
        // error (Debian's 6.1 under Secure Boot: ENOKEY for a signer it does not trust,
        // ENODATA for no signature, EKEYREJECTED for a bad one) or, in mainline without
        // CONFIG_KEXEC_SIG_FORCE, with EPERM.
        Some(
            libc::EPERM
            | libc::ENOKEY
            | libc::ENODATA
            | libc::EKEYREJECTED
            | libc::EKEYEXPIRED
            | libc::EKEYREVOKED,
        ) => KexecError::Refused {
            origin: origin.to_owned(),
            source,
        },
        _ => KexecError::Load {
            origin: origin.to_owned(),
            source,
        },
    }
}

/// An anonymous in-memory file holding `bytes`: kexec_file_load takes file descriptors, and
/// the kernel and initrd of a UKI are sections of one file, not files of their own.
fn memfd_with(name: &str, bytes: &[u8]) -> Result<OwnedFd, KexecError> {
    let fd = rustix::fs::memfd_create(name, rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|errno| KexecError::Stage(errno.into()))?;
    let mut file = File::from(fd);
    file.write_all(bytes).map_err(KexecError::Stage)?;
    Ok(file.into())
}

/// kexec_file_load(2) as a raw system call: libc declares only its number, and neither nix
/// nor rustix wraps it. The kernel reads both files from their start.
fn kexec_file_load(
    kernel: BorrowedFd<'_>,
    initrd: Option<BorrowedFd<'_>>,
    cmdline: &std::ffi::CStr,
) -> io::Result<()> {
    let flags = if initrd.is_none() {
        libc::KEXEC_FILE_NO_INITRAMFS
    } else {
        0
    };
    let initrd_fd = initrd.map_or(-1, |fd| fd.as_raw_fd());
    let cmdline_len = cmdline.to_bytes_with_nul().len();
    // SAFETY: the descriptors are open for the whole call, `cmdline` points to `cmdline_len`
    // readable bytes ending in NUL, and the kernel writes to none of the arguments.
    let result = unsafe {
        libc::syscall(
            libc::SYS_kexec_file_load,
            libc::c_long::from(kernel.as_raw_fd()),
            libc::c_long::from(initrd_fd),
            cmdline_len as libc::c_ulong,
            cmdline.as_ptr(),
            flags as libc::c_ulong,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootkit_builder::uki::{DEFAULT_STUB, UkiInputs, build_uki};

    /// Bytes no real kernel or archive starts with, of a size no section is aligned to.
    const KERNEL: &[u8] = b"MZ fake bzImage for the kexec tests \x00\x01\x02";
    const INITRD: &[u8] = b"070701 fake newc archive";
    const CMDLINE: &str = "console=ttyS0 root=PARTLABEL=rootfs quiet";

    /// A UKI made the way the builder makes the test OS image's: systemd's stub (Debian's
    /// systemd-boot-efi, which scripts/setup.sh installs) plus the sections.
    fn real_uki(dir: &Path) -> PathBuf {
        let kernel = dir.join("vmlinuz");
        let initrd = dir.join("initrd");
        std::fs::write(&kernel, KERNEL).unwrap();
        std::fs::write(&initrd, INITRD).unwrap();
        let out = dir.join("uki.efi");
        build_uki(
            &UkiInputs {
                stub: Path::new(DEFAULT_STUB),
                kernel: &kernel,
                initrd: &initrd,
                cmdline: CMDLINE,
                os_release: "NAME=test\n",
            },
            &out,
        )
        .expect("building a UKI from systemd's stub (install systemd-boot-efi)");
        out
    }

    fn esp_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let esp = tempfile::tempdir().unwrap();
        for (path, bytes) in files {
            let path = esp.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        esp
    }

    #[test]
    fn a_ukis_sections_are_its_kernel_initrd_and_command_line_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let data = std::fs::read(real_uki(dir.path())).unwrap();
        let sections = uki_sections(&data).unwrap().expect("the UKI has .linux");
        assert_eq!(sections.linux, KERNEL);
        assert_eq!(sections.initrd, Some(INITRD));
        assert_eq!(sections.cmdline.map(section_text).as_deref(), Some(CMDLINE));
    }

    #[test]
    fn the_boot_entrys_uki_is_what_kexec_starts() {
        let dir = tempfile::tempdir().unwrap();
        let uki = std::fs::read(real_uki(dir.path())).unwrap();
        // Also an entry and a type #2 UKI: the loader the boot entry starts comes first.
        let esp = esp_with(&[
            ("EFI/BOOT/BOOTX64.EFI", &uki),
            ("loader/entries/other.conf", b"linux /other\n"),
            ("other", b"other kernel"),
        ]);
        let files = find_boot_files(esp.path(), r"\EFI\BOOT\BOOTX64.EFI").unwrap();
        assert_eq!(files.origin, r"\EFI\BOOT\BOOTX64.EFI (UKI)");
        assert_eq!(files.kernel, KERNEL);
        assert_eq!(files.initrd, INITRD);
        assert_eq!(files.cmdline, CMDLINE);
    }

    #[test]
    fn behind_systemd_boot_the_default_loader_entry_is_used() {
        let boot_loader = std::fs::read("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
            .expect("systemd-boot's own loader (install systemd-boot-efi)");
        let esp = esp_with(&[
            ("EFI/BOOT/BOOTX64.EFI", &boot_loader),
            ("loader/loader.conf", b"timeout 3\ndefault emt-1.*\n"),
            (
                "loader/entries/emt-1.0.conf",
                b"# the installed system\ntitle EMT 1.0\nlinux /emt/vmlinuz-1.0\n\
                  initrd /emt/microcode\ninitrd /emt/initrd-1.0\n\
                  options root=PARTLABEL=rootfs\noptions console=ttyS0\n",
            ),
            ("loader/entries/emt-2.0.conf", b"linux /emt/vmlinuz-2.0\n"),
            ("emt/vmlinuz-1.0", b"kernel 1.0"),
            ("emt/microcode", b"ucode|"),
            ("emt/initrd-1.0", b"initrd 1.0"),
        ]);
        let files = find_boot_files(esp.path(), r"\EFI\BOOT\BOOTX64.EFI").unwrap();
        assert_eq!(files.origin, "systemd-boot entry emt-1.0.conf");
        assert_eq!(files.kernel, b"kernel 1.0");
        // Several initrds are concatenated, in order, as systemd-boot hands them over.
        assert_eq!(files.initrd, b"ucode|initrd 1.0");
        assert_eq!(files.cmdline, "root=PARTLABEL=rootfs console=ttyS0");
    }

    #[test]
    fn without_a_default_the_entry_sorting_last_is_used() {
        let esp = esp_with(&[
            ("loader/entries/emt-1.0.conf", b"linux /k1\n"),
            ("loader/entries/emt-2.0.conf", b"linux /k2\noptions quiet\n"),
            ("k1", b"one"),
            ("k2", b"two"),
        ]);
        let files = find_boot_files(esp.path(), r"\EFI\BOOT\BOOTX64.EFI").unwrap();
        assert_eq!(files.kernel, b"two");
        assert_eq!(files.initrd, b"");
        assert_eq!(files.cmdline, "quiet");
    }

    #[test]
    fn an_entry_naming_a_uki_gives_the_ukis_sections() {
        let dir = tempfile::tempdir().unwrap();
        let uki = std::fs::read(real_uki(dir.path())).unwrap();
        let esp = esp_with(&[
            (
                "loader/entries/emt.conf",
                b"efi /EFI/Linux/emt.efi\noptions ignored\n",
            ),
            ("EFI/Linux/emt.efi", &uki),
        ]);
        let files = find_boot_files(esp.path(), r"\EFI\BOOT\BOOTX64.EFI").unwrap();
        assert_eq!(files.kernel, KERNEL);
        assert_eq!(files.cmdline, CMDLINE);
    }

    #[test]
    fn type_2_ukis_are_found_in_efi_linux() {
        let dir = tempfile::tempdir().unwrap();
        let uki = std::fs::read(real_uki(dir.path())).unwrap();
        let esp = esp_with(&[
            ("EFI/Linux/emt-1.0.efi", b"not even a PE image, never read"),
            ("EFI/Linux/emt-2.0.efi", &uki),
        ]);
        let files = find_boot_files(esp.path(), r"\EFI\BOOT\BOOTX64.EFI").unwrap();
        assert_eq!(files.origin, r"\EFI\Linux\emt-2.0.efi (UKI)");
        assert_eq!(files.kernel, KERNEL);
    }

    #[test]
    fn an_esp_without_a_kernel_says_where_it_looked() {
        let boot_loader = std::fs::read("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
            .expect("systemd-boot's own loader (install systemd-boot-efi)");
        let esp = esp_with(&[("EFI/BOOT/BOOTX64.EFI", &boot_loader)]);
        let error = find_boot_files(esp.path(), r"\EFI\BOOT\BOOTX64.EFI").unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, KexecError::NoKernel { .. })
                && message.contains(r"\EFI\BOOT\BOOTX64.EFI")
                && message.contains("loader/entries")
                && message.contains("EFI/Linux"),
            "{message}"
        );
    }

    #[test]
    fn a_damaged_uki_is_named() {
        let esp = esp_with(&[("EFI/BOOT/BOOTX64.EFI", b"MZ but nothing after")]);
        let error = find_boot_files(esp.path(), r"\EFI\BOOT\BOOTX64.EFI").unwrap_err();
        assert!(
            matches!(&error, KexecError::Pe { path, .. } if path.ends_with("BOOTX64.EFI")),
            "{error}"
        );
    }

    #[test]
    fn entries_parse_as_the_boot_loader_specification_writes_them() {
        let entry = parse_entry(
            "title  EMT\n# comment\nversion 3.0\nlinux\t/vmlinuz\noptions a=1  b\n\
             machine-id 0123\noptions c\n",
        );
        assert_eq!(entry.linux.as_deref(), Some("/vmlinuz"));
        assert_eq!(entry.options, "a=1  b c");
        assert!(entry.initrd.is_empty() && entry.efi.is_none());
        assert_eq!(default_pattern("default @saved\n"), None);
        assert_eq!(
            default_pattern("defaults x\ndefault emt.conf\n").as_deref(),
            Some("emt.conf")
        );
    }

    #[test]
    fn lockdown_refusals_are_told_apart_from_other_load_failures() {
        let error = |errno| classify("x", io::Error::from_raw_os_error(errno));
        assert!(matches!(error(libc::EPERM), KexecError::Refused { .. }));
        for refusal in [libc::ENOKEY, libc::ENODATA, libc::EKEYREJECTED] {
            assert!(matches!(error(refusal), KexecError::Refused { .. }));
        }
        assert!(matches!(error(libc::ENOSYS), KexecError::Unsupported));
        assert!(matches!(error(libc::ENOEXEC), KexecError::Load { .. }));
        assert!(
            error(libc::EPERM).to_string().contains("Secure Boot"),
            "the refusal says why"
        );
    }
}
