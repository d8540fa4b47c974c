//! The agent's side: frames from the host read with the blocking
//! `FrameReader::read_frame` (pieces of any size, interrupted reads), each
//! parsed as the messages the agent accepts. Nothing may panic, no frame
//! may exceed the limit, and every frame must re-encode to its bytes.

#![no_main]

#[path = "common.rs"]
mod common;

use krunbox_proto::path::entry_components;
use krunbox_proto::{
    Control, FrameDecoder, FrameError, FrameReader, HelloAck, ReadError, Request, TreeEntry,
    HEADER_LEN,
};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some(pieces) = common::Pieces::from_input(data) else {
        return;
    };
    let stream = pieces.stream();
    let mut reader = FrameReader::with_decoder(pieces, FrameDecoder::with_max_payload(MAX));
    let mut consumed = 0;
    loop {
        match reader.read_frame() {
            Ok(Some(frame)) => {
                assert!(frame.payload.len() <= MAX);
                common::check_reencodes(&frame, stream, &mut consumed);
                let _ = frame.parse_json::<HelloAck>();
                let _ = frame.parse_json::<Request>();
                let _ = frame.parse_json::<Control>();
                match frame.parse_json::<TreeEntry>() {
                    Ok(TreeEntry::Dir { path, .. })
                    | Ok(TreeEntry::File { path, .. })
                    | Ok(TreeEntry::Symlink { path, .. }) => {
                        let _ = entry_components(&path);
                    }
                    _ => {}
                }
            }
            Ok(None) => {
                assert_eq!(consumed, stream.len(), "input left unread");
                return;
            }
            Err(ReadError::Frame(FrameError::UnknownType { len, .. })) => {
                consumed += HEADER_LEN + len as usize;
            }
            Err(ReadError::Io(e)) => panic!("reading memory failed: {e}"),
            Err(ReadError::Frame(_)) => return,
        }
    }
});
