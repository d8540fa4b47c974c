//! The net case: the egress mode against plain TSI, on two VMs booted
//! side by side, fetching from one HTTP server on the host's loopback.
//!
//! - connection setup: ten fetches of a one-byte body in one guest shell
//!   (`wget`, a process, a connection and its first byte each);
//! - throughput: one 64 MiB download to `/dev/null`.
//!
//! Under TSI the guest connects to the server itself; in the egress mode
//! it goes through the host-side proxy its `http_proxy` names, as a
//! guest's HTTP clients do, with a rule naming the server's address.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::Instant;

use krunbox::egress::Policy;
use krunbox::vm::NetMode;

use super::error::BenchError;
use super::stats::Figure;
use super::{sh, Ctx};

/// Ten fetches of one byte, plain TSI.
pub const SETUP_TSI: &str = "net.setup_tsi";
/// Ten fetches of one byte, through the egress wall.
pub const SETUP_EGRESS: &str = "net.setup_egress";
/// A 64 MiB download, plain TSI.
pub const DOWNLOAD_TSI: &str = "net.download_tsi";
/// A 64 MiB download, through the egress wall.
pub const DOWNLOAD_EGRESS: &str = "net.download_egress";
/// Samples per run: setup and download, in each mode.
pub const SAMPLES_PER_RUN: u64 = 4;

const CASE: &str = "net";
const SIZE: u64 = 64 << 20;
const FETCHES: usize = 10;

pub async fn net(ctx: &mut Ctx) -> Result<(), BenchError> {
    let setup_tsi = ctx.figure(Figure::new(SETUP_TSI, "10 connections + first byte, tsi"));
    let setup_egress = ctx.figure(Figure::new(
        SETUP_EGRESS,
        "10 connections + first byte, egress",
    ));
    let fig = |id, label| Figure::transfer(id, label, SIZE);
    let download_tsi = ctx.figure(fig(DOWNLOAD_TSI, "64 MiB download, tsi"));
    let download_egress = ctx.figure(fig(DOWNLOAD_EGRESS, "64 MiB download, egress"));
    let port = serve()?;
    let rule = format!("127.0.0.1/32:{port}")
        .parse()
        .map_err(|e| BenchError::wrong(CASE, format!("the server's rule: {e}")))?;
    let tsi = ctx.vm().net(NetMode::Tsi).boot().await;
    let tsi = tsi.map_err(BenchError::vm(CASE))?;
    let egress = ctx.vm().egress(Policy::new([rule])).boot().await;
    let egress = egress.map_err(BenchError::vm(CASE))?;
    let small = format!("http://127.0.0.1:{port}/small");
    let setup =
        format!("for i in $(seq {FETCHES}); do wget -q -O /dev/null {small} || exit 1; done");
    let download = format!("wget -q -O /dev/null http://127.0.0.1:{port}/big");
    let modes = [
        (&tsi, setup_tsi, download_tsi),
        (&egress, setup_egress, download_egress),
    ];
    for run in ctx.all_runs() {
        for (vm, setup_figure, download_figure) in modes {
            let t = Instant::now();
            sh(CASE, vm, &setup).await?;
            ctx.sample(run, setup_figure, t.elapsed());
            let t = Instant::now();
            sh(CASE, vm, &download).await?;
            ctx.sample(run, download_figure, t.elapsed());
        }
    }
    tsi.kill().await;
    egress.kill().await;
    Ok(())
}

/// An HTTP server on the host's loopback for the rest of the process:
/// `/big` is 64 MiB, anything else one byte.
fn serve() -> Result<u16, BenchError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(BenchError::io(CASE, "listening on the host's loopback"))?;
    let port = listener
        .local_addr()
        .map_err(BenchError::io(CASE, "reading the server's port"))?
        .port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    Ok(port)
}

fn answer(mut stream: TcpStream) {
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let big = request.contains("/big");
    let len = if big { SIZE } else { 1 };
    let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {len}\r\n\r\n");
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    if !big {
        let _ = stream.write_all(b"x");
        return;
    }
    let chunk = vec![0x5a_u8; 1 << 20];
    for _ in 0..SIZE / chunk.len() as u64 {
        if stream.write_all(&chunk).is_err() {
            return;
        }
    }
}
