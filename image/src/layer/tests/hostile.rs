//! Hostile layers: each one is applied (or refused) without anything
//! outside the root changing; the sentinel directory beside the root is
//! compared byte for byte, down to link counts and change times.

use std::os::unix::fs::FileTypeExt;

use super::*;

fn assert_escapes(result: Result<Applied, LayerError>) {
    assert!(
        matches!(result, Err(LayerError::Escapes { .. })),
        "{result:?}"
    );
}

#[test]
fn dotdot_paths_are_refused() {
    let sb = Sandbox::new();
    for name in [
        &b"../escape"[..],
        b"a/../../escape",
        b"./../escape",
        b"/../escape",
        b"a/b/../../../sentinel/secret",
        b"..",
    ] {
        let layer = Layer::new()
            .raw(name, EntryType::Regular, b"", b"pwned")
            .bytes();
        assert_escapes(sb.apply(&layer));
        for kind in [EntryType::Directory, EntryType::Symlink, EntryType::Fifo] {
            let layer = Layer::new().raw(name, kind, b"/", b"").bytes();
            assert_escapes(sb.apply(&layer));
        }
    }
    let layer = Layer::new()
        .raw(b"../.wh.sentinel", EntryType::Regular, b"", b"")
        .bytes();
    assert_escapes(sb.apply(&layer));
    let layer = Layer::new()
        .raw(b"../.wh..wh..opq", EntryType::Regular, b"", b"")
        .bytes();
    assert_escapes(sb.apply(&layer));
    assert!(!sb.outer.path().join("escape").exists());
    sb.assert_outside_untouched();
}

#[test]
fn absolute_paths_land_inside_the_root() {
    let sb = Sandbox::new();
    let secret = format!("{}/secret", sb.sentinel_str());
    sb.apply_ok(
        Layer::new()
            .raw(b"/etc/x", EntryType::Regular, b"", b"inside")
            .raw(secret.as_bytes(), EntryType::Regular, b"", b"pwned")
            .raw(b"//etc//y", EntryType::Regular, b"", b"y"),
    );
    assert_eq!(sb.read("etc/x"), "inside");
    assert_eq!(sb.read("etc/y"), "y");
    assert_eq!(sb.read(secret.trim_start_matches('/')), "pwned");
    sb.assert_outside_untouched();
}

#[test]
fn files_through_symlinks_out_of_the_root_land_inside() {
    let sb = Sandbox::new();
    let sentinel = sb.sentinel_str().to_owned();
    sb.apply_ok(
        Layer::new()
            .symlink("slash", "/")
            .symlink("up", "../../..")
            .symlink("abs", &sentinel)
            .symlink("rel", "../sentinel")
            .symlink("chain", "up/up/slash/rel")
            // Written through "/" and "../../.." *to the sentinel's own
            // path*: an applier that followed them would hit the sentinel
            // (and fail the test), never a file of the host.
            .file(&format!("slash{sentinel}/pwned1"), b"1", 0o644)
            .file(&format!("up{sentinel}/pwned2"), b"2", 0o644)
            .file("abs/secret", b"3", 0o644)
            .file("rel/victim", b"4", 0o644)
            .file("chain/sub/inner", b"5", 0o644)
            .dir("rel/sub/", 0o700),
    );
    assert_eq!(sb.read(&format!("{}/pwned1", &sentinel[1..])), "1");
    assert_eq!(sb.read(&format!("{}/pwned2", &sentinel[1..])), "2");
    assert_eq!(sb.read(&format!("{}/secret", &sentinel[1..])), "3");
    assert_eq!(sb.read("sentinel/victim"), "4");
    assert_eq!(sb.read("sentinel/sub/inner"), "5");
    assert_eq!(sb.mode("sentinel/sub"), 0o700);
    sb.assert_outside_untouched();
}

#[test]
fn an_entry_replaces_a_planted_symlink_instead_of_writing_through_it() {
    let sb = Sandbox::new();
    let secret = format!("{}/secret", sb.sentinel_str());
    let sub = format!("{}/sub", sb.sentinel_str());
    sb.apply_ok(
        Layer::new()
            .symlink("file", &secret)
            .symlink("dir", &sub)
            .symlink("fifo", &secret)
            .symlink("link", &secret)
            .symlink("sym", "../sentinel/secret")
            .file("keep", b"k", 0o644),
    );
    sb.apply_ok(
        Layer::new()
            .file("file", b"replaced", 0o666)
            .dir("dir/", 0o700)
            .special("fifo", EntryType::Fifo, 0o600, (0, 0))
            .hard_link("link", "keep")
            .symlink("sym", "elsewhere"),
    );
    assert_eq!(sb.read("file"), "replaced");
    assert!(sb.meta("dir").is_dir());
    assert_eq!(sb.mode("dir"), 0o700);
    assert!(sb.meta("fifo").file_type().is_fifo());
    assert_eq!(sb.meta("link").ino(), sb.meta("keep").ino());
    assert_eq!(
        fs::read_link(sb.path("sym")).unwrap(),
        Path::new("elsewhere")
    );
    sb.assert_outside_untouched();
}

