//! RFC 5424 and RFC 3164 messages as senders write them, parsed.

use std::net::{IpAddr, Ipv4Addr};

use bootkit_syslog_receiver::{Message, Parsed, parse};

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));

fn parsed(line: &[u8]) -> Message {
    let Parsed {
        message,
        well_formed,
    } = parse(line, PEER);
    assert!(well_formed, "{line:?} should be well formed");
    message
}

fn some(value: &str) -> Option<String> {
    Some(value.to_string())
}

#[test]
fn rfc5424_example_1_with_nilvalues_and_a_bom() {
    let line = "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{feff}'su root' failed for lonvick on /dev/pts/8";
    let message = parsed(line.as_bytes());
    assert_eq!((message.facility, message.severity), (4, 2));
    assert_eq!(message.timestamp, some("2003-10-11T22:14:15.003Z"));
    assert_eq!(message.hostname, some("mymachine.example.com"));
    assert_eq!(message.app_name, some("su"));
    assert_eq!(message.proc_id, None);
    assert_eq!(message.msg_id, some("ID47"));
    assert_eq!(message.text, "'su root' failed for lonvick on /dev/pts/8");
    assert_eq!(message.peer, PEER);
}

#[test]
fn rfc5424_example_2_all_nil_but_hostname_and_app() {
    let line = b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.";
    let message = parsed(line);
    assert_eq!((message.facility, message.severity), (20, 5));
    assert_eq!(message.proc_id, some("8710"));
    assert_eq!(message.msg_id, None);
    assert_eq!(message.text, "%% It's time to make the do-nuts.");
}

#[test]
fn rfc5424_structured_data_is_skipped_including_escaped_brackets() {
    let line = br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application] \"x\" \]" eventID="1011"][examplePriority@32473 class="high"] An application event"#;
    let message = parsed(line);
    assert_eq!(message.app_name, some("evntslog"));
    assert_eq!(message.text, "An application event");
}

#[test]
fn rfc5424_structured_data_without_msg() {
    let message =
        parsed(br#"<165>1 2003-10-11T22:14:15.003Z host app - ID47 [exampleSDID@32473 iut="3"]"#);
    assert_eq!(message.text, "");
    let message = parsed(b"<30>1 - - - - - -");
    assert_eq!(
        (message.timestamp, message.hostname, message.app_name),
        (None, None, None)
    );
}

#[test]
fn rfc3164_with_hostname_tag_and_pid() {
    let message = parsed(b"<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick\n");
    assert_eq!((message.facility, message.severity), (4, 2));
    assert_eq!(message.timestamp, some("Oct 11 22:14:15"));
    assert_eq!(message.hostname, some("mymachine"));
    assert_eq!(message.app_name, some("su"));
    assert_eq!(message.proc_id, some("230"));
    assert_eq!(message.text, "'su root' failed for lonvick");
}

#[test]
fn rfc3164_without_pid_and_with_a_space_padded_day() {
    let message = parsed(b"<13>Feb  5 17:32:18 10.0.0.99 kernel: eth0: link up");
    assert_eq!(message.timestamp, some("Feb  5 17:32:18"));
    assert_eq!(message.hostname, some("10.0.0.99"));
    assert_eq!(message.app_name, some("kernel"));
    assert_eq!(message.proc_id, None);
    assert_eq!(message.text, "eth0: link up");
}

#[test]
fn rfc3164_from_a_local_logger_has_no_hostname() {
    let message = parsed(b"<14>Nov 22 06:00:01 dhclient[77]: bound to 10.0.0.5");
    assert_eq!(message.hostname, None);
    assert_eq!(message.app_name, some("dhclient"));
    assert_eq!(message.proc_id, some("77"));
}

#[test]
fn pri_then_text_keeps_the_text_and_takes_only_a_tag_with_pid() {
    let message = parsed(b"<11>error: disk full");
    assert_eq!((message.facility, message.severity), (1, 3));
    assert_eq!(
        (message.app_name, message.text.as_str()),
        (None, "error: disk full")
    );
    let message = parsed(b"<11>udhcpc[42]: lease lost");
    assert_eq!(
        (message.app_name, message.proc_id),
        (some("udhcpc"), some("42"))
    );
    assert_eq!(message.text, "lease lost");
}

#[test]
fn invalid_utf8_is_replaced_not_rejected() {
    let message = parsed(b"<13>1 - host app - - - caf\xe9 \xff ok");
    assert_eq!(message.text, "caf\u{fffd} \u{fffd} ok");
}

#[test]
fn garbage_is_delivered_as_user_notice_and_marked_malformed() {
    for line in [&b"hello world"[..], b"<999>too big", b"<>empty", b"<13"] {
        let Parsed {
            message,
            well_formed,
        } = parse(line, PEER);
        assert!(!well_formed, "{line:?}");
        assert_eq!((message.facility, message.severity), (1, 5));
        assert_eq!(message.text.as_bytes(), line);
    }
}

#[test]
fn a_broken_rfc5424_header_keeps_pri_and_the_text() {
    let Parsed {
        message,
        well_formed,
    } = parse(b"<30>1 2026-01-01T00:00:00Z host [unterminated", PEER);
    assert!(!well_formed);
    assert_eq!(message.severity, 6);
    assert_eq!(message.text, "2026-01-01T00:00:00Z host [unterminated");
    let Parsed { well_formed, .. } = parse(b"<30>1 ts host app pid msgid [a x=\"]\"", PEER);
    assert!(!well_formed);
}
