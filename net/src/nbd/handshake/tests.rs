//! The handshake against a scripted in-memory server: the server's bytes are laid down in
//! advance (the client's requests never change what a conforming server answers here), and
//! the client's bytes are checked afterwards.

use super::*;
use std::io::Cursor;

use crate::nbd::scripted::Scripted as Fake;

/// Builds what the server sends.
#[derive(Clone)]
struct Script(Vec<u8>);

impl Script {
    fn greeting(flags: u16) -> Script {
        let mut bytes = b"NBDMAGICIHAVEOPT".to_vec();
        bytes.extend_from_slice(&flags.to_be_bytes());
        Script(bytes)
    }

    fn newstyle() -> Script {
        Script::greeting(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES)
    }

    fn raw(mut self, bytes: &[u8]) -> Script {
        self.0.extend_from_slice(bytes);
        self
    }

    fn reply_with_len(self, option: u32, reply: u32, len: u32, data: &[u8]) -> Script {
        self.raw(&REPLY_MAGIC.to_be_bytes())
            .raw(&option.to_be_bytes())
            .raw(&reply.to_be_bytes())
            .raw(&len.to_be_bytes())
            .raw(data)
    }

    fn reply(self, reply: u32, data: &[u8]) -> Script {
        self.reply_with_len(OPT_GO, reply, u32::try_from(data.len()).unwrap(), data)
    }

    fn info_export(self, size: u64, flags: u16) -> Script {
        let mut data = INFO_EXPORT.to_be_bytes().to_vec();
        data.extend_from_slice(&size.to_be_bytes());
        data.extend_from_slice(&flags.to_be_bytes());
        self.reply(REP_INFO, &data)
    }

    fn info_block_size(self, min: u32, preferred: u32, max: u32) -> Script {
        let mut data = INFO_BLOCK_SIZE.to_be_bytes().to_vec();
        for v in [min, preferred, max] {
            data.extend_from_slice(&v.to_be_bytes());
        }
        self.reply(REP_INFO, &data)
    }

    fn info_name(self, name: &str) -> Script {
        let mut data = INFO_NAME.to_be_bytes().to_vec();
        data.extend_from_slice(name.as_bytes());
        self.reply(REP_INFO, &data)
    }

    fn ack(self) -> Script {
        self.reply(REP_ACK, &[])
    }

    fn error(self, code: u32, message: &str) -> Script {
        self.reply(code, message.as_bytes())
    }

    fn export_name_reply(self, size: u64, flags: u16, zeroes: bool) -> Script {
        let s = self.raw(&size.to_be_bytes()).raw(&flags.to_be_bytes());
        if zeroes { s.raw(&[0; 124]) } else { s }
    }

    fn run(&self, export: &str) -> (Result<ExportInfo, HandshakeError>, Vec<u8>) {
        let mut fake = Fake::new(self.0.clone());
        let result = handshake(&mut fake, export);
        (result, fake.output)
    }
}

/// What the client sent: its flags and its options (number, data).
fn parse_client(out: &[u8]) -> (u32, Vec<(u32, Vec<u8>)>) {
    let flags = u32::from_be_bytes(out[..4].try_into().unwrap());
    let mut rest = &out[4..];
    let mut options = Vec::new();
    while !rest.is_empty() {
        assert_eq!(&rest[..8], b"IHAVEOPT");
        let option = u32::from_be_bytes(rest[8..12].try_into().unwrap());
        let len = u32::from_be_bytes(rest[12..16].try_into().unwrap()) as usize;
        options.push((option, rest[16..16 + len].to_vec()));
        rest = &rest[16 + len..];
    }
    (flags, options)
}

fn go_data(export: &str) -> Vec<u8> {
    let mut data = u32::try_from(export.len()).unwrap().to_be_bytes().to_vec();
    data.extend_from_slice(export.as_bytes());
    data.extend_from_slice(&[0, 2, 0, 0, 0, 3]); // two requests: INFO_EXPORT, INFO_BLOCK_SIZE
    data
}

const RO_FLUSH: u16 =
    TransmissionFlags::HAS_FLAGS | TransmissionFlags::READ_ONLY | TransmissionFlags::SEND_FLUSH;

