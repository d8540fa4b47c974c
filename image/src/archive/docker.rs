//! A docker-archive tar, staged member by member, as a [`BlobSource`].

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use oci_spec::image::{
    Descriptor, Digest as OciDigest, ImageConfiguration, ImageManifestBuilder, MediaType,
};
use serde::Deserialize;

use super::index::{self, Selected};
use super::oci::{self, check_layout_header, diff_ids};
use super::{
    copy_split, parse_json, read_staged, ArchiveError, BlobSource, CopyError, PendingImage,
    PendingLayer, StagedBlob, StagedBlobs,
};
use crate::digest::{is_sha256_hex, Digest, DigestWriter};
use crate::layer::{decompressed, Compression};
use crate::platform::Platform;
use crate::reference::Reference;

/// Most symbolic or hard links followed to find a member.
const MAX_LINKS: usize = 16;

/// A docker-archive whose members are all staged, each with its digest.
#[derive(Debug)]
pub(crate) struct DockerArchive {
    /// Regular members, by normalized path.
    files: HashMap<String, StagedBlob>,
    /// Symbolic and hard link members, by normalized path, to their
    /// normalized targets (legacy archives link shared layers).
    links: HashMap<String, String>,
    /// Regular members by digest.
    by_digest: StagedBlobs,
}

/// One entry of a `manifest.json`.
#[derive(Debug, Deserialize)]
struct ManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

impl DockerArchive {
    /// Reads the whole tar (gzip- or zstd-compressed, or not), staging each
    /// regular member into `staging` and hashing it on the way; a member
    /// named by a digest (`blobs/sha256/<hex>`, `<hex>.json`) must match it.
    pub(crate) fn stage(reader: impl Read, staging: &Path) -> Result<Self, ArchiveError> {
        let read_err = |source| ArchiveError::Read { source };
        let mut reader = BufReader::new(reader);
        let mut magic = [0u8; 4];
        let len = read_prefix(&mut reader, &mut magic).map_err(read_err)?;
        let compression = Compression::sniff(&magic[..len]);
        let reader =
            decompressed(compression, Read::chain(&magic[..len], reader)).map_err(read_err)?;
        let mut archive = Self {
            files: HashMap::new(),
            links: HashMap::new(),
            by_digest: StagedBlobs::new("archive"),
        };
        let mut tar = tar::Archive::new(reader);
        for (n, entry) in tar.entries().map_err(read_err)?.enumerate() {
            let entry = entry.map_err(read_err)?;
            archive.add_member(entry, &staging.join(format!("member-{n}")))?;
        }
        Ok(archive)
    }

