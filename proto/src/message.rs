//! Control messages: serde types carried as JSON in the payload of control
//! frames. File bytes and process output never travel here; they go in
//! [`FrameType::Data`](crate::FrameType::Data) frames.

use std::{fmt, io};

use serde::{Deserialize, Serialize};

use crate::path_bytes::PathBytes;

/// Agent to host, first frame of the announce connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version the agent speaks ([`crate::VERSION`]).
    pub protocol: u8,
    /// The agent's crate version.
    pub agent_version: String,
    /// The agent's process id (in the guest).
    pub pid: u32,
    /// Guest uptime (`CLOCK_BOOTTIME`) when the agent process started, in ns.
    pub started_uptime_ns: u64,
    /// Guest uptime when this hello was sent, in ns (listener already bound).
    pub hello_uptime_ns: u64,
}

/// Host to agent, the answer to [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloAck {
    /// Protocol version the host speaks.
    pub protocol: u8,
}

/// A terminal window size; by default 24 rows of 80 columns, as a
/// terminal that says nothing of its size is taken to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WinSize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

impl Default for WinSize {
    fn default() -> Self {
        Self { rows: 24, cols: 80 }
    }
}

/// What to run, shared by one-shot, interactive and background execs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// Program and arguments; the program is looked up in `PATH`.
    pub argv: Vec<String>,
    /// Environment variables to set (after clearing, if `clear_env`).
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Start from an empty environment instead of the agent's.
    #[serde(default)]
    pub clear_env: bool,
    /// Working directory.
    #[serde(default)]
    pub cwd: Option<String>,
    /// User id to run as.
    #[serde(default)]
    pub uid: Option<u32>,
    /// Group id to run as.
    #[serde(default)]
    pub gid: Option<u32>,
    /// Whether the host streams stdin ([`crate::stream::STDIN`] data frames,
    /// then end of stream). Without it the process reads `/dev/null`.
    #[serde(default)]
    pub stdin: bool,
    /// Run on a new pseudo-terminal of this size (stdin, stdout and stderr
    /// are all the terminal; its output comes on the stdout stream).
    #[serde(default)]
    pub pty: Option<WinSize>,
    /// Kill the process group with SIGKILL after this many milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Flow control for the output: the agent sends at most this many
    /// bytes of stdout plus stderr data beyond what the host has granted
    /// back with [`Control::Credit`], and stops reading the process's
    /// output meanwhile (so the process blocks, as on a full pipe). `None`:
    /// no limit. Keeping the bytes in flight below what the host socket
    /// buffers means a slow reader never blocks libkrun's vsock device,
    /// which serves every connection of the VM.
    #[serde(default)]
    pub output_window: Option<u32>,
    /// Flow control for stdin: the host sends at most this many stdin
    /// bytes beyond what the agent has credited back (a `Control::Credit`
    /// frame from the agent, for bytes written to the process or dropped
    /// because it closed its stdin). The agent then reads every host frame
    /// as it comes, credits included. `None`: no limit, and host frames
    /// wait while stdin bytes do.
    #[serde(default)]
    pub stdin_window: Option<u32>,
}

/// A request: the first frame on an ops connection, one operation each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Run a process and stream its output; answered with `Started`, output
    /// data, then `Exited`.
    Exec(ExecRequest),
    /// Start a background process whose output the agent keeps in ring buffers.
    Spawn {
        /// What to run (`stdin` and `pty` are ignored).
        command: ExecRequest,
    },
    /// List background processes.
    ListProcesses,
    /// Wait up to `timeout_ms` for a background process to exit.
    WaitProcess {
        /// Background process id.
        id: u64,
        /// How long to wait.
        timeout_ms: u64,
    },
    /// Send a signal to a background process's group.
    KillProcess {
        /// Background process id.
        id: u64,
        /// Signal number.
        signal: i32,
    },
    /// Read the retained output of a background process from given offsets.
    ReadOutput {
        /// Background process id.
        id: u64,
        /// Offset in the process's whole stdout to read from.
        stdout_offset: u64,
        /// Offset in the process's whole stderr to read from.
        stderr_offset: u64,
    },
    /// Forget an exited background process.
    RemoveProcess {
        /// Background process id.
        id: u64,
    },
    /// Receive a tree (entry frames with file data) and place it at `dest`.
    CopyIn {
        /// Destination path in the guest; becomes the copied file or directory.
        dest: String,
    },
    /// Send the file or tree at `path` as entry frames.
    CopyOut {
        /// Source path in the guest.
        path: String,
    },
    /// Create a directory and its missing parents.
    Mkdir {
        /// Directory path.
        path: String,
        /// Mode of the directories created.
        mode: u32,
    },
    /// Describe a path without following a final symlink.
    Stat {
        /// The path.
        path: String,
    },
    /// Apply provisioning operations in order. The contents of each
    /// `WriteFile`, in order, follow as file data frames and an end of stream.
    Provision {
        /// The operations.
        ops: Vec<ProvisionOp>,
    },
    /// Sync filesystems and exit the agent with `code` (powering the VM off).
    Shutdown {
        /// The agent's exit code.
        code: i32,
    },
    /// A liveness channel for a host that attached to a running agent (a
    /// named VM's later commands): answered with `Ok`, then a ping frame
    /// every [`crate::PING_INTERVAL`] until the host closes.
    Watch,
    /// The guest's clock: answered with [`Reply::Clock`] (the host times
    /// the round trip to place the guest's clock on its own).
    Clock,
}

