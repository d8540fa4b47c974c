//! Files: tree copies in and out, mkdir -p, stat, and provisioning.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use krunbox_proto::tree::{
    CopyPlan, PlanKind, TreeError, TreeLimits, TreeReceiver, TreeStreamError,
};
use krunbox_proto::{
    stream, ErrorKind, ErrorReply, FileStat, Frame, FrameType, ProvisionOp, Reply, Request,
    TreeEntry, CHUNK_SIZE,
};
use tokio::io::AsyncReadExt;

use super::connection::{self, unexpected_reply, FrameSend, OpsConn};
use super::copy_options::{CopyOptions, OnSpecial, SkippedPath};
use super::{AgentClient, ClientError};

/// What a tree copy moved, and what it did not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Entries created: directories, files, symlinks, fifos and hard links.
    pub entries: u64,
    /// File bytes.
    pub bytes: u64,
    /// Device nodes and sockets that were not copied (with
    /// [`OnSpecial::Skip`]), in tree order.
    pub skipped: Vec<SkippedPath>,
}

/// Where a provisioned file's contents come from.
#[derive(Debug, Clone)]
enum Contents {
    Bytes(Bytes),
    HostFile(PathBuf),
}

/// A list of operations applied by the agent in one request, in order:
/// `mkdir -p`, atomic file writes, chmod, symlinks. File contents travel
/// as raw data frames after the request, so they may be any size; the list
/// itself (paths and modes, as JSON) must fit in one 1 MiB frame, which is
/// some thousands of operations.
#[derive(Debug, Clone, Default)]
pub struct Provision {
    ops: Vec<ProvisionOp>,
    contents: Vec<Contents>,
    final_chmods: Vec<ProvisionOp>,
}

impl Provision {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// `mkdir -p path` (mode for the directories created).
    pub fn mkdir(&mut self, path: impl Into<String>, mode: u32) -> &mut Self {
        self.ops.push(ProvisionOp::Mkdir {
            path: path.into(),
            mode,
        });
        self
    }

    /// Writes `contents` to `path` atomically (parents created). The
    /// bytes are copied into the request, so any borrow will do
    /// (`prompt.as_bytes()`); [`Provision::write_bytes`] takes owned
    /// bytes without a copy.
    pub fn write_file(
        &mut self,
        path: impl Into<String>,
        contents: impl AsRef<[u8]>,
        mode: u32,
    ) -> &mut Self {
        self.write_bytes(path, Bytes::copy_from_slice(contents.as_ref()), mode)
    }

    /// [`Provision::write_file`] for bytes the request can own as they
    /// are (`Vec<u8>`, `String`, [`Bytes`]): no copy.
    pub fn write_bytes(
        &mut self,
        path: impl Into<String>,
        contents: impl Into<Bytes>,
        mode: u32,
    ) -> &mut Self {
        let contents = contents.into();
        self.ops.push(ProvisionOp::WriteFile {
            path: path.into(),
            mode,
            size: contents.len() as u64,
        });
        self.contents.push(Contents::Bytes(contents));
        self
    }

    /// Changes permission bits.
    pub fn chmod(&mut self, path: impl Into<String>, mode: u32) -> &mut Self {
        self.ops.push(ProvisionOp::Chmod {
            path: path.into(),
            mode,
        });
        self
    }

    /// Creates or replaces a symlink.
    pub fn symlink(&mut self, path: impl Into<String>, target: impl Into<String>) -> &mut Self {
        self.ops.push(ProvisionOp::Symlink {
            path: path.into(),
            target: target.into(),
        });
        self
    }

