//! Every performative the sandbox sends, with all its fields.
//!
//! AMQP 1.0 (OASIS, part 1.4 "Composite Type Representation") lets a peer
//! omit trailing null fields of a described list, and fe2o3-amqp's encoder
//! always does, also writing fields equal to their default as null. That is
//! legal, but Microsoft's Python client (`azure-eventhub`'s own AMQP stack,
//! pyamqp) builds each performative from the positional fields of the list
//! and fails on a short one: `OpenFrame.__new__() missing 6 required
//! positional arguments: 'idle_timeout', …`. The live service evidently sends
//! every field, so the sandbox does too.
//!
//! [`FullPerformatives`] sits between the socket and fe2o3's acceptor and
//! rewrites only what the sandbox writes: each frame's performative list is
//! padded with nulls to its field count in the spec (part 2.7 for the
//! transport performatives, part 5.3.3 for SASL's), with its list size,
//! count and the frame size adjusted. Nothing else changes: heartbeats,
//! protocol headers, extended headers, transfer payloads and frames it does
//! not recognise pass through byte for byte. Reading is untouched.
//!
//! Not for: frames the sandbox fills to the peer's `max-frame-size`. Padding
//! adds at most a few bytes per frame; the sandbox sends only small
//! transfers (CBS and management replies), far below any frame limit.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The AMQP null encoding (part 1.6.1).
const NULL: u8 = 0x40;
/// The bytes at the start of a protocol header, `AMQP` + id + version.
const PROTOCOL_HEADER: &[u8; 4] = b"AMQP";
/// A frame's fixed header: size (4), doff (1), type (1), channel (2).
const FRAME_HEADER: usize = 8;
/// Written bytes held back before the adapter stops accepting more.
const HIGH_WATER: usize = 256 * 1024;

/// The number of fields of a performative, by descriptor code: AMQP 1.0
/// part 2.7 (open … close) and part 5.3.3 (the SASL frames).
pub fn field_count(descriptor: u64) -> Option<usize> {
    Some(match descriptor {
        0x10 => 10, // open
        0x11 => 8,  // begin
        0x12 => 14, // attach
        0x13 => 11, // flow
        0x14 => 11, // transfer
        0x15 => 6,  // disposition
        0x16 => 3,  // detach
        0x17 => 1,  // end
        0x18 => 1,  // close
        0x40 => 1,  // sasl-mechanisms
        0x41 => 3,  // sasl-init
        0x42 => 1,  // sasl-challenge
        0x43 => 1,  // sasl-response
        0x44 => 2,  // sasl-outcome
        _ => return None,
    })
}

/// Rewrites one complete frame (`frame` is exactly the bytes its size field
/// declares) so that its performative carries every field. Returns `None`
/// when the frame needs no change or is not understood (then it is sent as
/// it is).
pub fn pad_frame(frame: &[u8]) -> Option<Vec<u8>> {
    let doff = usize::from(*frame.get(4)?) * 4;
    if doff < FRAME_HEADER || frame.len() <= doff {
        // A heartbeat (no body) or a malformed offset.
        return None;
    }
    let body = &frame[doff..];
    // A described type: 0x00, then the descriptor as a ulong.
    if *body.first()? != 0x00 {
        return None;
    }
    let (code, after_descriptor) = match *body.get(1)? {
        0x53 => (u64::from(*body.get(2)?), 3),
        0x80 => (u64::from_be_bytes(body.get(2..10)?.try_into().ok()?), 10),
        _ => return None,
    };
    let wanted = field_count(code)?;
    let list = &body[after_descriptor..];
    // (elements, their count, the length of the list's encoding)
    let (elements, count, encoded_len) = match *list.first()? {
        0x45 => (&list[..0], 0usize, 1usize),
        0xc0 => {
            let size = usize::from(*list.get(1)?);
            let count = usize::from(*list.get(2)?);
            (list.get(3..2 + size)?, count, 2 + size)
        }
        0xd0 => {
            let size = u32::from_be_bytes(list.get(1..5)?.try_into().ok()?) as usize;
            let count = u32::from_be_bytes(list.get(5..9)?.try_into().ok()?) as usize;
            (list.get(9..5 + size)?, count, 5 + size)
        }
        _ => return None,
    };
    if count >= wanted {
        return None;
    }
    let payload = &list[encoded_len..];
    let padded_len = elements.len() + (wanted - count);
    let mut out = Vec::with_capacity(frame.len() + 16);
    out.extend_from_slice(&frame[..doff]);
    out.extend_from_slice(&body[..after_descriptor]);
    if padded_len < 255 {
        // list8: size counts the count byte and the elements.
        out.extend_from_slice(&[0xc0, (padded_len + 1) as u8, wanted as u8]);
    } else {
        out.push(0xd0);
        out.extend_from_slice(&((padded_len + 4) as u32).to_be_bytes());
        out.extend_from_slice(&(wanted as u32).to_be_bytes());
    }
    out.extend_from_slice(elements);
    out.resize(out.len() + (wanted - count), NULL);
    out.extend_from_slice(payload);
    let size = u32::try_from(out.len()).ok()?;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Some(out)
}

