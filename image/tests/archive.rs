//! Loading images out of docker-archives (both forms) and OCI layouts.

mod support;

use std::fs;
use std::io::Cursor;

use krunbox_image::archive::{host_platform, ArchiveError};
use krunbox_image::digest::Digest;
use krunbox_image::store::{Store, StoreError};
use serde_json::json;
use support::{descriptor, roots_entries, tar, tar_owned, TestImage};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

/// The tree both layers make: `etc/old` whited out, the rest there.
fn assert_tree(root: &std::path::Path) {
    assert_eq!(fs::read(root.join("etc/keep")).unwrap(), b"keep");
    assert_eq!(fs::read(root.join("app/run")).unwrap(), b"#!/bin/sh\n");
    assert!(!root.join("etc/old").exists());
    assert!(!root.join("etc/.wh.old").exists());
}

#[test]
fn legacy_archive() {
    let (_dir, store) = store();
    let image = TestImage::new(support::two_layers(), false, host_platform().1, "/app/run");
    let archive = image.legacy_archive(&["app:1", "registry.local:5000/ns/app:2"]);
    let loaded = store.load_archive(Cursor::new(archive)).unwrap();
    assert_eq!(loaded.len(), 1);
    let loaded = &loaded[0];
    assert_eq!(
        loaded.names,
        ["docker.io/library/app:1", "registry.local:5000/ns/app:2"]
    );
    assert_eq!(loaded.config_digest, image.config_digest());
    assert_tree(&loaded.root);
    assert_eq!(loaded.config.cmd, ["/app/run"]);
    assert_eq!(loaded.config.working_dir.as_deref(), Some("/app"));
    assert_eq!(
        loaded.config.resolve_user(&loaded.root).unwrap(),
        Some((1000, 1000))
    );
    assert_eq!(loaded.layers.len(), 2);
    assert_eq!(loaded.created.as_deref(), Some("2024-01-02T03:04:05Z"));
    assert!(loaded.size > 0);
}

#[test]
fn legacy_archive_gzipped_layers_and_stream() {
    let (_dir, store) = store();
    let image = TestImage::host("/bin/true");
    let archive = support::gzip(&image.legacy_archive(&["app:gz"]));
    let loaded = store.load_archive(Cursor::new(archive)).unwrap();
    assert_eq!(loaded[0].names, ["docker.io/library/app:gz"]);
    assert_tree(&loaded[0].root);
}

/// A reader that gives one byte at a time, as a slow pipe may.
struct Trickle(Cursor<Vec<u8>>);

impl std::io::Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let end = buf.len().min(1);
        self.0.read(&mut buf[..end])
    }
}

#[test]
fn gzipped_archive_from_a_trickling_pipe() {
    let (_dir, store) = store();
    let image = TestImage::host("/bin/true");
    let archive = support::gzip(&image.oci_archive(Some("app:pipe"), &[]));
    let loaded = store.load_archive(Trickle(Cursor::new(archive))).unwrap();
    assert_eq!(loaded[0].names, ["docker.io/library/app:pipe"]);
}

#[test]
fn legacy_manifest_digest_is_stable() {
    let image = TestImage::host("/bin/true");
    let (_a, one) = store();
    let (_b, two) = store();
    let first = one
        .load_archive(Cursor::new(image.legacy_archive(&["x:1"])))
        .unwrap();
    let second = two
        .load_archive(Cursor::new(image.legacy_archive(&[])))
        .unwrap();
    assert_eq!(first[0].manifest_digest, second[0].manifest_digest);
    assert!(second[0].names.is_empty());
}

#[test]
fn oci_archive() {
    let (_dir, store) = store();
    let image = TestImage::host("/app/run");
    let archive = image.oci_archive(Some("docker.io/library/app:1"), &["app:1", "app:extra"]);
    let loaded = store.load_archive(Cursor::new(archive)).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].manifest_digest, image.manifest_digest());
    assert_eq!(
        loaded[0].names,
        ["docker.io/library/app:1", "docker.io/library/app:extra"]
    );
    assert_tree(&loaded[0].root);
    let blob = store
        .dir()
        .join("blobs/sha256")
        .join(image.manifest_digest().hex());
    assert_eq!(fs::read(blob).unwrap(), image.manifest);
}

#[test]
fn oci_layout_by_tag() {
    let (dir, store) = store();
    let layout = dir.path().join("layout");
    let image = TestImage::host("/app/run");
    image.write_layout(&layout, Some("v1"));
    let loaded = store.load_oci_layout(&layout, Some("v1")).unwrap();
    assert_eq!(loaded.manifest_digest, image.manifest_digest());
    assert!(loaded.names.is_empty(), "a bare ref.name tag is not a name");
    assert_tree(&loaded.root);
    let untagged = store.load_oci_layout(&layout, None).unwrap();
    assert_eq!(untagged.root, loaded.root);
    let err = store.load_oci_layout(&layout, Some("v2")).unwrap_err();
    assert!(
        matches!(err, StoreError::Load(ArchiveError::TagNotFound { .. })),
        "{err:?}"
    );
}