/// Host to agent during an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "control", rename_all = "snake_case")]
pub enum Control {
    /// Send a signal to the running process's group.
    Signal {
        /// Signal number.
        signal: i32,
    },
    /// Change the PTY's window size.
    Resize(WinSize),
    /// Flow control on an exec: from the host, it has taken `bytes` more
    /// bytes of output (see [`ExecRequest::output_window`]); from the
    /// agent, `bytes` more stdin bytes may come (see
    /// [`ExecRequest::stdin_window`]).
    Credit {
        /// Bytes granted.
        bytes: u64,
    },
}

/// How a guest process (an exec, a background process) ended. Named
/// apart from `std::process::ExitStatus`, which the library uses for the
/// VM's own runner process (`Vm::shutdown`, one-shot VMs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStatus {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Signal number, if a signal killed it.
    pub signal: Option<i32>,
    /// Whether the agent killed it because its timeout ran out.
    #[serde(default)]
    pub timed_out: bool,
}

impl ExecStatus {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// A background process as listed by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// The agent's id for it.
    pub id: u64,
    /// Its pid in the guest.
    pub pid: u32,
    /// What it runs.
    pub argv: Vec<String>,
    /// How it ended, if it has.
    pub status: Option<ExecStatus>,
}

/// Where retained background output starts and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRange {
    /// Offset of the first byte sent (later than asked if older bytes were
    /// dropped from the ring buffer).
    pub start: u64,
    /// Offset after the last byte sent: the next offset to ask for.
    pub end: u64,
}

/// What kind of filesystem object a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Anything else (device, socket, fifo).
    Other,
}

/// Answer to [`Request::Stat`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    /// Kind.
    pub kind: FileKind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Link target, for symlinks.
    pub symlink_target: Option<String>,
}

/// Agent to host: the outcome or progress of an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// The operation succeeded with nothing to report.
    Ok,
    /// An exec's process started.
    Started {
        /// Its pid.
        pid: u32,
    },
    /// An exec's process ended; all its output was sent before this.
    Exited(ExecStatus),
    /// A background process started.
    Spawned {
        /// Its id for later requests.
        id: u64,
        /// Its pid.
        pid: u32,
    },
    /// Background processes.
    Processes {
        /// All of them.
        processes: Vec<ProcessInfo>,
    },
    /// Result of waiting: `None` if it still runs after the timeout.
    Waited {
        /// Exit status.
        status: Option<ExecStatus>,
    },
    /// Retained output follows: stdout data then end of stream, stderr data
    /// then end of stream.
    Output {
        /// Range of stdout sent.
        stdout: OutputRange,
        /// Range of stderr sent.
        stderr: OutputRange,
        /// Exit status, if the process has ended.
        status: Option<ExecStatus>,
    },
    /// Answer to stat.
    Stat(FileStat),
    /// Answer to [`Request::Clock`].
    Clock {
        /// The guest's uptime (`CLOCK_BOOTTIME`, which starts with its
        /// kernel) when the agent answered, in ns.
        uptime_ns: u64,
    },
    /// A tree copy finished.
    CopyDone {
        /// Entries copied.
        entries: u64,
        /// File bytes copied.
        bytes: u64,
    },
}

/// One item of a tree sent in [`FrameType::Entry`](crate::FrameType::Entry)
/// frames. Paths are relative to the tree's root (`""` is the root itself),
/// `/`-separated raw bytes ([`PathBytes`]: a JSON string when UTF-8, else an
/// array of byte values), and parents come before children.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TreeEntry {
    /// A directory.
    Dir {
        /// Relative path.
        path: PathBytes,
        /// Permission bits.
        mode: u32,
    },
    /// A regular file: exactly `size` bytes follow as file data frames, then
    /// an end of stream.
    File {
        /// Relative path.
        path: PathBytes,
        /// Permission bits.
        mode: u32,
        /// Length in bytes.
        size: u64,
    },
    /// A symbolic link.
    Symlink {
        /// Relative path.
        path: PathBytes,
        /// Link target, stored as is and never followed by the receiver.
        target: PathBytes,
    },
    /// A named pipe (fifo), created empty.
    Fifo {
        /// Relative path.
        path: PathBytes,
        /// Permission bits.
        mode: u32,
    },
    /// Another name for a regular file sent earlier in this tree (the
    /// sender saw the same device and inode): the receiver hard-links it.
    HardLink {
        /// Relative path of the new name.
        path: PathBytes,
        /// Relative path of the earlier [`TreeEntry::File`].
        target: PathBytes,
    },
    /// Something the sender did not send because a receiver cannot safely
    /// recreate it (a device node, a socket); the receiver reports it.
    Skipped {
        /// Relative path.
        path: PathBytes,
        /// What it is.
        reason: SkipReason,
    },
    /// The tree is complete.
    End,
}

