//! Generates both protocols from `proto/`. They share the protobuf package `proto`, so
//! each is generated into its own directory and included as its own Rust module.

use std::path::PathBuf;

const AGENT_ATTRIBUTE_MESSAGES: [&str; 12] = [
    "AgentAttributes",
    "CPU",
    "Processor",
    "Memory",
    "Block",
    "Network",
    "PCI",
    "GPU",
    "Chassis",
    "BIOS",
    "Baseboard",
    "Product",
];

include!("../protoc_hint.rs");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    for protocol in ["current", "legacy"] {
        let dir = out_dir.join(protocol);
        std::fs::create_dir_all(&dir)?;
        let proto = format!("proto/{protocol}.proto");
        println!("cargo:rerun-if-changed={proto}");
        let mut builder = tonic_prost_build::configure().out_dir(&dir);
        if protocol == "current" {
            // The agent's hardware attributes are stored and shown as JSON by the server.
            for message in AGENT_ATTRIBUTE_MESSAGES {
                builder = builder.type_attribute(
                    format!("proto.{message}"),
                    "#[derive(serde::Serialize, serde::Deserialize)]",
                );
            }
        }
        builder
            .compile_protos(&[proto.as_str()], &["proto"])
            .map_err(|error| {
                format!(
                    "generating the {protocol} protocol from {proto} failed: {error} ({})",
                    protoc_hint(&error)
                )
            })?;
    }
    Ok(())
}
