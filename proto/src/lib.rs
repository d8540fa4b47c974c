//! Frame format and messages shared by the krunbox host and its guest agent.
//!
//! # Connections
//!
//! The agent connects to the host's *announce* socket as soon as it starts
//! and sends a [`Hello`]; the host answers with a [`HelloAck`] and keeps the
//! connection open as the VM's liveness channel. Every operation then uses a
//! connection of its own to the agent's *ops* listener: a [`Request`] frame
//! first, then whatever that operation exchanges, and the connection closes.
//!
//! # Frame layout
//!
//! Every frame is a 16-byte header followed by `length` payload bytes. All
//! integers are big-endian.
//!
//! ```text
//!  0        2        3        4                 6                 8
//!  +--------+--------+--------+-----------------+-----------------+
//!  | magic  |version |  type  |      flags      |    reserved     |
//!  | "KB"   |  0x01  |  u8    |   u16 (== 0)    |   u16 (== 0)    |
//!  +--------+--------+--------+-----------------+-----------------+
//!  8                                  12                          16
//!  +-----------------------------------+---------------------------+
//!  |             stream id             |      payload length       |
//!  |               u32                 |  u32 (<= MAX_PAYLOAD)     |
//!  +-----------------------------------+---------------------------+
//!  16
//!  +---------------------------------------------------------------+
//!  |  payload: JSON control message, or raw bytes for Data frames  |
//!  +---------------------------------------------------------------+
//! ```
//!
//! - `type` is a [`FrameType`]. Control types carry one JSON message; `Data`
//!   carries raw bytes (file contents, process output), never base64; `Eof`
//!   ends the stream named by the stream id.
//! - `stream id` names the byte stream of the operation ([`stream`]): 0 for
//!   control frames, then stdin, stdout, stderr and file data.
//! - `payload length` is checked against [`MAX_PAYLOAD`] (1 MiB) before the
//!   reader allocates anything; larger frames are a [`FrameError::Oversized`].
//! - A frame of an unknown type is consumed whole and reported as
//!   [`FrameError::UnknownType`]; the reader answers with an error frame.

mod codec;
mod frame;
mod message;
pub mod path;
mod path_bytes;
pub mod reader;
pub mod tree;

pub use codec::{FrameDecoder, FrameError};
pub use frame::{
    stream, EncodeError, Frame, FrameType, Header, PayloadError, CHUNK_SIZE, HEADER_LEN, MAGIC,
    MAX_PAYLOAD, PING_INTERVAL, VERSION,
};
pub use message::{
    Control, ErrorKind, ErrorReply, ExecRequest, ExecStatus, FileKind, FileStat, Hello, HelloAck,
    OutputRange, ProcessInfo, ProvisionOp, Reply, Request, SkipReason, TreeEntry, WinSize,
};
pub use path_bytes::PathBytes;
pub use reader::{FrameReader, ReadError};
