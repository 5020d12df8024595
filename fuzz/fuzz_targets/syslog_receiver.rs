//! Fuzzes the provisioner's syslog receiver (`bootkit_syslog_receiver`): arbitrary bytes as
//! one UDP datagram go to the message parser (RFC 5424, RFC 3164 or neither); as a TCP stream
//! they go through the framing (octet counting or newline, RFC 6587) and each frame to the
//! parser. Nothing may panic, every frame stays within `MAX_FRAME`, and a parsed message has
//! a facility and severity that exist.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use bootkit_syslog_receiver::fuzzing::{Frame, read_frame};
use bootkit_syslog_receiver::{MAX_FRAME, parse};
use libfuzzer_sys::fuzz_target;

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

fn check(frame: &[u8]) {
    let parsed = parse(frame, PEER);
    assert!(
        parsed.message.facility <= 23,
        "facility {}",
        parsed.message.facility
    );
    assert!(
        parsed.message.severity <= 7,
        "severity {}",
        parsed.message.severity
    );
}

fuzz_target!(|data: &[u8]| {
    check(data);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let mut stream = data;
        let mut frame = Vec::new();
        // Each frame consumes at least one byte, so this ends with the input.
        while let Ok(Frame::Read { .. }) = read_frame(&mut stream, &mut frame).await {
            assert!(frame.len() <= MAX_FRAME);
            check(&frame);
        }
    });
});
