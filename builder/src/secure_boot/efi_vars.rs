//! The UEFI data structures that enroll keys: EFI_SIGNATURE_LIST (UEFI spec 2.10, 32.4.1)
//! and the time-based authenticated write EFI_VARIABLE_AUTHENTICATION_2 (8.2.2).
//!
//! They are a few fixed-layout headers, so they are written here; the PKCS#7 signature
//! inside the `.auth` comes from [`super::openssl`]. efitools' `cert-to-efi-sig-list` and
//! `sign-efi-sig-list` are the oracles of the tests.

use uuid::{Uuid, uuid};

/// EFI_CERT_X509_GUID: a signature list of DER X.509 certificates.
pub const EFI_CERT_X509_GUID: Uuid = uuid!("a5c059a1-94e4-4aa7-87b5-ab155c2bf072");
/// EFI_CERT_TYPE_PKCS7_GUID: the WIN_CERTIFICATE_UEFI_GUID carries PKCS#7 SignedData.
pub const EFI_CERT_TYPE_PKCS7_GUID: Uuid = uuid!("4aafd29d-68df-49ee-8aa9-347d375665a7");
/// EFI_GLOBAL_VARIABLE: the vendor GUID of `PK` and `KEK`.
pub const EFI_GLOBAL_VARIABLE: Uuid = uuid!("8be4df61-93ca-11d2-aa0d-00e098032b8c");
/// EFI_IMAGE_SECURITY_DATABASE_GUID: the vendor GUID of `db` and `dbx`.
pub const EFI_IMAGE_SECURITY_DATABASE_GUID: Uuid = uuid!("d719b2cb-3d3a-4596-a3bc-dad00e67656f");

/// NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS | TIME_BASED_AUTHENTICATED_WRITE_ACCESS:
/// the attributes firmware requires of PK, KEK and db writes.
pub const SECURE_BOOT_VAR_ATTRIBUTES: u32 = 0x01 | 0x02 | 0x04 | 0x20;

/// WIN_CERT_TYPE_EFI_GUID, the WIN_CERTIFICATE type of an EFI_VARIABLE_AUTHENTICATION_2.
const WIN_CERT_TYPE_EFI_GUID: u16 = 0x0EF1;
/// WIN_CERTIFICATE revision 2.0.
const WIN_CERT_REVISION: u16 = 0x0200;

/// An EFI_SIGNATURE_LIST holding one X.509 certificate (`der`) owned by `owner`.
pub fn x509_signature_list(der: &[u8], owner: Uuid) -> Vec<u8> {
    // EFI_SIGNATURE_DATA: the owner GUID then the certificate.
    let signature_size = 16 + der.len();
    // EFI_SIGNATURE_LIST header: type GUID, list size, header size (0 for X.509), entry size.
    let list_size = 16 + 4 + 4 + 4 + signature_size;
    let mut out = Vec::with_capacity(list_size);
    out.extend_from_slice(&EFI_CERT_X509_GUID.to_bytes_le());
    out.extend_from_slice(&u32_len(list_size).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&u32_len(signature_size).to_le_bytes());
    out.extend_from_slice(&owner.to_bytes_le());
    out.extend_from_slice(der);
    out
}

/// An EFI_TIME in UTC, as the authenticated variable's timestamp (nanosecond, time zone
/// and daylight zero, as the spec requires of EFI_VARIABLE_AUTHENTICATION_2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EfiTime {
    /// The year (1900-9999).
    pub year: u16,
    /// 1-12.
    pub month: u8,
    /// 1-31.
    pub day: u8,
    /// 0-23.
    pub hour: u8,
    /// 0-59.
    pub minute: u8,
    /// 0-59.
    pub second: u8,
}

impl EfiTime {
    /// The UTC calendar time of `unix_seconds`.
    pub fn from_unix(unix_seconds: i64) -> Option<Self> {
        let time = time::OffsetDateTime::from_unix_timestamp(unix_seconds).ok()?;
        Some(Self {
            year: u16::try_from(time.year()).ok()?,
            month: u8::from(time.month()),
            day: time.day(),
            hour: time.hour(),
            minute: time.minute(),
            second: time.second(),
        })
    }

    /// The 16-byte EFI_TIME.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[0..2].copy_from_slice(&self.year.to_le_bytes());
        out[2] = self.month;
        out[3] = self.day;
        out[4] = self.hour;
        out[5] = self.minute;
        out[6] = self.second;
        // Pad1, Nanosecond, TimeZone, Daylight, Pad2: all zero.
        out
    }
}

