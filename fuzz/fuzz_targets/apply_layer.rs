//! The layer applier: the input applied as an uncompressed image layer to
//! a fresh root inside an outer directory that also holds a sentinel file
//! and a sentinel directory. Nothing may panic; whether the applier
//! accepts the layer or returns an error, nothing outside the root may
//! change (everything in the outer directory but the root is listed with
//! its content, mode, link count and times, before and after).
//!
//! Header checksums are fixed up before the layer is applied (walking the
//! headers as tar does), so that the fuzzer spends its time on what the
//! entries say rather than on the checksum the `tar` crate checks.

#![no_main]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use krunbox_image::layer::{apply, ApplyOptions};
use libfuzzer_sys::fuzz_target;

const BLOCK: usize = 512;

/// Sets the checksum of each header found by walking the input as a tar
/// stream: a header, then its content rounded up to a block.
fn fix_checksums(data: &mut [u8]) {
    let mut at = 0;
    while at + BLOCK <= data.len() {
        let header = &mut data[at..at + BLOCK];
        if header.iter().all(|&b| b == 0) {
            return;
        }
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let Some(size) = octal(&header[124..136]) else {
            return;
        };
        let Some(next) = size
            .checked_add(BLOCK as u64 - 1)
            .map(|s| s / BLOCK as u64 * BLOCK as u64)
            .and_then(|s| usize::try_from(s).ok())
            .and_then(|s| (at + BLOCK).checked_add(s))
        else {
            return;
        };
        at = next;
    }
}

/// An octal header field (NUL- or space-terminated).
fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c| c == ' ' || c == '\0');
    u64::from_str_radix(digits, 8).ok()
}

/// Everything under `outer` but `root`: kind, mode, owner, link count,
/// times, content or target.
fn snapshot(outer: &Path, root: &Path) -> BTreeMap<PathBuf, String> {
    let mut seen = BTreeMap::new();
    let mut dirs = vec![outer.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path == root {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            let content = if meta.is_file() {
                fs::read(&path).unwrap()
            } else if meta.file_type().is_symlink() {
                fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                dirs.push(path.clone());
                Vec::new()
            };
            let record = format!(
                "{:o} {}:{} nlink {} mtime {}.{} ctime {}.{} {content:?}",
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.nlink(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
            );
            seen.insert(path, record);
        }
        let meta = fs::symlink_metadata(&dir).unwrap();
        let record = format!(
            "dir {:o} mtime {}.{}",
            meta.mode(),
            meta.mtime(),
            meta.mtime_nsec()
        );
        seen.insert(dir.join("."), record);
    }
    seen
}

fuzz_target!(|data: &[u8]| {
    let mut layer = data.to_vec();
    fix_checksums(&mut layer);
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    fs::create_dir(&root).unwrap();
    fs::write(outer.path().join("sentinel"), "keep me").unwrap();
    fs::create_dir(outer.path().join("sentinel-dir")).unwrap();
    fs::write(outer.path().join("sentinel-dir/victim"), "do not remove").unwrap();
    let before = snapshot(outer.path(), &root);
    let options = ApplyOptions {
        keep_owners: false,
        max_entry_size: 1 << 20,
    };
    let _ = apply(&root, &layer[..], &options);
    assert_eq!(
        snapshot(outer.path(), &root),
        before,
        "the layer changed something outside its root"
    );
    common::unlock(&root);
});
