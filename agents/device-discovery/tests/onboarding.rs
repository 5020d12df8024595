//! The onboarding conversation against a scripted server on loopback: what the node sends,
//! how it waits and retries, and what it writes once onboarded.

mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use device_discovery::config::ServerTls;
use device_discovery::{RunError, run};

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn registered_twice_then_onboarded_writes_credentials_and_the_env_file() {
    let server = FakeServer::start(&[Step::Registered, Step::Registered, Step::Onboarded]).await;
    let (_root, config) = machine(server.address, ServerTls::Plaintext);
    let addresses = Addresses::on(BOOT_NIC, Ipv4Addr::new(10, 20, 0, 7));

    let onboarded = run(&config, &addresses).await.unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 3, "resent after each REGISTERED");
    assert_eq!(server.streams_opened(), 1, "all on the same stream");
    let request = &requests[0];
    assert_eq!(request.mac_id, BOOT_MAC);
    assert_eq!(request.uuid, SYSTEM_UUID);
    assert_eq!(request.serialnum, "", "the placeholder serial is not sent");
    assert_eq!(request.host_ip, "10.20.0.7");
    assert_eq!(request.mac_ids, [BOOT_MAC, SECOND_MAC]);
    let hardware: serde_json::Value = serde_json::from_str(&request.hardware_json).unwrap();
    assert_eq!(hardware["system_uuid"], SYSTEM_UUID);
    assert_eq!(hardware["product"]["vendor"], "Bootkit Test Systems");
    assert_eq!(hardware["network_interfaces"][1]["mac"], SECOND_MAC);

    let credentials = &config.credentials_dir;
    for (name, value) in [
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("project_id", PROJECT_ID),
    ] {
        let path = credentials.join(name);
        assert_eq!(fs::read_to_string(&path).unwrap(), value);
        assert_eq!(mode(&path), 0o600, "{name} is private");
    }
    let env = env_file_values(&config.output);
    assert_eq!(env["WORKER_ID"], BOOT_MAC);
    assert_eq!(env["HW_ADDR"], BOOT_MAC);
    assert_eq!(env["NODE_ID"], CLIENT_ID);
    assert_eq!(env["SERIAL"], "");
    assert_eq!(env["UUID"], SYSTEM_UUID);
    assert_eq!(env["IP"], "10.20.0.7");
    assert_eq!(env["PROJECT_ID"], PROJECT_ID);
    assert!(
        !fs::read_to_string(&config.output)
            .unwrap()
            .contains(CLIENT_SECRET),
        "the readable env file holds no secret"
    );

    let summary = onboarded.summary();
    assert!(
        summary.contains(BOOT_MAC) && summary.contains(CLIENT_ID),
        "{summary}"
    );
    assert!(!summary.contains(CLIENT_SECRET), "{summary}");
}

#[tokio::test]
async fn an_unknown_node_keeps_asking_until_it_is_registered() {
    let server = FakeServer::start(&[Step::NotFound, Step::NotFound, Step::Onboarded]).await;
    let (_root, config) = machine(server.address, ServerTls::Plaintext);

    let onboarded = run(&config, &Addresses::none()).await.unwrap();

    assert_eq!(server.requests().len(), 3);
    assert_eq!(
        onboarded.admission.credentials().unwrap().client_id,
        CLIENT_ID
    );
    assert!(config.output.exists());
}

#[tokio::test]
async fn a_broken_stream_is_reopened() {
    let server = FakeServer::start(&[Step::Registered, Step::BreakStream, Step::Onboarded]).await;
    let (_root, config) = machine(server.address, ServerTls::Plaintext);

    run(&config, &Addresses::none()).await.unwrap();

    assert_eq!(server.requests().len(), 3);
    assert_eq!(server.streams_opened(), 2, "a new stream after the break");
    assert!(config.output.exists());
}

#[tokio::test]
async fn a_server_that_comes_up_late_is_reached() {
    // Reserve a port, free it, and start the server there only after the client began.
    let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap();
    let (_root, config) = machine(port, ServerTls::Plaintext);
    let client = tokio::spawn({
        let config = config.clone();
        async move { run(&config, &Addresses::none()).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let server = FakeServer::start_at(port, &[Step::Onboarded]).await;

    let onboarded = tokio::time::timeout(Duration::from_secs(20), client)
        .await
        .expect("onboarded once the server is up")
        .unwrap()
        .unwrap();

    assert_eq!(
        onboarded.admission.credentials().unwrap().client_id,
        CLIENT_ID
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_node_never_onboarded_gives_up_at_the_timeout_with_the_reason() {
    let server = FakeServer::start(&[]).await;
    let (_root, mut config) = machine(server.address, ServerTls::Plaintext);
    config.timeout = Duration::from_millis(500);

    let error = run(&config, &Addresses::none()).await.unwrap_err();

    assert!(matches!(error, RunError::GaveUp { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("registered, waiting to be onboarded"),
        "{message}"
    );
    assert!(
        !config.output.exists(),
        "no readiness file without onboarding"
    );
    assert!(!config.credentials_dir.exists());
}

/// Trusts only `ca`, written as a PEM bundle into the machine's directory.
fn trusting(config: &mut device_discovery::config::Config, ca: &TestCa) {
    let bundle = config.root.join("ca.pem");
    fs::write(&bundle, &ca.ca_pem).unwrap();
    config.tls = ServerTls::Verified {
        ca_bundle: Some(bundle),
    };
}

#[tokio::test]
async fn tls_with_the_provisioners_ca() {
    let ca = TestCa::new().unwrap();
    let server = FakeServer::start_tls(&[Step::Registered, Step::Onboarded], &ca).await;
    let (_root, mut config) = machine(server.address, ServerTls::Plaintext);
    trusting(&mut config, &ca);

    run(&config, &Addresses::none()).await.unwrap();

    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn tls_with_another_ca_is_refused_and_says_why() {
    let server = FakeServer::start_tls(&[Step::Onboarded], &TestCa::new().unwrap()).await;
    let (_root, mut config) = machine(server.address, ServerTls::Plaintext);
    trusting(&mut config, &TestCa::new().unwrap());
    config.timeout = Duration::from_millis(800);

    let message = run(&config, &Addresses::none())
        .await
        .unwrap_err()
        .to_string();

    assert!(message.contains("certificate"), "{message}");
    assert!(
        server.requests().is_empty(),
        "nothing reaches an unverified server"
    );
}

#[tokio::test]
async fn insecure_tls_skips_the_certificate_check() {
    let ca = TestCa::new().unwrap();
    let server = FakeServer::start_tls(&[Step::Onboarded], &ca).await;
    let (_root, config) = machine(server.address, ServerTls::InsecureSkipVerify);

    run(&config, &Addresses::none()).await.unwrap();

    assert_eq!(server.requests().len(), 1);
}
