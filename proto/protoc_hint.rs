// Included by the build scripts of both proto crates (a build script cannot depend on a
// workspace library without a build-dependency crate of its own, which this one function does
// not earn): what to install when protoc fails.

/// The user-facing hint for a failed protoc run: the package that fixes it.
fn protoc_hint(error: &dyn std::fmt::Display) -> &'static str {
    let text = error.to_string();
    if text.contains("google/protobuf/") && text.contains("File not found") {
        // Debian ships protoc and the well-known types in separate packages; a
        // --no-install-recommends install of protobuf-compiler lacks them.
        "the well-known types (google/protobuf/*.proto) are missing: install them with \
         apt-get install libprotobuf-dev (scripts/setup.sh does), or set PROTOC_INCLUDE to \
         a directory that holds google/protobuf/"
    } else {
        "install protoc and the well-known types with apt-get install protobuf-compiler \
         libprotobuf-dev (scripts/setup.sh does), or set PROTOC to a protoc binary"
    }
}
