//! Provisioning: a list of mkdir / write-file / chmod / symlink operations
//! applied in order in one request; file contents follow the request as
//! data frames, one file after the other.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use krunbox_proto::tree::{temp_sibling, AtomicFile, TreeError};
use krunbox_proto::{stream, ErrorKind, ErrorReply, Frame, FrameType, ProvisionOp, Reply};

use crate::files::{chain, mkdir_p, FilesError};
use crate::transport::{FrameReader, FrameWriter};

/// Provisioning failures; `index` is the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// A filesystem step failed.
    #[error("provisioning operation {index}")]
    Files {
        /// Which operation.
        index: usize,
        /// Why.
        #[source]
        source: FilesError,
    },
    /// The contents of a file did not match its declared size.
    #[error("provisioning operation {index}: {message}")]
    Data {
        /// Which operation.
        index: usize,
        /// What was wrong.
        message: String,
    },
}

impl ProvisionError {
    /// The error frame payload for this failure.
    pub fn to_reply(&self) -> ErrorReply {
        match self {
            Self::Files { source, .. } => ErrorReply {
                message: chain(self),
                ..source.to_reply()
            },
            Self::Data { .. } => ErrorReply::new(ErrorKind::InvalidData, self.to_string()),
        }
    }
}

fn io_err<'a>(what: &'static str, path: &'a str) -> impl FnOnce(io::Error) -> FilesError + 'a {
    move |e| FilesError::Io(what, path.to_owned(), e)
}

/// The directories one request made or found: a file's parent is made
/// once, not once per file (on virtio-fs each call is a round trip to the
/// host). Operations only make directories, files and links, and neither
/// a file nor a link replaces a directory, so what is known stays true.
#[derive(Default)]
struct KnownDirs(HashSet<PathBuf>);

impl KnownDirs {
    /// `mkdir -p path` unless this request made or found it already.
    fn mkdir_p(&mut self, path: &str, mode: u32) -> Result<(), FilesError> {
        if !self.0.contains(Path::new(path)) {
            mkdir_p(path, mode)?;
            self.0.insert(PathBuf::from(path));
        }
        Ok(())
    }

    /// Makes the parent of `path` (0755) unless known.
    fn ensure_parent(&mut self, path: &str) -> Result<(), FilesError> {
        match Path::new(path).parent() {
            Some(parent) if !parent.as_os_str().is_empty() => {
                self.mkdir_p(&parent.to_string_lossy(), 0o755)
            }
            _ => Ok(()),
        }
    }
}

/// Receives one file's contents (exactly `size` bytes, then end of stream)
/// and renames it into place.
fn write_file(
    dirs: &mut KnownDirs,
    path: &str,
    mode: u32,
    size: u64,
    index: usize,
    reader: &mut FrameReader,
) -> Result<(), ProvisionError> {
    let files = |source| ProvisionError::Files { index, source };
    dirs.ensure_parent(path).map_err(files)?;
    let mut out = AtomicFile::create(Path::new(path)).map_err(|e| files(FilesError::Tree(e)))?;
    let mut left = size;
    loop {
        let frame = reader
            .read_frame()
            .map_err(|e| files(FilesError::Recv(e)))?
            .ok_or_else(|| ProvisionError::Data {
                index,
                message: "host closed inside a file".into(),
            })?;
        match (frame.frame_type, frame.stream) {
            (FrameType::Data, stream::FILE) => {
                if frame.payload.len() as u64 > left {
                    return Err(ProvisionError::Data {
                        index,
                        message: format!("more than the declared {size} bytes for {path}"),
                    });
                }
                out.file()
                    .write_all(&frame.payload)
                    .map_err(io_err("writing", path))
                    .map_err(files)?;
                left -= frame.payload.len() as u64;
            }
            (FrameType::Eof, stream::FILE) if left == 0 => break,
            (FrameType::Eof, stream::FILE) => {
                return Err(ProvisionError::Data {
                    index,
                    message: format!("{left} bytes missing from {path}"),
                })
            }
            (other, id) => {
                return Err(ProvisionError::Data {
                    index,
                    message: format!("unexpected {other:?} frame on stream {id}"),
                })
            }
        }
    }
    out.commit(mode)
        .map_err(|e: TreeError| files(FilesError::Tree(e)))
}

fn symlink(dirs: &mut KnownDirs, path: &str, target: &str) -> Result<(), FilesError> {
    dirs.ensure_parent(path)?;
    let temp = temp_sibling(Path::new(path));
    std::os::unix::fs::symlink(target, &temp).map_err(io_err("creating symlink", path))?;
    fs::rename(&temp, path).map_err(|e| {
        let _ = fs::remove_file(&temp);
        FilesError::Io("renaming symlink into", path.to_owned(), e)
    })
}

/// Applies `ops` in order, then answers `Ok`.
pub fn apply(
    ops: &[ProvisionOp],
    reader: &mut FrameReader,
    writer: &FrameWriter,
) -> Result<(), ProvisionError> {
    let mut dirs = KnownDirs::default();
    for (index, op) in ops.iter().enumerate() {
        let files = |source| ProvisionError::Files { index, source };
        match op {
            ProvisionOp::Mkdir { path, mode } => dirs.mkdir_p(path, *mode).map_err(files)?,
            ProvisionOp::WriteFile { path, mode, size } => {
                write_file(&mut dirs, path, *mode, *size, index, reader)?
            }
            ProvisionOp::Chmod { path, mode } => {
                fs::set_permissions(path, fs::Permissions::from_mode(*mode))
                    .map_err(io_err("chmod", path))
                    .map_err(files)?
            }
            ProvisionOp::Symlink { path, target } => {
                symlink(&mut dirs, path, target).map_err(files)?
            }
        }
    }
    let frame = Frame::json(FrameType::Reply, &Reply::Ok).expect("small");
    writer.send(&frame).map_err(|e| ProvisionError::Files {
        index: ops.len(),
        source: FilesError::Send(e),
    })
}
