//! A test stand-in for an NBD server connection: reads come from a script of server bytes,
//! writes (what the client sent) are recorded.

use std::io::{self, Cursor, Read, Write};

pub(crate) struct Scripted {
    pub input: Cursor<Vec<u8>>,
    pub output: Vec<u8>,
}

impl Scripted {
    pub fn new(server_bytes: Vec<u8>) -> Scripted {
        Scripted {
            input: Cursor::new(server_bytes),
            output: Vec::new(),
        }
    }
}

impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
