//! The one rule for a Linux interface name, used by the command line's parser (`config`) and
//! by the link code (a bond's `primary=`), which must not import each other.

/// IFNAMSIZ (16) less the terminating NUL.
const IFNAME_MAX: usize = 15;

/// A Linux interface name: 1-15 printable ASCII characters without `/`, `:` or spaces
/// (what the kernel's dev_valid_name accepts, kept to ASCII so logs stay readable).
pub fn interface_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= IFNAME_MAX
        && text != "."
        && text != ".."
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if valid {
        Ok(text.to_string())
    } else {
        Err(format!(
            "interface name {text:?} is not valid: expected 1-{IFNAME_MAX} characters without \
             '/', ':' or spaces, e.g. eth0 or enp1s0"
        ))
    }
}
