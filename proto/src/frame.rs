use crate::MAX_FRAME;
use serde::{de::DeserializeOwned, Serialize};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};
use zeroize::Zeroize;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer announced a body larger than [`MAX_FRAME`]; nothing was allocated.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The peer closed the connection cleanly before a new frame began.
    #[error("connection closed by peer")]
    Closed,
    /// The connection ended in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// A read or write hit its timeout.
    #[error("timed out waiting for the peer")]
    Timeout,
    /// The body was not valid JSON for the expected message type.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Any other I/O failure.
    #[error("i/o error: {0}")]
    Io(io::Error),
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => FrameError::Timeout,
            io::ErrorKind::UnexpectedEof => FrameError::Truncated,
            _ => FrameError::Io(e),
        }
    }
}

/// Reads one frame body. The length is checked against [`MAX_FRAME`] before
/// the body buffer is allocated.
pub fn read_frame(r: &mut impl Read) -> Result<Vec<u8>, FrameError> {
    let mut len_buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len_buf[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_be_bytes(len_buf) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME,
        });
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// Writes one frame. Bodies over [`MAX_FRAME`] are refused, not truncated.
pub fn write_frame(w: &mut impl Write, body: &[u8]) -> Result<(), FrameError> {
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge {
            len: body.len(),
            max: MAX_FRAME,
        });
    }
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(body);
    let res = w.write_all(&buf).and_then(|()| w.flush());
    buf.zeroize();
    res.map_err(FrameError::from)
}

/// Serializes `msg` and writes it as one frame. The serialized bytes are wiped
/// afterwards, since they may carry a code, and so is every smaller buffer
/// they outgrew on the way ([`WipingBuf`]).
pub fn write_message<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), FrameError> {
    let mut body = WipingBuf(Vec::new());
    let res = serde_json::to_writer(&mut body, msg)
        .map_err(|e| FrameError::Malformed(e.to_string()))
        .and_then(|()| write_frame(w, &body.0));
    body.0.zeroize();
    res
}

/// A growable buffer that wipes the block it moves out of whenever it
/// grows. A plain `Vec` (as `serde_json::to_vec` uses) reallocates as it
/// fills, and the allocator frees each smaller block with whatever part of
/// the message, maybe a code, it held.
struct WipingBuf(Vec<u8>);

impl WipingBuf {
    #[inline]
    fn push(&mut self, data: &[u8]) {
        if data.len() > self.0.capacity() - self.0.len() {
            self.grow(data.len());
        }
        self.0.extend_from_slice(data);
    }

    /// Moves into a block with room for `more` bytes, wiping the old one.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, more: usize) {
        let need = self.0.len().saturating_add(more);
        let mut bigger = Vec::with_capacity(need.max(self.0.capacity() * 2).max(128));
        bigger.extend_from_slice(&self.0);
        self.0.zeroize();
        self.0 = bigger;
    }
}

impl Write for WipingBuf {
    #[inline]
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.push(data);
        Ok(data.len())
    }

    #[inline]
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.push(data);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads one frame and parses it as `T`. The raw bytes are wiped afterwards.
pub fn read_message<T: DeserializeOwned>(r: &mut impl Read) -> Result<T, FrameError> {
    let mut body = read_frame(r)?;
    let parsed = serde_json::from_slice(&body).map_err(|e| FrameError::Malformed(e.to_string()));
    body.zeroize();
    parsed
}

/// How many bytes a [`FrameReader`] asks for per read: enough for any frame
/// a login exchanges, so each usually arrives in one read.
const READ_CHUNK: usize = 4096;

/// Reads frames from a stream with as few reads as possible.
///
/// [`read_frame`] must read the length and then the body separately, since
/// a plain [`Read`] cannot give back bytes it read too far. This reader
/// keeps a small buffer per connection instead: one read usually brings a
/// whole frame, and any bytes of the frames after it stay buffered for the
/// next call, never lost. A body larger than the buffer is read straight
/// into its own allocation, whose size is checked against [`MAX_FRAME`]
/// first. Consumed bytes are wiped, since a frame may carry a code.
#[derive(Default)]
pub struct FrameReader {
    /// Bytes read from the stream; `buf[start..end]` are not yet consumed.
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl std::fmt::Debug for FrameReader {
    /// Shows how much is buffered, never the bytes (they may be a code).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader")
            .field("buffered", &self.buffered())
            .finish()
    }
}

