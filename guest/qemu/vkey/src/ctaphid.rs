//! CTAPHID framing (CTAP 2.1 §11.2): 64-byte reports, an initialization
//! packet (channel, command with bit 7 set, length, 57 bytes) and
//! continuation packets (channel, sequence 0..=127, 59 bytes each).

/// One report's size.
pub const REPORT: usize = 64;
/// Payload bytes in an initialization packet.
const INIT_DATA: usize = REPORT - 7;
/// Payload bytes in a continuation packet.
const CONT_DATA: usize = REPORT - 5;
/// The largest message: one initialization and 128 continuation packets.
pub const MAX_MESSAGE: usize = INIT_DATA + 128 * CONT_DATA;

/// The broadcast channel, used only by INIT.
pub const BROADCAST: u32 = 0xffff_ffff;

/// Commands (with bit 7 set, as on the wire).
pub mod cmd {
    /// CTAP1/U2F APDU.
    pub const MSG: u8 = 0x83;
    /// Echo.
    pub const PING: u8 = 0x81;
    /// Channel allocation.
    pub const INIT: u8 = 0x86;
    /// Blink (no LED here).
    pub const WINK: u8 = 0x88;
    /// A CTAP2 command.
    pub const CBOR: u8 = 0x90;
    /// Cancels the channel's pending CBOR request.
    pub const CANCEL: u8 = 0x91;
    /// Sent while a request waits (status 1 processing, 2 touch needed).
    pub const KEEPALIVE: u8 = 0xbb;
    /// A framing error (one status byte).
    pub const ERROR: u8 = 0xbf;
}

/// CTAPHID_ERROR codes.
pub mod err {
    /// Unknown command.
    pub const INVALID_CMD: u8 = 0x01;
    /// Length field out of range.
    pub const INVALID_LEN: u8 = 0x03;
    /// Continuation packet out of sequence.
    pub const INVALID_SEQ: u8 = 0x04;
    /// Another channel's request is in progress.
    pub const CHANNEL_BUSY: u8 = 0x06;
    /// A command on a channel not allocated (or broadcast for non-INIT).
    pub const INVALID_CHANNEL: u8 = 0x0b;
}

/// A whole message, reassembled or to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Channel id.
    pub cid: u32,
    /// Command, bit 7 set.
    pub cmd: u8,
    /// Payload.
    pub data: Vec<u8>,
}

/// What one incoming report gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Got {
    /// More packets are needed.
    Partial,
    /// A whole message.
    Message(Message),
    /// A framing error to answer on this channel.
    Error(u32, u8),
}

/// Reassembles messages from reports (one in progress at a time, as a
/// real key does).
#[derive(Debug, Default)]
pub struct Assembler {
    pending: Option<(Message, usize, u8)>,
}

impl Assembler {
    /// Feeds one 64-byte report.
    pub fn push(&mut self, report: &[u8]) -> Got {
        if report.len() < REPORT {
            return Got::Partial;
        }
        let cid = u32::from_be_bytes([report[0], report[1], report[2], report[3]]);
        let b = report[4];
        if b & 0x80 != 0 {
            let len = usize::from(u16::from_be_bytes([report[5], report[6]]));
            if len > MAX_MESSAGE {
                self.pending = None;
                return Got::Error(cid, err::INVALID_LEN);
            }
            let take = len.min(INIT_DATA);
            let msg = Message {
                cid,
                cmd: b,
                data: report[7..7 + take].to_vec(),
            };
            if take == len {
                self.pending = None;
                return Got::Message(msg);
            }
            self.pending = Some((msg, len, 0));
            return Got::Partial;
        }
        let Some((mut msg, len, seq)) = self.pending.take() else {
            // A continuation with nothing started is ignored (spec).
            return Got::Partial;
        };
        if cid != msg.cid {
            // Another channel while one is being received.
            self.pending = Some((msg, len, seq));
            return Got::Error(cid, err::CHANNEL_BUSY);
        }
        if b != seq {
            return Got::Error(cid, err::INVALID_SEQ);
        }
        let take = (len - msg.data.len()).min(CONT_DATA);
        msg.data.extend_from_slice(&report[5..5 + take]);
        if msg.data.len() == len {
            Got::Message(msg)
        } else {
            self.pending = Some((msg, len, seq + 1));
            Got::Partial
        }
    }
}

/// Splits a message into 64-byte reports.
pub fn frame(msg: &Message) -> Vec<[u8; REPORT]> {
    let mut out = Vec::new();
    let mut first = [0u8; REPORT];
    first[..4].copy_from_slice(&msg.cid.to_be_bytes());
    first[4] = msg.cmd;
    let len = u16::try_from(msg.data.len()).unwrap_or(u16::MAX);
    first[5..7].copy_from_slice(&len.to_be_bytes());
    let take = msg.data.len().min(INIT_DATA);
    first[7..7 + take].copy_from_slice(&msg.data[..take]);
    out.push(first);
    for (seq, chunk) in msg.data[take..].chunks(CONT_DATA).enumerate() {
        let mut p = [0u8; REPORT];
        p[..4].copy_from_slice(&msg.cid.to_be_bytes());
        p[4] = (seq & 0x7f) as u8;
        p[5..5 + chunk.len()].copy_from_slice(chunk);
        out.push(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(len: usize) {
        let msg = Message {
            cid: 0x0102_0304,
            cmd: cmd::CBOR,
            data: (0..len).map(|i| i as u8).collect(),
        };
        let mut a = Assembler::default();
        let reports = frame(&msg);
        let (last, rest) = reports.split_last().unwrap();
        for r in rest {
            assert_eq!(a.push(r), Got::Partial);
        }
        assert_eq!(a.push(last), Got::Message(msg));
    }

    #[test]
    fn messages_of_every_boundary_size_survive_framing() {
        for len in [0, 1, 56, 57, 58, 115, 116, 117, 1000, MAX_MESSAGE] {
            roundtrip(len);
        }
    }

    #[test]
    fn a_continuation_out_of_sequence_is_an_error() {
        let msg = Message {
            cid: 7,
            cmd: cmd::CBOR,
            data: vec![1; 200],
        };
        let r = frame(&msg);
        let mut a = Assembler::default();
        assert_eq!(a.push(&r[0]), Got::Partial);
        assert_eq!(a.push(&r[2]), Got::Error(7, err::INVALID_SEQ));
    }

    #[test]
    fn another_channel_mid_message_is_busy_and_the_first_goes_on() {
        let msg = Message {
            cid: 7,
            cmd: cmd::CBOR,
            data: vec![1; 100],
        };
        let r = frame(&msg);
        let mut a = Assembler::default();
        assert_eq!(a.push(&r[0]), Got::Partial);
        let mut other = r[1];
        other[..4].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(a.push(&other), Got::Error(9, err::CHANNEL_BUSY));
        assert_eq!(a.push(&r[1]), Got::Message(msg));
    }

    #[test]
    fn a_length_over_the_maximum_is_refused() {
        let mut p = [0u8; REPORT];
        p[4] = cmd::CBOR;
        p[5..7].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(
            Assembler::default().push(&p),
            Got::Error(0, err::INVALID_LEN)
        );
    }
}
