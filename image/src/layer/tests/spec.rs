//! What the OCI layer spec asks for: contents, modes, owners and times,
//! replacement, whiteouts and opaque directories, links, symlinked parents
//! (merged `/usr`), long names, compression, special files.

use std::io::Write;
use std::os::unix::fs::FileTypeExt;

use super::*;

#[test]
fn files_and_directories_get_content_modes_and_times() {
    let sb = Sandbox::new();
    let applied = sb.apply_ok(
        Layer::new()
            .dir("usr/", 0o755)
            .file("usr/bin/sudo", b"#!/bin/true\n", 0o4755)
            .file("usr/bin/wall", b"w", 0o2755)
            .dir("tmp/", 0o1777)
            .dir("srv/", 0o2750)
            .file("etc/shadow", b"root:*:1::::::\n", 0o640),
    );
    assert_eq!(applied.entries, 6);
    assert_eq!(applied.bytes, 12 + 1 + 15);
    assert!(applied.skipped.is_empty());
    assert_eq!(sb.read("usr/bin/sudo"), "#!/bin/true\n");
    assert_eq!(sb.mode("usr/bin/sudo"), 0o4755);
    assert_eq!(sb.mode("usr/bin/wall"), 0o2755);
    assert_eq!(sb.mode("tmp"), 0o1777);
    assert_eq!(sb.mode("srv"), 0o2750);
    assert_eq!(sb.mode("etc/shadow"), 0o640);
    // Parents the layer does not list are made 0755.
    assert_eq!(sb.mode("usr/bin"), 0o755);
    assert_eq!(sb.mode("etc"), 0o755);
    // Directory times are set after their contents were written.
    assert_eq!(sb.meta("usr").mtime(), MTIME as i64);
    assert_eq!(sb.meta("usr/bin/sudo").mtime(), MTIME as i64);
    assert_eq!(sb.meta("tmp").mtime(), MTIME as i64);
}

#[test]
fn a_directory_over_a_directory_keeps_its_contents() {
    let sb = Sandbox::new();
    sb.apply_ok(Layer::new().dir("d/", 0o755).file("d/a", b"lower", 0o644));
    sb.apply_ok(Layer::new().dir("d/", 0o700).file("d/b", b"upper", 0o644));
    assert_eq!(sb.read("d/a"), "lower");
    assert_eq!(sb.read("d/b"), "upper");
    assert_eq!(sb.mode("d"), 0o700);
}

#[test]
fn an_entry_replaces_what_is_there() {
    let sb = Sandbox::new();
    sb.apply_ok(
        Layer::new()
            .file("x", b"file", 0o644)
            .dir("y/", 0o755)
            .file("y/z", b"z", 0o644)
            .symlink("s", "x")
            .dir("t/", 0o755),
    );
    sb.apply_ok(
        Layer::new()
            .dir("x/", 0o755)
            .file("y", b"now a file", 0o644)
            .file("s", b"now a file too", 0o644)
            .symlink("t", "x"),
    );
    assert!(sb.meta("x").is_dir());
    assert_eq!(sb.read("y"), "now a file");
    assert_eq!(sb.read("s"), "now a file too");
    assert!(sb.meta("t").file_type().is_symlink());
    assert_eq!(fs::read_link(sb.path("t")).unwrap(), Path::new("x"));
}

#[test]
fn whiteouts_remove_entries_of_lower_layers() {
    let sb = Sandbox::new();
    sb.apply_ok(
        Layer::new()
            .file("a", b"a", 0o644)
            .file("d/x", b"x", 0o644)
            .file("d/y", b"y", 0o644)
            .file("gone/deep/er/f", b"f", 0o644)
            .symlink("ln", "/d"),
    );
    let applied = sb.apply_ok(
        Layer::new()
            .whiteout(".wh.a")
            .whiteout("d/.wh.x")
            .whiteout(".wh.gone")
            .whiteout(".wh.ln")
            .whiteout(".wh.absent")
            .whiteout("nodir/.wh.absent"),
    );
    assert_eq!(applied.entries, 6);
    assert!(!sb.exists("a"));
    assert!(!sb.exists("d/x"));
    assert_eq!(sb.read("d/y"), "y");
    assert!(!sb.exists("gone"));
    assert!(!sb.exists("ln"));
    // Whiteouts create nothing, not even their directory.
    assert!(!sb.exists(".wh.a"));
    assert!(!sb.exists("nodir"));
}

