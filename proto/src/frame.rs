use crate::MAX_FRAME;
use serde::{de::DeserializeOwned, Serialize};
use std::io::{self, Read, Write};
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
/// afterwards, since they may carry a code.
pub fn write_message<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), FrameError> {
    let mut body = serde_json::to_vec(msg).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let res = write_frame(w, &body);
    body.zeroize();
    res
}

/// Reads one frame and parses it as `T`. The raw bytes are wiped afterwards.
pub fn read_message<T: DeserializeOwned>(r: &mut impl Read) -> Result<T, FrameError> {
    let mut body = read_frame(r)?;
    let parsed = serde_json::from_slice(&body).map_err(|e| FrameError::Malformed(e.to_string()));
    body.zeroize();
    parsed
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
}
