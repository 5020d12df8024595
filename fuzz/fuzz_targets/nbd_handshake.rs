//! Fuzzes the NBD client handshake (`bootkit_net::nbd::handshake`) with arbitrary bytes as
//! everything the server sends: whatever they are, it must end in an `ExportInfo` or an
//! error, without a panic, a hang or an allocation sized by the input.

#![no_main]

use std::io::{self, Cursor, Read, Write};

use libfuzzer_sys::fuzz_target;

/// The server's side is the fuzz input; what the client writes is discarded.
struct Server<'a>(Cursor<&'a [u8]>);

impl Read for Server<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Server<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut server = Server(Cursor::new(data));
    match bootkit_net::nbd::handshake(&mut server, "disk") {
        Ok(info) => {
            // What the attach does next with the server's numbers must not panic either.
            let _ = bootkit_net::nbd::attach::plan(&info, false);
            let _ = info.transmission_flags.to_string();
        }
        // The init logs errors with Display.
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
