//! The guest consoles of the suite's VMs, kept where the harness can read
//! them after the VM is gone, and read for a guest kernel that faulted in
//! its own exception entry code.
//!
//! A VM's console is normally a file in its private directory, removed
//! with its handle before the harness gets control back. Inside the lab
//! the cases' agent VMs write theirs into one directory instead
//! ([`next_path`]), and a [`Marks`] taken when a run of a case starts
//! lets [`Marks::faults`] read what every console gained during that run.
//!
//! **The sign.** Under the lab's emulation a nested guest's kernel has
//! been seen to die like this (a 64 MiB copy, CI of a19b9de):
//!
//! ```text
//! BUG: unable to handle page fault for address: fffffe0000001ff8
//! RIP: 0010:error_entry+0x20/0x130
//! Kernel panic - not syncing: Fatal exception in interrupt
//! ```
//!
//! The kernel faulted while entering its own exception handler, on an
//! address of its CPU entry area, which it keeps mapped at all times: the
//! page walk the emulation did for the guest was wrong. libkrun then ends
//! the VM as a guest panic (exit 0), with no triple fault or emulation
//! failure for KVM's trace to show. Nothing a guest program does, and
//! nothing krunbox's agent or device handling does, can make the kernel
//! fault *inside its entry code*: the kernel's RIP there is the sign, not
//! the panic, which real bugs also produce. So a console line counts when
//! it is a kernel register dump (`RIP: 0010:`) at one of [`ENTRY_CODE`]'s
//! symbols, or a guest double fault (`PANIC: double fault`).
//!
//! A case that writes such a line to `/dev/console` itself could fake the
//! sign; none does, and the hostile-guest cases write their garbage
//! elsewhere.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::evidence::{FaultKind, LabFault};

/// The kernel's exception, interrupt and system call entry and exit code
/// (x86-64, `arch/x86/entry/`): a register dump whose RIP is here shows
/// the kernel faulting on its way into (or out of) a handler.
pub const ENTRY_CODE: [&str; 11] = [
    "error_entry",
    "paranoid_entry",
    "asm_exc_",
    "asm_sysvec_",
    "asm_common_interrupt",
    "entry_SYSCALL_64",
    "native_irq_return_iret",
    "restore_regs_and_return_to_kernel",
    "swapgs_restore_regs_and_return_to_usermode",
    "sync_regs",
    "fixup_bad_iret",
];

/// Where the cases' consoles go inside the lab: a directory of the
/// test process's temporary directory.
pub fn dir() -> PathBuf {
    std::env::temp_dir().join("krunbox-vm-consoles")
}

/// A fresh console path for the next VM a case boots, in [`dir`] (made
/// writable by every user, with the sticky bit, so that a runner that
/// dropped to another user can create its file).
pub fn next_path() -> std::io::Result<PathBuf> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = dir();
    // Made once per process: the first boot's call (again on failure).
    static MADE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut made = MADE.lock().unwrap_or_else(|p| p.into_inner());
    if !*made {
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777))?;
        *made = true;
    }
    drop(made);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Ok(dir.join(format!("{}-{n}.log", std::process::id())))
}

/// How long every console in a directory was when a run started.
#[derive(Debug, Default)]
pub struct Marks {
    dir: Option<PathBuf>,
    lengths: HashMap<PathBuf, u64>,
}

impl Marks {
    /// The lengths of the consoles in `dir` now (none when `dir` is
    /// `None` or unreadable).
    pub fn take(dir: Option<&Path>) -> Self {
        let lengths = dir
            .map(|d| {
                consoles(d)
                    .filter_map(|path| Some((path.metadata().ok()?.len(), path)))
                    .map(|(len, path)| (path, len))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            dir: dir.map(Path::to_owned),
            lengths,
        }
    }

    /// The signs in what each console gained since [`Marks::take`]: the
    /// rest of a console that was there, the whole of one that was not.
    pub fn faults(&self) -> Vec<LabFault> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let mut faults = Vec::new();
        for path in consoles(dir) {
            let from = self.lengths.get(&path).copied().unwrap_or(0);
            let Some(text) = read_from(&path, from) else {
                continue;
            };
            faults.extend(text.lines().filter_map(|line| {
                sign(line).map(|line| LabFault {
                    kind: FaultKind::GuestEntryFault,
                    log: path.clone(),
                    line: line.to_owned(),
                })
            }));
        }
        faults
    }
}

/// The console files in `dir`.
fn consoles(dir: &Path) -> impl Iterator<Item = PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
}

/// What `path` holds past byte `from`, as text; `None` if unreadable.
fn read_from(path: &Path, from: u64) -> Option<String> {
    let mut file = File::open(path).ok()?;
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The line, trimmed, if it shows the sign: a kernel register dump in
/// entry code, or a double fault.
pub fn sign(line: &str) -> Option<&str> {
    let line = line.trim();
    if line.contains("PANIC: double fault") {
        return Some(line);
    }
    let (_, at) = line.split_once("RIP: 0010:")?;
    ENTRY_CODE
        .iter()
        .any(|symbol| at.starts_with(symbol))
        .then_some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_dumps_in_entry_code_are_the_sign() {
        for line in [
            "[   41.207712] RIP: 0010:error_entry+0x20/0x130\r",
            "RIP: 0010:asm_exc_page_fault+0x0/0x30",
            "[    3.1] PANIC: double fault, error_code: 0x0",
        ] {
            assert!(sign(line).is_some(), "{line:?} not taken");
        }
        for line in [
            "[   41.2] RIP: 0010:memcpy_orig+0x10/0x120",
            "[   41.2] Kernel panic - not syncing: Fatal exception in interrupt",
            "[   41.2] BUG: unable to handle page fault for address: fffffe0000001ff8",
            "RIP: 0033:0x7f12 error_entry",
            "krunbox-agent: listening on vsock port 1024",
        ] {
            assert!(sign(line).is_none(), "{line:?} taken");
        }
    }

    #[test]
    fn only_what_consoles_gained_during_the_run_counts() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let old = dir.path().join("1-0.log");
        std::fs::write(&old, "RIP: 0010:error_entry+0x20/0x130\n").expect("a console");
        let marks = Marks::take(Some(dir.path()));
        assert!(marks.faults().is_empty(), "a sign from before the run");
        let mut more = std::fs::read_to_string(&old).expect("the console");
        more.push_str("ok\n");
        std::fs::write(&old, more).expect("the console grows");
        std::fs::write(dir.path().join("1-1.log"), "x\nPANIC: double fault\n")
            .expect("a new console");
        std::fs::write(dir.path().join("notes.txt"), "PANIC: double fault\n")
            .expect("another file");
        let faults = marks.faults();
        assert_eq!(faults.len(), 1, "{faults:?}");
        assert_eq!(faults[0].kind, FaultKind::GuestEntryFault);
        assert!(faults[0].log.ends_with("1-1.log"), "{faults:?}");
        assert!(Marks::take(None).faults().is_empty());
    }
}
