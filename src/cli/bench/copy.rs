//! The copy case: 64 MiB between a host file and a guest file, through the
//! agent, against a virtio-fs shared directory.
//!
//! The guest file lives in `/dev/shm` (tmpfs), so only the transport is
//! measured. The shared directory is a fresh directory in the rootfs,
//! which libkrun serves over virtio-fs like any shared directory; it is
//! removed when the case ends. Through it, "in" is the host writing the
//! file there and the guest copying it to tmpfs; "out" is the guest
//! copying the file there and syncing.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::error::BenchError;
use super::stats::Figure;
use super::{sh, Ctx};

/// Host file → guest file through the agent.
pub const COPY_IN: &str = "copy.in_agent";
/// Guest file → host file through the agent.
pub const COPY_OUT: &str = "copy.out_agent";
/// Host file → guest file through a virtio-fs shared directory.
pub const VIRTIOFS_IN: &str = "copy.in_virtiofs";
/// Guest file → host file through a virtio-fs shared directory.
pub const VIRTIOFS_OUT: &str = "copy.out_virtiofs";

const CASE: &str = "copy";
const SIZE: u64 = 64 << 20;
/// The guest file copied in, then out.
const GUEST_FILE: &str = "/dev/shm/krunbox-bench-copy";
/// Where the guest puts what it reads from the shared directory.
const GUEST_VIRTIOFS_FILE: &str = "/dev/shm/krunbox-bench-virtiofs";

/// A directory in the rootfs, removed on drop.
struct SharedDir {
    host: PathBuf,
    guest: String,
}

impl SharedDir {
    fn create(rootfs: &Path) -> Result<Self, BenchError> {
        let name = format!(".krunbox-bench-{}", std::process::id());
        let host = rootfs.join(&name);
        fs::create_dir(&host).map_err(BenchError::io(
            CASE,
            format!("creating the shared directory {}", host.display()),
        ))?;
        Ok(Self {
            host,
            guest: format!("/{name}"),
        })
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.host);
    }
}

pub async fn copy(ctx: &mut Ctx) -> Result<(), BenchError> {
    let fig = |id, label| Figure::transfer(id, label, SIZE);
    let agent_in = ctx.figure(fig(COPY_IN, "copy 64 MiB in through the agent"));
    let agent_out = ctx.figure(fig(COPY_OUT, "copy 64 MiB out through the agent"));
    let vfs_in = ctx.figure(fig(VIRTIOFS_IN, "64 MiB in through virtio-fs"));
    let vfs_out = ctx.figure(fig(VIRTIOFS_OUT, "64 MiB out through virtio-fs"));
    let host = tempfile::Builder::new()
        .prefix("krunbox-bench-")
        .tempdir()
        .map_err(BenchError::io(CASE, "creating a temporary directory"))?;
    let source = host.path().join("source.bin");
    write_noise(&source)?;
    let share = SharedDir::create(ctx.rootfs())?;
    let vm = ctx.vm().boot().await.map_err(BenchError::vm(CASE))?;
    let agent = vm.agent();
    for run in ctx.all_runs() {
        let t = Instant::now();
        let stats = match agent.copy_in(&source, GUEST_FILE).await {
            Ok(stats) => stats,
            Err(e) => return Err(BenchError::agent_on(CASE, "copy in", &vm, e).await),
        };
        let elapsed = t.elapsed();
        check_size("copied in", stats.bytes)?;
        ctx.sample(run, agent_in, elapsed);

        let out = host.path().join("out.bin");
        let t = Instant::now();
        if let Err(e) = agent.copy_out(GUEST_FILE, &out).await {
            return Err(BenchError::agent_on(CASE, "copy out", &vm, e).await);
        }
        let elapsed = t.elapsed();
        check_size("copied out", file_len(&out)?)?;
        ctx.sample(run, agent_out, elapsed);
        remove(&out)?;

        let shared_in = share.host.join("in.bin");
        let t = Instant::now();
        fs::copy(&source, &shared_in).map_err(BenchError::io(CASE, "writing into the share"))?;
        let from_share = format!("{}/in.bin", share.guest);
        sh(CASE, &vm, &format!("cp {from_share} {GUEST_VIRTIOFS_FILE}")).await?;
        ctx.sample(run, vfs_in, t.elapsed());
        sh(CASE, &vm, &format!("rm {GUEST_VIRTIOFS_FILE}")).await?;
        remove(&shared_in)?;

        let t = Instant::now();
        sh(
            CASE,
            &vm,
            &format!("cp {GUEST_FILE} {}/out.bin && sync", share.guest),
        )
        .await?;
        let elapsed = t.elapsed();
        let shared_out = share.host.join("out.bin");
        check_size("written through the share", file_len(&shared_out)?)?;
        ctx.sample(run, vfs_out, elapsed);
        remove(&shared_out)?;
        sh(CASE, &vm, &format!("rm {GUEST_FILE}")).await?;
    }
    vm.kill().await;
    Ok(())
}

/// 64 MiB of xorshift noise (compressible data would flatter nothing
/// here, but real files are not zeros).
fn write_noise(path: &Path) -> Result<(), BenchError> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut file = fs::File::create(path).map_err(BenchError::io(CASE, "creating the source"))?;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..SIZE / chunk.len() as u64 {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        file.write_all(&chunk)
            .map_err(BenchError::io(CASE, "writing the source"))?;
    }
    Ok(())
}

fn file_len(path: &Path) -> Result<u64, BenchError> {
    fs::metadata(path)
        .map(|m| m.len())
        .map_err(BenchError::io(CASE, format!("reading {}", path.display())))
}

fn check_size(what: &str, bytes: u64) -> Result<(), BenchError> {
    if bytes == SIZE {
        Ok(())
    } else {
        Err(BenchError::wrong(
            CASE,
            format!("{bytes} bytes {what}, not {SIZE}"),
        ))
    }
}

fn remove(path: &Path) -> Result<(), BenchError> {
    fs::remove_file(path).map_err(BenchError::io(CASE, format!("removing {}", path.display())))
}
