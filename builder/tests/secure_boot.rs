//! Secure Boot outputs checked by tools that are not the project's: every EFI binary the
//! builder signs verifies with sbsigntool's `sbverify --cert` against the db certificate it
//! was signed with, and fails against another one; the key set's signature lists and signed
//! updates are what efitools (`cert-to-efi-sig-list`, `sign-efi-sig-list`,
//! `sig-list-to-certs`) make of the same certificates and keys, byte for byte. That the
//! firmware accepts them is qemu-tests/tests/secure_boot.rs's part (virt-fw-vars enrolls the
//! certificates, OVMF judges the signatures).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use bootkit_builder::secure_boot::{KeyRole, KeySet};
use bootkit_builder::test_os::{TestOsSpec, build_signed_test_os};
use bootkit_builder::uki::DEFAULT_STUB;
use bootkit_builder::{ImageConfig, Progress, SecureBootConfig, UsbConfig, build_with};
use common::{ESP_TYPE, mtools_image, partitions, run};

/// A key set for the site, and one the firmware would not trust.
fn key_sets(dir: &Path) -> (KeySet, KeySet) {
    let site = KeySet::generate(&dir.join("site"), "bootkit test").unwrap();
    let other = KeySet::generate(&dir.join("other"), "someone else").unwrap();
    (site, other)
}

fn db_signing(keys: &KeySet) -> SecureBootConfig {
    SecureBootConfig {
        sign_key: keys.key(KeyRole::Db),
        sign_cert: keys.cert(KeyRole::Db),
    }
}

/// `sbverify --cert CERT FILE`: passes for the key set that signed, fails for the other.
fn assert_signed_by(file: &Path, signer: &KeySet, other: &KeySet) {
    let verify = |keys: &KeySet| {
        Command::new("sbverify")
            .arg("--cert")
            .arg(keys.cert(KeyRole::Db))
            .arg(file)
            .output()
            .expect("run sbverify (sbsigntool, installed by scripts/setup.sh)")
    };
    let good = verify(signer);
    assert!(
        good.status.success(),
        "sbverify rejects {} with the db certificate that signed it: {}",
        file.display(),
        String::from_utf8_lossy(&good.stderr)
    );
    let foreign = verify(other);
    assert!(
        !foreign.status.success(),
        "sbverify accepts {} with a certificate that did not sign it",
        file.display()
    );
}

/// `\EFI\BOOT\BOOTX64.EFI` copied out of the ESP of the disk image `image` with mtools.
fn esp_loader(image: &Path, out: &Path) -> PathBuf {
    let esp = partitions(image)
        .into_iter()
        .find(|partition| partition.type_guid == ESP_TYPE)
        .unwrap_or_else(|| panic!("{} has no ESP", image.display()));
    let loader = out.to_path_buf();
    run(
        "mcopy",
        &[
            "-i",
            &mtools_image(image, &esp),
            "::/EFI/BOOT/BOOTX64.EFI",
            loader.to_str().unwrap(),
        ],
    );
    loader
}

#[test]
fn key_files_are_private_and_the_lists_and_updates_are_efitools_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let keys = KeySet::generate(&dir.path().join("keys"), "bootkit test").unwrap();
    let guid = keys.owner.to_string();
    for role in KeyRole::ALL {
        let name = role.name();
        let mode = fs::metadata(keys.key(role)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}.key is mode {mode:o}");

        // The list holds the certificate: efitools reads it back as the same DER that
        // openssl makes of the PEM.
        let base = dir.path().join(format!("{name}-from-esl"));
        run(
            "sig-list-to-certs",
            &[keys.esl(role).to_str().unwrap(), base.to_str().unwrap()],
        );
        let der = dir.path().join(format!("{name}.der"));
        run(
            "openssl",
            &[
                "x509",
                "-in",
                keys.cert(role).to_str().unwrap(),
                "-outform",
                "DER",
                "-out",
                der.to_str().unwrap(),
            ],
        );
        assert_eq!(
            fs::read(format!("{}-0.der", base.display())).unwrap(),
            fs::read(&der).unwrap(),
            "sig-list-to-certs does not give back {name}.crt from {name}.esl"
        );

        let esl = dir.path().join(format!("{name}.efitools.esl"));
        run(
            "cert-to-efi-sig-list",
            &[
                "-g",
                &guid,
                keys.cert(role).to_str().unwrap(),
                esl.to_str().unwrap(),
            ],
        );
        assert_eq!(
            fs::read(keys.esl(role)).unwrap(),
            fs::read(&esl).unwrap(),
            "{name}.esl differs from cert-to-efi-sig-list's"
        );

        // The signed update, remade by efitools with our timestamp and the key above: the
        // same header fields, signature (PKCS#1 v1.5 is deterministic) and list.
        let ours = fs::read(keys.auth(role)).unwrap();
        let signer = role.signed_by();
        let auth = dir.path().join(format!("{name}.efitools.auth"));
        run(
            "sign-efi-sig-list",
            &[
                "-t",
                &efi_time_text(&ours),
                "-k",
                keys.key(signer).to_str().unwrap(),
                "-c",
                keys.cert(signer).to_str().unwrap(),
                name,
                keys.esl(role).to_str().unwrap(),
                auth.to_str().unwrap(),
            ],
        );
        let theirs = fs::read(&auth).unwrap();
        assert_eq!(
            AuthFields::parse(&ours),
            AuthFields::parse(&theirs),
            "{name}.auth differs from sign-efi-sig-list's"
        );
        assert_eq!(ours, theirs, "{name}.auth differs from sign-efi-sig-list's");
    }
}