fn happy_script() -> Script {
    Script::newstyle()
        .info_name("disk")
        .info_export(1 << 20, RO_FLUSH)
        .info_block_size(1, 4096, 32 << 20)
        .ack()
}

#[test]
fn go_happy_path() {
    let (result, out) = happy_script().run("disk");
    let info = result.unwrap();
    assert_eq!(
        info,
        ExportInfo {
            size: 1 << 20,
            transmission_flags: TransmissionFlags(RO_FLUSH),
            block_sizes: Some(BlockSizes {
                minimum: 1,
                preferred: 4096,
                maximum: 32 << 20
            }),
            negotiation: Negotiation::Go,
        }
    );
    assert!(info.transmission_flags.read_only());
    assert!(info.transmission_flags.can_flush());
    let (flags, options) = parse_client(&out);
    assert_eq!(flags, 3, "client echoes FIXED_NEWSTYLE and NO_ZEROES");
    assert_eq!(options, vec![(OPT_GO, go_data("disk"))]);
}

#[test]
fn go_without_block_sizes_and_empty_export_name() {
    let (result, out) = Script::newstyle().info_export(512, 1).ack().run("");
    let info = result.unwrap();
    assert_eq!(info.size, 512);
    assert_eq!(info.block_sizes, None);
    assert!(!info.transmission_flags.read_only());
    assert_eq!(parse_client(&out).1, vec![(OPT_GO, go_data(""))]);
}

#[test]
fn client_echoes_only_offered_flags() {
    let script = Script::greeting(FLAG_FIXED_NEWSTYLE | 0x8000)
        .info_export(1, 1)
        .ack();
    let (result, out) = script.run("x");
    result.unwrap();
    assert_eq!(parse_client(&out).0, 1);
}

#[test]
fn falls_back_to_export_name_when_go_is_unsupported() {
    let script = Script::newstyle()
        .error(REP_ERR_UNSUP, "")
        .export_name_reply(4096, 1, false);
    let (result, out) = script.run("disk");
    let info = result.unwrap();
    assert_eq!(info.size, 4096);
    assert_eq!(info.negotiation, Negotiation::ExportName);
    assert_eq!(info.block_sizes, None);
    let options = parse_client(&out).1;
    assert_eq!(options[0].0, OPT_GO);
    assert_eq!(options[1], (OPT_EXPORT_NAME, b"disk".to_vec()));
}

#[test]
fn export_name_reads_padding_without_no_zeroes() {
    // No NO_ZEROES: 124 zero bytes follow; bytes after them must stay unread.
    let script = Script::greeting(FLAG_FIXED_NEWSTYLE)
        .error(REP_ERR_UNSUP, "no GO here")
        .export_name_reply(1 << 30, 3, true)
        .raw(b"transmission data");
    let mut fake = Fake::new(script.0);
    let info = handshake(&mut fake, "disk").unwrap();
    assert_eq!(info.size, 1 << 30);
    assert!(info.transmission_flags.read_only());
    let mut rest = Vec::new();
    fake.input.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"transmission data");
    assert_eq!(parse_client(&fake.output).0, 1);
}

#[test]
fn plain_newstyle_server_gets_export_name_only() {
    let script = Script::greeting(0).export_name_reply(77, 1, true);
    let (result, out) = script.run("disk");
    assert_eq!(result.unwrap().size, 77);
    let (flags, options) = parse_client(&out);
    assert_eq!(flags, 0);
    assert_eq!(options, vec![(OPT_EXPORT_NAME, b"disk".to_vec())]);
}

#[test]
fn unknown_export_is_a_clear_error() {
    let script = Script::newstyle().error(REP_ERR_UNKNOWN, "no such export");
    let (result, out) = script.run("missing");
    let err = result.unwrap_err();
    assert!(matches!(err, HandshakeError::UnknownExport { ref export, .. } if export == "missing"));
    let text = err.to_string();
    assert!(text.contains("\"missing\" does not exist"), "{text}");
    assert!(text.contains("no such export"), "{text}");
    // The client says goodbye with NBD_OPT_ABORT before dropping the connection.
    assert_eq!(parse_client(&out).1.last().unwrap().0, OPT_ABORT);
}

