//! Staging names: the hidden siblings a copy writes before renaming into
//! place, and the sweep that removes those whose writer is gone.
//!
//! A name is `.NAME.krunbox-BOOT-PID-N-NANOS`: the destination's name, the
//! first 8 hex digits of the kernel's boot id, the writer's pid, a counter
//! and the clock's nanoseconds. A writer that dies with its machine (a
//! guest powered off or panicking mid-copy) cannot remove its staging
//! name; the next copy to the same destination does, once the name's boot
//! is over or its pid is gone.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The running kernel's boot id, shortened (`-` where there is none).
fn boot_id() -> &'static str {
    static BOOT: OnceLock<String> = OnceLock::new();
    BOOT.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|id| id.chars().filter(char::is_ascii_hexdigit).take(8).collect())
            .filter(|id: &String| id.len() == 8)
            .unwrap_or_else(|| "-".into())
    })
}

fn prefix(dest: &Path) -> String {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into());
    format!(".{name}.krunbox-")
}

/// A fresh hidden name next to `dest`: `.NAME.krunbox-BOOT-PID-N-NANOS`.
pub fn temp_sibling(dest: &Path) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    dest.with_file_name(format!("{}{}-{pid}-{n}-{nanos}", prefix(dest), boot_id()))
}

/// Whether the writer of a staging name (its part after the prefix) is
/// gone: another boot, or on this boot a pid that no longer runs.
fn writer_gone(rest: &str) -> bool {
    let mut parts = rest.split('-');
    let (Some(boot), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<i32>() else {
        return false;
    };
    if boot != boot_id() {
        return boot_id() != "-";
    }
    if pid == std::process::id() as i32 || pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    !alive
}

/// Removes the staging siblings of `dest` whose writers are gone. Errors
/// are ignored: this is cleanup, and a name that cannot be removed now is
/// tried again on the next copy.
pub fn sweep_stale(dest: &Path) {
    let prefix = prefix(dest);
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        if writer_gone(rest) {
            remove_tree(&entry.path());
        }
    }
}

/// Removes a file, symlink or directory tree (read-only directories in it
/// made writable first); never follows symlinks.
pub(super) fn remove_tree(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        let _ = fs::remove_file(path);
        return;
    }
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            remove_tree(&entry.path());
        }
    }
    let _ = fs::remove_dir(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_gone_writers_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dest");
        let mine = temp_sibling(&dest);
        fs::write(&mine, b"in flight").unwrap();
        let other_boot = dir.path().join(".dest.krunbox-00000000-1-0-0");
        fs::create_dir(&other_boot).unwrap();
        fs::write(other_boot.join("f"), b"x").unwrap();
        fs::set_permissions(&other_boot, fs::Permissions::from_mode(0o500)).unwrap();
        // A pid far above pid_max never runs.
        let dead_pid = dir
            .path()
            .join(format!(".dest.krunbox-{}-99999999-0-0", boot_id()));
        fs::write(&dead_pid, b"x").unwrap();
        let live_pid = dir
            .path()
            .join(format!(".dest.krunbox-{}-1-0-0", boot_id()));
        fs::write(&live_pid, b"x").unwrap();
        let other_dest = dir.path().join(".other.krunbox-00000000-1-0-0");
        fs::write(&other_dest, b"x").unwrap();
        sweep_stale(&dest);
        assert!(mine.exists(), "this process's staging name was swept");
        assert!(!other_boot.exists());
        assert!(!dead_pid.exists());
        assert!(live_pid.exists(), "pid 1 runs");
        assert!(other_dest.exists(), "another destination's name was swept");
    }
}