impl FrameReader {
    /// An empty reader; the buffer is allocated on first use.
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// How many bytes are read from the stream but not yet returned.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Whether a whole frame (length and body) is buffered, so the next
    /// [`FrameReader::read_frame`] needs no read from the stream.
    pub fn has_frame(&self) -> bool {
        if self.buffered() < 4 {
            return false;
        }
        let mut len_buf = [0u8; 4];
        len_buf.copy_from_slice(&self.buf[self.start..self.start + 4]);
        self.buffered() - 4 >= u32::from_be_bytes(len_buf) as usize
    }

    /// Reads one frame body, with the errors of [`read_frame`]: `Closed`
    /// when the stream ends between frames, `Truncated` inside one,
    /// `TooLarge` (nothing allocated) for a length over [`MAX_FRAME`].
    pub fn read_frame(&mut self, r: &mut impl Read) -> Result<Vec<u8>, FrameError> {
        while self.buffered() < 4 {
            self.fill(r)?;
        }
        let mut len_buf = [0u8; 4];
        len_buf.copy_from_slice(&self.buf[self.start..self.start + 4]);
        let len = u32::from_be_bytes(len_buf) as usize;
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge {
                len,
                max: MAX_FRAME,
            });
        }
        self.consume(4);
        let mut body = vec![0u8; len];
        let have = self.buffered().min(len);
        body[..have].copy_from_slice(&self.buf[self.start..self.start + have]);
        self.consume(have);
        if have < len {
            // The buffer is now empty: the rest of this body goes straight
            // into it, so no byte of a following frame is read here.
            if let Err(e) = read_exact_or_truncated(r, &mut body[have..]) {
                body.zeroize();
                return Err(e);
            }
        }
        Ok(body)
    }

    /// Like [`FrameReader::read_frame`], with the whole frame bounded in
    /// time however the peer sends it: each read waits only for what is
    /// left of the deadline (see [`FrameDeadline`]), so a peer dribbling a
    /// byte at a time cannot stretch it. Running out is
    /// [`FrameError::Timeout`] while no byte of the frame has come, and a
    /// [`FrameError::Io`] of kind `TimedOut` that says so once one has.
    pub fn read_frame_by(
        &mut self,
        r: &mut impl TimedRead,
        deadline: FrameDeadline,
    ) -> Result<Vec<u8>, FrameError> {
        let mut timed = Timed {
            inner: r,
            until: deadline.by,
            once_begun: deadline.once_begun,
            begun: false,
            cut_by_frame: false,
        };
        if self.buffered() > 0 {
            // Its first bytes came with the previous frame.
            timed.begin(Instant::now());
        }
        match self.read_frame(&mut timed) {
            Err(FrameError::Timeout) if timed.cut_by_frame => Err(FrameError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "frame not complete {}s after its first byte",
                    deadline.once_begun.as_secs_f32()
                ),
            ))),
            other => other,
        }
    }

    /// Reads one frame and parses it as `T`; the raw bytes are wiped.
    pub fn read_message<T: DeserializeOwned>(
        &mut self,
        r: &mut impl Read,
    ) -> Result<T, FrameError> {
        let mut body = self.read_frame(r)?;
        let parsed =
            serde_json::from_slice(&body).map_err(|e| FrameError::Malformed(e.to_string()));
        body.zeroize();
        parsed
    }

    /// One read into the free end of the buffer.
    fn fill(&mut self, r: &mut impl Read) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            self.buf = vec![0u8; READ_CHUNK];
        }
        if self.start > 0 {
            // Fewer than 4 bytes are left: move them to the front.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.buf[self.end..].zeroize();
            self.start = 0;
        }
        loop {
            match r.read(&mut self.buf[self.end..]) {
                Ok(0) if self.buffered() == 0 => return Err(FrameError::Closed),
                Ok(0) => return Err(FrameError::Truncated),
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Marks `n` buffered bytes as returned and wipes them.
    fn consume(&mut self, n: usize) {
        self.buf[self.start..self.start + n].zeroize();
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

/// A stream whose reads can be bounded in time, for
/// [`FrameReader::read_frame_by`]; a socket sets `SO_RCVTIMEO`.
pub trait TimedRead: Read {
    /// Makes each following read wait at most `limit` (never zero).
    fn limit_reads(&mut self, limit: Duration) -> io::Result<()>;
}

impl TimedRead for &UnixStream {
    fn limit_reads(&mut self, limit: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(limit))
    }
}

impl TimedRead for UnixStream {
    fn limit_reads(&mut self, limit: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(limit))
    }
}

/// When a frame read by [`FrameReader::read_frame_by`] must be complete:
/// by `by` (the wait between frames, counted once, not per byte), and
/// within `once_begun` of its first byte, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDeadline {
    /// The whole frame is in by then, or the read fails.
    pub by: Instant,
    /// Time allowed from a frame's first byte to its last: a frame is one
    /// write, so only a stalled or hostile peer needs long.
    pub once_begun: Duration,
}

