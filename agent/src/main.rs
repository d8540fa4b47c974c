//! krunbox-agent: the guest side of krunbox.
//!
//! Started by libkrun's init as the VM's workload (or as a host process in
//! tests), it binds its ops listener, connects to the host's announce socket
//! and sends a hello, then serves one operation per ops connection until the
//! announce connection closes or the host asks it to shut down. With
//! `--persist` (named VMs, whose starting process exits) only a shutdown
//! request ends it.
//!
//! ```text
//! krunbox-agent [--persist] --vsock 1024,1025
//! krunbox-agent [--persist] --unix-announce /path/announce.sock --unix-listen /path/ops.sock
//! ```
//!
//! Volumes (`--mount`) are mounted first; with `--exec` the agent is only a
//! wrapper that mounts them and becomes the given command (see
//! [`volumes`]).

mod background;
mod children;
mod exec;
mod files;
mod flow;
mod image_root;
mod provision;
mod pty;
mod resolv;
mod supervise;
mod transport;
mod volumes;

use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use krunbox_proto::{
    ErrorKind, ErrorReply, Frame, FrameType, Hello, HelloAck, ReadError, Reply, Request,
    PING_INTERVAL, VERSION,
};
use nix::time::{clock_gettime, ClockId};

use crate::background::Registry;
use crate::transport::{Conn, FrameReader, FrameWriter, Transport};

/// How long the host may take to answer the hello.
const HELLO_ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an ops connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

fn uptime_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

const USAGE: &str = "usage: krunbox-agent [--persist] (--vsock ANNOUNCE_PORT,LISTEN_PORT | \
                     --unix-announce PATH --unix-listen PATH)";