#[test]
fn whiteouts_leave_entries_of_their_own_layer() {
    let sb = Sandbox::new();
    sb.apply_ok(
        Layer::new()
            .file("n", b"lower", 0o644)
            .file("d/lower", b"", 0o644),
    );
    sb.apply_ok(
        Layer::new()
            .file("n", b"upper", 0o644)
            .whiteout(".wh.n")
            .file("d/upper", b"u", 0o644)
            .whiteout(".wh.d"),
    );
    assert_eq!(sb.read("n"), "upper");
    assert_eq!(sb.read("d/upper"), "u");
    assert!(!sb.exists("d/lower"));
}

fn opaque_lower(sb: &Sandbox) {
    sb.apply_ok(
        Layer::new()
            .dir("d/", 0o755)
            .file("d/old1", b"", 0o644)
            .file("d/sub/old2", b"", 0o644)
            .file("d/lowerdir/old3", b"", 0o644)
            .file("other/kept", b"", 0o644),
    );
}

fn assert_opaque_applied(sb: &Sandbox) {
    assert_eq!(sb.read("d/new"), "new");
    assert_eq!(sb.read("d/sub/new2"), "new2");
    assert!(!sb.exists("d/old1"));
    assert!(!sb.exists("d/sub/old2"));
    assert!(!sb.exists("d/lowerdir"));
    assert!(sb.exists("other/kept"));
    assert_eq!(sb.mode("d"), 0o750);
}

#[test]
fn opaque_whiteout_first_removes_lower_children() {
    let sb = Sandbox::new();
    opaque_lower(&sb);
    sb.apply_ok(
        Layer::new()
            .dir("d/", 0o750)
            .whiteout("d/.wh..wh..opq")
            .file("d/new", b"new", 0o644)
            .file("d/sub/new2", b"new2", 0o644),
    );
    assert_opaque_applied(&sb);
}

#[test]
fn opaque_whiteout_last_keeps_its_layers_children() {
    let sb = Sandbox::new();
    opaque_lower(&sb);
    sb.apply_ok(
        Layer::new()
            .dir("d/", 0o750)
            .file("d/new", b"new", 0o644)
            .dir("d/sub/", 0o755)
            .file("d/sub/new2", b"new2", 0o644)
            .whiteout("d/.wh..wh..opq"),
    );
    assert_opaque_applied(&sb);
}

#[test]
fn opaque_whiteout_without_its_directory_entry() {
    let sb = Sandbox::new();
    opaque_lower(&sb);
    sb.apply_ok(Layer::new().whiteout("d/.wh..wh..opq"));
    assert!(sb.meta("d").is_dir());
    assert_eq!(fs::read_dir(sb.path("d")).unwrap().count(), 0);
    assert!(sb.exists("other/kept"));
}

#[test]
fn hard_links_share_the_inode() {
    let sb = Sandbox::new();
    sb.apply_ok(
        Layer::new()
            .file("bin/a", b"same", 0o755)
            .symlink("s", "bin/a"),
    );
    sb.apply_ok(
        Layer::new()
            .hard_link("bin/b", "bin/a")
            .hard_link("c", "./bin/a")
            .raw(b"d", EntryType::Link, b"/bin/a", b"")
            .hard_link("s2", "s"),
    );
    let a = sb.meta("bin/a");
    assert_eq!(a.nlink(), 4);
    for other in ["bin/b", "c", "d"] {
        assert_eq!(sb.meta(other).ino(), a.ino(), "{other}");
    }
    // A hard link to a symlink links the symlink itself.
    assert!(sb.meta("s2").file_type().is_symlink());
    assert_eq!(sb.meta("s2").ino(), sb.meta("s").ino());
}

