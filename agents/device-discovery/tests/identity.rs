//! Who the machine is, from a fake /sys + /proc tree.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;
use device_discovery::config::IdentityOverrides;
use device_discovery::identity::{IdentityError, IpWait, discover};

const QUICK: IpWait = IpWait {
    tries: 3,
    interval: Duration::from_millis(10),
};

#[tokio::test]
async fn placeholder_serial_is_dropped_and_every_nic_is_listed() {
    let root = tempfile::tempdir().unwrap();
    fake_machine(root.path());
    let addresses = Addresses::on(SECOND_NIC, Ipv4Addr::new(192, 168, 1, 50));

    let identity = discover(
        root.path(),
        &IdentityOverrides::default(),
        &addresses,
        QUICK,
    )
    .await
    .unwrap();

    assert_eq!(identity.serial, None);
    assert_eq!(identity.uuid.as_deref(), Some(SYSTEM_UUID));
    assert_eq!(
        identity.boot_mac, SECOND_MAC,
        "the NIC with an address boots"
    );
    assert_eq!(
        identity.macs,
        [SECOND_MAC, BOOT_MAC],
        "boot MAC first, loopback left out"
    );
    assert_eq!(identity.ip.as_deref(), Some("192.168.1.50"));
    assert_eq!(
        identity.hardware["memory"]["usable_bytes"],
        4039604u64 * 1024
    );
}

#[tokio::test]
async fn without_an_address_it_stops_waiting_and_reports_without_ip() {
    let root = tempfile::tempdir().unwrap();
    fake_machine(root.path());

    let identity = discover(
        root.path(),
        &IdentityOverrides::default(),
        &Addresses::none(),
        QUICK,
    )
    .await
    .unwrap();

    assert_eq!(identity.boot_mac, BOOT_MAC, "the first NIC");
    assert_eq!(identity.ip, None);
}

#[tokio::test]
async fn operator_values_replace_detected_ones() {
    let root = tempfile::tempdir().unwrap();
    fake_machine(root.path());
    let overrides = IdentityOverrides {
        mac: Some(SECOND_MAC.to_string()),
        serial: Some("PF2ABC01".to_string()),
        uuid: None,
        ip: Some("10.9.9.9".to_string()),
    };
    let addresses = Addresses::on(BOOT_NIC, Ipv4Addr::new(10, 0, 0, 1));

    let identity = discover(root.path(), &overrides, &addresses, QUICK)
        .await
        .unwrap();

    assert_eq!(identity.boot_mac, SECOND_MAC);
    assert_eq!(identity.serial.as_deref(), Some("PF2ABC01"));
    assert_eq!(identity.uuid.as_deref(), Some(SYSTEM_UUID));
    assert_eq!(identity.ip.as_deref(), Some("10.9.9.9"));
}

#[tokio::test]
async fn a_machine_without_nics_is_an_error_that_says_what_to_do() {
    let root = tempfile::tempdir().unwrap();

    let error = discover(
        root.path(),
        &IdentityOverrides::default(),
        &Addresses::none(),
        QUICK,
    )
    .await
    .unwrap_err();

    assert!(matches!(error, IdentityError::NoNetworkInterface { .. }));
    assert!(error.to_string().contains("--mac"), "{error}");
}
