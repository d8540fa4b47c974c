//! The agent's side: frames from the host read with the blocking
//! `FrameReader::read_frame` (pieces of any size, interrupted reads), each
//! parsed as the messages the agent accepts. Nothing may panic, no frame
//! may exceed the limit, and every frame must re-encode to its bytes.

#![no_main]

#[path = "common.rs"]
mod common;

use krunbox_proto::{Control, FrameDecoder, FrameReader, HelloAck, Request};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some(pieces) = common::Pieces::from_input(data) else {
        return;
    };
    let stream = pieces.stream();
    let mut reader = FrameReader::with_decoder(pieces, FrameDecoder::with_max_payload(MAX));
    common::check_frames(
        stream,
        MAX,
        || reader.read_frame(),
        |frame| {
            let _ = frame.parse_json::<HelloAck>();
            let _ = frame.parse_json::<Request>();
            let _ = frame.parse_json::<Control>();
        },
    );
});