/// The EFI_TIME at the start of an EFI_VARIABLE_AUTHENTICATION_2, as `sign-efi-sig-list -t`
/// takes it.
fn efi_time_text(auth: &[u8]) -> String {
    let year = u16::from_le_bytes([auth[0], auth[1]]);
    format!(
        "{year}-{:02}-{:02} {:02}:{:02}:{:02}",
        auth[2], auth[3], auth[4], auth[5], auth[6]
    )
}

/// The fields of a signed update, so that a difference names the field.
#[derive(Debug, PartialEq, Eq)]
struct AuthFields {
    timestamp: Vec<u8>,
    cert_length: u32,
    revision: u16,
    cert_type: u16,
    cert_type_guid: Vec<u8>,
    signature: Vec<u8>,
    list: Vec<u8>,
}

impl AuthFields {
    fn parse(auth: &[u8]) -> AuthFields {
        let cert_length = u32::from_le_bytes(auth[16..20].try_into().unwrap());
        let end = 16 + usize::try_from(cert_length).unwrap();
        AuthFields {
            timestamp: auth[..16].to_vec(),
            cert_length,
            revision: u16::from_le_bytes([auth[20], auth[21]]),
            cert_type: u16::from_le_bytes([auth[22], auth[23]]),
            cert_type_guid: auth[24..40].to_vec(),
            signature: auth[40..end].to_vec(),
            list: auth[end..].to_vec(),
        }
    }
}

#[test]
fn a_secure_boot_section_signs_the_uki_and_the_sticks_loader_in_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let (site, other) = key_sets(dir.path());
    let init = dir.path().join("bootkit");
    fs::write(&init, b"\x7fELF stand-in for the init").unwrap();
    let os_image = dir.path().join("os.raw.gz");
    fs::write(&os_image, b"stand-in OS image").unwrap();
    let install_config = dir.path().join("install.toml");
    fs::write(&install_config, "hostname = \"edge\"\n").unwrap();
    let mut config = ImageConfig {
        cmdline: "console=ttyS0 bootkit.mode=standalone".into(),
        usb: Some(UsbConfig {
            os_image,
            sha256_file: None,
            bmap: None,
            install_config,
        }),
        secure_boot: Some(db_signing(&site)),
        ..ImageConfig::default()
    };
    config.kernel.deb = Some(common::kernel_deb());
    config.init.binary = init;

    let out = dir.path().join("out");
    let made = build_with(&config, &out, &Progress::hidden()).unwrap();
    let usb = made.usb.expect("the [usb] outputs");
    assert_signed_by(&usb.efi, &site, &other);
    let loader = esp_loader(&usb.image, &dir.path().join("BOOTX64.EFI"));
    assert_signed_by(&loader, &site, &other);
    assert!(
        fs::read(&loader).unwrap() == fs::read(&usb.efi).unwrap(),
        "the stick boots another file than bootkit.efi"
    );
}

#[test]
fn the_test_os_images_loader_is_signed_with_the_db_key() {
    let dir = tempfile::tempdir().unwrap();
    let (site, other) = key_sets(dir.path());
    let spec = TestOsSpec {
        kernel_deb: common::kernel_deb(),
        busybox: "/bin/busybox".into(),
        marker: "SIGNED-TEST-OS: up".into(),
        name: "emt-test".into(),
        stub: DEFAULT_STUB.into(),
    };
    let made = build_signed_test_os(
        &spec,
        Some(&db_signing(&site)),
        &dir.path().join("os"),
        &Progress::hidden(),
    )
    .unwrap();
    let loader = esp_loader(&made.raw, &dir.path().join("BOOTX64.EFI"));
    assert_signed_by(&loader, &site, &other);
}

#[test]
fn debians_ipxe_binaries_signed_by_bootkit_build_sign_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (site, other) = key_sets(dir.path());
    for name in ["ipxe.efi", "snponly.efi"] {
        let input = Path::new("/usr/lib/ipxe").join(name);
        assert!(
            input.is_file(),
            "{} is missing: scripts/setup.sh installs Debian's ipxe package",
            input.display()
        );
        let signed = dir.path().join(name);
        let status = Command::new(env!("CARGO_BIN_EXE_bootkit-build"))
            .arg("sign")
            .arg("--key")
            .arg(site.key(KeyRole::Db))
            .arg("--cert")
            .arg(site.cert(KeyRole::Db))
            .arg(&input)
            .arg("-o")
            .arg(&signed)
            .status()
            .unwrap();
        assert!(status.success(), "bootkit-build sign {name} failed");
        assert_signed_by(&signed, &site, &other);
    }
}
