//! The UEFI boot entry of the installed system, written natively through efivarfs (no
//! efibootmgr in the bootkit): a `Boot####` load option pointing at the loader on the
//! installed ESP, put first in `BootOrder`.
//!
//! efivarfs shows each variable as a file holding 4 attribute bytes then the data; a write
//! must carry both in one `write` call, and the kernel may mark files immutable
//! (`FS_IMMUTABLE_FL`), which is cleared for the write and restored after.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::gpt::{self, GptError, PartitionInfo};

/// The EFI global variable GUID, the namespace of `Boot####` and `BootOrder`.
pub(crate) const GLOBAL: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
/// The namespace systemd-boot and systemd-stub put their variables in.
const LOADER: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
/// NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS.
const ATTRIBUTES: u32 = 0x7;
const LOAD_OPTION_ACTIVE: u32 = 0x1;
/// efivarfs's `f_type`.
const EFIVARFS_MAGIC: u64 = 0xde5e_81e4;

/// Where the kernel shows the firmware's variables.
pub const EFIVARS: &str = "/sys/firmware/efi/efivars";
/// The loader the EMT images (and the removable-media fallback) boot.
pub const DEFAULT_LOADER: &str = "\\EFI\\BOOT\\BOOTX64.EFI";

/// Why a UEFI boot entry cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum EfiError {
    /// The partition the entry points at cannot be found.
    #[error("cannot locate the partition for the boot entry")]
    Partition(#[from] GptError),
    /// An EFI variable cannot be read.
    #[error("cannot read EFI variable {}", path.display())]
    Read {
        /// The variable's file under efivarfs.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// An EFI variable cannot be written.
    #[error(
        "cannot write EFI variable {} (is efivarfs mounted read-write? the firmware \
         may also be out of variable space)",
        path.display()
    )]
    Write {
        /// The variable's file under efivarfs.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The kernel took only part of a variable's bytes.
    #[error("EFI variable {} took {written} of {expected} bytes", path.display())]
    ShortWrite {
        /// The variable's file.
        path: PathBuf,
        /// Bytes written.
        written: usize,
        /// Bytes the variable has.
        expected: usize,
    },
    /// A variable does not parse (BootOrder, Boot####).
    #[error("EFI variable {} is malformed: {problem}", path.display())]
    Malformed {
        /// The variable's file.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The loader path is not a UEFI path; carries it.
    #[error(
        "the loader path `{0}` is not a UEFI path: it must start with `\\` (e.g. \\EFI\\BOOT\\BOOTX64.EFI) and hold no NUL"
    )]
    BadLoaderPath(String),
    /// The entry's description is empty or holds a NUL.
    #[error("the boot entry description must not be empty or hold NUL")]
    BadDescription,
    /// No Boot#### number is free.
    #[error("all 65536 Boot#### variables are in use")]
    NoFreeNumber,
}

/// Whether the running system was booted through UEFI (else there are no boot entries to
/// write and the caller skips this step with a note).
pub fn uefi_booted() -> bool {
    Path::new("/sys/firmware/efi").is_dir()
}

pub(crate) fn variable_path(efivars: &Path, name: &str, namespace: &str) -> PathBuf {
    efivars.join(format!("{name}-{namespace}"))
}

