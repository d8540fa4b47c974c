//! Reading frames off a byte stream: a [`FrameDecoder`] and its buffer over
//! a reader, the same code on both sides of the protocol. The agent reads
//! with [`std::io::Read`] ([`FrameReader::read_frame`]); the host, with the
//! `tokio` feature, with tokio's `AsyncRead`
//! ([`FrameReader::read_frame_async`]).
//!
//! Memory is bounded by the decoder: the buffer holds at most one frame of
//! [`crate::MAX_PAYLOAD`] plus one read.

use std::io::{self, Read};

use bytes::BytesMut;

use crate::codec::{FrameDecoder, FrameError};
use crate::frame::Frame;

/// Bytes asked for per read.
pub const READ_CHUNK: usize = 64 * 1024;

/// Why no frame could be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Reading the stream failed.
    #[error("reading a frame")]
    Io(#[source] io::Error),
    /// The bytes read are not a valid frame.
    #[error("decoding a frame")]
    Frame(#[source] FrameError),
}

/// Frames from a byte stream `R`.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl<R> FrameReader<R> {
    /// Reads from `inner`, accepting payloads up to [`crate::MAX_PAYLOAD`].
    pub fn new(inner: R) -> Self {
        Self::with_decoder(inner, FrameDecoder::new())
    }

    /// Reads from `inner` with `decoder` (e.g. a smaller maximum payload).
    pub fn with_decoder(inner: R, decoder: FrameDecoder) -> Self {
        Self {
            inner,
            buf: BytesMut::with_capacity(READ_CHUNK),
            decoder,
        }
    }

    /// The stream read from.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Bytes read but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next frame already buffered, without reading.
    pub fn next_buffered(&mut self) -> Result<Option<Frame>, FrameError> {
        self.decoder.decode(&mut self.buf)
    }

    /// After the stream ended: the last frame buffered, `None` if it ended
    /// cleanly between frames, [`FrameError::Truncated`] inside one.
    fn at_end(&mut self) -> Result<Option<Frame>, ReadError> {
        self.decoder
            .decode_eof(&mut self.buf)
            .map_err(ReadError::Frame)
    }
}

impl<R: Read> FrameReader<R> {
    /// Reads once from the stream into the buffer (for callers that poll
    /// the stream first); 0 means the peer closed.
    pub fn fill(&mut self) -> Result<usize, ReadError> {
        let mut chunk = [0u8; 16 * 1024];
        let n = loop {
            match self.inner.read(&mut chunk) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other.map_err(ReadError::Io)?,
            }
        };
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// The next frame, or `None` when the peer closed between frames.
    pub fn read_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        loop {
            if let Some(frame) = self.next_buffered().map_err(ReadError::Frame)? {
                return Ok(Some(frame));
            }
            if self.fill()? == 0 {
                return self.at_end();
            }
        }
    }
}

#[cfg(feature = "tokio")]
impl<R: tokio::io::AsyncRead + Unpin> FrameReader<R> {
    /// The next frame, or `None` when the peer closed between frames.
    /// Cancel-safe: a frame is only taken off the buffer when returned.
    pub async fn read_frame_async(&mut self) -> Result<Option<Frame>, ReadError> {
        use tokio::io::AsyncReadExt;
        loop {
            if let Some(frame) = self.next_buffered().map_err(ReadError::Frame)? {
                return Ok(Some(frame));
            }
            self.buf.reserve(READ_CHUNK);
            let n = self
                .inner
                .read_buf(&mut self.buf)
                .await
                .map_err(ReadError::Io)?;
            if n == 0 {
                return self.at_end();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::stream;

    /// Hands out its bytes a few at a time, with interruptions.
    struct Dribble {
        bytes: Vec<u8>,
        at: usize,
        step: usize,
        interrupt: bool,
    }

    impl Read for Dribble {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = self.step.min(buf.len()).min(self.bytes.len() - self.at);
            buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn frames_across_small_reads() {
        let frames = [
            Frame::data(stream::STDOUT, vec![1u8; 100_000]).unwrap(),
            Frame::eof(stream::STDOUT),
        ];
        let mut bytes = Vec::new();
        for f in &frames {
            bytes.extend_from_slice(&f.to_bytes());
        }
        let mut reader = FrameReader::new(Dribble {
            bytes,
            at: 0,
            step: 7,
            interrupt: false,
        });
        for f in &frames {
            assert_eq!(reader.read_frame().unwrap().as_ref(), Some(f));
        }
        assert!(reader.read_frame().unwrap().is_none());
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let bytes = Frame::eof(stream::FILE).to_bytes()[..9].to_vec();
        let mut reader = FrameReader::new(&bytes[..]);
        assert!(matches!(
            reader.read_frame(),
            Err(ReadError::Frame(FrameError::Truncated { buffered: 9 }))
        ));
    }
}
