//! The host's side: frames from the agent read with the tokio
//! `FrameReader::read_frame_async` (pieces of any size), each parsed as
//! the messages the host accepts. Nothing may panic, no frame may exceed
//! the limit, and every frame must re-encode to its bytes.

#![no_main]

#[path = "common.rs"]
mod common;

use krunbox_proto::path::entry_components;
use krunbox_proto::{
    ErrorReply, FrameDecoder, FrameError, FrameReader, Hello, ReadError, Reply, TreeEntry,
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
        match common::run_ready(reader.read_frame_async()) {
            Ok(Some(frame)) => {
                assert!(frame.payload.len() <= MAX);
                common::check_reencodes(&frame, stream, &mut consumed);
                let _ = frame.parse_json::<Hello>();
                let _ = frame.parse_json::<Reply>();
                let _ = frame.parse_json::<ErrorReply>();
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
