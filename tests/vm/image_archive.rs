//! Image archives built by the tests themselves, in the legacy
//! `docker save` form (`manifest.json` naming a config and layer tars):
//! no registry or docker needed, and every byte of the image is known.

use std::path::Path;

use sha2::{Digest, Sha256};

/// One layer: a tar built in memory.
pub struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    pub fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    /// Everything under `dir`, symbolic links kept as links.
    pub fn tree(mut self, dir: &Path) -> Self {
        self.0.follow_symlinks(false);
        self.0.append_dir_all(".", dir).expect("layer from a tree");
        self
    }

    /// A regular file with `mode`.
    pub fn file(mut self, path: &str, contents: &[u8], mode: u32) -> Self {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(mode);
        header.set_entry_type(tar::EntryType::Regular);
        self.0
            .append_data(&mut header, path, contents)
            .expect("file entry");
        self
    }

    /// A whiteout: `path` is removed from the layers below.
    pub fn whiteout(self, path: &str) -> Self {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let entry = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&entry, b"", 0o644)
    }

    /// The layer's tar.
    pub fn finish(self) -> Vec<u8> {
        self.0.into_inner().expect("layer tar")
    }
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes a `docker save` archive of one image named `name` with
/// `layers` and the image config's `config` object to `out`; returns the
/// image config's digest (docker's image ID).
pub fn write(out: &Path, name: &str, layers: Vec<Layer>, config: serde_json::Value) -> String {
    let layers: Vec<Vec<u8>> = layers.into_iter().map(Layer::finish).collect();
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", hex(l)))
        .collect();
    let image_config = serde_json::json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    let config_bytes = serde_json::to_vec(&image_config).unwrap();
    let config_hex = hex(&config_bytes);
    let mut archive = tar::Builder::new(Vec::new());
    let mut add = |path: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        archive.append_data(&mut header, path, bytes).unwrap();
    };
    let mut layer_paths = Vec::new();
    for layer in &layers {
        let path = format!("{}/layer.tar", hex(layer));
        add(&path, layer);
        layer_paths.push(path);
    }
    let config_path = format!("{config_hex}.json");
    add(&config_path, &config_bytes);
    let manifest = serde_json::json!([{
        "Config": config_path,
        "RepoTags": [name],
        "Layers": layer_paths,
    }]);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    std::fs::write(out, archive.into_inner().unwrap()).unwrap();
    format!("sha256:{config_hex}")
}
