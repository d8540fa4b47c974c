//! The event loop of one exec, on the operation's own thread: a single
//! `poll(2)` over the host connection, the process's output pipes (or pty
//! master), its stdin and a pidfd for its exit, with the timeout as the
//! poll deadline. No helper threads, so an exec costs one thread.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::process::Child;
use std::time::{Duration, Instant};

use krunbox_proto::{stream, Control, Frame, FrameType, CHUNK_SIZE};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::children;
use crate::flow::{OutputFlow, StdinFlow};
use crate::pty;
use crate::transport::{FrameReader, FrameWriter};

/// How long output may go on after the process exited (a daemon it left
/// behind may hold its stdout open).
const OUTPUT_GRACE: Duration = Duration::from_secs(2);
/// Poll tick when the kernel has no pidfds (before Linux 5.3).
const NO_PIDFD_TICK: Duration = Duration::from_millis(10);
/// Send timeout on the host connection, after which the exec timeout is
/// checked even while the host is not reading.
const SEND_STALL: Duration = Duration::from_millis(500);

/// The process's side of the exec.
#[derive(Debug)]
pub struct ExecIo {
    /// Output sources with their stream ids (stdout, stderr; or the pty).
    pub outputs: Vec<(u32, File)>,
    /// Where stdin bytes go (pipe or pty master), if stdin is open.
    pub stdin: Option<File>,
    /// The pty master, for window size changes.
    pub master: Option<File>,
}

/// How the process ended.
#[derive(Debug)]
pub struct Outcome {
    /// Its wait status.
    pub status: std::process::ExitStatus,
    /// Whether the timeout killed it.
    pub timed_out: bool,
}

