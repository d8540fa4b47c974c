//! [`Store::pull`]: the steps of a pull (see the [module docs](super)).

use std::io;
use std::path::Path;

use futures_util::{StreamExt, TryStreamExt};
use oci_spec::image::Descriptor;

use super::error::RegistryError;
use super::remote::Remote;
use super::{Progress, ProgressState, PullOptions, CONCURRENT_FETCHES};
use crate::archive::{
    check_size, descriptor_digest, document_kind, parse_index, parse_manifest, pick_entry,
    ArchiveError, DocumentKind, ManifestLayer, ManifestParts, PendingImage, StagedBlob,
    StagedBlobs, MAX_INDEX_DEPTH, MAX_JSON,
};
use crate::digest::Digest;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::store::{Image, Staging, Store, StoreError};

impl Store {
    /// Pulls the image `reference` names from its registry into the store
    /// and names it by the reference (see the [registry module
    /// docs](crate::registry) for what a pull does, fetches and trusts).
    ///
    /// The store's own work (staging, unpacking, the commit) runs on
    /// tokio's blocking pool: call it within a tokio runtime that has its
    /// I/O and time drivers enabled (as `#[tokio::main]` does).
    pub async fn pull(
        &self,
        reference: &Reference,
        options: &PullOptions,
    ) -> Result<Image, StoreError> {
        let mut pull = Pull {
            store: self,
            reference,
            options,
            shown: reference.to_string(),
            remote: None,
        };
        let parts = pull.manifest().await?;
        let store = self.clone();
        let staging = pull.blocking(move || store.staging()).await??;
        let config = pull.config(&parts).await?;
        let layers = pull.layers(&parts, staging.path()).await?;
        let names = match &reference.tag {
            Some(tag) => vec![format!("{}:{tag}", reference.name())],
            None => Vec::new(),
        };
        let image = parts
            .into_pending(names, config)
            .map_err(|source| pull.image_error(source))?;
        let store = self.clone();
        let mut images = pull
            .blocking(move || commit(&store, layers, &staging, image))
            .await??;
        Ok(images.remove(0))
    }
}

/// Unpacks and commits a pulled image, as every load is.
fn commit(
    store: &Store,
    mut layers: StagedBlobs,
    staging: &Staging,
    image: PendingImage,
) -> Result<Vec<Image>, StoreError> {
    store.load(&mut layers, staging, vec![image])
}

/// One pull under way.
struct Pull<'a> {
    store: &'a Store,
    reference: &'a Reference,
    options: &'a PullOptions,
    /// The reference, as errors show it.
    shown: String,
    /// The registry, once something had to be fetched from it.
    remote: Option<Remote>,
}

impl Pull<'_> {
    /// The image manifest to pull: from the store when the reference pins
    /// a manifest it has, else from the registry, an index resolved to the
    /// wanted platform's manifest.
    async fn manifest(&mut self) -> Result<ManifestParts, RegistryError> {
        if let Some(digest) = &self.reference.digest {
            if let Some(bytes) = self.stored_blob(digest, u64::MAX).await {
                let location = format!("manifest {digest}");
                let kind = document_kind(&bytes, &location).map_err(|e| self.image_error(e))?;
                if kind == DocumentKind::Manifest {
                    return parse_manifest(bytes, digest.clone()).map_err(|e| self.image_error(e));
                }
            }
        }
        let (remote, bytes, digest) = Remote::connect(self.reference, self.options).await?;
        let remote = self.remote.insert(remote);
        let platform = self.options.platform.clone().unwrap_or_else(Platform::host);
        resolve(remote, &platform, bytes, digest, &self.shown).await
    }

    /// The image config: the store's copy, or fetched (into memory).
    async fn config(&mut self, parts: &ManifestParts) -> Result<Vec<u8>, RegistryError> {
        let (digest, size) = (&parts.config_digest, parts.config_size);
        if size > MAX_JSON {
            return Err(self.image_error(ArchiveError::TooLarge {
                location: format!("config {digest}"),
                limit: MAX_JSON,
            }));
        }
        let config = match self.stored_blob(digest, size).await {
            Some(config) => {
                self.report(digest, "config", size, ProgressState::Cached);
                config
            }
            None => {
                let mut config = Vec::with_capacity(size as usize);
                let options = self.options;
                let report = |progress| options.report(progress);
                let remote = self.remote().await?;
                let never = |source| unreachable_write(source);
                remote
                    .blob(("config", digest, size), &mut config, report, never)
                    .await?;
                config
            }
        };
        if config.len() as u64 != size {
            return Err(self.image_error(ArchiveError::SizeMismatch {
                what: "config",
                digest: digest.clone(),
                expected: size,
                actual: config.len() as u64,
            }));
        }
        Ok(config)
    }

    /// Every layer, staged in `dir`: linked from the store when it has
    /// it, else fetched (a few at once).
    async fn layers(
        &mut self,
        parts: &ManifestParts,
        dir: &Path,
    ) -> Result<StagedBlobs, RegistryError> {
        let mut staged = StagedBlobs::new("pull");
        let mut missing: Vec<ManifestLayer> = Vec::new();
        for layer in &parts.layers {
            if staged.contains(&layer.digest) || missing.iter().any(|m| m.digest == layer.digest) {
                continue;
            }
            match self.link_stored(layer, dir).await? {
                Some(blob) => {
                    self.report(&layer.digest, "layer", layer.size, ProgressState::Cached);
                    staged.insert(blob);
                }
                None => missing.push(layer.clone()),
            }
        }
        if missing.is_empty() {
            return Ok(staged);
        }
        let options = self.options;
        let remote = self.remote().await?;
        let fetched: Vec<StagedBlob> = futures_util::stream::iter(missing)
            .map(|layer| fetch_layer(remote, layer, dir, options))
            .buffer_unordered(CONCURRENT_FETCHES)
            .try_collect()
            .await?;
        fetched.into_iter().for_each(|blob| staged.insert(blob));
        Ok(staged)
    }

    /// The registry, reached (and authenticated to) if it was not yet.
    async fn remote(&mut self) -> Result<&Remote, RegistryError> {
        if self.remote.is_none() {
            let (remote, _, _) = Remote::connect(self.reference, self.options).await?;
            self.remote = Some(remote);
        }
        Ok(self.remote.as_ref().expect("just connected"))
    }

    /// The content of the store's blob `digest` (at most `limit` bytes),
    /// if it has it and it is what it should be.
    async fn stored_blob(&self, digest: &Digest, limit: u64) -> Option<Vec<u8>> {
        let path = self.store.blob_path(digest);
        let limit = limit.min(MAX_JSON);
        let meta = tokio::fs::metadata(&path).await.ok()?;
        if meta.len() > limit {
            return None;
        }
        let bytes = tokio::fs::read(&path).await.ok()?;
        (Digest::of(&bytes) == *digest).then_some(bytes)
    }

    /// Links the store's copy of a layer into `dir`, if it has one. The
    /// link keeps the content even if a prune removes the store's name
    /// for it meanwhile.
    async fn link_stored(
        &self,
        layer: &ManifestLayer,
        dir: &Path,
    ) -> Result<Option<StagedBlob>, RegistryError> {
        let stored = self.store.blob_path(&layer.digest);
        let path = dir.join(format!("blob-{}", layer.digest.hex()));
        match tokio::fs::hard_link(&stored, &path).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(_) => match tokio::fs::copy(&stored, &path).await {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(source) => return Err(RegistryError::Stage { path, source }),
            },
        }
        let size = tokio::fs::metadata(&path)
            .await
            .map_err(|source| RegistryError::Stage {
                path: path.clone(),
                source,
            })?
            .len();
        Ok(Some(StagedBlob {
            path,
            digest: layer.digest.clone(),
            size,
        }))
    }

    fn report(&self, digest: &Digest, what: &'static str, size: u64, state: ProgressState) {
        self.options.report(Progress {
            digest: digest.clone(),
            what,
            done: size,
            total: size,
            state,
        });
    }

    fn image_error(&self, source: ArchiveError) -> RegistryError {
        image_error(&self.shown, source)
    }

    /// Runs store work on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, RegistryError> {
        match tokio::task::spawn_blocking(work).await {
            Ok(value) => Ok(value),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(RegistryError::Cancelled {
                reference: self.shown.clone(),
            }),
        }
    }
}

