//! The copy-stream parser: the frames of a tree copy, as both receivers
//! (the host copying out, the agent copying in) get them, fed to a
//! [`TreeReceiver`].

use super::{TreeError, TreeReceiver};
use crate::frame::{stream, Frame, FrameType, PayloadError};
use crate::message::TreeEntry;

/// Why a frame of a tree copy was refused.
#[derive(Debug, thiserror::Error)]
pub enum TreeStreamError {
    /// An entry frame did not hold a valid entry.
    #[error("invalid tree entry")]
    Payload(#[source] PayloadError),
    /// The receiver refused the entry or data.
    #[error("refused tree")]
    Tree(#[source] TreeError),
    /// A frame that has no place in a tree (an error frame among them:
    /// the sender gave up).
    #[error("unexpected {frame_type:?} frame on stream {stream} in a tree")]
    Unexpected {
        /// Its type.
        frame_type: FrameType,
        /// Its stream.
        stream: u32,
    },
}

impl TreeReceiver {
    /// Handles one frame of a tree copy: an entry, file data or a file's
    /// end. Returns `true` after the tree's [`TreeEntry::End`].
    pub fn frame(&mut self, frame: &Frame) -> Result<bool, TreeStreamError> {
        match (frame.frame_type, frame.stream) {
            (FrameType::Entry, _) => {
                let entry: TreeEntry = frame.parse_json().map_err(TreeStreamError::Payload)?;
                self.entry(&entry).map_err(TreeStreamError::Tree)
            }
            (FrameType::Data, stream::FILE) => {
                self.data(&frame.payload).map_err(TreeStreamError::Tree)?;
                Ok(false)
            }
            (FrameType::Eof, stream::FILE) => {
                self.end_file().map_err(TreeStreamError::Tree)?;
                Ok(false)
            }
            (frame_type, stream) => Err(TreeStreamError::Unexpected { frame_type, stream }),
        }
    }
}
