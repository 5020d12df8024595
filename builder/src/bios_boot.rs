//! A BIOS boot program for the test OS image: the protective MBR's boot code area (bytes
//! 0..440) holds a real-mode program that prints the image's marker line on COM1 and halts,
//! so an installed disk proves itself on a BIOS machine (SeaBIOS) as the UKI does on UEFI.
//!
//! Hand-assembled because no assembler is on the build hosts and the program is 63 bytes;
//! every instruction is listed with its encoding below. The partition table (446..510) and
//! the 0x55AA signature written by gptman are left alone: the disk stays a valid GPT disk.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::{BuildError, Result};

/// The size of the MBR's boot code area (the disk signature starts at 440).
pub const BOOT_CODE_AREA: usize = 440;
/// Where the BIOS loads the first sector.
const LOAD_ADDRESS: u16 = 0x7C00;

/// The program without its message; the message follows it, NUL-terminated.
#[rustfmt::skip]
const PROGRAM: [u8; 63] = [
    // Segments and stack: the BIOS leaves them undefined.
    0xFA,                   // 0:  cli
    0x31, 0xC0,             // 1:  xor ax, ax
    0x8E, 0xD8,             // 3:  mov ds, ax
    0x8E, 0xD0,             // 5:  mov ss, ax
    0xBC, 0x00, 0x7C,       // 7:  mov sp, 0x7c00
    0xFC,                   // 10: cld                (lodsb counts up)
    // COM1 at 115200 8N1: divisor latch on, divisor 1, latch off with 8 data bits.
    0xBA, 0xFB, 0x03,       // 11: mov dx, 0x3fb      (line control)
    0xB0, 0x80,             // 14: mov al, 0x80       (DLAB)
    0xEE,                   // 16: out dx, al
    0xBA, 0xF8, 0x03,       // 17: mov dx, 0x3f8      (divisor low)
    0xB0, 0x01,             // 20: mov al, 1
    0xEE,                   // 22: out dx, al
    0x42,                   // 23: inc dx             (0x3f9, divisor high)
    0x30, 0xC0,             // 24: xor al, al
    0xEE,                   // 26: out dx, al
    0xBA, 0xFB, 0x03,       // 27: mov dx, 0x3fb
    0xB0, 0x03,             // 30: mov al, 3          (8N1, DLAB off)
    0xEE,                   // 32: out dx, al
    // The message's address: patched by `boot_code` to LOAD_ADDRESS + 63.
    0xBE, 0x00, 0x00,       // 33: mov si, message
    // next: one byte per loop until the NUL.
    0xAC,                   // 36: lodsb
    0x84, 0xC0,             // 37: test al, al
    0x74, 0x12,             // 39: jz done            (41 + 0x12 = 59)
    0x88, 0xC3,             // 41: mov bl, al
    // wait: until the transmit holding register is empty (line status bit 5).
    0xBA, 0xFD, 0x03,       // 43: mov dx, 0x3fd
    0xEC,                   // 46: in al, dx
    0xA8, 0x20,             // 47: test al, 0x20
    0x74, 0xF8,             // 49: jz wait            (51 - 8 = 43)
    0xBA, 0xF8, 0x03,       // 51: mov dx, 0x3f8      (transmit register)
    0x88, 0xD8,             // 54: mov al, bl
    0xEE,                   // 56: out dx, al
    0xEB, 0xE9,             // 57: jmp next           (59 - 23 = 36)
    // done: halt for good (hlt returns on an interrupt, hence the loop).
    0xFA,                   // 59: cli
    0xF4,                   // 60: hlt
    0xEB, 0xFD,             // 61: jmp 60             (63 - 3 = 60)
];
/// The operand of `mov si, message`.
const MESSAGE_POINTER_AT: usize = 34;

/// The boot code printing `marker` and a CRLF; at most [`BOOT_CODE_AREA`] bytes.
pub fn boot_code(marker: &str) -> Result<Vec<u8>> {
    let mut code = PROGRAM.to_vec();
    // PROGRAM is 63 bytes: its length always fits the u16 address.
    let program_len = u16::try_from(PROGRAM.len()).unwrap_or(u16::MAX);
    let message_address = LOAD_ADDRESS + program_len;
    code[MESSAGE_POINTER_AT..MESSAGE_POINTER_AT + 2]
        .copy_from_slice(&message_address.to_le_bytes());
    code.extend_from_slice(marker.as_bytes());
    code.extend_from_slice(b"\r\n\0");
    if marker.bytes().any(|b| b == 0) || code.len() > BOOT_CODE_AREA {
        return Err(BuildError::Config(format!(
            "marker {marker:?}: the BIOS boot code prints it from the MBR, where {} bytes fit \
             (use a shorter marker without NUL bytes)",
            BOOT_CODE_AREA - PROGRAM.len() - 3
        )));
    }
    Ok(code)
}

/// Write `code` at the start of the disk image `disk` (its partition table untouched).
pub fn install(disk: &Path, code: &[u8]) -> Result<()> {
    if code.len() > BOOT_CODE_AREA {
        return Err(BuildError::DiskImage {
            path: disk.to_path_buf(),
            reason: format!(
                "boot code of {} bytes does not fit the MBR's {BOOT_CODE_AREA}",
                code.len()
            ),
        });
    }
    let result = (|| {
        let mut file = OpenOptions::new().write(true).open(disk)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(code)?;
        file.sync_all()
    })();
    result.map_err(BuildError::io(format!(
        "write the BIOS boot code into {}",
        disk.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_follows_the_program_where_si_points() {
        let code = boot_code("EMT-TEST-BOOTED").unwrap();
        let pointer = u16::from_le_bytes([code[MESSAGE_POINTER_AT], code[MESSAGE_POINTER_AT + 1]]);
        let message = &code[usize::from(pointer - LOAD_ADDRESS)..];
        assert_eq!(message, b"EMT-TEST-BOOTED\r\n\0");
    }

    #[test]
    fn the_jumps_land_on_their_labels() {
        // A short jump's target is the next instruction's offset plus its signed operand.
        let target = |at: usize| (at as isize + 2 + PROGRAM[at + 1] as i8 as isize) as usize;
        assert_eq!(target(39), 59, "jz done");
        assert_eq!(PROGRAM[59], 0xFA, "done: cli");
        assert_eq!(target(49), 43, "jz wait");
        assert_eq!(PROGRAM[43], 0xBA, "wait: mov dx");
        assert_eq!(target(57), 36, "jmp next");
        assert_eq!(PROGRAM[36], 0xAC, "next: lodsb");
        assert_eq!(target(61), 60, "jmp hlt");
        assert_eq!(PROGRAM[60], 0xF4, "hlt");
    }

    #[test]
    fn the_partition_table_and_signature_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk.img");
        let mut sector = vec![0u8; 4096];
        sector[446..462].copy_from_slice(&[0xAB; 16]);
        sector[510] = 0x55;
        sector[511] = 0xAA;
        std::fs::write(&disk, &sector).unwrap();
        let code = boot_code("hello").unwrap();
        install(&disk, &code).unwrap();
        let written = std::fs::read(&disk).unwrap();
        assert_eq!(&written[..code.len()], &code[..]);
        assert_eq!(&written[440..], &sector[440..]);
    }

    #[test]
    fn a_marker_too_long_for_the_mbr_is_refused() {
        assert!(boot_code(&"x".repeat(374)).is_ok());
        let err = boot_code(&"x".repeat(375)).unwrap_err().to_string();
        assert!(err.contains("374 bytes fit"), "{err}");
    }
}
