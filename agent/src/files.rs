//! Files: stat, mkdir -p, and tree copies in and out.

use std::fs::{self, DirBuilder};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use krunbox_proto::tree::{CopyPlan, TreeError, TreeLimits, TreeReceiver, TreeStreamError};
use krunbox_proto::{
    stream, ErrorKind, ErrorReply, FileKind, FileStat, Frame, FrameType, Reply, TreeEntry,
    CHUNK_SIZE,
};

use krunbox_proto::ReadError;

use crate::transport::{FrameReader, FrameWriter};

/// File operation failures.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A filesystem call failed.
    #[error("{0} {1:?}")]
    Io(&'static str, String, #[source] io::Error),
    /// Sending or receiving the tree failed.
    #[error("copying a tree")]
    Tree(#[source] TreeError),
    /// The host broke off or sent something unexpected.
    #[error("tree copy protocol: {0}")]
    Protocol(String),
    /// Reading from the host failed.
    #[error("reading from the host")]
    Recv(#[source] ReadError),
    /// Writing to the host failed.
    #[error("sending to the host")]
    Send(#[source] io::Error),
}

/// Formats an error and all its sources on one line.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

impl FilesError {
    /// The error frame payload for this failure.
    pub fn to_reply(&self) -> ErrorReply {
        let (kind, errno) = match self {
            Self::Io(_, _, e) | Self::Send(e) => (ErrorKind::from_io(e.kind()), e.raw_os_error()),
            Self::Tree(TreeError::Io { source, .. }) => {
                (ErrorKind::from_io(source.kind()), source.raw_os_error())
            }
            Self::Tree(e) => (ErrorKind::from_io(e.io_kind()), None),
            Self::Protocol(_) | Self::Recv(_) => (ErrorKind::Protocol, None),
        };
        ErrorReply {
            kind,
            errno,
            message: chain(self),
        }
    }
}

fn send_reply(writer: &FrameWriter, reply: &Reply) -> Result<(), FilesError> {
    let frame = Frame::json(FrameType::Reply, reply)
        .map_err(|e| FilesError::Send(io::Error::new(io::ErrorKind::InvalidData, e)))?;
    writer.send(&frame).map_err(FilesError::Send)
}

/// Describes `path` without following a final symlink.
pub fn stat(path: &str, writer: &FrameWriter) -> Result<(), FilesError> {
    let meta =
        fs::symlink_metadata(path).map_err(|e| FilesError::Io("stat", path.to_owned(), e))?;
    let ft = meta.file_type();
    let kind = if ft.is_symlink() {
        FileKind::Symlink
    } else if ft.is_dir() {
        FileKind::Dir
    } else if ft.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    };
    let symlink_target = if ft.is_symlink() {
        let target =
            fs::read_link(path).map_err(|e| FilesError::Io("readlink", path.to_owned(), e))?;
        Some(target.to_string_lossy().into_owned())
    } else {
        None
    };
    let stat = FileStat {
        kind,
        mode: meta.mode() & 0o7777,
        size: meta.len(),
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: meta.mtime(),
        symlink_target,
    };
    send_reply(writer, &Reply::Stat(stat))
}

/// `mkdir -p path` with `mode` for the directories created.
pub fn mkdir_p(path: &str, mode: u32) -> Result<(), FilesError> {
    DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| FilesError::Io("creating directory", path.to_owned(), e))
}

/// Answers a mkdir request.
pub fn mkdir(path: &str, mode: u32, writer: &FrameWriter) -> Result<(), FilesError> {
    mkdir_p(path, mode)?;
    send_reply(writer, &Reply::Ok)
}

/// Receives a tree from the host and places it at `dest` (parents created).
pub fn copy_in(
    dest: &str,
    reader: &mut FrameReader,
    writer: &FrameWriter,
) -> Result<(), FilesError> {
    if let Some(parent) = Path::new(dest).parent() {
        if !parent.as_os_str().is_empty() {
            mkdir_p(&parent.to_string_lossy(), 0o755)?;
        }
    }
    let mut rx = TreeReceiver::new(dest, TreeLimits::default());
    loop {
        let frame = reader
            .read_frame()
            .map_err(FilesError::Recv)?
            .ok_or_else(|| FilesError::Protocol("host closed before the end of the tree".into()))?;
        match rx.frame(&frame) {
            Ok(true) => break,
            Ok(false) => {}
            Err(TreeStreamError::Tree(e)) => return Err(FilesError::Tree(e)),
            Err(_) if frame.frame_type == FrameType::Error => {
                return Err(FilesError::Protocol("the host abandoned the copy".into()))
            }
            Err(e) => return Err(FilesError::Protocol(chain(&e))),
        }
    }
    let (entries, bytes) = rx.finish().map_err(FilesError::Tree)?;
    send_reply(writer, &Reply::CopyDone { entries, bytes })
}

/// Sends the tree at `path` to the host: fifos and hard links as such,
/// device nodes and sockets as [`TreeEntry::Skipped`] for the host to
/// report.
pub fn copy_out(path: &str, writer: &FrameWriter) -> Result<(), FilesError> {
    let plan = CopyPlan::walk(Path::new(path)).map_err(FilesError::Tree)?;
    let mut bytes = 0u64;
    let mut buf = vec![0u8; CHUNK_SIZE];
    for item in &plan.items {
        let (entry, file) = item.open().map_err(FilesError::Tree)?;
        let entry_frame = Frame::json(FrameType::Entry, &entry)
            .map_err(|e| FilesError::Send(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        writer.send(&entry_frame).map_err(FilesError::Send)?;
        let (Some(file), TreeEntry::File { size, .. }) = (file, &entry) else {
            continue;
        };
        let mut left = *size;
        let mut file = file.take(*size);
        while left > 0 {
            let n = match file.read(&mut buf) {
                Ok(0) => {
                    return Err(FilesError::Io(
                        "file shrank while being read",
                        item.source.display().to_string(),
                        io::ErrorKind::UnexpectedEof.into(),
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(FilesError::Io(
                        "reading",
                        item.source.display().to_string(),
                        e,
                    ))
                }
            };
            let frame = Frame::data(stream::FILE, buf[..n].to_vec()).expect("one chunk");
            writer.send(&frame).map_err(FilesError::Send)?;
            left -= n as u64;
        }
        bytes += size;
        writer
            .send(&Frame::eof(stream::FILE))
            .map_err(FilesError::Send)?;
    }
    let end = Frame::json(FrameType::Entry, &TreeEntry::End).expect("small");
    writer.send(&end).map_err(FilesError::Send)?;
    let entries = (plan.items.len() - plan.skipped().count()) as u64;
    send_reply(writer, &Reply::CopyDone { entries, bytes })
}
