//! Fuzzes the builder's initramfs reader (`bootkit_builder::inspect::list_initramfs`, what
//! `bootkit-build inspect` shows) with arbitrary bytes: newc cpio segments, compressed or not,
//! and the rootfs tar inside. It must list them or say what is wrong, without a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(listing) = bootkit_builder::inspect::list_initramfs(data) {
        let _ = bootkit_builder::inspect::render(&listing);
    }
});