/// Follows indexes from the manifest `bytes` (with digest `digest`) to
/// the image manifest for `platform`.
async fn resolve(
    remote: &Remote,
    platform: &Platform,
    mut bytes: Vec<u8>,
    mut digest: Digest,
    shown: &str,
) -> Result<ManifestParts, RegistryError> {
    let image_error = |source| image_error(shown, source);
    for _ in 0..=MAX_INDEX_DEPTH {
        let location = format!("manifest {digest}");
        if document_kind(&bytes, &location).map_err(image_error)? == DocumentKind::Manifest {
            return parse_manifest(bytes, digest).map_err(image_error);
        }
        let location = format!("index {digest}");
        let index = parse_index(&bytes, &location).map_err(image_error)?;
        let entry: &Descriptor = pick_entry(&index, platform, &location).map_err(image_error)?;
        let entry_digest = descriptor_digest(entry, &location).map_err(image_error)?;
        let size = entry.size();
        (bytes, digest) = remote.manifest(Some(&entry_digest)).await?;
        check_size(&bytes, &digest, size, "manifest").map_err(image_error)?;
    }
    Err(image_error(ArchiveError::TooDeep {
        location: format!("index {digest}"),
    }))
}

/// Fetches one layer into `dir`.
async fn fetch_layer(
    remote: &Remote,
    layer: ManifestLayer,
    dir: &Path,
    options: &PullOptions,
) -> Result<StagedBlob, RegistryError> {
    let path = dir.join(format!("blob-{}", layer.digest.hex()));
    let stage_err = |source| RegistryError::Stage {
        path: path.clone(),
        source,
    };
    let file = tokio::fs::File::create(&path).await.map_err(stage_err)?;
    let mut out = tokio::io::BufWriter::new(file);
    let report = |progress| options.report(progress);
    let blob = ("layer", &layer.digest, layer.size);
    let size = remote.blob(blob, &mut out, report, stage_err).await?;
    Ok(StagedBlob {
        path,
        digest: layer.digest.clone(),
        size,
    })
}

/// An index with no image for the platform is told apart; anything else
/// wrong with the image is [`RegistryError::Image`].
fn image_error(shown: &str, source: ArchiveError) -> RegistryError {
    match source {
        ArchiveError::NoMatchingPlatform {
            wanted, available, ..
        } => RegistryError::NoMatchingPlatform {
            reference: shown.to_owned(),
            wanted,
            available,
        },
        source => RegistryError::Image {
            reference: shown.to_owned(),
            source,
        },
    }
}

/// Writing to memory does not fail.
fn unreachable_write(source: io::Error) -> RegistryError {
    unreachable!("writing to a Vec failed: {source}")
}
