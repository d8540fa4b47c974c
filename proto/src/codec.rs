//! The frame decoder: a two-state (`Head`, `Body`) machine over a byte buffer,
//! in the manner of tokio-util's `length_delimited` codec.
//!
//! The payload length in the header is checked against the decoder's maximum
//! before any space is reserved for the body, so a hostile peer cannot make
//! the reader allocate more than `max_payload` bytes per frame.

use bytes::{Buf, BytesMut};

use crate::frame::{Frame, FrameType, Header, HEADER_LEN, MAGIC, MAX_PAYLOAD, VERSION};

/// Why bytes could not be decoded into a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame does not start with [`MAGIC`].
    #[error("bad frame magic {found:02x?}, expected {MAGIC:02x?}")]
    BadMagic {
        /// The two bytes found.
        found: [u8; 2],
    },
    /// The peer speaks a protocol version this side does not.
    #[error("unsupported protocol version {found}, this side speaks {VERSION}")]
    UnsupportedVersion {
        /// The version found.
        found: u8,
    },
    /// The declared payload is larger than the maximum.
    #[error("frame payload of {len} bytes exceeds the maximum of {max}")]
    Oversized {
        /// Declared length.
        len: u64,
        /// The maximum.
        max: usize,
    },
    /// Flag bits or reserved bytes that version 1 does not define are set.
    #[error("frame has undefined flags {flags:#06x} or reserved bits {reserved:#06x} set")]
    ReservedBits {
        /// Flags field.
        flags: u16,
        /// Reserved field.
        reserved: u16,
    },
    /// The frame type is not one this version knows. The frame was consumed,
    /// so the stream stays in sync and the reader may answer with an error.
    #[error("unknown frame type {frame_type} (stream {stream}, {len} bytes)")]
    UnknownType {
        /// The type byte.
        frame_type: u8,
        /// The frame's stream id.
        stream: u32,
        /// The frame's payload length.
        len: u32,
    },
    /// The input ended in the middle of a frame.
    #[error("input ended inside a frame ({buffered} bytes of it buffered)")]
    Truncated {
        /// Bytes of the partial frame that were received.
        buffered: usize,
    },
}

impl FrameError {
    /// Whether the byte stream is still in sync after this error, so that the
    /// reader may answer with an error frame and go on reading.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, Self::UnknownType { .. })
    }
}

#[derive(Debug, Clone, Copy)]
enum DecodeState {
    Head,
    Body(Header),
}

