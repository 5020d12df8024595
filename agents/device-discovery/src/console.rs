//! Console output. The init forwards stdout and stderr to the console and syslog; a closed
//! pipe must not make device discovery fail (`println!` panics on EPIPE), so writes that
//! cannot be delivered are dropped.

use std::fmt::Display;
use std::io::Write;

/// A progress or problem note on stderr, prefixed with the program's name.
pub fn note(message: impl Display) {
    let _ = writeln!(std::io::stderr(), "device-discovery: {message}");
}

/// The one summary line on stdout.
pub fn summary(line: impl Display) {
    let _ = writeln!(std::io::stdout(), "{line}");
}