#[test]
fn oci_layout_with_two_images_needs_a_tag() {
    let (dir, store) = store();
    let layout = dir.path().join("layout");
    let one = TestImage::host("/one");
    let two = TestImage::host("/two");
    one.write_blobs(&layout);
    two.write_blobs(&layout);
    let entry = |image: &TestImage, tag: &str| {
        let mut d = descriptor(
            "application/vnd.oci.image.manifest.v1+json",
            &image.manifest,
        );
        d["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        d
    };
    let index = json!({"schemaVersion": 2, "manifests": [entry(&one, "one"), entry(&two, "two")]});
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let err = store.load_oci_layout(&layout, None).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Load(ArchiveError::Ambiguous { count: 2, .. })
        ),
        "{err:?}"
    );
    let two_loaded = store.load_oci_layout(&layout, Some("two")).unwrap();
    assert_eq!(two_loaded.config.cmd, ["/two"]);
}

/// A layout whose index points to a multi-platform index of `images`.
fn multi_platform_layout(dir: &std::path::Path, images: &[(&TestImage, &str)]) {
    let mut manifests = Vec::new();
    for (image, arch) in images {
        image.write_blobs(dir);
        let mut d = descriptor(
            "application/vnd.oci.image.manifest.v1+json",
            &image.manifest,
        );
        d["platform"] = json!({"os": "linux", "architecture": arch});
        manifests.push(d);
    }
    let attestation = json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": Digest::of(b"att").to_string(), "size": 3,
        "platform": {"os": "unknown", "architecture": "unknown"},
        "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
    });
    manifests.push(attestation);
    let nested = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap();
    fs::write(
        dir.join("blobs/sha256").join(Digest::of(&nested).hex()),
        &nested,
    )
    .unwrap();
    let mut entry = descriptor("application/vnd.oci.image.index.v1+json", &nested);
    entry["annotations"] = json!({"io.containerd.image.name": "example.com/multi:1"});
    let index = json!({"schemaVersion": 2, "manifests": [entry]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn multi_platform_index_picks_the_host() {
    let (dir, store) = store();
    let layout = dir.path().join("layout");
    let host = TestImage::host("/host");
    let other = TestImage::new(support::two_layers(), false, "s390x", "/other");
    multi_platform_layout(&layout, &[(&other, "s390x"), (&host, host_platform().1)]);
    let loaded = store.load_oci_layout(&layout, None).unwrap();
    assert_eq!(loaded.manifest_digest, host.manifest_digest());
    assert_eq!(loaded.names, ["example.com/multi:1"]);
    assert_eq!(loaded.config.cmd, ["/host"]);
}

#[test]
fn multi_platform_index_without_the_host() {
    let (dir, store) = store();
    let layout = dir.path().join("layout");
    let other = TestImage::new(support::two_layers(), false, "s390x", "/other");
    let risc = TestImage::new(support::two_layers(), false, "riscv64", "/risc");
    multi_platform_layout(&layout, &[(&other, "s390x"), (&risc, "riscv64")]);
    let err = store.load_oci_layout(&layout, None).unwrap_err();
    let StoreError::Load(ArchiveError::NoMatchingPlatform {
        available, wanted, ..
    }) = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(available, &["linux/s390x", "linux/riscv64"]);
    assert_eq!(wanted, &format!("linux/{}", host_platform().1));
    assert!(roots_entries(store.dir()).is_empty());
}

#[test]
fn not_an_image() {
    let (_dir, store) = store();
    let archive = tar(&[("hello.txt", b"hi"), ("dir/", b"")]);
    let err = store.load_archive(Cursor::new(archive)).unwrap_err();
    assert!(
        matches!(err, StoreError::Load(ArchiveError::NotAnImage)),
        "{err:?}"
    );
    let err = store
        .load_archive(Cursor::new(b"not a tar at all".repeat(64)))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Load(ArchiveError::Read { .. })),
        "{err:?}"
    );
}

#[test]
fn not_a_layout() {
    let (dir, store) = store();
    let err = store.load_oci_layout(dir.path(), None).unwrap_err();
    assert!(
        matches!(err, StoreError::Load(ArchiveError::NotALayout { .. })),
        "{err:?}"
    );
}

#[test]
fn missing_layer_member() {
    let (_dir, store) = store();
    let image = TestImage::host("/bin/true");
    let manifest = serde_json::to_vec(&json!([{
        "Config": format!("{}.json", image.config_digest().hex()),
        "RepoTags": ["x:1"], "Layers": ["nope/layer.tar", "nope2/layer.tar"],
    }]))
    .unwrap();
    let archive = tar_owned(&[
        ("manifest.json".into(), manifest),
        (
            format!("{}.json", image.config_digest().hex()),
            image.config.clone(),
        ),
    ]);
    let err = store.load_archive(Cursor::new(archive)).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Load(ArchiveError::MissingMember { what: "layer", .. })
        ),
        "{err:?}"
    );
}

#[test]
fn unsupported_schema_and_media_type() {
    let (dir, store) = store();
    let image = TestImage::host("/bin/true");
    let mut manifest: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
    manifest["layers"][0]["mediaType"] = "application/vnd.example.weird".into();
    let weird = TestImage {
        manifest: serde_json::to_vec(&manifest).unwrap(),
        ..image.clone()
    };
    let layout = dir.path().join("weird");
    weird.write_layout(&layout, None);
    let err = store.load_oci_layout(&layout, None).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Load(ArchiveError::MediaType { what: "layer", .. })
        ),
        "{err:?}"
    );

    manifest["schemaVersion"] = 1.into();
    let old = TestImage {
        manifest: serde_json::to_vec(&manifest).unwrap(),
        ..image
    };
    let layout = dir.path().join("old");
    old.write_layout(&layout, None);
    let err = store.load_oci_layout(&layout, None).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Load(ArchiveError::SchemaVersion { version: 1, .. })
        ),
        "{err:?}"
    );
}
