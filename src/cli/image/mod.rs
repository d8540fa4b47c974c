//! The image commands (`krunbox load`, `images`, `rmi`, `image prune`),
//! one file each, and how `--image` finds an image for `run` and `start`.

pub mod images;
pub mod load;
pub mod prune;
pub mod pull;
pub mod rmi;

use std::path::PathBuf;

use krunbox::image::config::ConfigError;
use krunbox::image::store::{Image, Store, StoreError};

use super::report::Advised;

/// An image command that failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The store failed (or has no such image).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The image's user cannot be resolved in it.
    #[error("image {image}")]
    User {
        /// The image.
        image: String,
        /// Why.
        #[source]
        source: ConfigError,
    },
    /// An image reference that is not one.
    #[error("invalid image reference")]
    Reference(#[source] krunbox::image::reference::ReferenceError),
    /// The archive file cannot be opened.
    #[error("cannot open {}", path.display())]
    Input {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `run` without a command, and no image command to fall back on.
    #[error("no command to run: the image has no Entrypoint or Cmd, and none was given")]
    NoCommand,
    /// `run --rootfs` without a command.
    #[error("no command to run: none was given")]
    NoCommandGiven,
    /// Neither `--rootfs` nor `--image`: nothing to boot.
    #[error("nothing to boot: neither --rootfs nor --image was given")]
    NoRoot,
    /// `load` without `-i` and with a terminal on standard input.
    #[error("no archive given and standard input is a terminal")]
    StdinIsATerminal,
}

impl Advised for ImageError {
    fn advice(&self) -> Option<String> {
        match self {
            Self::Store(StoreError::NotFound { .. }) => Some(
                "`krunbox images` lists the images here; `krunbox pull IMAGE` fetches one, \
                 `krunbox load -i FILE` adds one (`docker save IMAGE > FILE` makes FILE)"
                    .into(),
            ),
            Self::Store(StoreError::Pull(e)) => registry_advice(e),
            Self::NoCommand | Self::NoCommandGiven => {
                Some("give the command after --: krunbox run … -- CMD ARGS".into())
            }
            Self::StdinIsATerminal => Some(
                "give the archive with -i FILE, or pipe it in: docker save IMAGE | krunbox load"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// The per-user image store.
pub fn store() -> Result<Store, ImageError> {
    Ok(Store::open_default()?)
}

/// The image's first name, or its ID.
pub fn display_name(image: &Image) -> String {
    image
        .names
        .first()
        .cloned()
        .unwrap_or_else(|| image.manifest_digest.to_string())
}

/// What to do about a pull that failed.
fn registry_advice(error: &krunbox::image::RegistryError) -> Option<String> {
    use krunbox::image::RegistryError as E;
    match error {
        E::AuthRequired { .. } | E::AuthRefused { .. } => Some(
            "put credentials for the registry in docker's config.json ($DOCKER_CONFIG or \
             ~/.docker/config.json), e.g. with `docker login`"
                .into(),
        ),
        E::NoMatchingPlatform { .. } => Some("choose one with --platform OS/ARCH".into()),
        E::NoCaCertificates { .. } => Some("on Debian: apt-get install ca-certificates".into()),
        E::Unreachable { .. } => Some(
            "check the registry's address; a registry that speaks plain HTTP needs \
             --insecure-registry HOST[:PORT] (loopback ones do not)"
                .into(),
        ),
        _ => None,
    }
}
