//! A disk that fills up in the middle of an unpack: `krunbox load` of an
//! image whose tree is bigger than the file system its store is on (a
//! 1 MiB tmpfs, mounted in a mount namespace of this test's own, as root
//! of a user namespace: no privileges needed). The load fails with the
//! cause, and the store is left as it was: no root, nothing in `tmp/`, no
//! name, and an image that fits still loads afterwards.

#[path = "../image/tests/support/mod.rs"]
mod support;

use std::process::Command;

use support::TestImage;

#[test]
fn a_full_disk_during_an_unpack_leaves_the_store_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let arch = krunbox::image::archive::host_platform().1;
    // 4 MiB of zeros: a few KiB gzipped (the blobs fit), 4 MiB unpacked.
    let big = support::tar(&[("big.bin", &vec![0u8; 4 << 20])]);
    let too_big = TestImage::new(vec![big], true, arch, "/bin/true");
    let small = TestImage::new(vec![support::tar(&[("a", b"a\n")])], true, arch, "/a");
    let (big_tar, small_tar) = (dir.path().join("big.tar"), dir.path().join("small.tar"));
    std::fs::write(&big_tar, too_big.legacy_archive(&["kb/big:1"])).unwrap();
    std::fs::write(&small_tar, small.legacy_archive(&["kb/small:1"])).unwrap();
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let script = r#"
        set -u
        mount -t tmpfs -o size=1m tmpfs "$DISK" || exit 99
        "$KB" load -i "$BIG" 2>&1; echo "big: $?"
        echo "roots: $(ls -A "$DISK/store/roots" | wc -l)"
        echo "tmp: $(ls -A "$DISK/store/tmp" | wc -l)"
        echo "names: $("$KB" images -q | wc -l)"
        "$KB" load -q -i "$SMALL" >/dev/null 2>&1; echo "small: $?"
        echo "names after: $("$KB" images -q | wc -l)"
    "#;
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
        .env("DISK", &disk)
        .env("KB", env!("CARGO_BIN_EXE_krunbox"))
        .env("BIG", &big_tar)
        .env("SMALL", &small_tar)
        .env("KRUNBOX_IMAGE_STORE", disk.join("store"))
        .env("KRUNBOX_STATE_DIR", dir.path().join("state"))
        .output()
        .expect("unshare (util-linux) runs");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the namespace with a 1 MiB tmpfs could not be made: {said}"
    );
    assert!(said.contains("No space left on device"), "{said}");
    assert!(said.contains("big: 125\n"), "{said}");
    for line in [
        "roots: 0\n",
        "tmp: 0\n",
        "names: 0\n",
        "small: 0\n",
        "names after: 1\n",
    ] {
        assert!(said.contains(line), "wanted {line:?} in:\n{said}");
    }
}
