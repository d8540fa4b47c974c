//! Images built in the tests themselves: layers, configs and manifests,
//! packed as a legacy docker-archive, a Docker ≥ 25 (OCI) docker-archive or
//! an OCI layout directory.

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use krunbox_image::archive::host_platform;
use krunbox_image::digest::Digest;
use krunbox_image::Store;
use serde_json::{json, Value};

/// A tar stream of `members`: a path ending in `/` is a directory, any
/// other a regular file with that content.
pub fn tar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in members {
        let mut header = tar::Header::new_gnu();
        if path.ends_with('/') {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
        } else {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(content.len() as u64);
        }
        header.set_mtime(1_700_000_000);
        header.set_uid(0);
        header.set_gid(0);
        builder.append_data(&mut header, path, *content).unwrap();
    }
    builder.into_inner().unwrap()
}

/// `bytes`, gzipped.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The two layers most tests use: a base, and an upper layer that
/// removes `etc/old` with a whiteout and adds `app/run`.
pub fn two_layers() -> Vec<Vec<u8>> {
    vec![
        tar(&[
            ("etc/", b""),
            (
                "etc/passwd",
                b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
            ),
            ("etc/old", b"old"),
            ("etc/keep", b"keep"),
        ]),
        tar(&[
            ("etc/.wh.old", b""),
            ("app/", b""),
            ("app/run", b"#!/bin/sh\n"),
        ]),
    ]
}