/// The command line.
struct Options {
    transport: Transport,
    /// Keep serving after the announce connection closes.
    persist: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let (mut vsock, mut announce, mut listen) = (None, None, None);
    let mut persist = false;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--persist" => persist = true,
            "--vsock" => vsock = Some(value()?),
            "--unix-announce" => announce = Some(value()?),
            "--unix-listen" => listen = Some(value()?),
            "--version" => return Err(env!("CARGO_PKG_VERSION").to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let transport = match (vsock, announce, listen) {
        (Some(ports), None, None) => {
            let (a, l) = ports
                .split_once(',')
                .ok_or_else(|| format!("--vsock wants ANNOUNCE,LISTEN, got {ports:?}"))?;
            let port = |p: &str| p.parse::<u32>().map_err(|e| format!("bad port {p:?}: {e}"));
            Transport::Vsock {
                announce_port: port(a)?,
                listen_port: port(l)?,
            }
        }
        (None, Some(announce), Some(listen)) => Transport::Unix {
            announce: announce.into(),
            listen: listen.into(),
        },
        _ => return Err(USAGE.to_owned()),
    };
    Ok(Options { transport, persist })
}

fn send_error(writer: &FrameWriter, reply: &ErrorReply) {
    if let Ok(frame) = Frame::json(FrameType::Error, reply) {
        let _ = writer.send(&frame);
    }
}

/// Serves one ops connection: one request and its exchange.
fn serve(registry: &Registry, conn: Conn) {
    let (mut reader, writer) = match transport::split(conn) {
        Ok(halves) => halves,
        Err(e) => return eprintln!("krunbox-agent: dropping a connection: {e}"),
    };
    // A connection that never sends its request does not hold a thread
    // forever.
    let _ = reader.get_ref().set_read_timeout(Some(REQUEST_TIMEOUT));
    let first = reader.read_frame();
    let _ = reader.get_ref().set_read_timeout(None);
    let request = match first {
        Ok(Some(frame)) if frame.frame_type == FrameType::Request => {
            match frame.parse_json::<Request>() {
                Ok(request) => request,
                Err(e) => {
                    let msg = files::chain(&e);
                    return send_error(&writer, &ErrorReply::new(ErrorKind::Protocol, msg));
                }
            }
        }
        Ok(Some(frame)) => {
            let msg = format!("expected a request, got a {:?} frame", frame.frame_type);
            return send_error(&writer, &ErrorReply::new(ErrorKind::Protocol, msg));
        }
        Ok(None) => return,
        Err(ReadError::Io(e)) => {
            return eprintln!("krunbox-agent: dropping a connection: reading its request: {e}")
        }
        Err(e) => {
            return send_error(
                &writer,
                &ErrorReply::new(ErrorKind::Protocol, files::chain(&e)),
            )
        }
    };
    let result = match &request {
        Request::Exec(req) => {
            exec::run(req.clone(), reader, writer.clone()).map_err(|e| e.to_reply())
        }
        Request::Spawn { command } => registry.spawn(command, &writer).map_err(|e| e.to_reply()),
        Request::ListProcesses => registry.list(&writer).map_err(|e| e.to_reply()),
        Request::WaitProcess { id, timeout_ms } => registry
            .wait(*id, Duration::from_millis(*timeout_ms), &writer)
            .map_err(|e| e.to_reply()),
        Request::KillProcess { id, signal } => registry
            .kill(*id, *signal, &writer)
            .map_err(|e| e.to_reply()),
        Request::ReadOutput {
            id,
            stdout_offset,
            stderr_offset,
        } => registry
            .read_output(*id, *stdout_offset, *stderr_offset, &writer)
            .map_err(|e| e.to_reply()),
        Request::RemoveProcess { id } => registry.remove(*id, &writer).map_err(|e| e.to_reply()),
        Request::CopyIn { dest } => {
            files::copy_in(dest, &mut reader, &writer).map_err(|e| e.to_reply())
        }
        Request::CopyOut { path } => files::copy_out(path, &writer).map_err(|e| e.to_reply()),
        Request::Mkdir { path, mode } => {
            files::mkdir(path, *mode, &writer).map_err(|e| e.to_reply())
        }
        Request::Stat { path } => files::stat(path, &writer).map_err(|e| e.to_reply()),
        Request::Provision { ops } => {
            provision::apply(ops, &mut reader, &writer).map_err(|e| e.to_reply())
        }
        Request::Shutdown { code } => shutdown(*code, &writer),
        Request::Watch => {
            watch(&writer);
            Ok(())
        }
        Request::Clock => {
            let reply = Reply::Clock {
                uptime_ns: uptime_ns(),
            };
            let frame = Frame::json(FrameType::Reply, &reply).expect("small");
            // A host gone before the answer has nothing to read it.
            let _ = writer.send(&frame);
            Ok(())
        }
    };
    if let Err(reply) = result {
        send_error(&writer, &reply);
    }
}

/// Answers, then pings every [`PING_INTERVAL`] until the host closes: an
/// attached host's way to notice a guest that froze or powered off.
fn watch(writer: &FrameWriter) {
    let mut next = Frame::json(FrameType::Reply, &Reply::Ok).expect("small");
    while writer.send(&next).is_ok() {
        next = Frame::ping();
        thread::sleep(PING_INTERVAL);
    }
}

/// Answers, syncs filesystems and exits with `code`; libkrun then powers
/// the VM off with that exit code.
fn shutdown(code: i32, writer: &FrameWriter) -> Result<(), ErrorReply> {
    nix::unistd::sync();
    let frame = Frame::json(FrameType::Reply, &Reply::Ok).expect("small");
    let _ = writer.send(&frame);
    children::kill_all();
    std::process::exit(code);
}

fn run(Options { transport, persist }: Options) -> Result<(), String> {
    let started_uptime_ns = uptime_ns();
    let listener = transport.listen().map_err(|e| files::chain(&e))?;
    let announce = transport.connect_announce().map_err(|e| files::chain(&e))?;
    let hello = Hello {
        protocol: VERSION,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        started_uptime_ns,
        hello_uptime_ns: uptime_ns(),
    };
    let ack_timeout = announce.set_read_timeout(Some(HELLO_ACK_TIMEOUT));
    let (mut reader, writer) = transport::split(announce).map_err(|e| e.to_string())?;
    writer
        .send(&Frame::json(FrameType::Hello, &hello).expect("small"))
        .map_err(|e| format!("sending hello: {e}"))?;
    match reader.read_frame() {
        Ok(Some(frame)) if frame.frame_type == FrameType::HelloAck => {
            let ack: HelloAck = frame.parse_json().map_err(|e| files::chain(&e))?;
            if ack.protocol != VERSION {
                return Err(format!(
                    "host speaks protocol {}, agent {VERSION}",
                    ack.protocol
                ));
            }
        }
        Ok(Some(frame)) => return Err(format!("expected hello ack, got {:?}", frame.frame_type)),
        Ok(None) => return Err("host closed the announce connection".into()),
        Err(e) => return Err(format!("waiting for hello ack: {}", files::chain(&e))),
    }
    if ack_timeout.is_ok() {
        let _ = reader_conn_clear_timeout(&reader);
    }

    // Signs of life for the host, which cannot tell a halted guest (whose
    // connections stay open) from a quiet one otherwise.
    let pinger = writer.clone();
    thread::spawn(move || {
        while pinger.send(&Frame::ping()).is_ok() {
            thread::sleep(PING_INTERVAL);
        }
    });
    if std::process::id() == 1 {
        thread::spawn(children::reap_orphans);
    }
    let registry = Arc::new(Registry::default());
    thread::spawn(move || accept_forever(&listener, &registry));

    // The announce connection is the liveness channel: when the host closes
    // it, the agent stops (and takes its processes with it), unless it
    // persists; then only a shutdown request ends it.
    while let Ok(Some(_)) = reader.read_frame() {}
    if persist {
        drop(reader);
        loop {
            thread::park();
        }
    }
    children::kill_all();
    Ok(())
}

/// Accepts ops connections and serves each on its own thread. An accept
/// that fails is said once per run of failures: it repeats every 10 ms,
/// and the console may be a log file.
fn accept_forever(listener: &transport::Listener, registry: &Arc<Registry>) -> ! {
    let mut failing = false;
    loop {
        match listener.accept() {
            Ok(conn) => {
                failing = false;
                let registry = registry.clone();
                if let Err(e) = thread::Builder::new().spawn(move || serve(&registry, conn)) {
                    eprintln!("krunbox-agent: dropping a connection: no thread to serve it: {e}");
                }
            }
            Err(e) => {
                if !failing {
                    eprintln!("krunbox-agent: accepting connections fails: {e}");
                }
                failing = true;
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn reader_conn_clear_timeout(reader: &FrameReader) -> std::io::Result<()> {
    reader.get_ref().set_read_timeout(None)
}

fn main() -> ExitCode {
    let (setup, args) = match volumes::split_args(std::env::args().skip(1).collect()) {
        Ok(split) => split,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = setup.apply() {
        eprintln!("krunbox-agent: {}", files::chain(&e));
        return ExitCode::from(volumes::SETUP_FAILED_EXIT as u8);
    }
    if let Some(argv) = &setup.exec {
        volumes::exec(argv, setup.user);
    }
    exec::set_default_user(setup.user);
    let options = match parse_args(args.into_iter()) {
        Ok(options) => options,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("krunbox-agent: {msg}");
            ExitCode::FAILURE
        }
    }
}
