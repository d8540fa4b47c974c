//! The fixed frame header and frame types.
//!
//! See the crate documentation for the byte diagram.

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The two magic bytes that start every frame: `"KB"`.
pub const MAGIC: [u8; 2] = *b"KB";
/// The protocol version this crate speaks, carried in every header.
pub const VERSION: u8 = 1;
/// Length of the fixed header in bytes.
pub const HEADER_LEN: usize = 16;
/// Largest payload a frame may carry (1 MiB). Checked before allocating.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Size of the data chunks senders use for file bytes and process output.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// How often the agent sends a [`FrameType::Ping`] on the announce
/// connection. A guest that halts (`poweroff` without power-off support)
/// or hangs keeps its connections open but stops pinging.
pub const PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Stream ids: which byte stream of an operation a data or end-of-stream
/// frame belongs to. Control frames use [`stream::CONTROL`].
pub mod stream {
    /// Control frames (hello, request, reply, control, error, entry).
    pub const CONTROL: u32 = 0;
    /// A process's standard input (host to agent).
    pub const STDIN: u32 = 1;
    /// A process's standard output, or a PTY's output (agent to host).
    pub const STDOUT: u32 = 2;
    /// A process's standard error (agent to host).
    pub const STDERR: u32 = 3;
    /// The contents of the file named by the preceding entry frame.
    pub const FILE: u32 = 4;
}

/// What a frame carries.
///
/// The numeric values are part of the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// Agent to host, on the announce connection: a JSON [`crate::Hello`].
    Hello = 1,
    /// Host to agent, answering hello: a JSON [`crate::HelloAck`].
    HelloAck = 2,
    /// Host to agent, first frame of an ops connection: a JSON [`crate::Request`].
    Request = 3,
    /// Host to agent during an operation: a JSON [`crate::Control`].
    Control = 4,
    /// Agent to host: a JSON [`crate::Reply`].
    Reply = 5,
    /// Either way: raw bytes of the stream named by the stream id.
    Data = 6,
    /// Either way: the stream named by the stream id has ended. Empty, or
    /// (exec output) the stream's byte total: see [`Frame::eof_counted`].
    Eof = 7,
    /// Either way: a JSON [`crate::ErrorReply`]; the operation failed.
    Error = 8,
    /// Either way, during a tree copy: a JSON [`crate::TreeEntry`].
    Entry = 9,
    /// Agent to host, on the announce connection, every
    /// [`PING_INTERVAL`]: the agent (and its guest) still runs. Empty.
    Ping = 10,
}

impl FrameType {
    /// The frame type for a wire byte, if it is one this version knows.
    pub fn from_u8(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => Self::Hello,
            2 => Self::HelloAck,
            3 => Self::Request,
            4 => Self::Control,
            5 => Self::Reply,
            6 => Self::Data,
            7 => Self::Eof,
            8 => Self::Error,
            9 => Self::Entry,
            10 => Self::Ping,
            _ => return None,
        })
    }
}

/// The decoded fixed header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Protocol version of the sender.
    pub version: u8,
    /// Raw frame type byte (validated by the decoder after the body is read).
    pub frame_type: u8,
    /// Flag bits; none are defined in version 1, so they must be zero.
    pub flags: u16,
    /// Stream id, see [`stream`].
    pub stream: u32,
    /// Payload length in bytes.
    pub len: u32,
}

impl Header {
    /// Writes the 16 header bytes.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_slice(&MAGIC);
        out.put_u8(self.version);
        out.put_u8(self.frame_type);
        out.put_u16(self.flags);
        out.put_u16(0);
        out.put_u32(self.stream);
        out.put_u32(self.len);
    }

    /// Reads the 16 header bytes without validating them.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> ([u8; 2], u16, Self) {
        let magic = [bytes[0], bytes[1]];
        let reserved = u16::from_be_bytes([bytes[6], bytes[7]]);
        let header = Self {
            version: bytes[2],
            frame_type: bytes[3],
            flags: u16::from_be_bytes([bytes[4], bytes[5]]),
            stream: u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
            len: u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]),
        };
        (magic, reserved, header)
    }
}

