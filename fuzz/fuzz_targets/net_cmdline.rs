//! Fuzzes the network configuration read from the kernel command line
//! (`bootkit_net::config::parse`): whatever the bytes, it must not panic, and every warning
//! must name a key that was given.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The init reads /proc/cmdline as UTF-8; lossy decoding lets every input reach the parser.
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(String, String)> = bootkit_common::cmdline::split_words(&text)
        .into_iter()
        .filter_map(|word| {
            let (key, value) = word.split_once('=')?;
            Some((key.to_string(), value.to_string()))
        })
        .collect();

    let config = bootkit_net::config::parse(&pairs);

    for warning in &config.warnings {
        assert!(
            pairs.iter().any(|(key, _)| *key == warning.key),
            "warning for a key that was not given: {warning}"
        );
        // The init logs warnings with Display; it must not panic either.
        let _ = warning.to_string();
    }
});