    fn add_member<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        staged: &Path,
    ) -> Result<(), ArchiveError> {
        let read_err = |source| ArchiveError::Read { source };
        let Some(path) = entry.path().map_err(read_err)?.to_str().and_then(normalize) else {
            return Ok(());
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name().map_err(read_err)?;
            let target = target.as_deref().and_then(Path::to_str).unwrap_or("");
            let target = if kind.is_symlink() && !target.starts_with('/') {
                let parent = path.rsplit_once('/').map_or("", |(parent, _)| parent);
                normalize(&format!("{parent}/{target}"))
            } else {
                normalize(target)
            };
            if let Some(target) = target {
                self.links.insert(path, target);
            }
            return Ok(());
        }
        if !kind.is_file() {
            return Ok(());
        }
        let stage_err = |source| ArchiveError::Stage {
            path: staged.to_owned(),
            source,
        };
        let file = File::create(staged).map_err(stage_err)?;
        let mut writer = DigestWriter::new(BufWriter::new(file));
        copy_split(&mut entry, &mut writer).map_err(|e| match e {
            CopyError::Read(source) => ArchiveError::Read { source },
            CopyError::Write(source) => stage_err(source),
        })?;
        writer.flush().map_err(stage_err)?;
        let size = writer.len();
        let (_, digest) = writer.finish();
        if let Some(named) = digest_in_name(&path) {
            named
                .verify(&digest)
                .map_err(|source| ArchiveError::DigestMismatch {
                    location: path.clone(),
                    source,
                })?;
        }
        let blob = StagedBlob {
            path: staged.to_owned(),
            digest: digest.clone(),
            size,
        };
        self.by_digest.insert(blob.clone());
        self.files.insert(path, blob);
        Ok(())
    }

    /// The images of the archive: from `index.json` when there is one
    /// (with `manifest.json`'s `RepoTags` added), else from the legacy
    /// `manifest.json`.
    pub(crate) fn images(&mut self) -> Result<Vec<PendingImage>, ArchiveError> {
        let repo_tags = match self.member("manifest.json") {
            Some(_) => Some(self.manifest_entries()?),
            None => None,
        };
        if let Some(index) = self.member("index.json").cloned() {
            if let Some(header) = self.member("oci-layout").cloned() {
                check_layout_header(&self.read_member(&header, "oci-layout")?, "oci-layout")?;
            }
            let index = self.read_member(&index, "index.json")?;
            let host = Platform::host();
            let selected: Vec<Selected> = index::select(self, &index, "index.json", None, &host)?;
            let mut images = selected
                .into_iter()
                .map(|s| oci::pending_image(self, s))
                .collect::<Result<Vec<_>, _>>()?;
            for entry in repo_tags.iter().flatten() {
                self.add_repo_tags(&mut images, entry)?;
            }
            return Ok(images);
        }
        match repo_tags {
            Some(entries) if entries.is_empty() => Err(ArchiveError::Empty {
                location: "manifest.json".into(),
            }),
            Some(entries) => entries.iter().map(|e| self.legacy_image(e)).collect(),
            None => Err(ArchiveError::NotAnImage),
        }
    }

    fn manifest_entries(&self) -> Result<Vec<ManifestEntry>, ArchiveError> {
        let member = self.member("manifest.json").cloned().expect("checked");
        let bytes = self.read_member(&member, "manifest.json")?;
        parse_json(&bytes, "manifest.json", "docker-archive manifest")
    }

    /// Adds an entry's `RepoTags` to the image with its config.
    fn add_repo_tags(
        &self,
        images: &mut [PendingImage],
        entry: &ManifestEntry,
    ) -> Result<(), ArchiveError> {
        let Some(config) = self.member(&entry.config) else {
            return Ok(());
        };
        let names = repo_tag_names(entry)?;
        for image in images
            .iter_mut()
            .filter(|i| i.config_digest == config.digest)
        {
            for name in &names {
                image.add_name(name.clone());
            }
        }
        Ok(())
    }

    /// A legacy image: its config and layers by path, and a manifest made
    /// for it.
    fn legacy_image(&self, entry: &ManifestEntry) -> Result<PendingImage, ArchiveError> {
        let config_blob = self.required(&entry.config, "config")?;
        let config = self.read_member(config_blob, &entry.config)?;
        let image_config: ImageConfiguration =
            parse_json(&config, entry.config.as_str(), "image config")?;
        let diff_ids = diff_ids(&image_config, &config_blob.digest, entry.layers.len())?;
        let mut layers = Vec::with_capacity(entry.layers.len());
        for (path, diff_id) in entry.layers.iter().zip(diff_ids) {
            let blob = self.required(path, "layer")?;
            layers.push(PendingLayer {
                digest: blob.digest.clone(),
                size: blob.size,
                compression: sniff_file(blob)?,
                diff_id,
            });
        }
        let manifest = legacy_manifest(config_blob, &layers);
        Ok(PendingImage {
            names: repo_tag_names(entry)?,
            manifest_digest: Digest::of(&manifest),
            manifest,
            config_digest: config_blob.digest.clone(),
            config,
            image_config,
            layers,
        })
    }

    /// The regular member at `path`, following links.
    fn member(&self, path: &str) -> Option<&StagedBlob> {
        let mut path = normalize(path)?;
        for _ in 0..MAX_LINKS {
            if let Some(blob) = self.files.get(&path) {
                return Some(blob);
            }
            path = self.links.get(&path)?.clone();
        }
        None
    }

    fn required(&self, path: &str, what: &'static str) -> Result<&StagedBlob, ArchiveError> {
        self.member(path)
            .ok_or_else(|| ArchiveError::MissingMember {
                what,
                path: path.to_owned(),
            })
    }

    fn read_member(&self, blob: &StagedBlob, location: &str) -> Result<Vec<u8>, ArchiveError> {
        read_staged(blob, location)
    }
}

