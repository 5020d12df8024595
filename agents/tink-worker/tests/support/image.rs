//! Busybox-based OCI test images, built from Debian's static /bin/busybox.

use std::io::Write;

use bootkit_oci::manifest::{OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST};
use bootkit_oci::{RegistryClient, sha256_digest};
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "ls", "true", "false", "test", "printf", "mkdir", "wc", "seq",
];

/// An image as a registry holds it: gzip layers, their diff IDs, and a config.
pub struct TestImage {
    layers: Vec<(Vec<u8>, String)>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
}

impl TestImage {
    /// One layer: /bin/busybox and its applets as symlinks; `cmd` as the image's CMD.
    pub fn busybox(cmd: &[&str]) -> Self {
        let busybox = std::fs::read(BUSYBOX).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        for dir in ["bin", "tmp", "etc"] {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            tar.append_data(&mut header, dir, std::io::empty()).unwrap();
        }
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o755);
        header.set_size(busybox.len() as u64);
        tar.append_data(&mut header, "bin/busybox", busybox.as_slice())
            .unwrap();
        for applet in APPLETS {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            tar.append_link(&mut header, format!("bin/{applet}"), "busybox")
                .unwrap();
        }
        let mut image = Self {
            layers: Vec::new(),
            entrypoint: Vec::new(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
        };
        image.push_layer(tar.into_inner().unwrap());
        image
    }

    /// Adds a layer holding one regular file.
    pub fn with_file(mut self, path: &str, content: &[u8]) -> Self {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(content.len() as u64);
        tar.append_data(&mut header, path, content).unwrap();
        self.push_layer(tar.into_inner().unwrap());
        self
    }

    pub fn with_entrypoint(mut self, entrypoint: &[&str]) -> Self {
        self.entrypoint = entrypoint.iter().map(|s| s.to_string()).collect();
        self
    }

    fn push_layer(&mut self, tar: Vec<u8>) {
        let diff_id = sha256_digest(&tar);
        let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
        gzip.write_all(&tar).unwrap();
        self.layers.push((gzip.finish().unwrap(), diff_id));
    }

    fn config(&self) -> Vec<u8> {
        let diff_ids: Vec<&String> = self.layers.iter().map(|(_, id)| id).collect();
        let mut config = json!({"Env": ["PATH=/bin"], "Cmd": self.cmd});
        if !self.entrypoint.is_empty() {
            config["Entrypoint"] = json!(self.entrypoint);
        }
        serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap()
    }
}

/// Pushes `image` as `reference` (`host:port/repo:tag`) with the project's registry client;
/// returns the manifest digest.
pub async fn push(client: &RegistryClient, reference: &str, image: &TestImage) -> String {
    let target = reference.parse().unwrap();
    let mut layers = Vec::new();
    for (layer, _) in &image.layers {
        let descriptor = client
            .push_blob(&target, OCI_LAYER_GZIP, Bytes::from(layer.clone()))
            .await
            .unwrap();
        layers.push(descriptor);
    }
    let config = client
        .push_blob(&target, OCI_CONFIG, Bytes::from(image.config()))
        .await
        .unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": layers,
    });
    client
        .push_manifest(
            &target,
            OCI_MANIFEST,
            Bytes::from(serde_json::to_vec(&manifest).unwrap()),
        )
        .await
        .unwrap()
}
