//! Fuzzes the builder's tar reader (`bootkit_builder::inspect::list_tar`: a tar archive,
//! compressed or not by magic bytes) with arbitrary bytes: a listing or an error, never a
//! panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = bootkit_builder::inspect::list_tar(data) {
        for entry in &entries {
            let _ = bootkit_builder::inspect::mode_string(entry.mode);
        }
    }
});
