//! The image store: reuse, lookups, removal, pruning, failed and
//! concurrent loads.

mod support;

use std::fs;
use std::io::Cursor;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use krunbox_image::archive::ArchiveError;
use krunbox_image::digest::Digest;
use krunbox_image::store::{Store, StoreError};
use support::{assert_nothing_loaded, dir_entries, roots_entries, tar_owned, TestImage};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

#[test]
fn reload_unpacks_nothing() {
    let (_dir, store) = store();
    let image = TestImage::host("/bin/true");
    let archive = image.oci_archive(None, &["app:1"]);
    let first = store
        .load_archive(Cursor::new(archive.clone()))
        .unwrap()
        .remove(0);
    let inode = fs::metadata(&first.root).unwrap().ino();
    let record = store
        .dir()
        .join("roots")
        .join(format!("{}.json", first.manifest_digest.hex()));
    let record_inode = fs::metadata(&record).unwrap().ino();
    let again = store.load_archive(Cursor::new(archive)).unwrap().remove(0);
    assert_eq!(again, first);
    assert_eq!(fs::metadata(&again.root).unwrap().ino(), inode);
    assert_eq!(fs::metadata(&record).unwrap().ino(), record_inode);
    assert_eq!(roots_entries(store.dir()).len(), 2);
    assert!(dir_entries(&store.dir().join("tmp")).is_empty());
}

#[test]
fn get_by_name_digest_and_id() {
    let (_dir, store) = store();
    let image = TestImage::host("/bin/true");
    store
        .load_archive(Cursor::new(
            image.legacy_archive(&["app:1", "ghcr.io/o/app:latest"]),
        ))
        .unwrap();
    let by_name = store.get("app:1").unwrap();
    assert_eq!(store.get("docker.io/library/app:1").unwrap(), by_name);
    assert_eq!(store.get("ghcr.io/o/app").unwrap(), by_name);
    let digest = by_name.manifest_digest.to_string();
    assert_eq!(store.get(&digest).unwrap(), by_name);
    assert_eq!(store.get(by_name.id()).unwrap(), by_name);
    assert_eq!(store.get(by_name.manifest_digest.hex()).unwrap(), by_name);
    assert_eq!(store.get(&format!("whatever@{digest}")).unwrap(), by_name);
    for missing in [
        "app:2",
        &by_name.id()[..11],
        "sha256:".to_owned().as_str(),
        "Bad",
    ] {
        let err = store.get(missing).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::NotFound { .. } | StoreError::InvalidId { .. }
            ),
            "{missing}: {err:?}"
        );
    }
    let other = format!("sha256:{}", "0".repeat(64));
    assert!(matches!(
        store.get(&other),
        Err(StoreError::NotFound { .. })
    ));
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, by_name.manifest_digest);
    assert_eq!(list[0].names, by_name.names);
}

#[test]
fn tag_remove_and_prune() {
    let (_dir, store) = store();
    let image = TestImage::host("/bin/true");
    let loaded = store
        .load_archive(Cursor::new(image.legacy_archive(&["app:1"])))
        .unwrap()
        .remove(0);
    let tagged = store.tag("app:1", "mirror.example/app:copy").unwrap();
    assert_eq!(
        tagged.names,
        ["docker.io/library/app:1", "mirror.example/app:copy"]
    );
    assert!(matches!(
        store.tag("app:1", &format!("x@{}", loaded.manifest_digest)),
        Err(StoreError::DigestName { .. })
    ));
    assert!(matches!(
        store.tag("app:1", "UPPER"),
        Err(StoreError::InvalidName { .. })
    ));

    let removal = store.remove("app:1").unwrap();
    assert_eq!(removal.untagged, ["docker.io/library/app:1"]);
    assert_eq!(removal.deleted, None);
    assert!(loaded.root.exists());

    let report = store.prune().unwrap();
    assert!(report.roots.is_empty());
    assert_eq!(report.blobs, 0, "every blob belongs to the named image");

    let removal = store.remove("mirror.example/app:copy").unwrap();
    assert_eq!(removal.deleted.as_ref(), Some(&loaded.manifest_digest));
    assert!(!loaded.root.exists());
    assert!(roots_entries(store.dir()).is_empty());
    assert!(matches!(
        store.get(loaded.id()),
        Err(StoreError::NotFound { .. })
    ));

    let report = store.prune().unwrap();
    assert_eq!(report.blobs, 4, "manifest, config, two layers");
    assert!(report.blob_bytes > 0);
    assert_nothing_loaded(&store);
}

