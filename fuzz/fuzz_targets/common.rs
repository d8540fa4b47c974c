//! Shared by the fuzz targets: a reader that hands out its input in
//! pieces whose sizes the fuzzer picks, and the re-encoding check.

#![allow(dead_code)] // each target uses a part

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use krunbox_proto::path::entry_components;
use krunbox_proto::{Frame, FrameError, ReadError, TreeEntry, HEADER_LEN};

/// Hands out `bytes` in pieces: piece sizes cycle through `steps` (each at
/// least 1), and with `interrupt` every other read first fails with
/// `Interrupted`, as a signal would.
pub struct Pieces<'a> {
    bytes: &'a [u8],
    steps: &'a [u8],
    turn: usize,
    interrupt: bool,
    interrupted: bool,
}

impl<'a> Pieces<'a> {
    /// Splits the fuzzer's input: the first byte says how many step bytes
    /// follow (and, in its top bit, whether to interrupt); the rest is the
    /// stream.
    pub fn from_input(data: &'a [u8]) -> Option<Self> {
        let (&head, rest) = data.split_first()?;
        let n = usize::from(head & 0x0f).min(rest.len());
        let (steps, bytes) = rest.split_at(n);
        Some(Self {
            bytes,
            steps,
            turn: 0,
            interrupt: head & 0x80 != 0,
            interrupted: false,
        })
    }

    /// The whole stream.
    pub fn stream(&self) -> &'a [u8] {
        self.bytes
    }

    fn next_len(&mut self, room: usize) -> usize {
        let step = match self.steps {
            [] => usize::MAX,
            steps => usize::from(steps[self.turn % steps.len()]).max(1),
        };
        self.turn += 1;
        step.min(room).min(self.bytes.len())
    }
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.interrupt {
            self.interrupted = !self.interrupted;
            if self.interrupted {
                return Err(io::ErrorKind::Interrupted.into());
            }
        }
        let n = self.next_len(buf.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

impl tokio::io::AsyncRead for Pieces<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.next_len(buf.remaining());
        let (piece, rest) = self.bytes.split_at(n);
        buf.put_slice(piece);
        self.bytes = rest;
        Poll::Ready(Ok(()))
    }
}

/// Polls a future that never waits (its reader is always ready) to the end.
pub fn run_ready<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a read from memory returned Pending"),
    }
}

/// Checks that `frame`, re-encoded, is exactly the next bytes of the
/// stream: the reader neither invents, drops nor reorders bytes.
pub fn check_reencodes(frame: &Frame, stream: &[u8], consumed: &mut usize) {
    let encoded = frame.to_bytes();
    let end = *consumed + encoded.len();
    assert!(end <= stream.len(), "a frame longer than the input");
    assert_eq!(&stream[*consumed..end], &encoded[..]);
    *consumed = end;
}

/// Reads every frame with `next` and checks it: within `max`, re-encoding
/// to exactly its input bytes, parsed by `parse` (as one side's messages)
/// and, as a tree entry, path-checked; at a clean end all input is read.
/// Stops at the first error that leaves the stream out of sync.
pub fn check_frames(
    stream: &[u8],
    max: usize,
    mut next: impl FnMut() -> Result<Option<Frame>, ReadError>,
    parse: impl Fn(&Frame),
) {
    let mut consumed = 0;
    loop {
        match next() {
            Ok(Some(frame)) => {
                assert!(frame.payload.len() <= max);
                check_reencodes(&frame, stream, &mut consumed);
                parse(&frame);
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
}

/// Gives every directory under `path` (symlinks not followed) owner
/// access again, so that the temporary directory can be removed.
pub fn unlock(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
        if let Ok(entries) = fs::read_dir(path) {
            for entry in entries.flatten() {
                unlock(&entry.path());
            }
        }
    }
}