impl TreeEntry {
    /// The entry's relative path (`None` for [`TreeEntry::End`]).
    pub fn path(&self) -> Option<&PathBytes> {
        match self {
            Self::Dir { path, .. }
            | Self::File { path, .. }
            | Self::Symlink { path, .. }
            | Self::Fifo { path, .. }
            | Self::HardLink { path, .. }
            | Self::Skipped { path, .. } => Some(path),
            Self::End => None,
        }
    }
}

/// Why a tree entry was not copied: what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// A unix socket (only its listener can create a working one).
    Socket,
    /// A character device node (creating one needs privilege).
    CharDevice,
    /// A block device node (creating one needs privilege).
    BlockDevice,
    /// Another kind a newer sender skips.
    #[serde(other)]
    Other,
}

impl fmt::Display for SkipReason {
    /// What it is: `socket`, `character device`, ….
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Socket => "socket",
            Self::CharDevice => "character device",
            Self::BlockDevice => "block device",
            Self::Other => "special file",
        })
    }
}

/// One provisioning operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ProvisionOp {
    /// `mkdir -p` with `mode` for the directories created.
    Mkdir {
        /// Absolute guest path.
        path: String,
        /// Mode.
        mode: u32,
    },
    /// Write a file atomically (temporary name, then rename); parents are
    /// created. Its `size` bytes follow the request as file data frames.
    WriteFile {
        /// Absolute guest path.
        path: String,
        /// Mode.
        mode: u32,
        /// Length of the contents.
        size: u64,
    },
    /// Change permission bits.
    Chmod {
        /// Absolute guest path.
        path: String,
        /// Mode.
        mode: u32,
    },
    /// Create (or replace) a symbolic link.
    Symlink {
        /// Absolute guest path of the link.
        path: String,
        /// Its target.
        target: String,
    },
}

/// The class of a failure reported in an [`ErrorReply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No such file, directory or process.
    NotFound,
    /// Permission denied.
    PermissionDenied,
    /// It already exists.
    AlreadyExists,
    /// A request argument was invalid (bad path, bad signal, empty argv).
    InvalidInput,
    /// A frame or message broke the protocol.
    Protocol,
    /// The request is not supported.
    Unsupported,
    /// A wait ran out of time.
    TimedOut,
    /// Declared sizes did not match the data, or a limit was exceeded.
    InvalidData,
    /// Any other I/O failure.
    Io,
}

impl ErrorKind {
    /// The closest [`io::ErrorKind`].
    pub fn to_io(self) -> io::ErrorKind {
        match self {
            Self::NotFound => io::ErrorKind::NotFound,
            Self::PermissionDenied => io::ErrorKind::PermissionDenied,
            Self::AlreadyExists => io::ErrorKind::AlreadyExists,
            Self::InvalidInput => io::ErrorKind::InvalidInput,
            Self::Protocol | Self::InvalidData => io::ErrorKind::InvalidData,
            Self::Unsupported => io::ErrorKind::Unsupported,
            Self::TimedOut => io::ErrorKind::TimedOut,
            Self::Io => io::ErrorKind::Other,
        }
    }

    /// The kind for an I/O error.
    pub fn from_io(kind: io::ErrorKind) -> Self {
        match kind {
            io::ErrorKind::NotFound => Self::NotFound,
            io::ErrorKind::PermissionDenied => Self::PermissionDenied,
            io::ErrorKind::AlreadyExists => Self::AlreadyExists,
            io::ErrorKind::InvalidInput => Self::InvalidInput,
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => Self::InvalidData,
            io::ErrorKind::Unsupported => Self::Unsupported,
            io::ErrorKind::TimedOut => Self::TimedOut,
            _ => Self::Io,
        }
    }
}

/// Either way: why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// Class of failure.
    pub kind: ErrorKind,
    /// The OS error number, when there was one.
    #[serde(default)]
    pub errno: Option<i32>,
    /// What failed, for people.
    pub message: String,
}

impl ErrorReply {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            errno: None,
            message: message.into(),
        }
    }

    /// An error from an I/O failure, with `context` saying what failed.
    pub fn from_io(context: impl std::fmt::Display, err: &io::Error) -> Self {
        Self {
            kind: ErrorKind::from_io(err.kind()),
            errno: err.raw_os_error(),
            message: format!("{context}: {err}"),
        }
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.message, self.kind)
    }
}

impl std::error::Error for ErrorReply {}