impl BlobSource for DockerArchive {
    fn read_json(&mut self, digest: &Digest, what: &'static str) -> Result<Vec<u8>, ArchiveError> {
        self.by_digest.read_json(digest, what)
    }

    fn stage(&mut self, digest: &Digest, what: &'static str) -> Result<StagedBlob, ArchiveError> {
        self.by_digest.stage(digest, what)
    }
}

/// `RepoTags`, normalized.
fn repo_tag_names(entry: &ManifestEntry) -> Result<Vec<String>, ArchiveError> {
    let mut names = Vec::new();
    for tag in entry.repo_tags.iter().flatten() {
        let reference = Reference::parse(tag).map_err(|source| ArchiveError::RepoTag {
            tag: tag.clone(),
            source,
        })?;
        let name = reference.to_string();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// The OCI manifest of a legacy image: the same bytes for the same config
/// and layers, so that loading the archive again gives the same digest.
fn legacy_manifest(config: &StagedBlob, layers: &[PendingLayer]) -> Vec<u8> {
    let descriptor = |media_type: MediaType, digest: &Digest, size: u64| {
        let digest: OciDigest = digest.to_string().parse().expect("a sha256 digest");
        Descriptor::new(media_type, size, digest)
    };
    let layers: Vec<Descriptor> = layers
        .iter()
        .map(|layer| {
            let media_type = match layer.compression {
                Compression::None => MediaType::ImageLayer,
                Compression::Gzip => MediaType::ImageLayerGzip,
                Compression::Zstd => MediaType::ImageLayerZstd,
            };
            descriptor(media_type, &layer.digest, layer.size)
        })
        .collect();
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(
            MediaType::ImageConfig,
            &config.digest,
            config.size,
        ))
        .layers(layers)
        .build()
        .expect("every required field is set");
    serde_json::to_vec(&manifest).expect("a manifest serializes")
}

/// A staged layer's compression, from its first bytes.
fn sniff_file(blob: &StagedBlob) -> Result<Compression, ArchiveError> {
    let mut first = [0u8; 4];
    let mut file = File::open(&blob.path).map_err(|source| ArchiveError::Stage {
        path: blob.path.clone(),
        source,
    })?;
    let len = read_prefix(&mut file, &mut first).map_err(|source| ArchiveError::Stage {
        path: blob.path.clone(),
        source,
    })?;
    Ok(Compression::sniff(&first[..len]))
}

/// Fills `buf` from `reader` as far as it goes (a pipe may give a few
/// bytes at a time); how many bytes it holds.
fn read_prefix(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut len = 0;
    while len < buf.len() {
        match reader.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(len)
}

/// The digest a member's path names, if it names one:
/// `…/sha256/<hex>` or `<hex>.json`.
fn digest_in_name(path: &str) -> Option<Digest> {
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    if parent == "sha256" || parent.ends_with("/sha256") {
        return Digest::from_hex(name).ok();
    }
    let hex = name.strip_suffix(".json")?;
    if parent.is_empty() && is_sha256_hex(hex) {
        return Digest::from_hex(hex).ok();
    }
    None
}

/// A member path without `.`, empty components or a leading `/`, with
/// `..` resolved; `None` if it is empty or climbs out of the archive.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_member_paths() {
        assert_eq!(normalize("./a//b/./c").as_deref(), Some("a/b/c"));
        assert_eq!(normalize("a/../b").as_deref(), Some("b"));
        assert_eq!(normalize("../a"), None);
        assert_eq!(normalize("./"), None);
    }

    #[test]
    fn digests_in_names() {
        let hex = "ab".repeat(32);
        assert!(digest_in_name(&format!("blobs/sha256/{hex}")).is_some());
        assert!(digest_in_name(&format!("{hex}.json")).is_some());
        assert!(digest_in_name(&format!("{hex}/layer.tar")).is_none());
        assert!(digest_in_name(&format!("x/{hex}.json")).is_none());
        assert!(digest_in_name("blobs/sha256/abc").is_none());
    }
}
