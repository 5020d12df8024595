//! `/metrics` in Prometheus' text format: fleet gauges from the store, the boot services'
//! counters, action duration histograms.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use common::TestDb;
use common::admin::{AdminServer, token_options};
use common::fleet::seed_fleet;
use reqwest::StatusCode;

/// A parsed exposition: families' declared types, and samples by `name{labels}`.
struct Exposition {
    types: BTreeMap<String, String>,
    samples: BTreeMap<String, f64>,
}

/// Parses the text format strictly: every sample belongs to a family declared above it with
/// HELP and TYPE, and has a numeric value.
fn parse(text: &str) -> Exposition {
    let mut helps = BTreeMap::new();
    let mut types = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            assert!(!help.is_empty(), "{line}");
            assert!(
                helps.insert(name.to_string(), help.to_string()).is_none(),
                "HELP twice: {line}"
            );
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(helps.contains_key(name), "TYPE before HELP: {line}");
            types.insert(name.to_string(), kind.to_string());
        } else {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value: {line}"));
            let name = series.split('{').next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| types.get(*base).is_some_and(|t| t == "histogram"))
                })
                .unwrap_or(name);
            assert!(
                types.contains_key(family),
                "sample of an undeclared family: {line}"
            );
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad metric name: {line}"
            );
            samples.insert(series.to_string(), value);
        }
    }
    Exposition { types, samples }
}

#[tokio::test]
async fn metrics_count_nodes_workflows_actions_and_boot_requests() {
    let db = TestDb::new();
    let server = AdminServer::start(&db.path(), token_options()).await;
    seed_fleet(&server.store, db.dir.path());
    let metrics = &server.metrics;
    for (counter, count) in [
        (&metrics.dhcp.offers, 7),
        (&metrics.tftp.bytes_sent, 4096),
        (&metrics.http.scripts, 3),
        (&metrics.syslog.messages, 2),
    ] {
        counter.fetch_add(count, Ordering::Relaxed);
    }

    let response = server
        .client()
        .raw(reqwest::Method::GET, "/metrics", "", None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let metrics = parse(&text);
    let sample = |series: &str| {
        *metrics
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };

    assert_eq!(metrics.types["provisioner_nodes"], "gauge");
    for state in [
        "registered",
        "discovered",
        "provisioning",
        "provisioned",
        "failed",
    ] {
        assert_eq!(
            sample(&format!("provisioner_nodes{{state=\"{state}\"}}")),
            1.0,
            "{state}"
        );
    }
    assert_eq!(sample("provisioner_workflows{state=\"SUCCESS\"}"), 1.0);
    assert_eq!(sample("provisioner_workflows{state=\"FAILED\"}"), 1.0);
    assert_eq!(sample("provisioner_dhcp_offers_total"), 7.0);
    assert_eq!(sample("provisioner_tftp_sent_bytes_total"), 4096.0);
    assert_eq!(sample("provisioner_http_scripts_total"), 3.0);
    assert_eq!(sample("provisioner_syslog_messages_total"), 2.0);
    assert_eq!(metrics.types["provisioner_dhcp_offers_total"], "counter");

    // The fleet's workers report 2.5 s for every finished action: "wipe" finished three times
    // (provisioning, failed, provisioned nodes).
    assert_eq!(
        metrics.types["provisioner_action_duration_seconds"],
        "histogram"
    );
    let wipe = |suffix: &str, le: Option<&str>| {
        let labels = match le {
            Some(le) => format!("{{action=\"wipe\",le=\"{le}\"}}"),
            None => "{action=\"wipe\"}".to_string(),
        };
        sample(&format!(
            "provisioner_action_duration_seconds_{suffix}{labels}"
        ))
    };
    assert_eq!(wipe("count", None), 3.0);
    assert_eq!(wipe("sum", None), 7.5);
    assert_eq!(wipe("bucket", Some("1")), 0.0);
    assert_eq!(wipe("bucket", Some("5")), 3.0);
    assert_eq!(wipe("bucket", Some("+Inf")), 3.0);
}