/// Why supervision stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    /// Polling or waiting failed.
    #[error("supervising the process")]
    Io(#[source] io::Error),
    /// The host went away (the process group was killed).
    #[error("sending to the host")]
    Send(#[source] io::Error),
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags by value and returns a new
    // descriptor or -1; no memory is shared with the kernel.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn set_nonblocking(file: &File) -> io::Result<()> {
    let flags =
        fcntl(file, FcntlArg::F_GETFL).map_err(|e| io::Error::from_raw_os_error(e as i32))?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(file, FcntlArg::F_SETFL(flags)).map_err(|e| io::Error::from_raw_os_error(e as i32))?;
    Ok(())
}

/// The timeout as seen from a stalled send.
struct Deadline {
    pid: i32,
    at: Option<Instant>,
    timed_out: bool,
    exited: bool,
}

impl Deadline {
    fn check(&mut self) {
        if !self.exited && !self.timed_out && self.at.is_some_and(|at| at <= Instant::now()) {
            let _ = children::signal_group(self.pid, libc::SIGKILL);
            self.timed_out = true;
        }
    }
}

/// Runs the exec until the process has exited and its output has been
/// sent (or the grace after exit ran out while the host was taking
/// output). `flow` holds the output window; each output stream ends with
/// a frame that declares its total.
pub fn supervise(
    child: &mut Child,
    mut io: ExecIo,
    reader: &mut FrameReader,
    writer: &FrameWriter,
    timeout: Option<Duration>,
    flow: &mut OutputFlow,
    stdin_flow: &mut StdinFlow,
) -> Result<Outcome, SuperviseError> {
    let pid = child.id() as i32;
    let pidfd = pidfd_open(pid);
    if let Some(stdin) = &io.stdin {
        set_nonblocking(stdin).map_err(SuperviseError::Io)?;
    }
    let _ = reader.get_ref().set_write_timeout(Some(SEND_STALL));
    let mut deadline = Deadline {
        pid,
        at: timeout.map(|t| Instant::now() + t),
        timed_out: false,
        exited: false,
    };
    let mut status = None;
    let mut grace_until = None;
    let mut host_open = true;
    let mut buf = vec![0u8; CHUNK_SIZE];

    let result = loop {
        // Frames may already be buffered (read along with the request, or
        // left while stdin was backed up): handle them before polling.
        while host_open && stdin_flow.takes_host_frames() {
            match reader.next_buffered() {
                Ok(Some(frame)) => handle_host_frame(&frame, pid, &io, stdin_flow, flow),
                Ok(None) => break,
                Err(_) => {
                    host_open = false;
                    if status.is_none() {
                        let _ = children::signal_group(pid, libc::SIGKILL);
                    }
                }
            }
        }
        if stdin_flow.close_due() {
            io.stdin = None;
        }
        if let Some(credit) = stdin_flow.credit_due() {
            if let Err(e) = writer.send_stalling(&credit, &mut || deadline.check()) {
                return Err(abandon(child, pid, e));
            }
        }
        if status.is_none() {
            if let Some(s) = child.try_wait().map_err(SuperviseError::Io)? {
                status = Some(s);
                deadline.exited = true;
                grace_until = Some(Instant::now() + OUTPUT_GRACE);
            }
        }
        if status.is_some() && io.outputs.is_empty() {
            break Ok(());
        }
        let now = Instant::now();
        if status.is_some() && !flow.is_open() {
            // The host is not taking output: the grace for output after
            // exit counts only while it could flow.
            grace_until = Some(now + OUTPUT_GRACE);
        }
        let mut wake = if status.is_some() {
            grace_until
        } else if deadline.timed_out {
            None
        } else {
            deadline.at
        };
        if status.is_none() && pidfd.is_none() {
            wake = Some(wake.map_or(now + NO_PIDFD_TICK, |w| w.min(now + NO_PIDFD_TICK)));
        }
        if let Some(w) = wake {
            if w <= now {
                if status.is_some() {
                    break Ok(()); // grace over: stop waiting for output
                }
                deadline.check();
                if pidfd.is_none() {
                    // Fallback tick: check the process again.
                    std::thread::sleep(Duration::from_millis(1));
                }
                continue;
            }
        }
        let poll_timeout = match wake {
            Some(w) => {
                let ms = (w - now).as_millis().clamp(1, i32::MAX as u128) as i32;
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };

        // Which descriptors to watch, in a fixed order.
        let want_host = host_open && stdin_flow.takes_host_frames();
        let want_stdin = io.stdin.is_some() && !stdin_flow.pending.is_empty();
        let mut fds = Vec::with_capacity(5);
        if want_host {
            fds.push(PollFd::new(reader.get_ref().as_fd(), PollFlags::POLLIN));
        }
        if want_stdin {
            let stdin = io.stdin.as_ref().expect("checked");
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLOUT));
        }
        let want_outputs = flow.is_open();
        if want_outputs {
            for (_, out) in &io.outputs {
                fds.push(PollFd::new(out.as_fd(), PollFlags::POLLIN));
            }
        }
        if let (Some(fd), None) = (&pidfd, &status) {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, poll_timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => break Err(SuperviseError::Io(io::Error::from_raw_os_error(e as i32))),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut ready = ready.into_iter();

        if want_host && ready.next() == Some(true) {
            match reader.fill() {
                Ok(0) | Err(_) => {
                    // The host went away: nobody will read the output.
                    host_open = false;
                    if status.is_none() {
                        let _ = children::signal_group(pid, libc::SIGKILL);
                    }
                    io.stdin = None;
                }
                // Decoded at the top of the loop.
                Ok(_) => {}
            }
        }
        if want_stdin && ready.next() == Some(true) {
            if let Some(stdin) = io.stdin.as_mut() {
                match stdin.write(&stdin_flow.pending) {
                    Ok(n) => stdin_flow.wrote(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        // The process closed its stdin: drop what is left.
                        stdin_flow.drop_pending();
                        io.stdin = None;
                    }
                }
            }
        }
        if stdin_flow.close_due() {
            io.stdin = None;
        }
        let mut finished = Vec::new();
        for (index, (stream_id, out)) in io.outputs.iter_mut().enumerate() {
            let allowance = flow.allowance();
            if !want_outputs || ready.next() != Some(true) || allowance == 0 {
                continue;
            }
            match out.read(&mut buf[..allowance]) {
                Ok(0) => finished.push(index),
                Ok(n) => {
                    let frame = Frame::data(*stream_id, buf[..n].to_vec()).expect("one chunk");
                    if let Err(e) = writer.send_stalling(&frame, &mut || deadline.check()) {
                        return Err(abandon(child, pid, e));
                    }
                    flow.record(*stream_id, n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                // A pty master reads EIO once the process side has closed.
                Err(_) => finished.push(index),
            }
        }
        for index in finished.into_iter().rev() {
            let (stream_id, _) = io.outputs.remove(index);
            if let Err(e) = writer.send_stalling(&flow.eof(stream_id), &mut || deadline.check()) {
                return Err(abandon(child, pid, e));
            }
        }
        // The pidfd's readiness is picked up by try_wait at the loop's top.
    };
    result?;
    for (stream_id, _) in io.outputs.drain(..) {
        let _ = writer.send(&flow.eof(stream_id));
    }
    let status = match status {
        Some(s) => s,
        None => child.wait().map_err(SuperviseError::Io)?,
    };
    Ok(Outcome {
        status,
        timed_out: deadline.timed_out,
    })
}

fn handle_host_frame(
    frame: &Frame,
    pid: i32,
    io: &ExecIo,
    stdin_flow: &mut StdinFlow,
    flow: &mut OutputFlow,
) {
    match (frame.frame_type, frame.stream) {
        (FrameType::Data, stream::STDIN) => stdin_flow.push(&frame.payload, io.stdin.is_some()),
        (FrameType::Eof, stream::STDIN) => stdin_flow.request_close(),
        (FrameType::Control, _) => match frame.parse_json::<Control>() {
            Ok(Control::Signal { signal }) => {
                let _ = children::signal_group(pid, signal);
            }
            Ok(Control::Resize(ws)) => {
                if let Some(master) = &io.master {
                    let _ = pty::resize(master, ws);
                }
            }
            Ok(Control::Credit { bytes }) => flow.grant(bytes),
            Err(_) => {}
        },
        _ => {}
    }
}

/// The host connection failed: kill the process group and reap it.
fn abandon(child: &mut Child, pid: i32, err: io::Error) -> SuperviseError {
    let _ = children::signal_group(pid, libc::SIGKILL);
    let _ = child.wait();
    SuperviseError::Send(err)
}
