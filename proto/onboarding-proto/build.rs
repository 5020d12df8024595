//! Generates `onboardingmgr.v1` (and the `google.rpc.Status` it answers with) from `proto/`.

include!("../protoc_hint.rs");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in ["proto/onboarding.proto", "proto/google/rpc/status.proto"] {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure()
        .compile_protos(&["proto/onboarding.proto"], &["proto"])
        .map_err(|error| {
            format!(
                "generating onboardingmgr.v1 from proto/onboarding.proto failed: {error} ({})",
                protoc_hint(&error)
            )
        })?;
    Ok(())
}
