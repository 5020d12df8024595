//! A TFTP read (RFC 1350 with the blksize and tsize options), as a PXE ROM does it.
//! Hand-written: crates.io's TFTP crates are servers, and the load generator needs a client
//! that binds each simulated node's own address.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::UdpSocket;

const RRQ: u16 = 1;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;
const TRIES: u32 = 5;

/// Downloads `file` from `server` into nothing, returning its size.
pub async fn fetch(
    local: Ipv4Addr,
    server: SocketAddr,
    file: &str,
    blksize: u16,
    wait: Duration,
) -> anyhow::Result<u64> {
    let socket = UdpSocket::bind((local, 0))
        .await
        .with_context(|| format!("binding a TFTP client socket on {local}"))?;
    let mut request = RRQ.to_be_bytes().to_vec();
    for field in [file, "octet", "blksize", &blksize.to_string(), "tsize", "0"] {
        request.extend_from_slice(field.as_bytes());
        request.push(0);
    }
    let mut last_sent = request;
    let mut peer = server;
    let mut block_size = 512usize;
    let mut expected_size = None;
    let mut received = 0u64;
    let mut next_block: u16 = 1;
    let mut buffer = vec![0u8; usize::from(blksize) + 4];
    loop {
        let (length, from) =
            send_until_answered(&socket, &last_sent, peer, &mut buffer, wait).await?;
        if from.ip() != server.ip() {
            continue;
        }
        peer = from;
        let packet = &buffer[..length];
        let opcode = u16::from_be_bytes([packet[0], packet.get(1).copied().unwrap_or(0)]);
        match opcode {
            OACK => {
                let options = parse_options(&packet[2..]);
                if let Some(size) = options.iter().find(|(name, _)| name == "blksize") {
                    block_size = size
                        .1
                        .parse()
                        .context("the OACK's blksize is not a number")?;
                }
                expected_size = options
                    .iter()
                    .find(|(name, _)| name == "tsize")
                    .and_then(|(_, value)| value.parse::<u64>().ok());
                last_sent = ack(0);
            }
            DATA if length >= 4 => {
                let block = u16::from_be_bytes([packet[2], packet[3]]);
                last_sent = ack(block);
                if block != next_block {
                    continue;
                }
                received += (length - 4) as u64;
                next_block = next_block.wrapping_add(1);
                if length - 4 < block_size {
                    socket.send_to(&last_sent, peer).await?;
                    break;
                }
            }
            ERROR => bail!(
                "the server refused {file}: {}",
                String::from_utf8_lossy(packet.get(4..).unwrap_or_default()).trim_end_matches('\0')
            ),
            other => bail!("unexpected TFTP packet with opcode {other}"),
        }
    }
    if let Some(size) = expected_size
        && size != received
    {
        bail!("{file}: the server announced {size} bytes (tsize) but sent {received}");
    }
    Ok(received)
}

/// Sends `packet` (again on each timeout, bounded) until anything arrives.
async fn send_until_answered(
    socket: &UdpSocket,
    packet: &[u8],
    to: SocketAddr,
    buffer: &mut [u8],
    wait: Duration,
) -> anyhow::Result<(usize, SocketAddr)> {
    for _ in 0..TRIES {
        socket
            .send_to(packet, to)
            .await
            .context("sending a TFTP packet")?;
        match tokio::time::timeout(wait, socket.recv_from(buffer)).await {
            Ok(Ok((length, from))) if length >= 2 => return Ok((length, from)),
            Ok(Ok(_)) => continue,
            Ok(Err(error)) => return Err(error).context("receiving a TFTP packet"),
            Err(_) => continue,
        }
    }
    bail!("no TFTP answer from {to} after {TRIES} tries")
}

fn ack(block: u16) -> Vec<u8> {
    let mut packet = ACK.to_be_bytes().to_vec();
    packet.extend_from_slice(&block.to_be_bytes());
    packet
}

fn parse_options(bytes: &[u8]) -> Vec<(String, String)> {
    let fields: Vec<String> = bytes
        .split(|byte| *byte == 0)
        .map(|field| String::from_utf8_lossy(field).to_ascii_lowercase())
        .collect();
    fields
        .chunks(2)
        .filter(|pair| pair.len() == 2 && !pair[0].is_empty())
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oack_options_are_read_case_insensitively() {
        let options = parse_options(b"BLKSIZE\x001468\x00tsize\x001024\x00");
        assert_eq!(
            options,
            [
                ("blksize".to_string(), "1468".to_string()),
                ("tsize".to_string(), "1024".to_string())
            ]
        );
    }
}
