//! PLACEHOLDER: device discovery is being written.
fn main() {}
