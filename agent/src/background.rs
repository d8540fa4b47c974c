//! Background processes: started detached from any connection, their
//! output kept in bounded ring buffers to be read later by offset.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use krunbox_proto::{
    stream, ErrorKind, ErrorReply, ExecRequest, ExecStatus, Frame, FrameType, OutputRange,
    ProcessInfo, Reply, CHUNK_SIZE,
};

use crate::children;
use crate::exec::{self, ExecError};
use crate::transport::FrameWriter;

/// Bytes of stdout, and of stderr, kept per background process.
pub const RING_CAPACITY: usize = 1 << 20;

/// Background process failures.
#[derive(Debug, thiserror::Error)]
pub enum BackgroundError {
    /// No process has this id.
    #[error("no background process with id {0}")]
    NoSuchProcess(u64),
    /// The process still runs, so it cannot be removed.
    #[error("background process {0} is still running")]
    StillRunning(u64),
    /// Building the command failed.
    #[error("preparing the command")]
    Command(#[source] ExecError),
    /// Starting it failed.
    #[error("starting {0:?}")]
    Spawn(String, #[source] io::Error),
    /// Signalling it failed.
    #[error("signalling background process {0}")]
    Signal(u64, #[source] io::Error),
    /// The host connection failed.
    #[error("sending to the host")]
    Send(#[source] io::Error),
}

impl BackgroundError {
    /// The error frame payload for this failure.
    pub fn to_reply(&self) -> ErrorReply {
        match self {
            Self::NoSuchProcess(_) => ErrorReply::new(ErrorKind::NotFound, self.to_string()),
            Self::StillRunning(_) => ErrorReply::new(ErrorKind::InvalidInput, self.to_string()),
            Self::Command(e) => e.to_reply(),
            Self::Spawn(_, e) | Self::Signal(_, e) | Self::Send(e) => ErrorReply::from_io(self, e),
        }
    }
}

/// The last `capacity` bytes of a stream, with the stream's total length.
#[derive(Debug)]
struct Ring {
    buf: VecDeque<u8>,
    capacity: usize,
    total: u64,
}

impl Ring {
    fn new(capacity: usize) -> Self {
        Self {
            buf: VecDeque::new(),
            capacity,
            total: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let bytes = &bytes[bytes.len().saturating_sub(self.capacity)..];
        let overflow = (self.buf.len() + bytes.len()).saturating_sub(self.capacity);
        self.buf.drain(..overflow);
        self.buf.extend(bytes);
    }

    /// Bytes from `offset` on (or from the oldest kept byte).
    fn read_from(&self, offset: u64) -> (OutputRange, Vec<u8>) {
        let oldest = self.total - self.buf.len() as u64;
        let start = offset.clamp(oldest, self.total);
        let skip = (start - oldest) as usize;
        let bytes = self.buf.iter().skip(skip).copied().collect();
        (
            OutputRange {
                start,
                end: self.total,
            },
            bytes,
        )
    }
}

#[derive(Debug)]
struct State {
    stdout: Ring,
    stderr: Ring,
    /// Set once the process exited and its output was read to its end
    /// (or [`OUTPUT_DRAIN_LIMIT`] passed): a status never comes before
    /// output the process wrote.
    status: Option<ExecStatus>,
    /// Output pipes not yet read to their end.
    open_streams: u8,
}

/// How long a background process's status waits, after its exit, for its
/// output pipes to reach their end. Longer only when a process it left
/// behind holds them open; its output is still kept after that.
const OUTPUT_DRAIN_LIMIT: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Background {
    id: u64,
    pid: u32,
    argv: Vec<String>,
    state: Mutex<State>,
    exited: Condvar,
}

impl Background {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// All background processes of this agent.
#[derive(Debug, Default)]
pub struct Registry {
    next_id: AtomicU64,
    procs: Mutex<BTreeMap<u64, Arc<Background>>>,
}

fn keep_output(proc_: Arc<Background>, mut source: impl Read + Send + 'static, is_err: bool) {
    thread::spawn(move || {
        let mut buf = vec![0u8; CHUNK_SIZE];
        loop {
            match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let mut state = proc_.lock();
                    let ring = if is_err {
                        &mut state.stderr
                    } else {
                        &mut state.stdout
                    };
                    ring.push(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        proc_.lock().open_streams -= 1;
        proc_.exited.notify_all();
    });
}

fn reply(writer: &FrameWriter, reply: &Reply) -> Result<(), BackgroundError> {
    let frame = Frame::json(FrameType::Reply, reply)
        .map_err(|e| BackgroundError::Send(io::Error::new(io::ErrorKind::InvalidData, e)))?;
    writer.send(&frame).map_err(BackgroundError::Send)
}

impl Registry {
    fn get(&self, id: u64) -> Result<Arc<Background>, BackgroundError> {
        let procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        procs
            .get(&id)
            .cloned()
            .ok_or(BackgroundError::NoSuchProcess(id))
    }

    /// Starts `req` in its own process group with stdin on /dev/null.
    pub fn spawn(&self, req: &ExecRequest, writer: &FrameWriter) -> Result<(), BackgroundError> {
        let mut cmd = exec::command(req).map_err(BackgroundError::Command)?;
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = children::spawn_tracked(&mut cmd)
            .map_err(|e| BackgroundError::Spawn(req.argv[0].clone(), e))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let proc_ = Arc::new(Background {
            id,
            pid: child.id(),
            argv: req.argv.clone(),
            state: Mutex::new(State {
                stdout: Ring::new(RING_CAPACITY),
                stderr: Ring::new(RING_CAPACITY),
                status: None,
                open_streams: 2,
            }),
            exited: Condvar::new(),
        });
        if let Some(out) = child.stdout.take() {
            keep_output(proc_.clone(), out, false);
        }
        if let Some(err) = child.stderr.take() {
            keep_output(proc_.clone(), err, true);
        }
        {
            let proc_ = proc_.clone();
            thread::spawn(move || {
                let status = child.wait();
                children::untrack(proc_.pid as i32);
                let status = match status {
                    Ok(s) => ExecStatus {
                        code: s.code(),
                        signal: s.signal(),
                        timed_out: false,
                    },
                    Err(_) => ExecStatus {
                        code: None,
                        signal: None,
                        timed_out: false,
                    },
                };
                let state = proc_.lock();
                let (mut state, _) = proc_
                    .exited
                    .wait_timeout_while(state, OUTPUT_DRAIN_LIMIT, |s| s.open_streams > 0)
                    .unwrap_or_else(|p| p.into_inner());
                state.status = Some(status);
                drop(state);
                proc_.exited.notify_all();
            });
        }
        let pid = proc_.pid;
        self.procs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, proc_);
        reply(writer, &Reply::Spawned { id, pid })
    }

    /// Lists all background processes.
    pub fn list(&self, writer: &FrameWriter) -> Result<(), BackgroundError> {
        let procs: Vec<Arc<Background>> = self
            .procs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let processes = procs
            .iter()
            .map(|p| ProcessInfo {
                id: p.id,
                pid: p.pid,
                argv: p.argv.clone(),
                status: p.lock().status,
            })
            .collect();
        reply(writer, &Reply::Processes { processes })
    }

    /// Waits up to `timeout` for process `id` to exit.
    pub fn wait(
        &self,
        id: u64,
        timeout: Duration,
        writer: &FrameWriter,
    ) -> Result<(), BackgroundError> {
        let proc_ = self.get(id)?;
        let state = proc_.lock();
        let (state, _) = proc_
            .exited
            .wait_timeout_while(state, timeout, |s| s.status.is_none())
            .unwrap_or_else(|p| p.into_inner());
        let status = state.status;
        drop(state);
        reply(writer, &Reply::Waited { status })
    }

    /// Signals the process group of `id` (nothing if it has exited).
    pub fn kill(&self, id: u64, signal: i32, writer: &FrameWriter) -> Result<(), BackgroundError> {
        let proc_ = self.get(id)?;
        if proc_.lock().status.is_none() {
            children::signal_group(proc_.pid as i32, signal)
                .map_err(|e| BackgroundError::Signal(id, e))?;
        }
        reply(writer, &Reply::Ok)
    }

    /// Sends the retained output from the given offsets.
    pub fn read_output(
        &self,
        id: u64,
        stdout_offset: u64,
        stderr_offset: u64,
        writer: &FrameWriter,
    ) -> Result<(), BackgroundError> {
        let proc_ = self.get(id)?;
        let (out_range, out, err_range, err, status) = {
            let state = proc_.lock();
            let (out_range, out) = state.stdout.read_from(stdout_offset);
            let (err_range, err) = state.stderr.read_from(stderr_offset);
            (out_range, out, err_range, err, state.status)
        };
        reply(
            writer,
            &Reply::Output {
                stdout: out_range,
                stderr: err_range,
                status,
            },
        )?;
        for (stream_id, bytes) in [(stream::STDOUT, out), (stream::STDERR, err)] {
            for chunk in bytes.chunks(CHUNK_SIZE) {
                let frame = Frame::data(stream_id, chunk.to_vec()).expect("one chunk");
                writer.send(&frame).map_err(BackgroundError::Send)?;
            }
            writer
                .send(&Frame::eof(stream_id))
                .map_err(BackgroundError::Send)?;
        }
        Ok(())
    }

    /// Forgets an exited process.
    pub fn remove(&self, id: u64, writer: &FrameWriter) -> Result<(), BackgroundError> {
        let proc_ = self.get(id)?;
        if proc_.lock().status.is_none() {
            return Err(BackgroundError::StillRunning(id));
        }
        self.procs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        reply(writer, &Reply::Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_tail_and_offsets() {
        let mut ring = Ring::new(4);
        ring.push(b"ab");
        assert_eq!(
            ring.read_from(0),
            (OutputRange { start: 0, end: 2 }, b"ab".to_vec())
        );
        ring.push(b"cdef");
        assert_eq!(
            ring.read_from(0),
            (OutputRange { start: 2, end: 6 }, b"cdef".to_vec())
        );
        assert_eq!(
            ring.read_from(5),
            (OutputRange { start: 5, end: 6 }, b"f".to_vec())
        );
        assert_eq!(
            ring.read_from(9),
            (OutputRange { start: 6, end: 6 }, vec![])
        );
        ring.push(b"0123456789");
        assert_eq!(ring.read_from(0).1, b"6789".to_vec());
    }
}