/// One frame: type, stream id and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the payload is.
    pub frame_type: FrameType,
    /// Which stream of the operation it belongs to.
    pub stream: u32,
    /// The payload (JSON for control types, raw bytes for data).
    pub payload: Bytes,
}

/// A frame could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The payload is larger than [`MAX_PAYLOAD`].
    #[error("frame payload of {len} bytes exceeds the maximum of {max}")]
    Oversized {
        /// Payload length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The message could not be serialized.
    #[error("serializing a control message")]
    Json(#[source] serde_json::Error),
}

/// A frame's JSON payload could not be read as the expected message.
#[derive(Debug, thiserror::Error)]
#[error("frame of type {frame_type:?} does not hold a valid message")]
pub struct PayloadError {
    /// The frame's type.
    pub frame_type: FrameType,
    /// Why the JSON was rejected.
    #[source]
    pub source: serde_json::Error,
}

impl Frame {
    /// A frame with the given payload; fails if it is larger than [`MAX_PAYLOAD`].
    pub fn new(
        frame_type: FrameType,
        stream: u32,
        payload: impl Into<Bytes>,
    ) -> Result<Self, EncodeError> {
        let payload = payload.into();
        if payload.len() > MAX_PAYLOAD {
            return Err(EncodeError::Oversized {
                len: payload.len(),
                max: MAX_PAYLOAD,
            });
        }
        Ok(Self {
            frame_type,
            stream,
            payload,
        })
    }

    /// A control frame carrying `message` as JSON on [`stream::CONTROL`].
    pub fn json<T: Serialize>(frame_type: FrameType, message: &T) -> Result<Self, EncodeError> {
        let payload = serde_json::to_vec(message).map_err(EncodeError::Json)?;
        Self::new(frame_type, stream::CONTROL, payload)
    }

    /// A data frame. Callers chunk at [`CHUNK_SIZE`]; larger chunks fail.
    pub fn data(stream: u32, bytes: impl Into<Bytes>) -> Result<Self, EncodeError> {
        Self::new(FrameType::Data, stream, bytes)
    }

    /// A ping frame (agent to host, announce connection).
    pub fn ping() -> Self {
        Self {
            frame_type: FrameType::Ping,
            stream: stream::CONTROL,
            payload: Bytes::new(),
        }
    }

    /// An end-of-stream frame for `stream`.
    pub fn eof(stream: u32) -> Self {
        Self {
            frame_type: FrameType::Eof,
            stream,
            payload: Bytes::new(),
        }
    }

    /// An end-of-stream frame for an output stream that also says how many
    /// bytes were sent on it in all (8 bytes, big-endian like the header), so that the
    /// receiver can tell a complete stream from one that lost bytes.
    pub fn eof_counted(stream: u32, total: u64) -> Self {
        Self {
            frame_type: FrameType::Eof,
            stream,
            payload: Bytes::copy_from_slice(&total.to_be_bytes()),
        }
    }

    /// The byte total an end-of-stream frame declares, if it declares one
    /// (see [`Frame::eof_counted`]).
    pub fn eof_total(&self) -> Option<u64> {
        let bytes: [u8; 8] = self.payload.as_ref().try_into().ok()?;
        (self.frame_type == FrameType::Eof).then(|| u64::from_be_bytes(bytes))
    }

    /// Parses the payload as the JSON message `T`.
    pub fn parse_json<T: DeserializeOwned>(&self) -> Result<T, PayloadError> {
        serde_json::from_slice(&self.payload).map_err(|source| PayloadError {
            frame_type: self.frame_type,
            source,
        })
    }

    /// The header describing this frame.
    pub fn header(&self) -> Header {
        Header {
            version: VERSION,
            frame_type: self.frame_type as u8,
            flags: 0,
            stream: self.stream,
            // `new` keeps payloads at or below MAX_PAYLOAD, which fits in u32.
            len: self.payload.len() as u32,
        }
    }

    /// Appends the encoded frame (header and payload) to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(HEADER_LEN + self.payload.len());
        self.header().encode(out);
        out.put_slice(&self.payload);
    }

    /// The encoded frame as one buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(HEADER_LEN + self.payload.len());
        self.encode(&mut out);
        out.freeze()
    }
}
