//! Feeds arbitrary bytes, split at arbitrary points, to the frame decoder
//! and parses every frame's payload as each control message: nothing may
//! panic, no frame may exceed the limit, and re-encoding a decoded frame
//! must give back the bytes it came from.

#![no_main]

use bytes::BytesMut;
use krunbox_proto::{
    Control, ErrorReply, FrameDecoder, Hello, HelloAck, Reply, Request, TreeEntry, HEADER_LEN,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let step = usize::from(split).max(1);
    let mut decoder = FrameDecoder::with_max_payload(4096);
    let mut buf = BytesMut::new();
    let mut consumed = 0usize;
    for chunk in input.chunks(step) {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.payload.len() <= 4096);
                    let encoded = frame.to_bytes();
                    let len = encoded.len();
                    assert_eq!(&input[consumed..consumed + len], &encoded[..]);
                    consumed += len;
                    let _ = frame.parse_json::<Hello>();
                    let _ = frame.parse_json::<HelloAck>();
                    let _ = frame.parse_json::<Request>();
                    let _ = frame.parse_json::<Control>();
                    let _ = frame.parse_json::<Reply>();
                    let _ = frame.parse_json::<ErrorReply>();
                    let _ = frame.parse_json::<TreeEntry>();
                }
                Ok(None) => break,
                Err(e) if e.is_recoverable() => {
                    // An unknown type was consumed whole: header and body.
                    if let krunbox_proto::FrameError::UnknownType { len, .. } = e {
                        consumed += HEADER_LEN + len as usize;
                    }
                }
                Err(_) => return,
            }
        }
    }
    let _ = decoder.decode_eof(&mut buf);
});