#[test]
fn other_refusals_name_the_reply() {
    for (code, name) in [
        (REP_ERR_POLICY, "NBD_REP_ERR_POLICY"),
        (REP_ERR_TLS_REQD, "requires TLS"),
        (REP_ERR_SHUTDOWN, "shutting down"),
        (REP_FLAG_ERROR | 99, "reply type 0x80000063"),
    ] {
        let (result, _) = Script::newstyle().error(code, "").run("disk");
        let text = result.unwrap_err().to_string();
        assert!(
            text.contains("refused NBD_OPT_GO for export \"disk\""),
            "{text}"
        );
        assert!(text.contains(name), "{text}");
    }
}

#[test]
fn error_messages_are_sanitized() {
    let script = Script::newstyle().error(REP_ERR_POLICY, "bad\n<1>forged\x1b[31m\u{0}");
    let text = script.run("disk").0.unwrap_err().to_string();
    assert!(!text.chars().any(char::is_control), "{text:?}");
    assert!(text.contains("forged"), "{text}");
}

#[test]
fn export_name_rejected_by_hanging_up() {
    let script = Script::newstyle().error(REP_ERR_UNSUP, "");
    let err = script.run("gone").0.unwrap_err();
    assert!(
        matches!(err, HandshakeError::ExportNameRejected { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("\"gone\""));
}

#[test]
fn bad_magic() {
    let err = Script(b"HTTP/1.1 400 Bad Request\r\n".to_vec())
        .run("d")
        .0
        .unwrap_err();
    assert!(matches!(err, HandshakeError::NotNbd { .. }), "{err:?}");
    assert!(err.to_string().contains("not an NBD server"));

    let oldstyle = Script(b"NBDMAGIC".to_vec()).raw(&OLDSTYLE_MAGIC.to_be_bytes());
    let err = oldstyle.run("d").0.unwrap_err();
    assert!(matches!(err, HandshakeError::Oldstyle), "{err:?}");

    let err = Script(b"NBDMAGICIHAVEOPX\0\x01".to_vec())
        .run("d")
        .0
        .unwrap_err();
    assert!(
        matches!(err, HandshakeError::BadServerMagic { .. }),
        "{err:?}"
    );

    let bad_reply = Script::newstyle().raw(&[0xde; 20]);
    let err = bad_reply.run("d").0.unwrap_err();
    assert!(
        matches!(err, HandshakeError::BadReplyMagic { .. }),
        "{err:?}"
    );
}

#[test]
fn reply_to_another_option() {
    let script = Script::newstyle().reply_with_len(OPT_EXPORT_NAME, REP_ACK, 0, &[]);
    let err = script.run("d").0.unwrap_err();
    assert!(
        matches!(
            err,
            HandshakeError::WrongOption {
                sent: OPT_GO,
                got: OPT_EXPORT_NAME
            }
        ),
        "{err:?}"
    );
}

#[test]
fn every_truncation_is_a_closed_error() {
    let full = happy_script().0;
    for cut in 0..full.len() {
        let err = Script(full[..cut].to_vec()).run("disk").0.unwrap_err();
        assert!(
            matches!(err, HandshakeError::Closed { .. }),
            "cut at {cut}: {err:?}"
        );
        assert!(err.to_string().contains("closed the connection while"));
    }
}

#[test]
fn absurd_lengths_are_refused_before_reading() {
    for reply in [REP_INFO, REP_ERR_UNSUP, REP_ERR_UNKNOWN, REP_ERR_POLICY] {
        let script = Script::newstyle().reply_with_len(OPT_GO, reply, u32::MAX, &[]);
        let err = script.run("d").0.unwrap_err();
        assert!(
            matches!(err, HandshakeError::TooLong { len: u32::MAX, .. }),
            "{reply:#x}: {err:?}"
        );
        assert!(err.to_string().contains("4294967295 bytes"));
    }
}

#[test]
fn ack_without_export_info() {
    let err = Script::newstyle()
        .info_name("x")
        .ack()
        .run("disk")
        .0
        .unwrap_err();
    assert!(
        matches!(err, HandshakeError::NoExportInfo { .. }),
        "{err:?}"
    );
}

#[test]
fn ack_with_data() {
    let script = Script::newstyle().info_export(1, 1).reply(REP_ACK, b"junk");
    let err = script.run("d").0.unwrap_err();
    assert!(
        matches!(
            err,
            HandshakeError::Malformed {
                what: "NBD_REP_ACK",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn malformed_info_payloads() {
    let short_export = [0u8, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1]; // 11 bytes, not 12
    let long_export = [0u8; 13];
    for data in [
        &short_export[..],
        &long_export[..],
        &[0u8][..],
        &[0, 3, 0, 0][..],
    ] {
        let err = Script::newstyle()
            .reply(REP_INFO, data)
            .run("d")
            .0
            .unwrap_err();
        assert!(
            matches!(err, HandshakeError::Malformed { .. }),
            "{data:?}: {err:?}"
        );
    }
}

#[test]
fn inconsistent_block_sizes() {
    for (min, pref, max) in [
        (3, 4096, 4096),
        (0, 512, 512),
        (1 << 17, 1 << 17, 1 << 17),
        (512, 256, 4096),
        (4096, 4096, 512),
    ] {
        let script = Script::newstyle().info_block_size(min, pref, max);
        let err = script.run("d").0.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("NBD_INFO_BLOCK_SIZE"), "{text}");
    }
}

#[test]
fn unknown_info_types_are_ignored() {
    let script = Script::newstyle()
        .reply(REP_INFO, &[0x12, 0x34, 1, 2, 3])
        .info_export(9, 1)
        .ack();
    assert_eq!(script.run("d").0.unwrap().size, 9);
}

#[test]
fn endless_replies_are_cut_off() {
    let mut script = Script::newstyle();
    for _ in 0..MAX_REPLIES + 1 {
        script = script.info_name("again");
    }
    let err = script.run("d").0.unwrap_err();
    assert!(
        matches!(err, HandshakeError::TooManyReplies { .. }),
        "{err:?}"
    );
}

#[test]
fn unexpected_reply_type() {
    let err = Script::newstyle()
        .reply(2, &[0, 0, 0, 0])
        .run("d")
        .0
        .unwrap_err();
    assert!(
        matches!(err, HandshakeError::UnexpectedReply { reply: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn invalid_export_names_fail_before_any_io() {
    for name in ["a\0b".to_string(), "x".repeat(4097)] {
        let (result, out) = happy_script().run(&name);
        assert!(matches!(
            result,
            Err(HandshakeError::InvalidExportName { .. })
        ));
        assert!(out.is_empty());
    }
}

#[test]
fn write_failures_are_reported_with_their_stage() {
    struct NoWrite(Cursor<Vec<u8>>);
    impl Read for NoWrite {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }
    impl Write for NoWrite {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("wire cut"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let err = handshake(&mut NoWrite(Cursor::new(happy_script().0)), "d").unwrap_err();
    let text = bootkit_common::error_chain(&err);
    assert!(
        text.contains("sending the client flags: wire cut"),
        "{text}"
    );
}

#[test]
fn random_server_bytes_never_panic() {
    let mut rng = fastrand::Rng::with_seed(0x6e62_6400);
    let happy = happy_script().0;
    let fallback = Script::newstyle()
        .error(REP_ERR_UNSUP, "")
        .export_name_reply(1, 1, true)
        .0;
    for round in 0..20_000 {
        let bytes = match round % 3 {
            // Pure noise, sometimes behind a valid greeting so the option parser sees it.
            0 => {
                let mut b = if rng.bool() {
                    Script::newstyle().0
                } else {
                    Vec::new()
                };
                b.extend((0..rng.usize(0..256)).map(|_| rng.u8(..)));
                b
            }
            // A valid exchange with a few bytes flipped, then cut anywhere.
            _ => {
                let mut b = if round % 3 == 1 {
                    happy.clone()
                } else {
                    fallback.clone()
                };
                for _ in 0..rng.usize(1..4) {
                    let i = rng.usize(..b.len());
                    b[i] = rng.u8(..);
                }
                b.truncate(rng.usize(0..=b.len()));
                b
            }
        };
        // Any outcome is fine; the test is that there is one, without a panic or a hang.
        let _ = Script(bytes).run("disk");
    }
}

#[test]
fn flags_display() {
    assert_eq!(
        TransmissionFlags(RO_FLUSH).to_string(),
        "HAS_FLAGS|READ_ONLY|SEND_FLUSH"
    );
    assert_eq!(TransmissionFlags(0).to_string(), "none");
    assert_eq!(TransmissionFlags(1 << 15).to_string(), "bit15");
}