#[test]
fn directory_modes_are_not_set_through_a_symlink_planted_later() {
    let sb = Sandbox::new();
    let sentinel = sb.sentinel_str().to_owned();
    sb.apply_ok(
        Layer::new()
            .dir("d/", 0o700)
            .dir("d/sub/", 0o700)
            .symlink("d", &sentinel),
    );
    assert!(sb.meta("d").file_type().is_symlink());
    sb.assert_outside_untouched();
}

#[test]
fn hard_links_out_of_the_root_are_refused() {
    let sb = Sandbox::new();
    let secret = format!("{}/secret", sb.sentinel_str());
    let layer = Layer::new()
        .raw(b"l", EntryType::Link, b"../../outside", b"")
        .bytes();
    assert!(matches!(
        sb.apply(&layer),
        Err(LayerError::LinkEscapes { .. })
    ));
    let layer = Layer::new()
        .raw(b"l", EntryType::Link, b"../sentinel/secret", b"")
        .bytes();
    assert!(matches!(
        sb.apply(&layer),
        Err(LayerError::LinkEscapes { .. })
    ));
    // An absolute target is a path in the root, where there is no secret.
    let layer = Layer::new().hard_link("l", &secret).bytes();
    assert!(matches!(sb.apply(&layer), Err(LayerError::BadEntry { .. })));
    assert!(!sb.exists("l"));
    sb.assert_outside_untouched();
}

#[test]
fn hard_links_through_symlinks_out_of_the_root_are_refused() {
    let sb = Sandbox::new();
    let sentinel = sb.sentinel_str().to_owned();
    sb.apply_ok(
        Layer::new()
            .symlink("abs", &sentinel)
            .symlink("rel", "../sentinel")
            .symlink("up", &format!("../../../../..{sentinel}/..")),
    );
    for target in [
        "abs/secret",
        "rel/secret",
        "up/secret",
        "up/sentinel/secret",
    ] {
        let layer = Layer::new().hard_link("stolen", target).bytes();
        let result = sb.apply(&layer);
        assert!(
            matches!(result, Err(LayerError::BadEntry { .. })),
            "{target}: {result:?}"
        );
        assert!(!sb.exists("stolen"));
    }
    // A hard link to a symlink that points out links the symlink itself.
    sb.apply_ok(Layer::new().symlink("out", &format!("{sentinel}/secret")));
    sb.apply_ok(Layer::new().hard_link("copy", "out"));
    assert!(sb.meta("copy").file_type().is_symlink());
    sb.assert_outside_untouched();
}

#[test]
fn whiteouts_through_symlinks_out_of_the_root_remove_nothing_outside() {
    let sb = Sandbox::new();
    let sentinel = sb.sentinel_str().to_owned();
    let parent = sb.outer.path().to_str().unwrap().to_owned();
    sb.apply_ok(
        Layer::new()
            .symlink("abs", &sentinel)
            .symlink("rel", "../sentinel")
            .symlink("up", &format!("../../../../..{sentinel}/.."))
            .symlink("outer", &parent),
    );
    sb.apply_ok(
        Layer::new()
            .whiteout("abs/.wh.victim")
            .whiteout("rel/.wh.victim")
            .whiteout("up/.wh.sentinel")
            .whiteout("outer/.wh.sentinel")
            .whiteout("abs/.wh..wh..opq")
            .whiteout("rel/sub/.wh..wh..opq")
            .whiteout("up/.wh..wh..opq"),
    );
    // `up` climbs to the sentinel's parent when followed naively (the
    // test aims every escape at the sentinel, never at a host path);
    // resolved inside the root it names nothing, so the links stay.
    assert_eq!(fs::read_dir(&sb.root).unwrap().count(), 4);
    sb.assert_outside_untouched();
}

#[test]
fn whiteouts_of_dot_or_dotdot_are_refused() {
    let sb = Sandbox::new();
    for name in [&b"a/.wh.."[..], b"a/.wh...", b".wh.", b".wh..."] {
        sb.apply_ok(Layer::new().file("a/f", b"", 0o644));
        let layer = Layer::new().raw(name, EntryType::Regular, b"", b"").bytes();
        let result = sb.apply(&layer);
        assert!(
            matches!(result, Err(LayerError::BadEntry { .. })),
            "{result:?}"
        );
        assert!(sb.exists("a/f"));
    }
    sb.assert_outside_untouched();
}

#[test]
fn symlink_loops_end_in_an_error() {
    let sb = Sandbox::new();
    sb.apply_ok(
        Layer::new()
            .symlink("a", "b")
            .symlink("b", "a")
            .symlink("self", "./self"),
    );
    for path in ["a/x", "self/x"] {
        let layer = Layer::new().file(path, b"", 0o644).bytes();
        let result = sb.apply(&layer);
        assert!(
            matches!(result, Err(LayerError::BadEntry { .. })),
            "{result:?}"
        );
    }
    // 40 hops are followed, 41 are not.
    let mut chain = Layer::new().dir("end/", 0o755);
    for i in 0..41 {
        let target = if i == 0 {
            "end".to_owned()
        } else {
            format!("l{}", i - 1)
        };
        chain = chain.symlink(&format!("l{i}"), &target);
    }
    sb.apply_ok(chain);
    sb.apply_ok(Layer::new().file("l39/ok", b"", 0o644));
    assert!(sb.exists("end/ok"));
    let layer = Layer::new().file("l40/no", b"", 0o644).bytes();
    assert!(matches!(sb.apply(&layer), Err(LayerError::BadEntry { .. })));
    sb.assert_outside_untouched();
}