    /// Adds the host tree at `src` to be placed at `dest` in the guest
    /// (directories, files streamed from disk, symlinks; modes kept; the
    /// names of a hard-linked file become separate files). Operations name
    /// paths as text: a name that is not UTF-8 is an error, and so is a
    /// fifo, device node or socket, which provisioning cannot create (use
    /// [`AgentClient::copy_in`] for those trees).
    pub fn copy_tree(
        &mut self,
        src: impl AsRef<Path>,
        dest: &str,
    ) -> Result<&mut Self, ClientError> {
        const OP: &str = "planning a provision";
        let tree = |source| ClientError::Tree { op: OP, source };
        let plan = CopyPlan::walk(src.as_ref()).map_err(tree)?;
        let dest = dest.trim_end_matches('/');
        for item in plan.items {
            let rel = item
                .rel
                .to_str()
                .ok_or_else(|| tree(TreeError::NonUtf8(item.source.clone())))?;
            let path = if rel.is_empty() {
                dest.to_owned()
            } else {
                format!("{dest}/{rel}")
            };
            match item.kind {
                PlanKind::Dir(mode) => {
                    self.mkdir(path.clone(), 0o755);
                    // Applied after everything else, so read-only
                    // directories can still be filled.
                    self.final_chmods.push(ProvisionOp::Chmod { path, mode });
                }
                PlanKind::Symlink(target) => {
                    let target = target
                        .into_os_string()
                        .into_string()
                        .map_err(|_| tree(TreeError::NonUtf8(item.source.clone())))?;
                    self.symlink(path, target);
                }
                PlanKind::Fifo(_) | PlanKind::Skipped(_) => {
                    return Err(tree(TreeError::Invalid(format!(
                        "{:?} is not a file, directory or symlink, which provisioning \
                         cannot create",
                        item.source
                    ))));
                }
                PlanKind::File | PlanKind::HardLink(_) => {
                    let meta = fs::symlink_metadata(&item.source)
                        .map_err(|source| ClientError::Io { op: OP, source })?;
                    self.ops.push(ProvisionOp::WriteFile {
                        path,
                        mode: meta.mode() & 0o7777,
                        size: meta.len(),
                    });
                    self.contents.push(Contents::HostFile(item.source));
                }
            }
        }
        Ok(self)
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len() + self.final_chmods.len()
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Sends exactly `size` bytes of `file` as file data frames, then the end.
async fn send_file(
    op: &'static str,
    send: &mut FrameSend,
    file: fs::File,
    size: u64,
    source: &Path,
) -> Result<(), ClientError> {
    let mut file = tokio::fs::File::from_std(file).take(size);
    let mut left = size;
    let mut buf = vec![0u8; CHUNK_SIZE];
    while left > 0 {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|source| ClientError::Io { op, source })?;
        if n == 0 {
            let reply = ErrorReply::new(
                ErrorKind::InvalidData,
                format!("{} shrank while being copied", source.display()),
            );
            let _ = send
                .send(&connection::json(op, FrameType::Error, &reply)?)
                .await;
            return Err(ClientError::Agent { op, source: reply });
        }
        send.send(&Frame::data(stream::FILE, buf[..n].to_vec()).expect("one chunk"))
            .await?;
        left -= n as u64;
    }
    send.send(&Frame::eof(stream::FILE)).await
}

impl AgentClient {
    /// Describes a guest path (a final symlink is not followed).
    pub async fn stat(&self, path: &str) -> Result<FileStat, ClientError> {
        const OP: &str = "stat";
        match self.call(OP, &Request::Stat { path: path.into() }).await? {
            Reply::Stat(stat) => Ok(stat),
            other => Err(unexpected_reply(OP, &other)),
        }
    }

    /// `mkdir -p` in the guest, `mode` for the directories created.
    pub async fn mkdir_p(&self, path: &str, mode: u32) -> Result<(), ClientError> {
        const OP: &str = "mkdir";
        let request = Request::Mkdir {
            path: path.into(),
            mode,
        };
        match self.call(OP, &request).await? {
            Reply::Ok => Ok(()),
            other => Err(unexpected_reply(OP, &other)),
        }
    }

    /// Writes `contents` to a guest file atomically.
    pub async fn write_file(
        &self,
        path: &str,
        contents: impl AsRef<[u8]>,
        mode: u32,
    ) -> Result<(), ClientError> {
        let mut plan = Provision::new();
        plan.write_file(path, contents, mode);
        self.provision(&plan).await
    }

    /// Applies a [`Provision`] in one request.
    pub async fn provision(&self, plan: &Provision) -> Result<(), ClientError> {
        const OP: &str = "provision";
        let ops: Vec<ProvisionOp> = plan
            .ops
            .iter()
            .chain(plan.final_chmods.iter().rev())
            .cloned()
            .collect();
        let mut conn = self.start(OP, &Request::Provision { ops }).await?;
        conn.send.limit_stalls(self.config().idle_timeout);
        let total = self.config().transfer_timeout;
        let sent = tokio::time::timeout(total, send_contents(&mut conn, plan)).await;
        finish_send(&mut conn, OP, total, sent).await?;
        let timeout = self.config().request_timeout;
        match connection::expect_reply(OP, conn.recv.recv(timeout).await?)? {
            Reply::Ok => Ok(()),
            other => Err(unexpected_reply(OP, &other)),
        }
    }