/// An image: its blobs as they are stored.
#[derive(Clone)]
pub struct TestImage {
    /// The layer blobs (gzipped or not).
    pub layers: Vec<Vec<u8>>,
    pub gzipped: bool,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl TestImage {
    /// An image of `layers` (uncompressed tars), stored gzipped or not,
    /// for `arch`, running `cmd`.
    pub fn new(layers: Vec<Vec<u8>>, gzipped: bool, arch: &str, cmd: &str) -> Self {
        let diff_ids: Vec<String> = layers.iter().map(|l| Digest::of(l).to_string()).collect();
        let layers: Vec<Vec<u8>> = match gzipped {
            true => layers.iter().map(|l| gzip(l)).collect(),
            false => layers,
        };
        let config =
            json!({"Cmd": [cmd], "Env": ["PATH=/bin"], "User": "app", "WorkingDir": "/app"});
        Self::assemble(layers, gzipped, &diff_ids, arch, config)
    }

    /// An image of one layer stored gzipped already, whose uncompressed
    /// digest is `diff_id`, for `arch`, with `config` as its run config.
    pub fn of_gzipped_layer(layer: Vec<u8>, diff_id: &str, arch: &str, config: Value) -> Self {
        Self::assemble(vec![layer], true, &[diff_id.to_owned()], arch, config)
    }

    fn assemble(
        layers: Vec<Vec<u8>>,
        gzipped: bool,
        diff_ids: &[String],
        arch: &str,
        run_config: Value,
    ) -> Self {
        let config = serde_json::to_vec(&json!({
            "architecture": arch,
            "os": "linux",
            "created": "2024-01-02T03:04:05Z",
            "config": run_config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let layer_type = match gzipped {
            true => "application/vnd.oci.image.layer.v1.tar+gzip",
            false => "application/vnd.oci.image.layer.v1.tar",
        };
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
            "layers": layers.iter().map(|l| descriptor(layer_type, l)).collect::<Vec<_>>(),
        }))
        .unwrap();
        Self {
            layers,
            gzipped,
            config,
            manifest,
        }
    }

    /// The usual test image for the host.
    pub fn host(cmd: &str) -> Self {
        Self::new(two_layers(), true, host_platform().1, cmd)
    }

    pub fn manifest_digest(&self) -> Digest {
        Digest::of(&self.manifest)
    }

    pub fn config_digest(&self) -> Digest {
        Digest::of(&self.config)
    }

    /// Every blob, by digest.
    pub fn blobs(&self) -> Vec<(Digest, Vec<u8>)> {
        let mut blobs = vec![
            (Digest::of(&self.manifest), self.manifest.clone()),
            (Digest::of(&self.config), self.config.clone()),
        ];
        blobs.extend(self.layers.iter().map(|l| (Digest::of(l), l.clone())));
        blobs
    }

    /// A legacy docker-archive (`manifest.json` first, to check that the
    /// layers after it are found).
    pub fn legacy_archive(&self, repo_tags: &[&str]) -> Vec<u8> {
        let config_path = format!("{}.json", self.config_digest().hex());
        let layer_paths: Vec<String> = (0..self.layers.len())
            .map(|i| {
                format!(
                    "{}/layer.tar",
                    Digest::of(format!("id{i}").as_bytes()).hex()
                )
            })
            .collect();
        let manifest = serde_json::to_vec(&json!([{
            "Config": config_path, "RepoTags": repo_tags, "Layers": layer_paths,
        }]))
        .unwrap();
        let mut members: Vec<(String, Vec<u8>)> = vec![
            ("manifest.json".into(), manifest),
            (config_path, self.config.clone()),
            ("repositories".into(), b"{}".to_vec()),
        ];
        members.extend(layer_paths.into_iter().zip(self.layers.iter().cloned()));
        tar_owned(&members)
    }

    /// A Docker ≥ 25 docker-archive: OCI layout members, plus
    /// `manifest.json` with `repo_tags`; the index entry is named `name`.
    pub fn oci_archive(&self, name: Option<&str>, repo_tags: &[&str]) -> Vec<u8> {
        let blob_path = |d: &Digest| format!("blobs/sha256/{}", d.hex());
        let manifest_json = serde_json::to_vec(&json!([{
            "Config": blob_path(&self.config_digest()),
            "RepoTags": repo_tags,
            "Layers": self.layers.iter().map(|l| blob_path(&Digest::of(l))).collect::<Vec<_>>(),
        }]))
        .unwrap();
        let mut members: Vec<(String, Vec<u8>)> = self
            .blobs()
            .into_iter()
            .map(|(d, bytes)| (blob_path(&d), bytes))
            .collect();
        members.push(("oci-layout".into(), layout_header()));
        members.push(("index.json".into(), self.index(name, None)));
        members.push(("manifest.json".into(), manifest_json));
        tar_owned(&members)
    }

    /// An `index.json` with one entry for this image.
    pub fn index(&self, name: Option<&str>, tag: Option<&str>) -> Vec<u8> {
        let mut entry = descriptor("application/vnd.oci.image.manifest.v1+json", &self.manifest);
        let mut annotations = serde_json::Map::new();
        if let Some(name) = name {
            annotations.insert("io.containerd.image.name".into(), name.into());
        }
        if let Some(tag) = tag {
            annotations.insert("org.opencontainers.image.ref.name".into(), tag.into());
        }
        entry["annotations"] = Value::Object(annotations);
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [entry]})).unwrap()
    }

    /// Writes the image's blobs into the layout at `dir` (creating it).
    pub fn write_blobs(&self, dir: &Path) {
        write_layout_header(dir);
        for (digest, bytes) in self.blobs() {
            fs::write(dir.join("blobs/sha256").join(digest.hex()), bytes).unwrap();
        }
    }

    /// An OCI layout directory holding this image, tagged `tag`.
    pub fn write_layout(&self, dir: &Path, tag: Option<&str>) {
        self.write_blobs(dir);
        fs::write(dir.join("index.json"), self.index(None, tag)).unwrap();
    }
}

/// A descriptor of `bytes`.
pub fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": Digest::of(bytes).to_string(), "size": bytes.len()})
}

pub fn layout_header() -> Vec<u8> {
    br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()
}

pub fn write_layout_header(dir: &Path) {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), layout_header()).unwrap();
}

/// A tar of owned members.
pub fn tar_owned(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let borrowed: Vec<(&str, &[u8])> = members
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    tar(&borrowed)
}

/// The entries of `roots/`, sorted.
pub fn roots_entries(store_dir: &Path) -> Vec<String> {
    dir_entries(&store_dir.join("roots"))
}

/// The entries of a directory, sorted.
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Nothing of a load or pull is visible: no root, record, blob or name,
/// and no staging directory left.
pub fn assert_nothing_loaded(store: &Store) {
    assert!(roots_entries(store.dir()).is_empty());
    assert!(dir_entries(&store.dir().join("blobs/sha256")).is_empty());
    assert!(dir_entries(&store.dir().join("tmp")).is_empty());
    assert!(store.list().unwrap().is_empty());
    if let Ok(names) = fs::read(store.dir().join("names.json")) {
        let names: serde_json::Value = serde_json::from_slice(&names).unwrap();
        assert_eq!(names["names"], serde_json::json!({}));
    }
}
