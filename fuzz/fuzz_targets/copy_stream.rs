//! The copy-stream parser: frames read from the input and fed to a
//! `TreeReceiver` (`TreeReceiver::frame`, as the host's copy-out and the
//! agent's copy-in do) in a fresh directory. Nothing may panic; nothing
//! may appear outside the destination's parent (a canary directory beside
//! it stays empty); a tree that fails or breaks off leaves nothing; one
//! that completes leaves exactly the destination.

#![no_main]

#[path = "common.rs"]
mod common;

use std::fs;
use std::path::Path;

use krunbox_proto::tree::{TreeLimits, TreeReceiver};
use krunbox_proto::{FrameDecoder, FrameReader};
use libfuzzer_sys::fuzz_target;

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fuzz_target!(|data: &[u8]| {
    let Some(pieces) = common::Pieces::from_input(data) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let canary = root.path().join("canary");
    let out = root.path().join("out");
    fs::create_dir(&canary).unwrap();
    fs::create_dir(&out).unwrap();
    let dest = out.join("dest");
    let limits = TreeLimits {
        max_entries: 64,
        max_bytes: 1 << 16,
        mode_mask: 0o1777,
        max_dir_path_bytes: 1 << 16,
    };
    let mut rx = TreeReceiver::new(&dest, limits);
    let mut reader = FrameReader::with_decoder(pieces, FrameDecoder::with_max_payload(4096));
    let mut complete = false;
    while let Ok(Some(frame)) = reader.read_frame() {
        match rx.frame(&frame) {
            Ok(false) => {}
            Ok(true) => {
                complete = true;
                break;
            }
            Err(_) => break,
        }
    }
    // Finishing consumes the receiver; otherwise dropping it cleans up.
    let finished = if complete {
        rx.finish().is_ok()
    } else {
        drop(rx);
        false
    };
    assert!(names(&canary).is_empty(), "wrote outside the destination");
    assert_eq!(names(root.path()), ["canary", "out"]);
    if finished {
        assert_eq!(names(&out), ["dest"]);
    } else {
        assert!(names(&out).is_empty(), "left behind: {:?}", names(&out));
    }
    common::unlock(&out);
});
