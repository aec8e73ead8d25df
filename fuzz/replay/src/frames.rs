//! `frame_reader`: [`FrameReader`] and [`read_frame`] on arbitrary bytes,
//! delivered in read sizes taken from the input, checked against a
//! ten-line model of the framing.

use crate::alloc::largest_allocation;
use std::io::{self, Read};
use twofold_proto::{read_frame, FrameError, FrameReader, MAX_FRAME};

/// Input: one control byte, then `n` read sizes, then the stream.
///
/// - control bits 0–3: `n`, the number of read sizes (0: every read gets
///   as much as the caller asks for);
/// - control bit 4: the stream ends with an I/O error instead of an EOF;
/// - read sizes are used in turn, round and round; a size 0 makes that
///   read fail with `Interrupted` (which both readers must retry).
///
/// Properties: both readers return exactly the frames of the model, then
/// its end (`Closed` between frames, `Truncated` inside one, `TooLarge`
/// with the announced length, or the I/O error); no frame and no single
/// allocation is larger than [`MAX_FRAME`]; when [`FrameReader::has_frame`]
/// says a frame is buffered, reading it makes no read; no reader ever asks
/// for 0 bytes (which a stream answers like an EOF).
pub fn frame_reader(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(control & 0x0f).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let fail_at_end = control & 0x10 != 0;
    let (frames, end) = model(stream);

    // The buffered reader, as twofoldd and pam_twofold.so use it.
    let mut drip = Drip::new(stream, sizes, fail_at_end);
    let mut reader = FrameReader::new();
    let mut got = Vec::new();
    let err = loop {
        let buffered_frame = reader.has_frame();
        let reads_before = drip.reads;
        let (res, largest) = largest_allocation(|| reader.read_frame(&mut drip));
        assert!(
            largest <= MAX_FRAME,
            "FrameReader allocated {largest} bytes at once"
        );
        assert!(
            reader.buffered() <= MAX_FRAME,
            "FrameReader buffers {} bytes",
            reader.buffered()
        );
        if buffered_frame {
            assert!(res.is_ok(), "has_frame() but read_frame failed: {res:?}");
            assert_eq!(drip.reads, reads_before, "has_frame() but read_frame read");
        }
        match res {
            Ok(body) => {
                assert!(body.len() <= MAX_FRAME, "frame of {} bytes", body.len());
                got.push(body);
                assert!(got.len() <= frames.len(), "more frames than the stream has");
            }
            Err(e) => break e,
        }
    };
    check("FrameReader", &got, &err, &frames, end, fail_at_end);

    // The unbuffered reader, as the CLI's `Client` uses it.
    let mut drip = Drip::new(stream, sizes, fail_at_end);
    let mut got = Vec::new();
    let err = loop {
        let (res, largest) = largest_allocation(|| read_frame(&mut drip));
        assert!(
            largest <= MAX_FRAME,
            "read_frame allocated {largest} bytes at once"
        );
        match res {
            Ok(body) => {
                got.push(body);
                assert!(got.len() <= frames.len(), "more frames than the stream has");
            }
            Err(e) => break e,
        }
    };
    check("read_frame", &got, &err, &frames, end, fail_at_end);
}

/// How the model says a stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Closed,
    Truncated,
    TooLarge(usize),
}

/// The framing, written as plainly as possible: a `u32` big-endian length,
/// at most [`MAX_FRAME`], then that many bytes.
fn model(mut stream: &[u8]) -> (Vec<&[u8]>, End) {
    let mut frames = Vec::new();
    loop {
        if stream.is_empty() {
            return (frames, End::Closed);
        }
        let Some((len, body)) = stream.split_first_chunk::<4>() else {
            return (frames, End::Truncated);
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len > MAX_FRAME {
            return (frames, End::TooLarge(len));
        }
        if body.len() < len {
            return (frames, End::Truncated);
        }
        let (frame, after) = body.split_at(len);
        frames.push(frame);
        stream = after;
    }
}

fn check(
    who: &str,
    got: &[Vec<u8>],
    err: &FrameError,
    frames: &[&[u8]],
    end: End,
    fail_at_end: bool,
) {
    assert_eq!(got.len(), frames.len(), "{who}: number of frames");
    for (i, (g, f)) in got.iter().zip(frames).enumerate() {
        assert!(g == f, "{who}: frame {i} differs from the stream's");
    }
    let ok = match (end, err) {
        (End::TooLarge(len), FrameError::TooLarge { len: l, max }) => {
            *l == len && *max == MAX_FRAME
        }
        (End::Closed | End::Truncated, FrameError::Io(e)) if fail_at_end => {
            e.kind() == io::ErrorKind::ConnectionReset
        }
        (End::Closed, FrameError::Closed) | (End::Truncated, FrameError::Truncated) => !fail_at_end,
        _ => false,
    };
    assert!(ok, "{who}: ended with {err:?}, the model with {end:?}");
}

/// A stream that hands out `data` in the given read sizes.
struct Drip<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    next: usize,
    /// Whether the last read failed with `Interrupted` (the next one does
    /// not, so a stream of zero sizes still makes progress).
    interrupted: bool,
    fail_at_end: bool,
    /// Reads asked for, counting interrupted ones.
    reads: usize,
}

impl<'a> Drip<'a> {
    fn new(data: &'a [u8], sizes: &'a [u8], fail_at_end: bool) -> Drip<'a> {
        Drip {
            data,
            sizes,
            next: 0,
            interrupted: false,
            fail_at_end,
            reads: 0,
        }
    }
}

impl Read for Drip<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        assert!(
            !buf.is_empty(),
            "a read of 0 bytes, which looks like an EOF"
        );
        self.reads += 1;
        let size = match self.sizes.get(self.next % self.sizes.len().max(1)) {
            None => usize::MAX,
            Some(&s) => {
                self.next += 1;
                usize::from(s)
            }
        };
        if size == 0 && !self.interrupted {
            self.interrupted = true;
            return Err(io::ErrorKind::Interrupted.into());
        }
        self.interrupted = false;
        if self.data.is_empty() {
            return if self.fail_at_end {
                Err(io::ErrorKind::ConnectionReset.into())
            } else {
                Ok(0)
            };
        }
        let size = if size == 0 { usize::MAX } else { size };
        let n = size.min(buf.len()).min(self.data.len());
        let (now, later) = self.data.split_at(n);
        buf[..n].copy_from_slice(now);
        self.data = later;
        Ok(n)
    }
}
