//! Fuzzes the init's DHCP client (`bootkit_net::dhcp::Machine`) with arbitrary bytes as
//! every datagram the servers send, with the clock running between them: whatever arrives, the
//! machine must not panic, and a lease it takes must be one it can configure.
//!
//! The input is a sequence of records: one control byte, a two-byte big-endian length, then
//! that many bytes of packet. Control bit 0 lets the clock reach the machine's next timeout
//! before the packet; bit 1 writes the client's current xid and MAC into the packet (when it
//! is long enough), so that the fuzzer reaches past the "is this reply for us" check.

#![no_main]

use std::time::Duration;

use bootkit_net::dhcp::{Action, Config, Machine};
use libfuzzer_sys::fuzz_target;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/// The xid of the last message the client sent, which a reply must carry.
fn sent_xid(actions: &[Action], current: u32) -> u32 {
    actions
        .iter()
        .rev()
        .find_map(|action| match action {
            Action::Send { message, .. } => Some(message.xid()),
            _ => None,
        })
        .unwrap_or(current)
}

fn check(actions: &[Action]) {
    for action in actions {
        if let Action::Acquired(lease) | Action::Renewed(lease) = action {
            assert!(
                lease.prefix_len <= 32,
                "lease with prefix /{}",
                lease.prefix_len
            );
            let _ = format!("{lease:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut machine = Machine::with_seed(Config::new("eth0", MAC), 7);
    let mut now = Duration::ZERO;
    let actions = machine.start(now);
    let mut xid = sent_xid(&actions, 0);
    let mut rest = data;
    while let [control, high, low, tail @ ..] = rest {
        let length = usize::from(u16::from_be_bytes([*high, *low])).min(tail.len());
        let (packet, next) = tail.split_at(length);
        rest = next;
        if control & 1 != 0
            && let Some(wake_at) = machine.wake_at()
        {
            now = now.max(wake_at);
            let actions = machine.on_timeout(now);
            check(&actions);
            xid = sent_xid(&actions, xid);
        }
        let mut packet = packet.to_vec();
        if control & 2 != 0 && packet.len() >= 34 {
            packet[4..8].copy_from_slice(&xid.to_be_bytes());
            packet[28..34].copy_from_slice(&MAC);
        }
        now += Duration::from_millis(u64::from(*control >> 2) * 100);
        let actions = machine.on_bytes(&packet, now);
        check(&actions);
        xid = sent_xid(&actions, xid);
    }
});
