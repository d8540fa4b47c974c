//! Pulling images from an OCI distribution registry into the
//! [store](crate::store): [`Store::pull`].
//!
//! # A pull
//!
//! 1. The manifest the reference names is fetched (`GET
//!    /v2/<repository>/manifests/<tag or digest>`), anonymously first; if
//!    the registry answers 401 and credentials for it are configured
//!    ([`Credentials`]), again with them: basic auth, or the bearer-token
//!    flow when the registry points to a token service.
//! 2. An index (multi-platform image) is resolved to the manifest for the
//!    wanted platform (the host's unless [`PullOptions::platform`] says
//!    otherwise) by the same rules as archives and layouts: attestations
//!    skipped, nested indexes followed.
//! 3. The config and each layer are fetched into the load's staging
//!    directory, each checked against its digest as it streams (the
//!    registry is not trusted: a blob is never read past its descriptor's
//!    size, and one that does not match its digest fails the pull). A blob
//!    the store has already is linked from there instead of fetched; so a
//!    second pull of an image fetches its manifest only, and a pull by
//!    digest of an image in the store fetches nothing at all.
//! 4. The image is unpacked and committed exactly as a
//!    [load](Store::load_archive) is, and named by the reference
//!    (`registry/repository:tag`; a reference with a digest and no tag
//!    names nothing, so the image is kept only while something else names
//!    it, as with docker).
//!
//! Two pulls of one image at once are safe: each stages on its own, and
//! the store's commit keeps one tree.
//!
//! # Transport
//!
//! HTTPS (rustls, the system's roots), except plain HTTP for a loopback
//! registry (`localhost`, `127.0.0.0/8`, `[::1]`, any port) or one listed
//! in [`PullOptions::insecure_registries`]. Connecting gives up after
//! [`PullOptions::connect_timeout`] (10 s by default); a registry that
//! sends nothing for [`PullOptions::stall_timeout`] (60 s) fails the pull.
//! The `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` variables are honored.
//!
//! # Credentials
//!
//! Docker's `config.json` by default (see [`Credentials`]): `auths`
//! entries only; credential helpers (`credsStore`, `credHelpers`) are
//! not supported.

mod auth;
mod error;
mod pull;
mod remote;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use self::auth::{Credentials, DOCKER_CONFIG_ENV};
pub use self::error::{RegistryError, TransportError};
pub use self::remote::plain_http_allowed;
use crate::digest::Digest;
use crate::platform::Platform;
#[cfg(doc)]
use crate::store::Store;

/// How long connecting to a registry may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a registry may send nothing while a request is under way.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How many blobs are fetched at once.
pub const CONCURRENT_FETCHES: usize = 3;

/// How a pull goes.
#[derive(Clone)]
pub struct PullOptions {
    /// The platform to pick from a multi-platform image; the host's
    /// ([`Platform::host`]) when `None`.
    pub platform: Option<Platform>,
    /// Registries (`host:port`, or a host for all its ports) spoken to over
    /// plain HTTP, besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// Where credentials come from (docker's config by default).
    pub credentials: Credentials,
    /// Hears how each blob's fetch goes (see [`Progress`]).
    pub progress: Option<ProgressFn>,
    /// How long connecting may take ([`DEFAULT_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// How long the registry may send nothing ([`DEFAULT_STALL_TIMEOUT`]).
    pub stall_timeout: Duration,
}

/// A callback for [`Progress`] reports. It is called from the pulling
/// task: it should return quickly.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How the fetch of one blob (the config or a layer) goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The blob.
    pub digest: Digest,
    /// What it is: "config" or "layer".
    pub what: &'static str,
    /// Bytes fetched so far.
    pub done: u64,
    /// Its size.
    pub total: u64,
    /// Where it is.
    pub state: ProgressState,
}

/// Where a blob's fetch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressState {
    /// The store has it: nothing is fetched (reported once, with `done`
    /// equal to `total`).
    Cached,
    /// Being fetched (reported when it starts, then after each chunk).
    Fetching,
    /// Fetched in full and matching its digest.
    Verified,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            platform: None,
            insecure_registries: Vec::new(),
            credentials: Credentials::default(),
            progress: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
        }
    }
}

impl fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullOptions")
            .field("platform", &self.platform)
            .field("insecure_registries", &self.insecure_registries)
            .field("credentials", &self.credentials)
            .field("progress", &self.progress.as_ref().map(|_| "<callback>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("stall_timeout", &self.stall_timeout)
            .finish()
    }
}

impl PullOptions {
    fn report(&self, progress: Progress) {
        if let Some(callback) = &self.progress {
            callback(&progress);
        }
    }
}
