//! Helpers for the fault, load and security cases: private rootfs copies,
//! bounded waits, checks that a dead VM left nothing behind, big files.

use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use krunbox::vm::Vm;
use libtest_mimic::Failed;

use crate::cases::{chain, check, text};
use crate::support::rootfs;

/// Longest any single step of these cases may take before it counts as a
/// hang (generous: every CPU in the lab is emulated).
pub const HANG: Duration = Duration::from_secs(300);

/// Runs `fut`, failing with "`what` hung" after [`HANG`].
pub async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> Result<T, Failed> {
    tokio::time::timeout(HANG, fut)
        .await
        .map_err(|_| Failed::from(format!("{what} hung for more than {HANG:?}")))
}

/// Polls `cond` every 50 ms until it holds, for at most [`HANG`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) -> Result<(), Failed> {
    bounded(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// A private copy of the test rootfs (busybox and its links), so that a
/// case can inspect what a dead guest left in its filesystem and VMs
/// running at once share nothing. Removed with the returned directory.
pub fn private_rootfs() -> Result<(tempfile::TempDir, PathBuf), Failed> {
    let dir = tempfile::tempdir()?;
    let copy = dir.path().join("rootfs");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(rootfs())
        .arg(&copy)
        .status()?;
    check(status.success(), || format!("cp -a rootfs: {status}"))?;
    std::fs::create_dir_all(copy.join("tmp"))?;
    Ok((dir, copy))
}

/// What a VM leaves to check once it is gone: its runner and its private
/// socket directory.
pub struct Leftovers {
    runner: u32,
    dir: PathBuf,
}

impl Leftovers {
    /// Notes `vm`'s runner pid and socket directory.
    pub fn of(vm: &Vm) -> Self {
        let dir = vm
            .runner_log_path()
            .parent()
            .expect("the runner log lives in the socket dir")
            .to_owned();
        Self {
            runner: vm.runner_pid(),
            dir,
        }
    }

    /// The VM's private socket directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// After the VM's handle is dropped: the runner is reaped (no process,
    /// no zombie) and the socket directory is gone.
    pub async fn check_gone(&self) -> Result<(), Failed> {
        let proc_dir = PathBuf::from(format!("/proc/{}", self.runner));
        wait_until("the runner's exit", || !proc_dir.exists()).await?;
        check(!self.dir.exists(), || {
            format!("the socket dir {:?} is still there", self.dir)
        })
    }
}

/// Shuts `vm` down, checks its exit status 0, and that it left nothing.
pub async fn shut_down_cleanly(vm: Vm) -> Result<(), Failed> {
    let left = Leftovers::of(&vm);
    let status = vm.shutdown(HANG).await.map_err(chain)?;
    check(status.code() == Some(0), || format!("shutdown: {status:?}"))?;
    left.check_gone().await
}

/// Names in `dir` that start with `prefix`.
pub fn names_starting(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Size of the largest file in `dir` whose name starts with `prefix`.
pub fn largest_starting(dir: &Path, prefix: &str) -> u64 {
    names_starting(dir, prefix)
        .iter()
        .filter_map(|n| std::fs::symlink_metadata(dir.join(n)).ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

/// Writes `mib` MiB of non-repeating data to `path`: one pseudo-random
/// MiB, each copy stamped with its index so that a misplaced chunk changes
/// the checksum. Cheap enough for an emulated CPU.
pub fn write_big_file(path: &Path, mib: usize) -> Result<(), Failed> {
    let mut block = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in block.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let mut file = File::create(path)?;
    for i in 0..mib as u64 {
        block[..8].copy_from_slice(&i.to_le_bytes());
        file.write_all(&block)?;
    }
    file.sync_all()?;
    Ok(())
}

/// The first whitespace-separated word of some output.
pub fn first_word(bytes: &[u8]) -> String {
    text(bytes)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned()
}