    /// Copies the host file or tree at `src` to `dest` in the guest
    /// (modes, symlinks, fifos, hard links within the tree and empty
    /// directories kept; names as raw bytes; an existing directory at
    /// `dest` is merged into). Device nodes and sockets are skipped and
    /// listed in [`CopyStats::skipped`]. The agent stages the tree under a
    /// temporary name, so a failed copy leaves nothing at `dest`.
    pub async fn copy_in(
        &self,
        src: impl AsRef<Path>,
        dest: &str,
    ) -> Result<CopyStats, ClientError> {
        self.copy_in_with(src, dest, &CopyOptions::default()).await
    }

    /// [`AgentClient::copy_in`] with options: with [`OnSpecial::Fail`], a
    /// tree holding device nodes or sockets fails before anything is sent.
    pub async fn copy_in_with(
        &self,
        src: impl AsRef<Path>,
        dest: &str,
        options: &CopyOptions,
    ) -> Result<CopyStats, ClientError> {
        const OP: &str = "copy in";
        let src_owned = src.as_ref().to_owned();
        let plan = tokio::task::spawn_blocking(move || CopyPlan::walk(&src_owned))
            .await
            .map_err(|e| ClientError::Io {
                op: OP,
                source: std::io::Error::other(e),
            })?
            .map_err(|source| ClientError::Tree { op: OP, source })?;
        let skipped: Vec<SkippedPath> = plan
            .skipped()
            .map(|(item, reason)| SkippedPath {
                path: item.source.clone(),
                reason,
            })
            .collect();
        if options.on_special == OnSpecial::Fail && !skipped.is_empty() {
            return Err(ClientError::Uncopyable { op: OP, skipped });
        }
        let config = self.config();
        let total = config.transfer_timeout;
        let mut conn = self
            .start(OP, &Request::CopyIn { dest: dest.into() })
            .await?;
        // Sends block while the agent does not read (backpressure), each
        // frame at most `idle_timeout`, the whole tree `transfer_timeout`.
        conn.send.limit_stalls(config.idle_timeout);
        let sent = tokio::time::timeout(total, send_tree(&mut conn, &plan)).await;
        let sent = finish_send(&mut conn, OP, total, sent).await?;
        match connection::expect_reply(OP, conn.recv.recv(config.idle_timeout).await?)? {
            Reply::CopyDone { entries, bytes }
                if entries == sent.entries && bytes == sent.bytes =>
            {
                Ok(CopyStats { skipped, ..sent })
            }
            Reply::CopyDone { entries, bytes } => Err(ClientError::Unexpected {
                op: OP,
                got: format!(
                    "a copy of {entries} entries and {bytes} bytes reported, \
                     {} and {} sent",
                    sent.entries, sent.bytes
                ),
            }),
            other => Err(unexpected_reply(OP, &other)),
        }
    }

    /// Copies the guest file or tree at `src` to `dest` on the host (whose
    /// parent directory must exist; an existing directory at `dest` is
    /// merged into, an existing file replaced). What the guest sends is
    /// untrusted: paths are checked, nothing is created below a symlink,
    /// setuid/setgid bits are dropped, sizes and counts are bounded, and the
    /// tree is staged beside `dest` and renamed into place only when
    /// complete, so a failed copy leaves nothing behind. Fifos and hard
    /// links within the tree are kept and names copied as raw bytes; device
    /// nodes and sockets are skipped and listed in [`CopyStats::skipped`].
    pub async fn copy_out(
        &self,
        src: &str,
        dest: impl AsRef<Path>,
    ) -> Result<CopyStats, ClientError> {
        self.copy_out_with(src, dest, &CopyOptions::default()).await
    }