#[test]
fn a_file_as_parent_is_refused() {
    let sb = Sandbox::new();
    let layer = Layer::new()
        .file("f", b"", 0o644)
        .file("f/x", b"", 0o644)
        .bytes();
    assert!(matches!(sb.apply(&layer), Err(LayerError::BadEntry { .. })));
    sb.assert_outside_untouched();
}

#[test]
fn huge_declared_sizes_are_refused_before_writing() {
    let sb = Sandbox::new();
    for kind in [EntryType::Regular, EntryType::Directory, EntryType::Symlink] {
        let mut header = Layer::header(kind, 0o644, 1 << 40);
        header.set_path("big").unwrap();
        header.set_cksum();
        let mut layer = header.as_bytes().to_vec();
        layer.extend_from_slice(&[0; 4096]);
        let result = sb.apply(&layer);
        assert!(
            matches!(
                result,
                Err(LayerError::TooLarge {
                    size: 1_099_511_627_776,
                    ..
                })
            ),
            "{result:?}"
        );
        assert!(!sb.exists("big"));
    }
    let options = ApplyOptions {
        max_entry_size: 10,
        ..ApplyOptions::default()
    };
    let layer = Layer::new()
        .file("ok", b"0123456789", 0o644)
        .file("no", &[0; 11], 0o644)
        .bytes();
    let result = apply(&sb.root, &layer[..], &options);
    assert!(
        matches!(
            result,
            Err(LayerError::TooLarge {
                size: 11,
                max: 10,
                ..
            })
        ),
        "{result:?}"
    );
    assert!(sb.exists("ok") && !sb.exists("no"));
    sb.assert_outside_untouched();
}

#[test]
fn huge_headers_are_refused_before_they_are_read_into_memory() {
    let sb = Sandbox::new();
    let huge = vec![b'a'; 2 << 20];
    let pax = Layer::new()
        .pax(&[("path", &huge)])
        .file("x", b"", 0o644)
        .bytes();
    let mut long_name = Layer::header(EntryType::GNULongName, 0o644, huge.len() as u64);
    long_name.set_path("././@LongLink").unwrap();
    long_name.set_cksum();
    let mut gnu = long_name.as_bytes().to_vec();
    gnu.extend_from_slice(&huge);
    gnu.extend_from_slice(&Layer::new().file("x", b"", 0o644).bytes());
    for layer in [pax, gnu] {
        let result = sb.apply(&layer);
        assert!(matches!(result, Err(LayerError::Read { .. })), "{result:?}");
    }
    assert_eq!(fs::read_dir(&sb.root).unwrap().count(), 0);
    sb.assert_outside_untouched();
}

#[test]
fn truncated_streams_are_errors() {
    let layer = Layer::new()
        .dir("d/", 0o755)
        .file("d/f", &[7; 3000], 0o644)
        .symlink("s", "d/f")
        .file("g", b"tail", 0o644)
        .bytes();
    let sb = Sandbox::new();
    // Inside the file's content.
    let result = sb.apply(&layer[..512 * 2 + 1000]);
    match result {
        Err(LayerError::ReadEntry { path, source }) => {
            assert_eq!(path, Path::new("d/f"));
            assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof);
        }
        other => panic!("{other:?}"),
    }
    // Inside a header.
    let result = sb.apply(&layer[..512 * 2 + 3072 + 100]);
    assert!(matches!(result, Err(LayerError::Read { .. })), "{result:?}");
    // Anywhere: an error or (cut between entries) fewer entries.
    for cut in (0..layer.len()).step_by(97) {
        let sb = Sandbox::new();
        let _ = sb.apply(&layer[..cut]);
        sb.assert_outside_untouched();
    }
}

#[test]
fn nul_bytes_and_huge_ids_are_refused() {
    let sb = Sandbox::new();
    let layer = Layer::new()
        .pax(&[("path", b"a\0b")])
        .file("x", b"", 0o644)
        .bytes();
    assert!(matches!(sb.apply(&layer), Err(LayerError::BadEntry { .. })));
    let layer = Layer::new().owned_file("f", 1 << 33, 0).bytes();
    assert!(matches!(sb.apply(&layer), Err(LayerError::BadEntry { .. })));
    sb.assert_outside_untouched();
}

#[test]
fn a_symlink_as_root_is_refused() {
    let sb = Sandbox::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let link = elsewhere.path().join("link-root");
    std::os::unix::fs::symlink(&sb.sentinel, &link).unwrap();
    let layer = Layer::new().file("x", b"", 0o644).bytes();
    let result = apply(&link, &layer[..], &ApplyOptions::default());
    assert!(matches!(result, Err(LayerError::Root { .. })), "{result:?}");
    sb.assert_outside_untouched();
}
