//! The host's side: frames from the agent read with the tokio
//! `FrameReader::read_frame_async` (pieces of any size), each parsed as
//! the messages the host accepts. Nothing may panic, no frame may exceed
//! the limit, and every frame must re-encode to its bytes.

#![no_main]

#[path = "common.rs"]
mod common;

use krunbox_proto::{ErrorReply, FrameDecoder, FrameReader, Hello, Reply};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some(pieces) = common::Pieces::from_input(data) else {
        return;
    };
    let stream = pieces.stream();
    let mut reader = FrameReader::with_decoder(pieces, FrameDecoder::with_max_payload(MAX));
    let next = || common::run_ready(reader.read_frame_async());
    common::check_frames(stream, MAX, next, |frame| {
        let _ = frame.parse_json::<Hello>();
        let _ = frame.parse_json::<Reply>();
        let _ = frame.parse_json::<ErrorReply>();
    });
});