#[test]
fn remove_by_id_removes_every_name() {
    let (_dir, store) = store();
    let image = TestImage::host("/bin/true");
    let loaded = store
        .load_archive(Cursor::new(image.legacy_archive(&["a:1", "b:1"])))
        .unwrap()
        .remove(0);
    let removal = store.remove(loaded.id()).unwrap();
    assert_eq!(
        removal.untagged,
        ["docker.io/library/a:1", "docker.io/library/b:1"]
    );
    assert_eq!(removal.deleted, Some(loaded.manifest_digest));
    assert!(matches!(
        store.remove("a:1"),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn unnamed_images_are_pruned() {
    let (_dir, store) = store();
    let image = TestImage::host("/bin/true");
    let loaded = store
        .load_archive(Cursor::new(image.oci_archive(None, &[])))
        .unwrap();
    assert!(loaded[0].names.is_empty());
    assert!(store.get(loaded[0].id()).is_ok());
    let report = store.prune().unwrap();
    assert_eq!(report.roots, [loaded[0].manifest_digest.clone()]);
    assert_nothing_loaded(&store);
}

#[test]
fn a_name_moves_to_the_newer_image() {
    let (_dir, store) = store();
    let old = TestImage::host("/old");
    let new = TestImage::host("/new");
    store
        .load_archive(Cursor::new(old.legacy_archive(&["app:1"])))
        .unwrap();
    store
        .load_archive(Cursor::new(new.legacy_archive(&["app:1"])))
        .unwrap();
    assert_eq!(store.get("app:1").unwrap().config.cmd, ["/new"]);
    assert_eq!(store.list().unwrap().len(), 2);
    let report = store.prune().unwrap();
    assert_eq!(report.roots.len(), 1);
    assert_eq!(
        report.blobs, 2,
        "the old manifest and config; the layers are shared"
    );
}

#[test]
fn wrong_digest_name_loads_nothing() {
    let (_dir, store) = store();
    let image = TestImage::host("/bin/true");
    let mut archive_members: Vec<(String, Vec<u8>)> = Vec::new();
    for (digest, bytes) in image.blobs() {
        archive_members.push((format!("blobs/sha256/{}", digest.hex()), bytes));
    }
    // The first layer's content under the second layer's name.
    let wrong = Digest::of(&image.layers[1]);
    archive_members.push((
        format!("blobs/sha256/{}", wrong.hex()),
        image.layers[0].clone(),
    ));
    archive_members.push(("oci-layout".into(), support::layout_header()));
    archive_members.push(("index.json".into(), image.index(Some("app:1"), None)));
    let err = store
        .load_archive(Cursor::new(tar_owned(&archive_members)))
        .unwrap_err();
    let StoreError::Load(ArchiveError::DigestMismatch { location, source }) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(location, &format!("blobs/sha256/{}", wrong.hex()));
    assert_eq!(source.expected, wrong);
    assert_eq!(source.actual, Digest::of(&image.layers[0]));
    assert_nothing_loaded(&store);
}

#[test]
fn wrong_diff_id_loads_nothing() {
    let (_dir, store) = store();
    let mut image = TestImage::host("/bin/true");
    let mut config: serde_json::Value = serde_json::from_slice(&image.config).unwrap();
    config["rootfs"]["diff_ids"][1] = Digest::of(b"other").to_string().into();
    image.config = serde_json::to_vec(&config).unwrap();
    let err = store
        .load_archive(Cursor::new(image.legacy_archive(&["app:1"])))
        .unwrap_err();
    assert!(matches!(err, StoreError::DiffId { .. }), "{err:?}");
    assert_nothing_loaded(&store);
}

#[test]
fn wrong_layout_blob_loads_nothing() {
    let (dir, store) = store();
    let layout = dir.path().join("layout");
    let image = TestImage::host("/bin/true");
    image.write_layout(&layout, None);
    let layer = layout
        .join("blobs/sha256")
        .join(Digest::of(&image.layers[0]).hex());
    fs::write(&layer, support::gzip(b"tampered")).unwrap();
    let err = store.load_oci_layout(&layout, None).unwrap_err();
    assert!(
        matches!(err, StoreError::Load(ArchiveError::DigestMismatch { .. })),
        "{err:?}"
    );
    assert_nothing_loaded(&store);
}

#[test]
fn concurrent_loads_make_one_root() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    Store::open(&path).unwrap();
    let archive = TestImage::host("/bin/true").legacy_archive(&["app:1"]);
    let loads: Vec<_> = (0..2)
        .map(|_| {
            let (path, archive) = (path.clone(), archive.clone());
            std::thread::spawn(move || {
                let store = Store::open(&path).unwrap();
                store.load_archive(Cursor::new(archive)).unwrap().remove(0)
            })
        })
        .collect();
    let images: Vec<_> = loads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(images[0], images[1]);
    let roots = roots_entries(&path);
    assert_eq!(roots.len(), 2, "one tree and its record: {roots:?}");
    assert_eq!(fs::read(images[0].root.join("etc/keep")).unwrap(), b"keep");
    assert!(dir_entries(&path.join("tmp")).is_empty());
}

#[test]
fn open_cleans_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    Store::open(&path).unwrap();
    let stale = path.join("tmp/load-stale/root-x/ro");
    fs::create_dir_all(&stale).unwrap();
    fs::set_permissions(&stale, std::os::unix::fs::PermissionsExt::from_mode(0o500)).unwrap();
    fs::write(path.join("tmp/stray-file"), b"x").unwrap();
    Store::open(&path).unwrap();
    assert!(dir_entries(&path.join("tmp")).is_empty());
}

#[test]
fn default_dir_follows_the_environment() {
    // Only reads the variables the test process has; no store is made.
    let dir = Store::default_dir();
    if let Ok(dir) = dir {
        assert!(dir.is_absolute() || std::env::var_os("KRUNBOX_IMAGE_STORE").is_some());
        assert!(dir != Path::new(""));
    }
}