/// Splits a byte buffer into frames.
///
/// Feed it with [`FrameDecoder::decode`] after every read; call
/// [`FrameDecoder::decode_eof`] when the input has ended.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    state: DecodeState,
    max_payload: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder accepting payloads up to [`MAX_PAYLOAD`].
    pub fn new() -> Self {
        Self::with_max_payload(MAX_PAYLOAD)
    }

    /// A decoder accepting payloads up to `max_payload` bytes.
    pub fn with_max_payload(max_payload: usize) -> Self {
        Self {
            state: DecodeState::Head,
            max_payload,
        }
    }

    /// The largest payload this decoder accepts.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    fn decode_head(&self, src: &mut BytesMut) -> Result<Option<Header>, FrameError> {
        if src.len() < HEADER_LEN {
            // Check the magic as soon as it is there: garbage fails fast.
            if src.len() >= 2 && src[..2] != MAGIC {
                return Err(FrameError::BadMagic {
                    found: [src[0], src[1]],
                });
            }
            return Ok(None);
        }
        let mut raw = [0u8; HEADER_LEN];
        raw.copy_from_slice(&src[..HEADER_LEN]);
        let (magic, reserved, header) = Header::parse(&raw);
        if magic != MAGIC {
            return Err(FrameError::BadMagic { found: magic });
        }
        if header.version != VERSION {
            return Err(FrameError::UnsupportedVersion {
                found: header.version,
            });
        }
        if header.flags != 0 || reserved != 0 {
            return Err(FrameError::ReservedBits {
                flags: header.flags,
                reserved,
            });
        }
        if header.len as usize > self.max_payload {
            return Err(FrameError::Oversized {
                len: u64::from(header.len),
                max: self.max_payload,
            });
        }
        src.advance(HEADER_LEN);
        // Only now, with the length known to be acceptable, make room.
        src.reserve(header.len as usize);
        Ok(Some(header))
    }

    /// Takes one frame off the front of `src`, if a whole one is there.
    ///
    /// Errors other than [`FrameError::UnknownType`] leave the stream out of
    /// sync: the reader should answer with an error and close.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let header = match self.state {
            DecodeState::Head => match self.decode_head(src)? {
                Some(header) => {
                    self.state = DecodeState::Body(header);
                    header
                }
                None => return Ok(None),
            },
            DecodeState::Body(header) => header,
        };
        let len = header.len as usize;
        if src.len() < len {
            return Ok(None);
        }
        self.state = DecodeState::Head;
        let payload = src.split_to(len).freeze();
        let Some(frame_type) = FrameType::from_u8(header.frame_type) else {
            return Err(FrameError::UnknownType {
                frame_type: header.frame_type,
                stream: header.stream,
                len: header.len,
            });
        };
        Ok(Some(Frame {
            frame_type,
            stream: header.stream,
            payload,
        }))
    }

    /// Like [`FrameDecoder::decode`], for when the input has ended: a partial
    /// frame left in `src` is [`FrameError::Truncated`]; `Ok(None)` means the
    /// input ended cleanly between frames.
    pub fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        let in_body = match self.state {
            DecodeState::Head => 0,
            DecodeState::Body(_) => HEADER_LEN,
        };
        if src.is_empty() && in_body == 0 {
            Ok(None)
        } else {
            Err(FrameError::Truncated {
                buffered: in_body + src.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BufMut;

    use super::*;
    use crate::frame::stream;

    fn raw_header(magic: &[u8; 2], version: u8, ty: u8, flags: u16, len: u32) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_slice(magic);
        b.put_u8(version);
        b.put_u8(ty);
        b.put_u16(flags);
        b.put_u16(0);
        b.put_u32(7);
        b.put_u32(len);
        b
    }

    #[test]
    fn round_trip_one_frame_fed_byte_by_byte() {
        let frame = Frame::data(stream::STDOUT, &b"hello"[..]).unwrap();
        let encoded = frame.to_bytes();
        let mut dec = FrameDecoder::new();
        let mut buf = BytesMut::new();
        for (i, byte) in encoded.iter().enumerate() {
            buf.put_u8(*byte);
            let got = dec.decode(&mut buf).unwrap();
            if i + 1 < encoded.len() {
                assert!(got.is_none());
            } else {
                assert_eq!(got, Some(frame.clone()));
            }
        }
        assert_eq!(dec.decode_eof(&mut buf), Ok(None));
    }

    #[test]
    fn oversized_length_is_rejected_before_reserving() {
        let mut buf = raw_header(&MAGIC, VERSION, 6, 0, u32::MAX);
        let cap_before = buf.capacity();
        let err = FrameDecoder::new().decode(&mut buf).unwrap_err();
        assert_eq!(
            err,
            FrameError::Oversized {
                len: u64::from(u32::MAX),
                max: MAX_PAYLOAD
            }
        );
        assert!(buf.capacity() <= cap_before.max(64));
        assert!(!err.is_recoverable());
    }

    #[test]
    fn custom_maximum_applies() {
        let mut buf = raw_header(&MAGIC, VERSION, 6, 0, 11);
        let err = FrameDecoder::with_max_payload(10)
            .decode(&mut buf)
            .unwrap_err();
        assert!(matches!(err, FrameError::Oversized { len: 11, max: 10 }));
    }

    #[test]
    fn bad_magic_is_rejected_early() {
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        assert_eq!(
            FrameDecoder::new().decode(&mut buf),
            Err(FrameError::BadMagic { found: *b"GE" })
        );
        let mut two = BytesMut::from(&b"xx"[..]);
        assert!(matches!(
            FrameDecoder::new().decode(&mut two),
            Err(FrameError::BadMagic { .. })
        ));
    }

    #[test]
    fn unsupported_version() {
        let mut buf = raw_header(&MAGIC, 9, 6, 0, 0);
        assert_eq!(
            FrameDecoder::new().decode(&mut buf),
            Err(FrameError::UnsupportedVersion { found: 9 })
        );
    }

    #[test]
    fn reserved_flags() {
        let mut buf = raw_header(&MAGIC, VERSION, 6, 0x8000, 0);
        assert!(matches!(
            FrameDecoder::new().decode(&mut buf),
            Err(FrameError::ReservedBits { flags: 0x8000, .. })
        ));
    }

    #[test]
    fn unknown_type_is_consumed_and_recoverable() {
        let mut buf = raw_header(&MAGIC, VERSION, 200, 0, 3);
        buf.put_slice(b"abc");
        Frame::eof(stream::STDIN).encode(&mut buf);
        let mut dec = FrameDecoder::new();
        let err = dec.decode(&mut buf).unwrap_err();
        assert_eq!(
            err,
            FrameError::UnknownType {
                frame_type: 200,
                stream: 7,
                len: 3
            }
        );
        assert!(err.is_recoverable());
        assert_eq!(dec.decode(&mut buf), Ok(Some(Frame::eof(stream::STDIN))));
    }

    #[test]
    fn truncated_header_and_body() {
        let encoded = Frame::data(stream::FILE, &b"0123456789"[..])
            .unwrap()
            .to_bytes();
        let mut head_only = BytesMut::from(&encoded[..10]);
        let mut dec = FrameDecoder::new();
        assert_eq!(dec.decode(&mut head_only), Ok(None));
        assert_eq!(
            dec.decode_eof(&mut head_only),
            Err(FrameError::Truncated { buffered: 10 })
        );
        let mut part_body = BytesMut::from(&encoded[..20]);
        let mut dec = FrameDecoder::new();
        assert_eq!(dec.decode(&mut part_body), Ok(None));
        assert_eq!(
            dec.decode_eof(&mut part_body),
            Err(FrameError::Truncated { buffered: 20 })
        );
    }

    #[test]
    fn several_frames_in_one_buffer() {
        let frames = [
            Frame::data(stream::STDOUT, &b"a"[..]).unwrap(),
            Frame::eof(stream::STDOUT),
            Frame::new(FrameType::Reply, stream::CONTROL, &b"{}"[..]).unwrap(),
        ];
        let mut buf = BytesMut::new();
        for f in &frames {
            f.encode(&mut buf);
        }
        let mut dec = FrameDecoder::new();
        for f in &frames {
            assert_eq!(dec.decode(&mut buf).unwrap().as_ref(), Some(f));
        }
        assert_eq!(dec.decode(&mut buf), Ok(None));
    }

    #[test]
    fn encode_rejects_oversized_payload() {
        let err = Frame::data(stream::FILE, vec![0u8; MAX_PAYLOAD + 1]).unwrap_err();
        assert!(matches!(err, crate::EncodeError::Oversized { .. }));
    }
}