#[test]
fn hard_links_to_directories_or_nothing_are_refused() {
    let sb = Sandbox::new();
    sb.apply_ok(Layer::new().dir("dir/", 0o755));
    for (name, target) in [
        ("l1", "dir"),
        ("l2", "missing"),
        ("l3", "nodir/missing"),
        ("l4", "."),
    ] {
        let layer = Layer::new().hard_link(name, target).bytes();
        let err = sb.apply(&layer).unwrap_err();
        assert!(
            matches!(err, LayerError::BadEntry { .. }),
            "{target}: {err:?}"
        );
        assert!(!sb.exists(name));
    }
    let layer = Layer::new()
        .file("f", b"", 0o644)
        .hard_link("f", "f")
        .bytes();
    assert!(matches!(sb.apply(&layer), Err(LayerError::BadEntry { .. })));
    sb.assert_outside_untouched();
}

#[test]
fn symlinks_are_stored_verbatim() {
    let sb = Sandbox::new();
    let long_target = format!("/opt/{}/lib.so", "t".repeat(150));
    sb.apply_ok(
        Layer::new()
            .symlink("abs", "/etc/passwd")
            .symlink("rel", "../../x")
            .symlink("dangling", "nowhere/at/all")
            .symlink("long", &long_target),
    );
    let target = |rel| fs::read_link(sb.path(rel)).unwrap();
    assert_eq!(target("abs"), Path::new("/etc/passwd"));
    assert_eq!(target("rel"), Path::new("../../x"));
    assert_eq!(target("dangling"), Path::new("nowhere/at/all"));
    assert_eq!(target("long"), Path::new(&long_target));
    assert_eq!(sb.meta("abs").mtime(), MTIME as i64);
}

#[test]
fn merged_usr_symlinks_are_followed_inside_the_root() {
    let sb = Sandbox::new();
    sb.apply_ok(
        Layer::new()
            .dir("usr/", 0o755)
            .dir("usr/lib/", 0o755)
            .dir("usr/bin/", 0o755)
            .file("usr/lib/old.so", b"", 0o644)
            .symlink("lib", "usr/lib")
            .symlink("bin", "/usr/bin")
            .symlink("lib64", "./usr/lib/../lib"),
    );
    sb.apply_ok(
        Layer::new()
            .file("lib/x86_64-linux-gnu/libfoo.so.1", b"elf", 0o644)
            .hard_link(
                "lib/x86_64-linux-gnu/libfoo.so",
                "lib/x86_64-linux-gnu/libfoo.so.1",
            )
            .file("bin/krunbox-layer-test", b"sh", 0o755)
            .file("lib64/ld.so", b"ld", 0o755)
            .whiteout("lib/.wh.old.so"),
    );
    assert_eq!(sb.read("usr/lib/x86_64-linux-gnu/libfoo.so.1"), "elf");
    assert_eq!(sb.meta("usr/lib/x86_64-linux-gnu/libfoo.so").nlink(), 2);
    assert_eq!(sb.read("usr/bin/krunbox-layer-test"), "sh");
    assert_eq!(sb.read("usr/lib/ld.so"), "ld");
    assert!(!sb.exists("usr/lib/old.so"));
    for link in ["lib", "bin", "lib64"] {
        assert!(sb.meta(link).file_type().is_symlink(), "{link}");
    }
}