/// The bytes an EFI_VARIABLE_AUTHENTICATION_2 signature covers (spec 8.2.2, SetVariable()):
/// the variable name (UTF-16LE, no terminator), its vendor GUID, the attributes, the
/// timestamp, then the new value.
pub fn signed_payload(
    name: &str,
    vendor: Uuid,
    attributes: u32,
    timestamp: EfiTime,
    data: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    for unit in name.encode_utf16() {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out.extend_from_slice(&vendor.to_bytes_le());
    out.extend_from_slice(&attributes.to_le_bytes());
    out.extend_from_slice(&timestamp.to_bytes());
    out.extend_from_slice(data);
    out
}

/// The `.auth` file: EFI_VARIABLE_AUTHENTICATION_2 (timestamp, WIN_CERTIFICATE_UEFI_GUID
/// with the DER PKCS#7 `signature`) followed by the variable's new value `data`.
pub fn authenticated_update(timestamp: EfiTime, signature: &[u8], data: &[u8]) -> Vec<u8> {
    // WIN_CERTIFICATE header (length, revision, type) + CertType GUID + CertData.
    let cert_length = 4 + 2 + 2 + 16 + signature.len();
    let mut out = Vec::with_capacity(16 + cert_length + data.len());
    out.extend_from_slice(&timestamp.to_bytes());
    out.extend_from_slice(&u32_len(cert_length).to_le_bytes());
    out.extend_from_slice(&WIN_CERT_REVISION.to_le_bytes());
    out.extend_from_slice(&WIN_CERT_TYPE_EFI_GUID.to_le_bytes());
    out.extend_from_slice(&EFI_CERT_TYPE_PKCS7_GUID.to_bytes_le());
    out.extend_from_slice(signature);
    out.extend_from_slice(data);
    out
}

/// The OID 1.2.840.113549.1.7.2 (pkcs7-signedData), DER-encoded with its tag and length.
const SIGNED_DATA_OID: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
];

/// The SignedData inside a DER PKCS#7 ContentInfo: the spec's CertData is the bare
/// SignedData (what efitools writes), while `openssl smime` wraps it in a ContentInfo
/// (SEQUENCE { OID signedData, [0] EXPLICIT SignedData }).
pub fn signed_data_of(content_info: &[u8]) -> Option<&[u8]> {
    let (tag, body, _) = der_element(content_info)?;
    if tag != 0x30 || !body.starts_with(&SIGNED_DATA_OID) {
        return None;
    }
    let (tag, explicit, _) = der_element(&body[SIGNED_DATA_OID.len()..])?;
    if tag != 0xa0 {
        return None;
    }
    let (tag, _, whole) = der_element(explicit)?;
    (tag == 0x30).then_some(whole)
}

/// The first DER element of `input`: its tag, its contents, and the whole element.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = usize::from(*input.get(1)?);
    let (length, header) = if first < 0x80 {
        (first, 2)
    } else {
        let count = first & 0x7f;
        if count == 0 || count > 4 {
            return None;
        }
        let bytes = input.get(2..2 + count)?;
        let length = bytes
            .iter()
            .fold(0usize, |acc, byte| (acc << 8) | usize::from(*byte));
        (length, 2 + count)
    };
    let end = header.checked_add(length)?;
    Some((tag, input.get(header..end)?, input.get(..end)?))
}

/// A length field: certificates and signatures are a few KiB, far from 4 GiB, so the
/// saturation never happens in practice (firmware would reject such a list anyway).
fn u32_len(length: usize) -> u32 {
    u32::try_from(length).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn efi_time_is_utc_calendar_time() {
        // 2026-12-07 21:30:05 UTC.
        let time = EfiTime::from_unix(1_796_679_005).expect("in range");
        assert_eq!(
            (
                time.year,
                time.month,
                time.day,
                time.hour,
                time.minute,
                time.second
            ),
            (2026, 12, 7, 21, 30, 5)
        );
        assert_eq!(&time.to_bytes()[..8], &[0xEA, 0x07, 12, 7, 21, 30, 5, 0]);
    }

    #[test]
    fn signed_data_is_unwrapped_from_its_content_info() {
        // ContentInfo { signedData, [0] { SEQUENCE { INTEGER 1 } } }
        let mut info = vec![0x30, 0x12];
        info.extend_from_slice(&SIGNED_DATA_OID);
        info.extend_from_slice(&[0xa0, 0x05, 0x30, 0x03, 0x02, 0x01, 0x01]);
        assert_eq!(
            signed_data_of(&info),
            Some(&[0x30, 0x03, 0x02, 0x01, 0x01][..])
        );
        assert_eq!(signed_data_of(&info[..10]), None, "truncated");
        info[4] = 0x2b;
        assert_eq!(signed_data_of(&info), None, "another content type");
    }

    #[test]
    fn guids_are_written_mixed_endian_as_the_spec_lays_out() {
        // EFI_GUID's first three fields are little-endian integers.
        assert_eq!(
            &EFI_CERT_X509_GUID.to_bytes_le()[..4],
            &[0xa1, 0x59, 0xc0, 0xa5]
        );
    }
}