/// An I/O stream whose outgoing AMQP frames carry every performative field;
/// see the module documentation. Reads pass straight through.
#[derive(Debug)]
pub struct FullPerformatives<Io> {
    io: Io,
    /// Written bytes not yet forming a whole frame or protocol header.
    incoming: Vec<u8>,
    /// Rewritten bytes not yet accepted by `io`.
    outgoing: Vec<u8>,
    /// How much of `outgoing` `io` has accepted.
    sent: usize,
}

impl<Io> FullPerformatives<Io> {
    /// Wraps `io`.
    pub fn new(io: Io) -> Self {
        Self {
            io,
            incoming: Vec::new(),
            outgoing: Vec::new(),
            sent: 0,
        }
    }

    /// Moves every whole frame or protocol header from `incoming` to
    /// `outgoing`, padded.
    fn rewrite(&mut self) {
        let mut at = 0;
        loop {
            let rest = &self.incoming[at..];
            if rest.len() < FRAME_HEADER {
                break;
            }
            if rest[..4] == PROTOCOL_HEADER[..] {
                self.outgoing.extend_from_slice(&rest[..FRAME_HEADER]);
                at += FRAME_HEADER;
                continue;
            }
            let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if size < FRAME_HEADER {
                // Not a frame this adapter understands: stop rewriting and
                // send everything as it is from here on.
                self.outgoing.extend_from_slice(rest);
                at = self.incoming.len();
                break;
            }
            if rest.len() < size {
                break;
            }
            let frame = &rest[..size];
            match pad_frame(frame) {
                Some(padded) => self.outgoing.extend_from_slice(&padded),
                None => self.outgoing.extend_from_slice(frame),
            }
            at += size;
        }
        self.incoming.drain(..at);
    }
}

