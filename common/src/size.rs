//! Byte counts for people: the installer's disk lists and the init's rootfs messages say sizes
//! the same way.

/// The largest binary unit that keeps the value at least 1, with one decimal: `59.6 GiB`;
/// counts under 1 KiB exactly: `512 B`.
pub fn human_size(bytes: u64) -> String {
    match scaled(bytes) {
        Some((value, unit)) => format!("{value:.1} {unit}"),
        None => format!("{bytes} B"),
    }
}

/// [`human_size`] followed by the exact count, for a message someone compares with a limit:
/// `1.5 GiB (1610612736 bytes)`; `512 bytes`.
pub fn human_size_exact(bytes: u64) -> String {
    match scaled(bytes) {
        Some((value, unit)) => format!("{value:.1} {unit} ({bytes} bytes)"),
        None => format!("{bytes} bytes"),
    }
}

/// The value in the largest binary unit it fills at least once; `None` under 1 KiB.
fn scaled(bytes: u64) -> Option<(f64, &'static str)> {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = None;
    for name in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = Some(name);
    }
    unit.map(|unit| (value, unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_printed_in_binary_units() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(64 << 20), "64.0 MiB");
        assert_eq!(human_size(128_000_000_000), "119.2 GiB");
        assert_eq!(human_size(5 << 40), "5.0 TiB");
        assert_eq!(human_size(3 << 50), "3072.0 TiB", "TiB is the largest unit");
    }

    #[test]
    fn sizes_read_well_and_stay_exact() {
        assert_eq!(human_size_exact(512), "512 bytes");
        assert_eq!(human_size_exact(65536), "64.0 KiB (65536 bytes)");
        assert_eq!(human_size_exact(3 << 30), "3.0 GiB (3221225472 bytes)");
    }
}
