//! Fuzzes the bmap reader (`bootkit_common::bmap::Bmap::parse`, the block map that the
//! installer streams an OS image with) with arbitrary text: a map or an error, never a panic,
//! and the ranges of a map that parsed stay inside the image.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(bmap) = bootkit_common::bmap::Bmap::parse(xml) {
        let mut mapped = 0u64;
        for range in bmap.byte_ranges() {
            mapped = mapped.saturating_add(range.length);
        }
        assert_eq!(mapped, bmap.mapped_bytes());
    }
});
