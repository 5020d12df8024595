//! Fuzzes the provisioner's registration import (`provisioner::store::parse_registrations_csv`,
//! the reader behind `Store::import_registrations` and `provisioner registrations import`)
//! with arbitrary text: rows or an error naming the line, never a panic, and every row it
//! keeps names the profile to install.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(csv) = std::str::from_utf8(data) else {
        return;
    };
    match provisioner::store::parse_registrations_csv(csv) {
        Ok(rows) => {
            for row in &rows {
                assert!(!row.profile.is_empty(), "a row without a profile: {row:?}");
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
