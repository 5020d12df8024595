//! Issue 15 §3: per-source rate limits on the unauthenticated node-facing endpoints. One
//! source flooding DHCP (one MAC), boot scripts or onboarding (one address) is limited while
//! another source is served, and `/metrics` counts what was refused per endpoint.

mod boot_load;
mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use boot_load::Site;
use onboarding_proto::v1::non_interactive_onboarding_service_client::NonInteractiveOnboardingServiceClient;
use provisioner::limits::{Limits, Rate};

/// Rates so slow that nothing refills during the test: exactly `burst` pass.
fn slow(burst: u32) -> Option<Rate> {
    Some(Rate {
        per_second: 0.01,
        burst,
    })
}

const FLOODER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const NEIGHBOUR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

async fn rate_limited_metric(site: &Site, endpoint: &str) -> u64 {
    let response = site
        .admin()
        .raw(reqwest::Method::GET, "/metrics", "", None)
        .await;
    let text = response.text().await.unwrap();
    let sample = format!("provisioner_rate_limited_total{{endpoint=\"{endpoint}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&sample))
        .unwrap_or_else(|| panic!("no {sample} in /metrics:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_mac_flooding_dhcp_is_limited_while_another_mac_behind_the_same_address_boots() {
    let site = Site::start(&Limits {
        dhcp_per_mac: slow(3),
        ..Limits::default()
    })
    .await;
    let flooder = [0x52, 0x54, 0, 0, 0, 0xf1];
    let answers =
        futures::future::join_all((0..10).map(|_| site.pxe_request(FLOODER, flooder))).await;
    let answered = answers.iter().filter(|answer| answer.is_some()).count();
    assert_eq!(answered, 3, "the burst of 3, then nothing: {answers:?}");
    // Same source address (a rack behind one relay), another MAC: its own budget.
    for _ in 0..3 {
        assert_eq!(
            site.pxe_request(FLOODER, [0x52, 0x54, 0, 0, 0, 0xf2])
                .await
                .as_deref(),
            Some("ipxe.efi")
        );
    }
    assert_eq!(rate_limited_metric(&site, "dhcp").await, 7);
}

#[tokio::test]
async fn an_address_flooding_boot_scripts_gets_429_while_another_address_is_served() {
    let site = Site::start(&Limits {
        boot_script_per_ip: slow(5),
        ..Limits::default()
    })
    .await;
    let mut statuses = Vec::new();
    for node in 0..8 {
        statuses.push(site.get_script(&format!("52:54:00:00:02:{node:02x}")).await);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);

    let client = common::http_client()
        .local_address(IpAddr::V4(FLOODER))
        .build()
        .unwrap();
    let refused = client
        .get(site.script_url("52:54:00:00:02:99"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "5");
    // iPXE shows the body and retries: it says why and how the operator lifts the limit.
    let body = refused.text().await.unwrap();
    assert!(
        body.starts_with("#!ipxe") && body.contains("--boot-script-rate-limit"),
        "{body}"
    );

    let neighbour = common::http_client()
        .local_address(IpAddr::V4(NEIGHBOUR))
        .build()
        .unwrap();
    let served = neighbour
        .get(site.script_url("52:54:00:00:02:aa"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200, "another address has its own budget");
    assert_eq!(rate_limited_metric(&site, "boot_script").await, 4);
}

/// Opens OnboardNodeStream from `source`: whether the call was refused by the rate limit.
async fn onboarding_refused(site: &Site, source: Ipv4Addr) -> Option<String> {
    let endpoint =
        tonic::transport::Endpoint::from_shared(format!("http://{}", site.server.grpc_addr))
            .unwrap()
            .local_address(Some(IpAddr::V4(source)));
    let mut client = NonInteractiveOnboardingServiceClient::new(endpoint.connect().await.unwrap());
    let (_requests, receiver) = futures::channel::mpsc::unbounded();
    match tokio::time::timeout(Duration::from_secs(3), client.onboard_node_stream(receiver)).await {
        Ok(Err(status)) if status.code() == tonic::Code::ResourceExhausted => {
            Some(status.message().to_string())
        }
        // Opened (or waiting for the node's first message): admitted.
        _ => None,
    }
}

#[tokio::test]
async fn an_address_flooding_onboarding_is_refused_while_another_address_is_admitted() {
    let site = Site::start(&Limits {
        onboarding_per_ip: slow(2),
        ..Limits::default()
    })
    .await;
    let mut refusals = Vec::new();
    for _ in 0..5 {
        refusals.push(onboarding_refused(&site, FLOODER).await);
    }
    assert!(refusals[..2].iter().all(Option::is_none), "{refusals:?}");
    for refusal in &refusals[2..] {
        let message = refusal.as_deref().expect("over the burst: refused");
        assert!(
            message.contains("127.0.0.1") && message.contains("--onboarding-rate-limit"),
            "{message}"
        );
    }
    assert_eq!(onboarding_refused(&site, NEIGHBOUR).await, None);
    assert_eq!(rate_limited_metric(&site, "onboarding").await, 3);
}

#[tokio::test]
async fn admin_bodies_over_the_limit_are_413_naming_the_limit() {
    let mut limits = Limits::default();
    limits.admin.body_bytes = 1000;
    let site = Site::start(&limits).await;
    let csv = "x".repeat(5000);
    let response = site
        .admin()
        .raw(
            reqwest::Method::POST,
            "/api/v1/registrations/import",
            "text/csv",
            Some(csv),
        )
        .await;
    let (status, body) = common::admin::json_of(response).await;
    assert_eq!(status, 413);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("5000 bytes")
            && error.contains("1000 bytes")
            && error.contains("--admin-body-limit"),
        "{error}"
    );
}

#[tokio::test]
async fn an_admin_request_over_its_time_budget_is_503_naming_the_budget() {
    let mut limits = Limits::default();
    // A template that parses for seconds (deep flow nesting, the depth limit lifted).
    limits.admin.yaml_depth = usize::MAX;
    limits.admin.request_timeout = Duration::from_millis(300);
    let site = Site::start(&limits).await;
    let levels = 20_000;
    let data = format!("tasks: {}{}", "[".repeat(levels), "]".repeat(levels));
    let started = std::time::Instant::now();
    let (status, body) = site
        .admin()
        .post("/api/v1/templates", serde_json::json!({ "data": data }))
        .await;
    assert_eq!(status, 503, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("300ms") && error.contains("--admin-request-timeout"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
/// Typed bodies stop at the first value of the wrong shape, and serde_json's recursion limit
/// (128) bounds the rest: nesting costs no time either way.
async fn deeply_nested_json_bodies_are_400_at_once_naming_the_field() {
    let site = Site::start(&Limits::default()).await;
    let levels = 100_000;
    let body = format!("{{\"id\": {}{}}}", "[".repeat(levels), "]".repeat(levels));
    let started = std::time::Instant::now();
    let response = site
        .admin()
        .raw(
            reqwest::Method::POST,
            "/api/v1/hardware",
            "application/json",
            Some(body),
        )
        .await;
    let (status, body) = common::admin::json_of(response).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("id: invalid type: sequence"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}
