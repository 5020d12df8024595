//! A gzip stream as GNU gzip reads it: members one after the other (`cat a.gz b.gz`), each
//! checked against its CRC32 and size, and after the last member either nothing or only zero
//! bytes (the padding tape and block devices add). Anything else after a member is refused,
//! as `gzip -t` refuses "trailing garbage".
//!
//! Written here because flate2's `MultiGzDecoder` has no rule for the zero padding: it takes
//! the zeros for a broken member header and fails an archive GNU gzip passes.

use std::io::{self, BufRead, Read};

use flate2::bufread::GzDecoder;

/// The first byte of every gzip member.
const GZIP_FIRST_BYTE: u8 = 0x1f;

/// Decodes every member of a gzip stream, then checks what follows the last one.
pub(super) struct GzipMembers<R: BufRead> {
    state: State<R>,
}

enum State<R: BufRead> {
    /// Boxed: the decoder's state is large, the other states are empty.
    Member(Box<GzDecoder<R>>),
    /// Transient, while a finished member's reader moves to the next one.
    Between,
    Done,
}

impl<R: BufRead> GzipMembers<R> {
    pub(super) fn new(reader: R) -> Self {
        Self {
            state: State::Member(Box::new(GzDecoder::new(reader))),
        }
    }
}

impl<R: BufRead> Read for GzipMembers<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            let State::Member(member) = &mut self.state else {
                return Ok(0);
            };
            let read = member.read(out)?;
            if read > 0 {
                return Ok(read);
            }
            // The member ended with a correct CRC32 and size: see what follows it.
            let State::Member(finished) = std::mem::replace(&mut self.state, State::Between) else {
                return Ok(0);
            };
            let mut reader = finished.into_inner();
            match reader.fill_buf()?.first() {
                None => self.state = State::Done,
                Some(&GZIP_FIRST_BYTE) => {
                    self.state = State::Member(Box::new(GzDecoder::new(reader)));
                }
                Some(0) => {
                    only_zeros_follow(&mut reader)?;
                    self.state = State::Done;
                }
                Some(_) => return Err(trailing_garbage()),
            }
        }
    }
}

/// Reads `reader` to its end; an error at the first byte that is not zero.
fn only_zeros_follow(reader: &mut impl BufRead) -> io::Result<()> {
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        if buffer.iter().any(|&byte| byte != 0) {
            return Err(trailing_garbage());
        }
        let length = buffer.len();
        reader.consume(length);
    }
}

fn trailing_garbage() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "trailing garbage after the gzip stream (bytes that are neither a gzip member nor zero \
         padding)",
    )
}