/// A variable's data (without the attribute bytes); `None` when it does not exist.
fn read_variable(path: &Path) -> Result<Option<Vec<u8>>, EfiError> {
    match fs::read(path) {
        Ok(content) if content.len() >= 4 => Ok(Some(content[4..].to_vec())),
        Ok(_) => Err(EfiError::Malformed {
            path: path.to_path_buf(),
            problem: "shorter than its 4 attribute bytes",
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(EfiError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn ucs2(text: &str) -> Vec<u8> {
    text.encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// The partition (its GPT unique GUID, in GPT byte order) systemd-stub booted from, from
/// `LoaderDevicePartUUID`: UTF-16LE text such as `0ABC…-…`. `None` when the variable is absent.
pub fn loader_device_part_uuid(efivars: &Path) -> Result<Option<[u8; 16]>, EfiError> {
    let path = variable_path(efivars, "LoaderDevicePartUUID", LOADER);
    let Some(data) = read_variable(&path)? else {
        return Ok(None);
    };
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .take_while(|&unit| unit != 0)
        .collect();
    let text = String::from_utf16(&units).map_err(|_| EfiError::Malformed {
        path: path.clone(),
        problem: "not UTF-16 text",
    })?;
    gpt::guid_bytes(&text).map(Some).ok_or(EfiError::Malformed {
        path,
        problem: "not a GUID",
    })
}

/// The UEFI device path of `loader` on `partition`: a Hard Drive media node (GPT partition by
/// unique GUID), a File Path media node, the end node (UEFI spec 2.10, §10.3.5.1, §10.3.5.4).
pub fn device_path(partition: &PartitionInfo, loader: &str) -> Result<Vec<u8>, EfiError> {
    if !loader.starts_with('\\') || loader.contains('\0') {
        return Err(EfiError::BadLoaderPath(loader.to_string()));
    }
    const MEDIA: u8 = 0x04;
    const HARD_DRIVE: u8 = 0x01;
    const FILE_PATH: u8 = 0x04;
    const HARD_DRIVE_LENGTH: u16 = 42;
    const GPT_FORMAT: u8 = 0x02;
    const GUID_SIGNATURE: u8 = 0x02;
    let mut path = vec![MEDIA, HARD_DRIVE];
    path.extend_from_slice(&HARD_DRIVE_LENGTH.to_le_bytes());
    path.extend_from_slice(&partition.number.to_le_bytes());
    path.extend_from_slice(&partition.start_lba.to_le_bytes());
    path.extend_from_slice(&partition.size_lbas.to_le_bytes());
    path.extend_from_slice(&partition.unique_guid);
    path.extend_from_slice(&[GPT_FORMAT, GUID_SIGNATURE]);

    let file = ucs2(loader);
    let file_length =
        u16::try_from(4 + file.len()).map_err(|_| EfiError::BadLoaderPath(loader.to_string()))?;
    path.extend_from_slice(&[MEDIA, FILE_PATH]);
    path.extend_from_slice(&file_length.to_le_bytes());
    path.extend_from_slice(&file);

    path.extend_from_slice(&[0x7F, 0xFF, 0x04, 0x00]);
    Ok(path)
}

/// An `EFI_LOAD_OPTION`: attributes (active), the device path's length, the description in
/// UCS-2 with its NUL, the device path; no optional data.
pub fn load_option(description: &str, device_path: &[u8]) -> Result<Vec<u8>, EfiError> {
    if description.is_empty() || description.contains('\0') {
        return Err(EfiError::BadDescription);
    }
    let path_length = u16::try_from(device_path.len())
        .map_err(|_| EfiError::BadLoaderPath("(device path too long)".into()))?;
    let mut option = LOAD_OPTION_ACTIVE.to_le_bytes().to_vec();
    option.extend_from_slice(&path_length.to_le_bytes());
    option.extend_from_slice(&ucs2(description));
    option.extend_from_slice(device_path);
    Ok(option)
}

/// The device path inside a load option, or `None` when the option is malformed.
fn device_path_of(option: &[u8]) -> Option<&[u8]> {
    let path_length = usize::from(u16::from_le_bytes([*option.get(4)?, *option.get(5)?]));
    let description_end = option[6..]
        .chunks_exact(2)
        .position(|unit| unit == [0, 0])
        .map(|units| 6 + 2 * units + 2)?;
    option.get(description_end..description_end + path_length)
}

/// Boot#### numbers in use, from the efivarfs file names.
fn boot_numbers(efivars: &Path) -> Result<Vec<u16>, EfiError> {
    let entries = fs::read_dir(efivars).map_err(|source| EfiError::Read {
        path: efivars.to_path_buf(),
        source,
    })?;
    let suffix = format!("-{GLOBAL}");
    let mut numbers: Vec<u16> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let hex = name.strip_prefix("Boot")?.strip_suffix(&suffix)?;
            let valid = hex.len() == 4 && hex.bytes().all(|byte| byte.is_ascii_hexdigit());
            valid.then(|| u16::from_str_radix(hex, 16).ok()).flatten()
        })
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

fn boot_name(number: u16) -> String {
    format!("Boot{number:04X}")
}

/// Clears `FS_IMMUTABLE_FL` on an efivarfs file while it lives and restores the flags after.
/// File systems without these flags (a test directory on tmpfs) need nothing.
struct Mutable {
    file: Option<(File, rustix::fs::IFlags)>,
}

impl Mutable {
    fn new(path: &Path) -> Result<Mutable, EfiError> {
        let write_error = |source: io::Error| EfiError::Write {
            path: path.to_path_buf(),
            source,
        };
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(Mutable { file: None });
            }
            Err(source) => return Err(write_error(source)),
        };
        let Ok(flags) = rustix::fs::ioctl_getflags(&file) else {
            return Ok(Mutable { file: None });
        };
        if !flags.contains(rustix::fs::IFlags::IMMUTABLE) {
            return Ok(Mutable { file: None });
        }
        rustix::fs::ioctl_setflags(&file, flags - rustix::fs::IFlags::IMMUTABLE)
            .map_err(|errno| write_error(errno.into()))?;
        Ok(Mutable {
            file: Some((file, flags)),
        })
    }
}

impl Drop for Mutable {
    fn drop(&mut self) {
        if let Some((file, flags)) = &self.file {
            // Best effort: the variable is written; a lost flag only loses a safety catch.
            let _ = rustix::fs::ioctl_setflags(file, *flags);
        }
    }
}

/// Writes variable `name` (global namespace) with NV|BS|RT attributes in one write call.
fn write_variable(efivars: &Path, name: &str, data: &[u8]) -> Result<(), EfiError> {
    let path = variable_path(efivars, name, GLOBAL);
    let write_error = |source: io::Error| EfiError::Write {
        path: path.clone(),
        source,
    };
    let mut content = ATTRIBUTES.to_le_bytes().to_vec();
    content.extend_from_slice(data);
    let _mutable = Mutable::new(&path)?;
    // efivarfs replaces the whole variable on each write; a plain directory standing in for
    // it (tests, a chroot) needs the old content cut instead.
    let on_efivarfs = rustix::fs::statfs(efivars)
        .map(|stat| stat.f_type as u64 == EFIVARFS_MAGIC)
        .unwrap_or(false);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(!on_efivarfs)
        .open(&path)
        .map_err(write_error)?;
    let written = file.write(&content).map_err(write_error)?;
    if written != content.len() {
        return Err(EfiError::ShortWrite {
            path,
            written,
            expected: content.len(),
        });
    }
    Ok(())
}

/// Puts `number` first in BootOrder, keeping the others in their order.
fn put_first_in_boot_order(efivars: &Path, number: u16) -> Result<(), EfiError> {
    let path = variable_path(efivars, "BootOrder", GLOBAL);
    let current: Vec<u16> = read_variable(&path)?
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    if current.first() == Some(&number) {
        return Ok(());
    }
    let order: Vec<u8> = std::iter::once(number)
        .chain(current.into_iter().filter(|&other| other != number))
        .flat_map(u16::to_le_bytes)
        .collect();
    write_variable(efivars, "BootOrder", &order)
}

/// Adds (or, on a reinstall, reuses) the boot entry for `loader` on partition
/// `esp_partition_number` of `disk`, puts it first in BootOrder and returns its number.
///
/// An existing entry with the same device path (same partition GUID, place and loader) is
/// reused, rewritten only if its description or attributes differ; otherwise the lowest free
/// Boot#### number is taken.
pub fn add_boot_entry(
    efivars: &Path,
    disk: &mut File,
    sector_size: u64,
    esp_partition_number: u32,
    loader: &str,
    description: &str,
) -> Result<u16, EfiError> {
    let partition = gpt::partition(disk, sector_size, esp_partition_number)?;
    let path = device_path(&partition, loader)?;
    let option = load_option(description, &path)?;
    let numbers = boot_numbers(efivars)?;

    let mut existing = None;
    for &number in &numbers {
        let variable = variable_path(efivars, &boot_name(number), GLOBAL);
        let Some(data) = read_variable(&variable)? else {
            continue;
        };
        if device_path_of(&data) == Some(path.as_slice()) {
            existing = Some((number, data));
            break;
        }
    }
    let number = match existing {
        Some((number, data)) => {
            if data != option {
                write_variable(efivars, &boot_name(number), &option)?;
            }
            number
        }
        None => {
            let number = (0..=u16::MAX)
                .find(|candidate| numbers.binary_search(candidate).is_err())
                .ok_or(EfiError::NoFreeNumber)?;
            write_variable(efivars, &boot_name(number), &option)?;
            number
        }
    };
    put_first_in_boot_order(efivars, number)?;
    Ok(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esp() -> PartitionInfo {
        PartitionInfo {
            number: 1,
            start_lba: 0x800,
            size_lbas: 0x10_0000,
            unique_guid: gpt::guid_bytes("3E1E4C2A-F35D-40A1-B1C2-569A0B1C2D3E").unwrap(),
            name: "esp".into(),
        }
    }

    fn u16_at(bytes: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap())
    }

    #[test]
    fn the_hard_drive_node_follows_the_uefi_layout() {
        let path = device_path(&esp(), DEFAULT_LOADER).unwrap();
        // Hard Drive media node: type 4, subtype 1, length 42.
        assert_eq!(&path[0..4], &[0x04, 0x01, 42, 0]);
        assert_eq!(u32::from_le_bytes(path[4..8].try_into().unwrap()), 1);
        assert_eq!(u64::from_le_bytes(path[8..16].try_into().unwrap()), 0x800);
        assert_eq!(
            u64::from_le_bytes(path[16..24].try_into().unwrap()),
            0x10_0000
        );
        // The signature is the GUID in GPT's mixed-endian order: the first three fields
        // little-endian, the last two as written.
        assert_eq!(
            &path[24..40],
            &[
                0x2A, 0x4C, 0x1E, 0x3E, 0x5D, 0xF3, 0xA1, 0x40, 0xB1, 0xC2, 0x56, 0x9A, 0x0B, 0x1C,
                0x2D, 0x3E
            ]
        );
        assert_eq!(path[40], 0x02, "partition format: GPT");
        assert_eq!(path[41], 0x02, "signature type: GUID");
    }

    #[test]
    fn the_file_path_node_and_end_node_follow() {
        let path = device_path(&esp(), DEFAULT_LOADER).unwrap();
        let file = &path[42..];
        let name_bytes = 2 * (DEFAULT_LOADER.len() + 1);
        assert_eq!(&file[0..2], &[0x04, 0x04]);
        assert_eq!(usize::from(u16_at(file, 2)), 4 + name_bytes);
        let name: Vec<u16> = file[4..4 + name_bytes]
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
            .collect();
        assert_eq!(
            String::from_utf16(&name).unwrap(),
            "\\EFI\\BOOT\\BOOTX64.EFI\0"
        );
        assert_eq!(&file[4 + name_bytes..], &[0x7F, 0xFF, 0x04, 0x00]);
        assert_eq!(path.len(), 42 + 4 + name_bytes + 4);
    }

    #[test]
    fn the_load_option_is_attributes_length_description_path() {
        let path = device_path(&esp(), DEFAULT_LOADER).unwrap();
        let option = load_option("EMT", &path).unwrap();
        assert_eq!(&option[0..4], &[1, 0, 0, 0], "LOAD_OPTION_ACTIVE");
        assert_eq!(usize::from(u16_at(&option, 4)), path.len());
        assert_eq!(&option[6..14], &[b'E', 0, b'M', 0, b'T', 0, 0, 0]);
        assert_eq!(&option[14..], path.as_slice());
        assert_eq!(device_path_of(&option), Some(path.as_slice()));
    }

    #[test]
    fn bad_paths_and_descriptions_are_refused() {
        assert!(matches!(
            device_path(&esp(), "EFI/BOOT/BOOTX64.EFI"),
            Err(EfiError::BadLoaderPath(_))
        ));
        assert!(matches!(
            load_option("", &[]),
            Err(EfiError::BadDescription)
        ));
    }

    /// An efivarfs stand-in with an ESP disk file.
    struct Fixture {
        efivars: tempfile::TempDir,
        disk: tempfile::NamedTempFile,
    }

    impl Fixture {
        fn new() -> Fixture {
            let disk = tempfile::NamedTempFile::new().unwrap();
            disk.as_file().set_len(8 << 20).unwrap();
            let mut file = disk.reopen().unwrap();
            let mut table = gptman::GPT::new_from(&mut file, 512, [5; 16]).unwrap();
            table[1] = gptman::GPTPartitionEntry {
                partition_type_guid: gpt::guid_bytes(gpt::EFI_SYSTEM_TYPE).unwrap(),
                unique_partition_guid: esp().unique_guid,
                starting_lba: 2048,
                ending_lba: 4095,
                attribute_bits: 0,
                partition_name: "esp".into(),
            };
            table.write_into(&mut file).unwrap();
            Fixture {
                efivars: tempfile::tempdir().unwrap(),
                disk,
            }
        }

        fn set(&self, name: &str, data: &[u8]) {
            let mut content = 7u32.to_le_bytes().to_vec();
            content.extend_from_slice(data);
            fs::write(
                self.efivars.path().join(format!("{name}-{GLOBAL}")),
                content,
            )
            .unwrap();
        }

        fn get(&self, name: &str) -> Vec<u8> {
            let content = fs::read(self.efivars.path().join(format!("{name}-{GLOBAL}"))).unwrap();
            assert_eq!(&content[..4], &[7, 0, 0, 0], "attributes NV|BS|RT");
            content[4..].to_vec()
        }

        fn boot_order(&self) -> Vec<u16> {
            self.get("BootOrder")
                .chunks_exact(2)
                .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
                .collect()
        }

        fn add(&self, description: &str) -> u16 {
            add_boot_entry(
                self.efivars.path(),
                &mut self.disk.reopen().unwrap(),
                512,
                1,
                DEFAULT_LOADER,
                description,
            )
            .unwrap()
        }
    }

    fn entry(description: &str, partition: &PartitionInfo) -> Vec<u8> {
        load_option(
            description,
            &device_path(partition, DEFAULT_LOADER).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn a_new_entry_takes_the_lowest_free_number_and_goes_first() {
        let fixture = Fixture::new();
        let other = PartitionInfo {
            unique_guid: [0xAB; 16],
            ..esp()
        };
        fixture.set("Boot0000", &entry("UEFI PXEv4", &other));
        fixture.set("Boot0002", &entry("UEFI Shell", &other));
        fixture.set("BootOrder", &[0, 0, 2, 0]);
        let number = fixture.add("Edge Microvisor Toolkit");
        assert_eq!(number, 1);
        let expected = PartitionInfo {
            start_lba: 2048,
            size_lbas: 2048,
            ..esp()
        };
        assert_eq!(
            fixture.get("Boot0001"),
            entry("Edge Microvisor Toolkit", &expected)
        );
        assert_eq!(fixture.boot_order(), vec![1, 0, 2]);
    }

    #[test]
    fn a_reinstall_reuses_its_entry_and_keeps_the_order_of_the_others() {
        let fixture = Fixture::new();
        fixture.set(
            "Boot0000",
            &entry(
                "UEFI PXEv4",
                &PartitionInfo {
                    unique_guid: [0xAB; 16],
                    ..esp()
                },
            ),
        );
        fixture.set("BootOrder", &[0, 0]);
        assert_eq!(fixture.add("EMT"), 1);
        // The firmware or a user moved PXE first; the reinstall renames the entry.
        fixture.set("BootOrder", &[0, 0, 1, 0]);
        assert_eq!(fixture.add("EMT 3.1"), 1);
        assert_eq!(fixture.boot_order(), vec![1, 0]);
        let option = fixture.get("Boot0001");
        assert_eq!(&option[6..14], &[b'E', 0, b'M', 0, b'T', 0, b' ', 0]);
        let boot_files = fs::read_dir(fixture.efivars.path())
            .unwrap()
            .filter(|entry| {
                let name = entry.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with("Boot0")
            })
            .count();
        assert_eq!(boot_files, 2, "no duplicate entry");
    }

    #[test]
    fn boot_order_is_created_when_missing() {
        let fixture = Fixture::new();
        assert_eq!(fixture.add("EMT"), 0);
        assert_eq!(fixture.boot_order(), vec![0]);
    }

    #[test]
    fn the_loader_partition_guid_is_read_from_systemd_stub_text() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(loader_device_part_uuid(dir.path()).unwrap(), None);
        let mut content = 6u32.to_le_bytes().to_vec();
        content.extend(ucs2("3E1E4C2A-F35D-40A1-B1C2-569A0B1C2D3E"));
        fs::write(
            dir.path().join(format!("LoaderDevicePartUUID-{LOADER}")),
            content,
        )
        .unwrap();
        assert_eq!(
            loader_device_part_uuid(dir.path()).unwrap(),
            Some(esp().unique_guid)
        );
    }
}