impl<Io: AsyncWrite + Unpin> FullPerformatives<Io> {
    /// Writes `outgoing` to `io` until it is empty or `io` is not ready.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.outgoing.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.outgoing[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.outgoing.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for FullPerformatives<Io> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for FullPerformatives<Io> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.outgoing.len() - this.sent + this.incoming.len() >= HIGH_WATER {
            ready!(this.poll_drain(cx))?;
        }
        this.incoming.extend_from_slice(buf);
        this.rewrite();
        // Start sending now; what `io` does not take yet goes on flush or
        // the next write.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // A partial frame left at shutdown goes out as it is.
        if !this.incoming.is_empty() {
            let rest = std::mem::take(&mut this.incoming);
            this.outgoing.extend_from_slice(&rest);
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp::types::performatives::{Close, End, Open};
    use serde_amqp::described::Described;
    use serde_amqp::Value;
    use tokio::io::AsyncWriteExt;

    /// One AMQP frame on channel 0 around an encoded performative.
    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = ((FRAME_HEADER + body.len()) as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&[2, 0, 0, 0]);
        f.extend_from_slice(body);
        f
    }

    /// The fields of the performative in a frame, decoded.
    fn fields(frame: &[u8]) -> (u64, Vec<Value>) {
        let doff = usize::from(frame[4]) * 4;
        let described: Described<Vec<Value>> =
            serde_amqp::from_slice(&frame[doff..]).expect("a described list");
        let code = match described.descriptor {
            serde_amqp::descriptor::Descriptor::Code(c) => c,
            other => panic!("unexpected descriptor {other:?}"),
        };
        (code, described.value)
    }

    #[test]
    fn an_open_is_padded_to_ten_fields_and_keeps_its_values() {
        let open = Open {
            container_id: "sandbox".into(),
            hostname: None,
            max_frame_size: 65_536.into(),
            channel_max: 255.into(),
            idle_time_out: None,
            outgoing_locales: None,
            incoming_locales: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        };
        let original = frame(&serde_amqp::to_vec(&open).unwrap());
        let (_, before) = fields(&original);
        assert!(before.len() < 10, "fe2o3 omits trailing nulls");
        let padded = pad_frame(&original).expect("padded");
        let (code, after) = fields(&padded);
        assert_eq!(code, 0x10);
        assert_eq!(after.len(), 10);
        assert_eq!(after[..before.len()], before[..]);
        assert!(after[before.len()..].iter().all(|v| *v == Value::Null));
        assert_eq!(
            u32::from_be_bytes(padded[..4].try_into().unwrap()) as usize,
            padded.len()
        );
        // fe2o3 reads its own padded frame back unchanged.
        let doff = usize::from(padded[4]) * 4;
        let back: Open = serde_amqp::from_slice(&padded[doff..]).unwrap();
        assert_eq!(back.container_id, "sandbox");
        assert_eq!(back.max_frame_size, 65_536.into());
    }

    #[test]
    fn an_empty_list_becomes_a_list_of_nulls() {
        let original = frame(&serde_amqp::to_vec(&Close { error: None }).unwrap());
        let padded = pad_frame(&original).expect("padded");
        assert_eq!(fields(&padded), (0x18, vec![Value::Null]));
        let end = frame(&serde_amqp::to_vec(&End { error: None }).unwrap());
        assert_eq!(fields(&pad_frame(&end).unwrap()), (0x17, vec![Value::Null]));
    }

    #[test]
    fn heartbeats_full_lists_and_unknown_bodies_pass_unchanged() {
        let heartbeat = [0, 0, 0, 8, 2, 0, 0, 0];
        assert_eq!(pad_frame(&heartbeat), None);
        // A close with its one field present already.
        let full = frame(&[0x00, 0x53, 0x18, 0xc0, 0x02, 0x01, NULL]);
        assert_eq!(pad_frame(&full), None);
        // A descriptor that is no performative.
        let other = frame(&[0x00, 0x53, 0x70, 0x45]);
        assert_eq!(pad_frame(&other), None);
    }

    #[test]
    fn a_transfer_keeps_its_payload_after_the_padded_list() {
        // transfer: handle 0, delivery-id 1 (list8 of two smalluints).
        let mut body = vec![0x00, 0x53, 0x14, 0xc0, 0x05, 0x02, 0x52, 0x00, 0x52, 0x01];
        let payload = [0x00, 0x53, 0x77, 0xa1, 0x02, b'h', b'i'];
        body.extend_from_slice(&payload);
        let padded = pad_frame(&frame(&body)).expect("padded");
        let (code, after) = fields(&padded);
        assert_eq!((code, after.len()), (0x14, 11));
        assert!(padded.ends_with(&payload));
    }

    #[tokio::test]
    async fn frames_split_across_writes_come_out_whole_and_padded() {
        let close = frame(&serde_amqp::to_vec(&Close { error: None }).unwrap());
        let mut written = b"AMQP\x00\x01\x00\x00".to_vec();
        written.extend_from_slice(&[0, 0, 0, 8, 2, 0, 0, 0]);
        written.extend_from_slice(&close);
        let (client, mut server) = tokio::io::duplex(1024);
        let mut adapter = FullPerformatives::new(client);
        for chunk in written.chunks(3) {
            adapter.write_all(chunk).await.unwrap();
        }
        adapter.shutdown().await.unwrap();
        let mut seen = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut server, &mut seen)
            .await
            .unwrap();
        let mut expected = b"AMQP\x00\x01\x00\x00".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 8, 2, 0, 0, 0]);
        expected.extend_from_slice(&pad_frame(&close).unwrap());
        assert_eq!(seen, expected);
    }
}