#[test]
fn long_names_gnu_and_pax() {
    let sb = Sandbox::new();
    let gnu_path = format!("{}/{}", "d".repeat(120), "f".repeat(120));
    let pax_path = format!("p/{}", "q".repeat(200));
    let layer = Layer::new()
        .file(&gnu_path, b"gnu", 0o644)
        .hard_link("gnu-link", &gnu_path)
        .pax(&[("path", pax_path.as_bytes()), ("mtime", b"1700000000.5")])
        .file("short-name-in-header", b"pax", 0o600);
    sb.apply_ok(layer);
    assert_eq!(sb.read(&gnu_path), "gnu");
    assert_eq!(sb.meta("gnu-link").ino(), sb.meta(&gnu_path).ino());
    assert_eq!(sb.read(&pax_path), "pax");
    assert_eq!(sb.mode(&pax_path), 0o600);
    assert!(!sb.exists("short-name-in-header"));
}

fn compressed_layer() -> Vec<u8> {
    Layer::new()
        .dir("etc/", 0o755)
        .file("etc/os-release", b"ID=krunbox\n", 0o644)
        .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
        .whiteout("etc/.wh.motd")
        .bytes()
}

#[test]
fn gzip_and_zstd_round_trip() {
    let tar = compressed_layer();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&tar).unwrap();
    let gzip = gzip.finish().unwrap();
    let zstd = zstd::encode_all(&tar[..], 3).unwrap();
    for (bytes, expected) in [
        (&gzip, Compression::Gzip),
        (&zstd, Compression::Zstd),
        (&tar, Compression::None),
    ] {
        let compression = Compression::sniff(&bytes[..8]);
        assert_eq!(compression, expected);
        let sb = Sandbox::new();
        let reader = decompressed(compression, &bytes[..]).unwrap();
        let applied = apply(&sb.root, reader, &ApplyOptions::default()).unwrap();
        assert_eq!(applied.entries, 4);
        assert_eq!(sb.read("etc/os-release"), "ID=krunbox\n");
    }
}

#[test]
fn media_types_name_their_compression() {
    let oci = "application/vnd.oci.image.layer.v1.tar";
    assert_eq!(Compression::from_media_type(oci), Some(Compression::None));
    let gzip = format!("{oci}+gzip");
    assert_eq!(Compression::from_media_type(&gzip), Some(Compression::Gzip));
    let zstd = format!("{oci}+zstd");
    assert_eq!(Compression::from_media_type(&zstd), Some(Compression::Zstd));
    let docker = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    assert_eq!(
        Compression::from_media_type(docker),
        Some(Compression::Gzip)
    );
    let config = "application/vnd.oci.image.config.v1+json";
    assert_eq!(Compression::from_media_type(config), None);
    assert_eq!(Compression::sniff(b""), Compression::None);
}

#[test]
fn fifos_are_made_and_device_nodes_need_root() {
    let sb = Sandbox::new();
    let layer = Layer::new()
        .special("run/fifo", EntryType::Fifo, 0o620, (0, 0))
        .special("dev/null", EntryType::Char, 0o666, (1, 3))
        .special("dev/loop0", EntryType::Block, 0o660, (7, 0))
        .bytes();
    let options = ApplyOptions {
        keep_owners: false,
        ..ApplyOptions::default()
    };
    let applied = apply(&sb.root, &layer[..], &options).unwrap();
    assert!(sb.meta("run/fifo").file_type().is_fifo());
    assert_eq!(sb.mode("run/fifo"), 0o620);
    assert_eq!(applied.entries, 1);
    let skipped: Vec<_> = applied
        .skipped
        .iter()
        .map(|s| (s.path.to_str().unwrap(), s.reason))
        .collect();
    assert_eq!(
        skipped,
        [
            ("dev/null", "device node (needs root)"),
            ("dev/loop0", "device node (needs root)")
        ]
    );
    assert!(!sb.exists("dev/null"));
    if is_root() {
        let sb = Sandbox::new();
        let applied = sb.apply(&layer).unwrap();
        assert!(applied.skipped.is_empty());
        let null = sb.meta("dev/null");
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
        assert!(sb.meta("dev/loop0").file_type().is_block_device());
        assert_eq!(sb.mode("dev/null"), 0o666);
    }
}

