//! The tree sender and the hardened receiver, on the local filesystem.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
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
            item.rel.display(),
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
    rejected(entries, false)
}

/// Feeds `entries` (ending each file at once when `end_files`) until one
/// is refused; checks that nothing was left and returns the refusal.
fn rejected(entries: &[TreeEntry], end_files: bool) -> krunbox_proto::tree::TreeError {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("d");
    let mut rx = TreeReceiver::new(&dest, TreeLimits::default());
    let mut result = Ok(false);
    for e in entries {
        result = rx.entry(e);
        if result.is_err() {
            break;
        }
        if end_files && matches!(e, TreeEntry::File { .. }) {
            rx.end_file().unwrap();
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

fn hard_link(path: &str, target: &[u8]) -> TreeEntry {
    TreeEntry::HardLink {
        path: path.into(),
        target: target.into(),
    }
}

/// A tree that creates `f` (a file), `d` (a directory) and `l` (a symlink
/// to `f`), then the hostile `last`.
fn after_a_few(last: TreeEntry) -> Vec<TreeEntry> {
    vec![
        dir(""),
        dir("d"),
        file("f"),
        TreeEntry::Symlink {
            path: "l".into(),
            target: "f".into(),
        },
        last,
    ]
}

fn rejects_files(entries: &[TreeEntry]) -> krunbox_proto::tree::TreeError {
    rejected(entries, true)
}

#[test]
fn hard_links_only_to_files_of_this_copy() {
    use krunbox_proto::path::PathError;
    use krunbox_proto::tree::TreeError;
    // Never created in this copy.
    let err = rejects_files(&after_a_few(hard_link("h", b"missing")));
    assert!(matches!(err, TreeError::BadHardLink { .. }), "{err:?}");
    // A directory.
    let err = rejects_files(&after_a_few(hard_link("h", b"d")));
    assert!(matches!(err, TreeError::BadHardLink { .. }), "{err:?}");
    // The root directory.
    let err = rejects_files(&after_a_few(hard_link("h", b"")));
    assert!(matches!(err, TreeError::BadHardLink { .. }), "{err:?}");
    // A symlink (to a file of the tree, even).
    let err = rejects_files(&after_a_few(hard_link("h", b"l")));
    assert!(matches!(err, TreeError::BadHardLink { .. }), "{err:?}");
    // Through a symlink.
    let err = rejects_files(&after_a_few(hard_link("h", b"l/f")));
    assert!(matches!(err, TreeError::BadHardLink { .. }), "{err:?}");
    // Escaping the tree.
    let err = rejects_files(&after_a_few(hard_link("h", b"../d/f")));
    assert!(
        matches!(err, TreeError::BadPath(PathError::ParentDir(_))),
        "{err:?}"
    );
    let err = rejects_files(&after_a_few(hard_link("h", b"/etc/passwd")));
    assert!(
        matches!(err, TreeError::BadPath(PathError::Absolute(_))),
        "{err:?}"
    );
    let err = rejects_files(&after_a_few(hard_link("h", b"f\0")));
    assert!(
        matches!(err, TreeError::BadPath(PathError::Nul(_))),
        "{err:?}"
    );
    // As the root, or onto an existing name.
    let err = rejects_files(&[hard_link("", b"f")]);
    assert!(matches!(err, TreeError::BadHardLink { .. }), "{err:?}");
    let err = rejects_files(&after_a_few(hard_link("d", b"f")));
    assert!(matches!(err, TreeError::Io { .. }), "{err:?}");
}

#[test]
fn hard_links_never_reach_files_already_at_the_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("d");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("old"), "outside this copy").unwrap();
    let mut rx = TreeReceiver::new(&dest, TreeLimits::default());
    rx.entry(&dir("")).unwrap();
    let err = rx.entry(&hard_link("h", b"old")).unwrap_err();
    assert!(
        matches!(err, krunbox_proto::tree::TreeError::BadHardLink { .. }),
        "{err:?}"
    );
    drop(rx);
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1, "only d");
    assert_eq!(fs::metadata(dest.join("old")).unwrap().nlink(), 1);
}

#[test]
fn fifos_hard_links_and_byte_names_round_trip() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::FileTypeExt;

    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let odd = OsStr::from_bytes(b"\xff\xfe name");
    fs::create_dir_all(src.join(odd)).unwrap();
    fs::write(src.join(odd).join("f"), "one").unwrap();
    fs::hard_link(src.join(odd).join("f"), src.join("g")).unwrap();
    let fifo = std::ffi::CString::new(src.join("p").as_os_str().as_bytes()).unwrap();
    // SAFETY: `fifo` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    fs::set_permissions(src.join("p"), fs::Permissions::from_mode(0o654)).unwrap();

    let dest = tmp.path().join("dest");
    let mut rx = TreeReceiver::new(&dest, TreeLimits::default());
    send(&src, &mut rx);
    assert!(rx.skipped().is_empty());
    let (entries, bytes) = rx.finish().unwrap();
    assert_eq!((entries, bytes), (5, 3));
    let f = fs::metadata(dest.join(odd).join("f")).unwrap();
    let g = fs::metadata(dest.join("g")).unwrap();
    assert_eq!((f.dev(), f.ino()), (g.dev(), g.ino()));
    let p = fs::symlink_metadata(dest.join("p")).unwrap();
    assert!(p.file_type().is_fifo());
    assert_eq!(p.mode() & 0o7777, 0o654);
}

#[test]
fn skipped_entries_are_listed_and_checked() {
    use krunbox_proto::SkipReason;

    let skipped = |path: &str| TreeEntry::Skipped {
        path: path.into(),
        reason: SkipReason::Socket,
    };
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("d");
    let mut rx = TreeReceiver::new(&dest, TreeLimits::default());
    rx.entry(&dir("")).unwrap();
    rx.entry(&skipped("s")).unwrap();
    rx.entry(&TreeEntry::End).unwrap();
    assert_eq!(rx.skipped().len(), 1);
    assert_eq!(rx.skipped()[0].rel, Path::new("s"));
    assert_eq!(rx.finish().unwrap(), (1, 0));
    assert!(fs::symlink_metadata(dest.join("s")).is_err());

    rejects(&[skipped("")]);
    rejects(&[dir(""), skipped("../s")]);
    rejects(&[dir(""), skipped("missing/s")]);
    // Remembering skipped paths is bounded.
    let limits = TreeLimits {
        max_dir_path_bytes: 1000,
        ..TreeLimits::default()
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut rx = TreeReceiver::new(tmp.path().join("d"), limits);
    rx.entry(&dir("")).unwrap();
    let long = "s".repeat(200);
    let err = (0..10)
        .map(|i| rx.entry(&skipped(&format!("{long}{i}"))))
        .find_map(Result::err);
    assert!(err.is_some(), "ten 200-byte paths fit in 1000 bytes");
}