    /// [`AgentClient::copy_out`] with options: with [`OnSpecial::Fail`], a
    /// tree holding device nodes or sockets fails and leaves nothing at
    /// `dest`.
    pub async fn copy_out_with(
        &self,
        src: &str,
        dest: impl AsRef<Path>,
        options: &CopyOptions,
    ) -> Result<CopyStats, ClientError> {
        const OP: &str = "copy out";
        let dest = dest.as_ref();
        let config = self.config();
        let limits = TreeLimits {
            max_entries: config.max_copy_entries,
            max_bytes: config.max_copy_bytes,
            mode_mask: 0o1777,
            ..TreeLimits::default()
        };
        let tree = |source| ClientError::Tree { op: OP, source };
        let mut conn = self
            .start(OP, &Request::CopyOut { path: src.into() })
            .await?;
        let mut rx = TreeReceiver::new(dest, limits);
        let total = config.transfer_timeout;
        let deadline = tokio::time::Instant::now() + total;
        loop {
            let frame = conn
                .recv
                .recv_within(config.idle_timeout, deadline, total)
                .await?;
            match rx.frame(&frame) {
                Ok(true) => break,
                Ok(false) => {}
                Err(TreeStreamError::Payload(source)) => {
                    return Err(ClientError::Payload { op: OP, source })
                }
                Err(TreeStreamError::Tree(source)) => return Err(tree(source)),
                Err(TreeStreamError::Unexpected { .. }) => {
                    return Err(connection::unexpected(OP, &frame))
                }
            }
        }
        let frame = conn
            .recv
            .recv_within(config.request_timeout, deadline, total)
            .await?;
        match connection::expect_reply(OP, frame)? {
            Reply::CopyDone { .. } => {}
            other => return Err(unexpected_reply(OP, &other)),
        }
        let skipped: Vec<SkippedPath> = rx
            .skipped()
            .iter()
            .map(|s| SkippedPath::below(Path::new(src), &s.rel, s.reason))
            .collect();
        if options.on_special == OnSpecial::Fail && !skipped.is_empty() {
            // Dropping the receiver removes the staged tree.
            return Err(ClientError::Uncopyable { op: OP, skipped });
        }
        let (entries, bytes) = rx.finish().map_err(tree)?;
        Ok(CopyStats {
            entries,
            bytes,
            skipped,
        })
    }
}

/// The result of a send bounded by `total` (a whole transfer's limit). A
/// send that failed is explained by the agent's error frame, if it sent one.
async fn finish_send<T>(
    conn: &mut OpsConn,
    op: &'static str,
    total: std::time::Duration,
    sent: Result<Result<T, ClientError>, tokio::time::error::Elapsed>,
) -> Result<T, ClientError> {
    match sent {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => Err(conn.explain(e).await),
        Err(_) => Err(ClientError::Timeout { op, after: total }),
    }
}

async fn send_contents(conn: &mut OpsConn, plan: &Provision) -> Result<(), ClientError> {
    const OP: &str = "provision";
    let sizes = plan.ops.iter().filter_map(|op| match op {
        ProvisionOp::WriteFile { size, .. } => Some(*size),
        _ => None,
    });
    for (contents, size) in plan.contents.iter().zip(sizes) {
        match contents {
            Contents::Bytes(bytes) => {
                for chunk in bytes.chunks(CHUNK_SIZE) {
                    let frame = Frame::data(stream::FILE, bytes.slice_ref(chunk)).expect("chunk");
                    conn.send.send(&frame).await?;
                }
                conn.send.send(&Frame::eof(stream::FILE)).await?;
            }
            Contents::HostFile(path) => {
                let file =
                    fs::File::open(path).map_err(|source| ClientError::Io { op: OP, source })?;
                send_file(OP, &mut conn.send, file, size, path).await?;
            }
        }
    }
    Ok(())
}

/// Sends the tree; returns what was sent (its skipped entries are sent as
/// such but neither counted nor listed).
async fn send_tree(conn: &mut OpsConn, plan: &CopyPlan) -> Result<CopyStats, ClientError> {
    const OP: &str = "copy in";
    let mut bytes = 0;
    for item in &plan.items {
        let (entry, file) = item
            .open()
            .map_err(|source| ClientError::Tree { op: OP, source })?;
        conn.send
            .send(&connection::json(OP, FrameType::Entry, &entry)?)
            .await?;
        if let (Some(file), TreeEntry::File { size, .. }) = (file, &entry) {
            send_file(OP, &mut conn.send, file, *size, &item.source).await?;
            bytes += size;
        }
    }
    conn.send
        .send(&connection::json(OP, FrameType::Entry, &TreeEntry::End)?)
        .await?;
    Ok(CopyStats {
        entries: (plan.items.len() - plan.skipped().count()) as u64,
        bytes,
        skipped: Vec::new(),
    })
}
