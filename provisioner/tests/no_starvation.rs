//! Issue 15 §3: no request stops the others. Two admin uploads of a deeply nested YAML
//! template (the issue's hostile document: flow sequences nested tens of thousands deep, which
//! libyaml parses in quadratic time) are in progress, and meanwhile a PXE burst (DHCP boot
//! server requests, TFTP reads by curl, boot script GETs, a gRPC call) is answered within its
//! normal latency, measured in the same test without the uploads.
//!
//! The burst runs on a two-thread runtime like `serve`'s on a two-core machine: before the
//! admin API had a runtime of its own, the two parses held both worker threads and every
//! listener stopped answering until they ended.

mod boot_load;
mod common;

use std::time::{Duration, Instant};

use boot_load::Site;
use provisioner::limits::Limits;
use serde_json::json;

/// The issue's hostile template: `levels` nested flow sequences in its `tasks`.
fn hostile_template(levels: usize) -> String {
    format!(
        "version: \"0.1\"\nname: hostile\nglobal_timeout: 60\ntasks: {}{}\n",
        "[".repeat(levels),
        "]".repeat(levels)
    )
}

/// A PXE burst of 20 nodes: each one's DHCP boot-server request and boot script, five TFTP
/// reads and one gRPC call, all at once. Panics if any of them goes unanswered.
async fn pxe_burst(site: &Site) -> Duration {
    let started = Instant::now();
    let dhcp = futures::future::join_all((0..20u8).map(|node| async move {
        site.pxe_request(std::net::Ipv4Addr::LOCALHOST, [0x52, 0x54, 0, 0, 1, node])
            .await
    }));
    let scripts =
        futures::future::join_all((0..20u8).map(|node| async move {
            site.get_script(&format!("52:54:00:00:01:{node:02x}")).await
        }));
    let tftp = futures::future::join_all((0..5).map(|_| site.tftp_fetch()));
    let (dhcp, scripts, tftp, grpc) = tokio::join!(dhcp, scripts, tftp, site.grpc_call());
    let elapsed = started.elapsed();
    assert!(
        dhcp.iter().all(|file| file.as_deref() == Some("ipxe.efi")),
        "every DHCP request answered with the UEFI binary: {dhcp:?}"
    );
    assert!(scripts.iter().all(|status| *status == 200), "{scripts:?}");
    assert!(
        tftp.iter().all(|bytes| bytes == b"kpxe"),
        "TFTP served the file"
    );
    assert!(grpc, "the gRPC service answered");
    elapsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pxe_burst_is_served_within_its_normal_latency_while_hostile_uploads_parse() {
    // Depth limit raised so the hostile uploads really parse (slowly): the runtime split is
    // what is under test here; the default limit refusing them is the next test.
    let mut limits = Limits {
        dhcp_per_mac: None,
        boot_script_per_ip: None,
        onboarding_per_ip: None,
        ..Limits::default()
    };
    limits.admin.yaml_depth = usize::MAX;
    limits.admin.request_timeout = Duration::from_secs(300);
    let site = Site::start(&limits).await;

    let baseline = pxe_burst(&site).await;

    let template = hostile_template(30_000);
    let upload_started = Instant::now();
    let uploads: Vec<_> = (0..2)
        .map(|_| {
            let client = site.admin();
            let body = json!({ "name": "hostile", "data": template.clone() });
            tokio::spawn(async move { client.post("/api/v1/templates", body).await })
        })
        .collect();
    // Let both uploads reach the parser.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let under_attack = pxe_burst(&site).await;
    let uploads_busy = uploads.iter().all(|upload| !upload.is_finished());

    let mut upload_statuses = Vec::new();
    for upload in uploads {
        upload_statuses.push(upload.await.unwrap().0);
    }
    let upload_time = upload_started.elapsed();
    eprintln!(
        "PXE burst: {baseline:?} alone, {under_attack:?} during two hostile uploads \
         (30,000 levels, {} bytes each, answered {upload_statuses:?} after {upload_time:?})",
        template.len()
    );
    assert!(
        uploads_busy,
        "the uploads were still parsing when the burst ended (else the test proves nothing): \
         they took {upload_time:?}"
    );
    let bound = baseline * 10 + Duration::from_secs(1);
    assert!(
        under_attack <= bound,
        "the PXE burst took {under_attack:?} during the uploads, above 10x its baseline \
         ({baseline:?}) + 1 s"
    );
    // The admin API itself answers again once its work is done.
    let (status, _) = site.admin().get("/api/v1/templates").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issues_hostile_template_is_refused_at_once_naming_the_depth_limit() {
    let site = Site::start(&Limits::default()).await;
    // The issue's document: 70,000 levels, 136 KB.
    let template = hostile_template(70_000);
    assert!(template.len() > 136_000);
    let started = Instant::now();
    let (status, body) = site
        .admin()
        .post(
            "/api/v1/templates",
            json!({ "name": "hostile", "data": template }),
        )
        .await;
    let elapsed = started.elapsed();
    eprintln!("the 70,000-level template was answered {status} in {elapsed:?}");
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("data: ")
            && error.contains("64 levels")
            && error.contains("--yaml-depth-limit"),
        "{error}"
    );
    assert!(elapsed < Duration::from_secs(2), "refused in {elapsed:?}");
    assert!(
        site.store
            .list_templates()
            .unwrap()
            .iter()
            .all(|t| t.name != "hostile")
    );
}
