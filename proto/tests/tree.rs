//! The tree sender and the hardened receiver, on the local filesystem.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use krunbox_proto::tree::{CopyPlan, TreeLimits, TreeReceiver};
use krunbox_proto::TreeEntry;

fn send(src: &Path, rx: &mut TreeReceiver) {
    let plan = CopyPlan::walk(src).unwrap();
    for item in &plan.items {
        let (entry, file) = item.open().unwrap();
        rx.entry(&entry).unwrap();
        if let Some(mut file) = file {
            let mut buf = Vec::new();
            file.read_to_end(&mut buf).unwrap();
            for chunk in buf.chunks(7) {
                rx.data(chunk).unwrap();
            }
            rx.end_file().unwrap();
        }
    }
    assert!(rx.entry(&TreeEntry::End).unwrap());
}

fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for item in CopyPlan::walk(dir).unwrap().items {
        let meta = fs::symlink_metadata(&item.source).unwrap();
        let extra = if meta.is_file() {
            fs::read_to_string(&item.source).unwrap()
        } else {
            String::new()
        };
        out.push(format!(
            "{} {:?} {:o} {extra}",
            item.rel,
            item.kind,
            meta.permissions().mode() & 0o7777
        ));
    }
    out
}

#[test]
fn tree_round_trip_keeps_modes_symlinks_and_empty_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("a/b")).unwrap();
    fs::create_dir(src.join("empty")).unwrap();
    fs::write(src.join("a/b/f.txt"), "hello").unwrap();
    fs::write(src.join("x.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(src.join("x.sh"), fs::Permissions::from_mode(0o751)).unwrap();
    fs::set_permissions(src.join("a"), fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("a/b/f.txt", src.join("link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.join("abs")).unwrap();

    let dest = tmp.path().join("dest");
    let mut rx = TreeReceiver::new(&dest, TreeLimits::default());
    send(&src, &mut rx);
    rx.finish().unwrap();
    assert_eq!(listing(&src)[1..], listing(&dest)[1..]);
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        2,
        "no staging left"
    );

    // Copy again onto the existing directory: merged, files replaced.
    fs::write(src.join("x.sh"), "v2").unwrap();
    let mut rx = TreeReceiver::new(&dest, TreeLimits::default());
    send(&src, &mut rx);
    rx.finish().unwrap();
    assert_eq!(fs::read_to_string(dest.join("x.sh")).unwrap(), "v2");
}

#[test]
fn single_file_replaces_destination_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("f");
    fs::write(&src, "new").unwrap();
    let dest = tmp.path().join("g");
    fs::write(&dest, "old").unwrap();
    let mut rx = TreeReceiver::new(&dest, TreeLimits::default());
    send(&src, &mut rx);
    rx.finish().unwrap();
    assert_eq!(fs::read_to_string(&dest).unwrap(), "new");
}

fn rejects(entries: &[TreeEntry]) -> krunbox_proto::tree::TreeError {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("d");
    let mut rx = TreeReceiver::new(&dest, TreeLimits::default());
    let mut result = Ok(false);
    for e in entries {
        result = rx.entry(e);
        if result.is_err() {
            break;
        }
    }
    drop(rx);
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0, "nothing left");
    result.unwrap_err()
}

fn dir(path: &str) -> TreeEntry {
    TreeEntry::Dir {
        path: path.into(),
        mode: 0o755,
    }
}

fn file(path: &str) -> TreeEntry {
    TreeEntry::File {
        path: path.into(),
        mode: 0o644,
        size: 0,
    }
}

#[test]
fn escapes_are_rejected_and_leave_nothing() {
    rejects(&[dir(""), file("../x")]);
    rejects(&[dir(""), file("/etc/x")]);
    rejects(&[file("a")]);
    rejects(&[file(""), file("a")]);
    rejects(&[dir(""), file("missing/a")]);
    // A file below a symlink the sender created must not be followed.
    let link = TreeEntry::Symlink {
        path: "l".into(),
        target: "/tmp".into(),
    };
    rejects(&[dir(""), link.clone(), file("l/x")]);
    rejects(&[dir(""), link, dir("l")]);
}

#[test]
fn wrong_sizes_and_partial_files_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("d");
    let mut rx = TreeReceiver::new(&dest, TreeLimits::default());
    rx.entry(&TreeEntry::File {
        path: "".into(),
        mode: 0o644,
        size: 4,
    })
    .unwrap();
    assert!(rx.data(b"12345").is_err());
    rx.data(b"12").unwrap();
    assert!(rx.end_file().is_err());
    drop(rx);
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);

    let limits = TreeLimits {
        max_entries: 2,
        ..TreeLimits::default()
    };
    let mut rx = TreeReceiver::new(&dest, limits);
    rx.entry(&dir("")).unwrap();
    rx.entry(&dir("a")).unwrap();
    assert!(rx.entry(&dir("b")).is_err());
    drop(rx);

    let limits = TreeLimits {
        max_dir_path_bytes: 300,
        ..TreeLimits::default()
    };
    let mut rx = TreeReceiver::new(&dest, limits);
    rx.entry(&dir("")).unwrap();
    assert!(rx.entry(&dir(&"a".repeat(250))).is_err());
}

#[test]
fn setuid_bits_are_masked() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("d");
    let limits = TreeLimits {
        mode_mask: 0o1777,
        ..TreeLimits::default()
    };
    let mut rx = TreeReceiver::new(&dest, limits);
    rx.entry(&TreeEntry::File {
        path: "".into(),
        mode: 0o4755,
        size: 0,
    })
    .unwrap();
    rx.end_file().unwrap();
    rx.entry(&TreeEntry::End).unwrap();
    rx.finish().unwrap();
    let mode = fs::metadata(&dest).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755);
}
