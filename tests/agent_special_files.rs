//! Copies of trees holding what is not a plain file, directory or symlink:
//! fifos, hard links, names that are not UTF-8, sockets and device nodes;
//! with the agent as a host process ("guest" paths are in a temporary
//! dir).

mod agent_support;

use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use agent_support::{listing, TestAgent};
use krunbox::client::{ClientError, CopyOptions, SkipReason, SkippedPath};

/// A name that is not UTF-8 (`café` in Latin-1).
const LATIN1: &[u8] = b"caf\xe9";

fn latin1() -> &'static OsStr {
    OsStr::from_bytes(LATIN1)
}

fn mkfifo(path: &Path, mode: u32) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A tree with a fifo (mode 0640), a hard-linked pair (`a/one`,
/// `b/two`), a directory and a file whose names are not UTF-8, and a
/// symlink to the latter.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("a")).unwrap();
    fs::create_dir_all(root.join("b")).unwrap();
    fs::write(root.join("a/one"), "linked").unwrap();
    fs::set_permissions(root.join("a/one"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::hard_link(root.join("a/one"), root.join("b/two")).unwrap();
    mkfifo(&root.join("pipe"), 0o640);
    let odd_dir = root.join(latin1());
    fs::create_dir(&odd_dir).unwrap();
    fs::write(odd_dir.join(latin1()), "bytes").unwrap();
    std::os::unix::fs::symlink(Path::new(latin1()).join(latin1()), root.join("to-odd")).unwrap();
}

/// Adds a unix socket (`sock`) to `root`; the listener must stay alive
/// only while it is bound, the socket file stays.
fn add_socket(root: &Path) -> PathBuf {
    let sock = root.join("sock");
    drop(UnixListener::bind(&sock).unwrap());
    sock
}

fn inode(path: &Path) -> (u64, u64) {
    let meta = fs::symlink_metadata(path).unwrap();
    (meta.dev(), meta.ino())
}

/// Checks what `make_tree` made arrived as it was at `dest` (and nothing
/// that was skipped).
fn check_copy(src: &Path, dest: &Path) {
    let mut sent = listing(src);
    sent.retain(|item| !item.contains(" Skipped("));
    assert_eq!(sent[1..], listing(dest)[1..]);
    assert_eq!(
        inode(&dest.join("a/one")),
        inode(&dest.join("b/two")),
        "the hard-linked pair is one file"
    );
    assert_eq!(fs::metadata(dest.join("a/one")).unwrap().nlink(), 2);
    let pipe = fs::symlink_metadata(dest.join("pipe")).unwrap();
    assert!(pipe.file_type().is_fifo());
    assert_eq!(pipe.mode() & 0o7777, 0o640);
    let odd = dest.join(latin1()).join(latin1());
    assert_eq!(fs::read_to_string(odd).unwrap(), "bytes");
    assert_eq!(
        fs::read_link(dest.join("to-odd")).unwrap(),
        Path::new(latin1()).join(latin1())
    );
}

/// Names in `dir`, except the agent's sockets.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".sock"))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn fifos_hard_links_and_byte_names_are_copied_both_ways() {
    let agent = TestAgent::start().await;
    let src = agent.path("host-tree");
    make_tree(&src);
    let guest = agent.guest("guest/tree");
    let stats = agent.client.copy_in(&src, &guest).await.unwrap();
    check_copy(&src, Path::new(&guest));
    assert_eq!(stats.entries, listing(&src).len() as u64);
    assert_eq!(stats.bytes, 6 + 5, "a hard link's bytes are sent once");
    assert!(stats.skipped.is_empty());

    let back = agent.path("back");
    let stats = agent.client.copy_out(&guest, &back).await.unwrap();
    check_copy(&src, &back);
    assert_eq!(stats.entries, listing(&src).len() as u64);
    assert!(stats.skipped.is_empty());
    assert_eq!(
        names(agent.dir.path()),
        ["back", "guest", "host-tree"],
        "no staging names left"
    );
}

#[tokio::test]
async fn a_single_fifo_is_copied_both_ways() {
    let agent = TestAgent::start().await;
    let fifo = agent.path("fifo");
    mkfifo(&fifo, 0o604);
    let guest = agent.guest("guest-fifo");
    let stats = agent.client.copy_in(&fifo, &guest).await.unwrap();
    assert_eq!((stats.entries, stats.bytes), (1, 0));
    let back = agent.path("back-fifo");
    agent.client.copy_out(&guest, &back).await.unwrap();
    let meta = fs::symlink_metadata(&back).unwrap();
    assert!(meta.file_type().is_fifo());
    assert_eq!(meta.mode() & 0o7777, 0o604);
}

#[tokio::test]
async fn sockets_are_skipped_and_reported() {
    let agent = TestAgent::start().await;
    let src = agent.path("tree");
    make_tree(&src);
    let sock = add_socket(&src);
    let guest = agent.guest("guest/tree");
    let stats = agent.client.copy_in(&src, &guest).await.unwrap();
    let expected = vec![SkippedPath {
        path: sock.clone(),
        reason: SkipReason::Socket,
    }];
    assert_eq!(stats.skipped, expected);
    assert!(!Path::new(&guest).join("sock").exists());
    check_copy(&src, Path::new(&guest));

    // Copied out of the "guest": reported with the guest path.
    add_socket(Path::new(&guest));
    let back = agent.path("back");
    let stats = agent.client.copy_out(&guest, &back).await.unwrap();
    assert_eq!(
        stats.skipped,
        vec![SkippedPath {
            path: Path::new(&guest).join("sock"),
            reason: SkipReason::Socket,
        }]
    );
    assert!(fs::symlink_metadata(back.join("sock")).is_err());
    check_copy(&src, &back);
}

#[tokio::test]
async fn strict_copies_fail_naming_every_socket_and_leave_nothing() {
    let agent = TestAgent::start().await;
    let src = agent.path("tree");
    make_tree(&src);
    add_socket(&src);
    let inner = src.join(latin1()).join("inner.sock");
    drop(UnixListener::bind(&inner).unwrap());

    let guest = agent.guest("guest/tree");
    let err = agent
        .client
        .copy_in_with(&src, &guest, &CopyOptions::strict())
        .await
        .unwrap_err();
    let ClientError::Uncopyable { skipped, .. } = &err else {
        panic!("{err:?}");
    };
    let paths: Vec<_> = skipped.iter().map(|s| s.path.clone()).collect();
    // In tree order: names sorted as bytes.
    assert_eq!(paths, [inner.clone(), src.join("sock")]);
    assert_eq!(err.io_kind(), std::io::ErrorKind::Unsupported);
    assert!(!agent.path("guest").exists(), "nothing sent");

    // Copy the tree in without the sockets, then add them in the "guest".
    let plain = agent.path("plain");
    make_tree(&plain);
    agent.client.copy_in(&plain, &guest).await.unwrap();
    add_socket(Path::new(&guest));
    let guest_inner = Path::new(&guest).join(latin1()).join("inner.sock");
    drop(UnixListener::bind(&guest_inner).unwrap());

    let out = agent.path("out");
    fs::create_dir(&out).unwrap();
    let dest = out.join("dest");
    let err = agent
        .client
        .copy_out_with(&guest, &dest, &CopyOptions::strict())
        .await
        .unwrap_err();
    let ClientError::Uncopyable { skipped, .. } = &err else {
        panic!("{err:?}");
    };
    let paths: Vec<_> = skipped.iter().map(|s| s.path.clone()).collect();
    assert_eq!(paths, [guest_inner, Path::new(&guest).join("sock")]);
    assert!(names(&out).is_empty(), "left behind: {:?}", names(&out));
    assert!(
        err.to_string().contains("2 paths cannot be copied"),
        "{err}"
    );
}

/// Device nodes need privilege to create; where this test may make one,
/// it is skipped and reported like a socket.
#[tokio::test]
async fn device_nodes_are_skipped_when_they_can_be_made() {
    let agent = TestAgent::start().await;
    let src = agent.path("tree");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), "f").unwrap();
    let null = src.join("null");
    let c = CString::new(null.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    let made = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    if made != 0 {
        eprintln!("cannot make a device node here; skipping");
        return;
    }
    let back = agent.path("back");
    let stats = agent
        .client
        .copy_out(src.to_str().unwrap(), &back)
        .await
        .unwrap();
    assert_eq!(
        stats.skipped,
        vec![SkippedPath {
            path: null,
            reason: SkipReason::CharDevice,
        }]
    );
    assert_eq!(fs::read_to_string(back.join("f")).unwrap(), "f");
    assert!(fs::symlink_metadata(back.join("null")).is_err());
}