/// A stream seen through a [`FrameDeadline`]: every read waits at most
/// until the deadline that applies, which tightens when the frame begins.
struct Timed<'r, R> {
    inner: &'r mut R,
    until: Instant,
    once_begun: Duration,
    /// A byte of the frame has arrived.
    begun: bool,
    /// `until` is the frame's own deadline (not the wait's).
    cut_by_frame: bool,
}

impl<R> Timed<'_, R> {
    fn begin(&mut self, at: Instant) {
        self.begun = true;
        if let Some(end) = at.checked_add(self.once_begun) {
            if end < self.until {
                self.until = end;
                self.cut_by_frame = true;
            }
        }
    }
}

impl<R: TimedRead> Read for Timed<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.inner.limit_reads(left)?;
        let n = self.inner.read(buf)?;
        if n > 0 && !self.begun {
            self.begin(Instant::now());
        }
        Ok(n)
    }
}

/// `read_exact`, with an early end reported as [`FrameError::Truncated`].
fn read_exact_or_truncated(r: &mut impl Read, mut buf: &mut [u8]) -> Result<(), FrameError> {
    while !buf.is_empty() {
        match r.read(buf) {
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => buf = &mut buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Request, Response};
    use std::io::Cursor;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        write_message(&mut buf, &Response::Success).unwrap();
        let back: Response = read_message(&mut Cursor::new(buf)).unwrap();
        assert!(matches!(back, Response::Success));
    }

    /// An answer long enough that the serialized body outgrows its first
    /// buffers several times still makes exactly the frame it always did.
    #[test]
    fn a_message_that_outgrows_its_buffer_is_framed_whole() {
        let answer = Request::Answer {
            text: crate::Secret::from("7".repeat(5000).as_str()),
        };
        let mut buf = Vec::new();
        write_message(&mut buf, &answer).unwrap();
        let body = serde_json::to_vec(&answer).unwrap();
        assert_eq!(buf[..4], (body.len() as u32).to_be_bytes());
        assert_eq!(buf[4..], body[..]);
    }

    #[test]
    fn oversized_length_is_refused_before_allocation() {
        // 4 GiB announced; only the header is present.
        let buf = vec![0xff, 0xff, 0xff, 0xff];
        match read_frame(&mut Cursor::new(buf)) {
            Err(FrameError::TooLarge { len, .. }) => assert_eq!(len, u32::MAX as usize),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn one_byte_over_the_limit_is_refused() {
        let len = (MAX_FRAME as u32 + 1).to_be_bytes();
        assert!(matches!(
            read_frame(&mut Cursor::new(len.to_vec())),
            Err(FrameError::TooLarge { .. })
        ));
        let body = vec![b' '; MAX_FRAME + 1];
        assert!(matches!(
            write_frame(&mut Vec::new(), &body),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn truncated_frames_are_reported() {
        let mut buf = 10u32.to_be_bytes().to_vec();
        buf.extend_from_slice(b"{\"ty");
        assert!(matches!(
            read_frame(&mut Cursor::new(buf)),
            Err(FrameError::Truncated)
        ));
        assert!(matches!(
            read_frame(&mut Cursor::new(vec![0, 0])),
            Err(FrameError::Truncated)
        ));
        assert!(matches!(
            read_frame(&mut Cursor::new(Vec::new())),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn invalid_json_is_malformed() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"{not json").unwrap();
        assert!(matches!(
            read_message::<Request>(&mut Cursor::new(buf)),
            Err(FrameError::Malformed(_))
        ));
    }

    /// A stream that hands out the given chunks one per `read` (a chunk
    /// larger than the caller's buffer is split) and counts the reads.
    struct Chunks {
        chunks: std::collections::VecDeque<Vec<u8>>,
        reads: usize,
    }

    impl Chunks {
        fn new(chunks: &[&[u8]]) -> Chunks {
            Chunks {
                chunks: chunks.iter().map(|c| c.to_vec()).collect(),
                reads: 0,
            }
        }
    }

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            let Some(chunk) = self.chunks.front_mut() else {
                return Ok(0);
            };
            let n = chunk.len().min(buf.len());
            buf[..n].copy_from_slice(&chunk[..n]);
            chunk.drain(..n);
            if chunk.is_empty() {
                self.chunks.pop_front();
            }
            Ok(n)
        }
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        write_frame(&mut buf, body).unwrap();
        buf
    }

    #[test]
    fn frame_reader_takes_two_frames_from_one_read() {
        let mut both = frame(br#"{"type":"success"}"#);
        both.extend(frame(b"second"));
        let mut s = Chunks::new(&[&both]);
        let mut r = FrameReader::new();
        let first: Response = r.read_message(&mut s).unwrap();
        assert!(matches!(first, Response::Success));
        assert_eq!(s.reads, 1);
        assert_eq!(r.buffered(), 4 + 6, "the second frame is kept");
        assert_eq!(r.read_frame(&mut s).unwrap(), b"second");
        assert_eq!(s.reads, 1, "the second frame needed no read");
        assert!(matches!(r.read_frame(&mut s), Err(FrameError::Closed)));
    }

    #[test]
    fn frame_reader_reassembles_frames_split_across_reads() {
        let mut bytes = frame(b"hello world");
        bytes.extend(frame(b"next"));
        // Split inside the first header, the first body, and between the
        // second frame's header and body.
        let (a, rest) = bytes.split_at(2);
        let (b, rest) = rest.split_at(7);
        let (c, rest) = rest.split_at(8 + 4);
        let mut s = Chunks::new(&[a, b, c, rest]);
        let mut r = FrameReader::new();
        assert_eq!(r.read_frame(&mut s).unwrap(), b"hello world");
        assert_eq!(r.read_frame(&mut s).unwrap(), b"next");
        assert!(matches!(r.read_frame(&mut s), Err(FrameError::Closed)));
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn frame_reader_reads_a_byte_at_a_time_stream() {
        let mut bytes = frame(b"abc");
        bytes.extend(frame(b""));
        bytes.extend(frame(b"xyz"));
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        let mut s = Chunks::new(&singles);
        let mut r = FrameReader::new();
        assert_eq!(r.read_frame(&mut s).unwrap(), b"abc");
        assert_eq!(r.read_frame(&mut s).unwrap(), b"");
        assert_eq!(r.read_frame(&mut s).unwrap(), b"xyz");
        assert!(matches!(r.read_frame(&mut s), Err(FrameError::Closed)));
    }

    /// A body larger than the buffer is read into its own allocation, and
    /// the frame after it is still intact.
    #[test]
    fn frame_reader_handles_a_body_larger_than_its_buffer() {
        let big = vec![b'x'; MAX_FRAME];
        let mut bytes = frame(&big);
        bytes.extend(frame(b"after"));
        let mut s = Chunks::new(&[&bytes]);
        let mut r = FrameReader::new();
        assert_eq!(r.read_frame(&mut s).unwrap(), big);
        assert_eq!(r.read_frame(&mut s).unwrap(), b"after");
    }

    #[test]
    fn frame_reader_refuses_an_oversized_length_before_allocation() {
        let mut bytes = (MAX_FRAME as u32 + 1).to_be_bytes().to_vec();
        bytes.extend_from_slice(b"junk");
        let mut s = Chunks::new(&[&bytes]);
        match FrameReader::new().read_frame(&mut s) {
            Err(FrameError::TooLarge { len, max }) => {
                assert_eq!((len, max), (MAX_FRAME + 1, MAX_FRAME));
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        let mut s = Chunks::new(&[&[0xff, 0xff], &[0xff, 0xff]]);
        assert!(matches!(
            FrameReader::new().read_frame(&mut s),
            Err(FrameError::TooLarge { .. })
        ));
    }

    /// A dribbling peer: one byte every `gap`, of a frame that never ends.
    fn dribbler(gap: Duration) -> UnixStream {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        std::thread::spawn(move || {
            let mut bytes = 1000u32.to_be_bytes().to_vec();
            bytes.resize(1004, b' ');
            for b in bytes {
                if theirs.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(gap);
            }
        });
        ours
    }

    #[test]
    fn a_dribbled_frame_is_cut_at_its_deadline_though_every_read_gets_a_byte() {
        let mut s = dribbler(Duration::from_millis(20));
        let start = Instant::now();
        let deadline = FrameDeadline {
            by: start + Duration::from_secs(60),
            once_begun: Duration::from_millis(300),
        };
        let err = FrameReader::new()
            .read_frame_by(&mut s, deadline)
            .unwrap_err();
        let took = start.elapsed();
        match err {
            FrameError::Io(e) => {
                assert_eq!(e.kind(), io::ErrorKind::TimedOut);
                assert!(e.to_string().contains("after its first byte"), "{e}");
            }
            other => panic!("expected the frame deadline, got {other:?}"),
        }
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }

    #[test]
    fn the_wait_for_a_frame_is_bounded_in_total_not_per_byte() {
        // The frame's own deadline is longer than the wait: the wait wins.
        let mut s = dribbler(Duration::from_millis(20));
        let start = Instant::now();
        let deadline = FrameDeadline {
            by: start + Duration::from_millis(300),
            once_begun: Duration::from_secs(60),
        };
        let err = FrameReader::new()
            .read_frame_by(&mut s, deadline)
            .unwrap_err();
        assert!(matches!(err, FrameError::Timeout), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(3));
        // A silent peer times out at `by` as before.
        let (mut quiet, _keep) = UnixStream::pair().unwrap();
        let start = Instant::now();
        let deadline = FrameDeadline {
            by: start + Duration::from_millis(100),
            once_begun: Duration::from_secs(60),
        };
        let err = FrameReader::new()
            .read_frame_by(&mut quiet, deadline)
            .unwrap_err();
        assert!(matches!(err, FrameError::Timeout), "{err:?}");
    }

    #[test]
    fn frames_within_their_deadline_are_read_pipelined_or_not() {
        let (mut ours, mut theirs) = UnixStream::pair().unwrap();
        let mut both = frame(b"one");
        both.extend(frame(b"two"));
        theirs.write_all(&both).unwrap();
        let deadline = || FrameDeadline {
            by: Instant::now() + Duration::from_secs(5),
            once_begun: Duration::from_secs(1),
        };
        let mut r = FrameReader::new();
        assert_eq!(r.read_frame_by(&mut ours, deadline()).unwrap(), b"one");
        assert_eq!(r.read_frame_by(&mut ours, deadline()).unwrap(), b"two");
        drop(theirs);
        assert!(matches!(
            r.read_frame_by(&mut ours, deadline()),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn frame_reader_reports_truncation_and_clean_close() {
        let mut body_cut = 10u32.to_be_bytes().to_vec();
        body_cut.extend_from_slice(b"{\"ty");
        for (bytes, closed) in [(body_cut, false), (vec![0, 0], false), (vec![], true)] {
            let mut s = Chunks::new(&[&bytes]);
            match FrameReader::new().read_frame(&mut s) {
                Err(FrameError::Closed) => assert!(closed, "{bytes:?}"),
                Err(FrameError::Truncated) => assert!(!closed, "{bytes:?}"),
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
        let mut s = Chunks::new(&[&frame(b"{not json")]);
        assert!(matches!(
            FrameReader::new().read_message::<Request>(&mut s),
            Err(FrameError::Malformed(_))
        ));
    }
}
