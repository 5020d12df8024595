//! Onboarding as a mode, against a plain Tinkerbell server: `current_server.py` (Python grpcio,
//! code generated from Tinkerbell's workflow `.proto`) serves only `proto.WorkflowService`, so
//! grpcio itself answers UNIMPLEMENTED for `onboardingmgr.v1`, as tink-server does. No code of
//! ours is on the server side.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::*;
use device_discovery::config::{Onboarding, ServerTls};
use device_discovery::{Admission, RunError, run};
use tink_proto::python_peer::{Protocol, PythonPeer};

fn tinkerbell_only_server() -> (PythonPeer, SocketAddr) {
    let peer = PythonPeer::start("current_server.py", Protocol::Current, &["{}"])
        .expect("the Python peer starts (scripts/setup.sh installs python3-grpcio)");
    let first = peer
        .next_line(Duration::from_secs(30))
        .expect("the peer prints its port");
    let port: u16 = first
        .strip_prefix("port ")
        .and_then(|port| port.parse().ok())
        .expect("`port N` first");
    (peer, SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
}

#[tokio::test]
async fn if_served_starts_the_worker_when_the_server_has_no_onboarding() {
    let (_peer, address) = tinkerbell_only_server();
    let (_root, mut config) = machine(address, ServerTls::Plaintext);
    config.onboarding = Onboarding::IfServed;
    let addresses = Addresses::on(BOOT_NIC, Ipv4Addr::new(10, 20, 0, 7));

    let discovered = run(&config, &addresses).await.unwrap();

    assert!(
        matches!(&discovered.admission, Admission::NotServed(answer) if answer.0.contains("Unimplemented")),
        "{:?}",
        discovered.admission
    );
    assert_eq!(discovered.requests, 1, "one answer is enough to know");
    let env = env_file_values(&config.output);
    assert_eq!(env["WORKER_ID"], BOOT_MAC, "the worker still learns its id");
    assert_eq!(env["ONBOARDING"], "not-served");
    assert_eq!(env["NODE_ID"], "", "no node id was given");
    assert!(
        !config.credentials_dir.exists(),
        "no credentials are made up"
    );
    let summary = discovered.summary();
    assert!(
        summary.contains("does not serve OEP onboarding") && summary.contains(BOOT_MAC),
        "the console line says why the worker starts: {summary}"
    );
}

#[tokio::test]
async fn required_keeps_waiting_when_the_server_has_no_onboarding() {
    let (_peer, address) = tinkerbell_only_server();
    let (_root, mut config) = machine(address, ServerTls::Plaintext);
    config.onboarding = Onboarding::Required;
    config.timeout = Duration::from_secs(2);
    let addresses = Addresses::on(BOOT_NIC, Ipv4Addr::new(10, 20, 0, 7));

    let error = run(&config, &addresses).await.unwrap_err();

    match &error {
        RunError::GaveUp { last, .. } => assert!(last.contains("Unimplemented"), "{last}"),
        other => panic!("expected GaveUp, got {other:?}"),
    }
    assert!(!config.output.exists(), "the worker must not start");
}

#[tokio::test]
async fn off_asks_nothing_and_needs_no_server() {
    // Nothing listens here: with onboarding off nothing is asked.
    let (_root, mut config) = machine("127.0.0.1:9".parse().unwrap(), ServerTls::Plaintext);
    config.onboarding = Onboarding::Off;
    config.server = String::new();
    let addresses = Addresses::on(BOOT_NIC, Ipv4Addr::new(10, 20, 0, 7));

    let discovered = run(&config, &addresses).await.unwrap();

    assert!(matches!(discovered.admission, Admission::Off));
    assert_eq!(discovered.requests, 0);
    let env = env_file_values(&config.output);
    assert_eq!(env["ONBOARDING"], "off");
    assert_eq!(env["HW_ADDR"], BOOT_MAC);
    assert_eq!(env["IP"], "10.20.0.7");
}