#[test]
fn owners_are_kept_when_asked() {
    let sb = Sandbox::new();
    let layer = Layer::new().owned_file("f", 1234, 5678).bytes();
    let mine = ApplyOptions {
        keep_owners: false,
        ..ApplyOptions::default()
    };
    apply(&sb.root, &layer[..], &mine).unwrap();
    assert_eq!(sb.meta("f").uid(), nix::unistd::geteuid().as_raw());
    assert_eq!(sb.mode("f"), 0o4755);
    if is_root() {
        let kept = ApplyOptions {
            keep_owners: true,
            ..ApplyOptions::default()
        };
        apply(&sb.root, &layer[..], &kept).unwrap();
        assert_eq!((sb.meta("f").uid(), sb.meta("f").gid()), (1234, 5678));
        // chown clears setuid; the mode is set after it.
        assert_eq!(sb.mode("f"), 0o4755);
    }
}

#[test]
fn the_root_entry_sets_the_roots_mode() {
    let sb = Sandbox::new();
    sb.apply_ok(Layer::new().dir("./", 0o751).file("a", b"", 0o644));
    assert_eq!(fs::metadata(&sb.root).unwrap().mode() & 0o7777, 0o751);
    let layer = Layer::new()
        .raw(b"./", EntryType::Symlink, b"/", b"")
        .bytes();
    assert!(matches!(sb.apply(&layer), Err(LayerError::BadEntry { .. })));
    sb.assert_outside_untouched();
}

#[test]
fn read_only_directories_of_lower_layers_are_filled_and_kept_read_only() {
    let sb = Sandbox::new();
    sb.apply_ok(
        Layer::new()
            .dir("ro/", 0o555)
            .dir("ro/sub/", 0o500)
            .file("ro/sub/f", b"", 0o444)
            .dir("gone/", 0o755)
            .dir("gone/locked/", 0o000),
    );
    assert_eq!(sb.mode("ro"), 0o555);
    assert_eq!(sb.mode("ro/sub"), 0o500);
    sb.apply_ok(
        Layer::new()
            .file("ro/sub/new", b"n", 0o644)
            .whiteout("ro/sub/.wh.f")
            .whiteout(".wh.gone"),
    );
    assert_eq!(sb.read("ro/sub/new"), "n");
    assert!(!sb.exists("ro/sub/f"));
    assert!(!sb.exists("gone"));
    assert_eq!(sb.mode("ro"), 0o555);
    assert_eq!(sb.mode("ro/sub"), 0o500);
}

#[test]
fn other_entry_types_are_skipped_or_ignored() {
    let sb = Sandbox::new();
    let applied = sb.apply_ok(
        Layer::new()
            .raw(b"volume", EntryType::new(b'V'), b"", b"")
            .raw(b"weird", EntryType::new(b'X'), b"", b"data")
            .whiteout(".wh..wh.plnk/123")
            .whiteout(".wh..wh.aufs")
            .raw(b"global", EntryType::XGlobalHeader, b"", b"8 a=bcd\n")
            .raw(b"olddir/", EntryType::Regular, b"", b"")
            .file("after", b"ok", 0o644),
    );
    let reasons: Vec<_> = applied.skipped.iter().map(|s| s.reason).collect();
    assert_eq!(
        reasons,
        [
            "unknown entry type",
            "unknown entry type",
            "AUFS metadata (.wh..wh.*)",
            "AUFS metadata (.wh..wh.*)"
        ]
    );
    assert!(!sb.exists("weird") && !sb.exists("volume") && !sb.exists("global"));
    assert!(sb.meta("olddir").is_dir());
    assert_eq!(sb.read("after"), "ok");
    assert_eq!(applied.entries, 2);
}
