//! Why a pull failed, and how an `oci-client` error is told apart: a
//! missing manifest, an authentication problem, a registry that cannot be
//! reached or stalls, content that does not match its digest.

use std::error::Error as StdError;
use std::io;
use std::path::PathBuf;

use oci_client::errors::{OciDistributionError, OciErrorCode};

use crate::archive::ArchiveError;
use crate::digest::{Digest, DigestMismatch};

/// The cause of a transport failure (a connect error or a timeout), as
/// the HTTP client or the stall timer gave it.
pub type TransportError = Box<dyn StdError + Send + Sync>;

/// A pull that failed. Each names the reference pulled (registry and
/// repository included) and keeps the cause as its source.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry has no such repository, or no such tag or digest in it
    /// (a 404 for the manifest), or lacks a blob its manifest lists.
    #[error("{reference}: {what} not found in the registry")]
    NotFound {
        /// The reference pulled.
        reference: String,
        /// What was not found: "manifest", or "layer sha256:…".
        what: String,
        /// The registry's answer.
        #[source]
        source: OciDistributionError,
    },
    /// The registry wants credentials (401 or 403) and none are configured
    /// for it.
    #[error("{reference}: the registry requires authentication and no credentials for {registry} are configured")]
    AuthRequired {
        /// The reference pulled.
        reference: String,
        /// The registry, as looked up in docker's config.
        registry: String,
        /// The registry's answer.
        #[source]
        source: OciDistributionError,
    },
    /// The registry refused the configured credentials (401 or 403).
    #[error("{reference}: the registry refused the credentials of {username:?}")]
    AuthRefused {
        /// The reference pulled.
        reference: String,
        /// The user name given.
        username: String,
        /// The registry's answer.
        #[source]
        source: OciDistributionError,
    },
    /// No connection to the registry could be made (refused, no route,
    /// name not resolved, TLS handshake failed).
    #[error("cannot reach registry {registry} to pull {reference}")]
    Unreachable {
        /// The registry.
        registry: String,
        /// The reference pulled.
        reference: String,
        /// Why.
        #[source]
        source: TransportError,
    },
    /// The registry did not answer within the connect timeout, or stopped
    /// sending for longer than the stall timeout.
    #[error("registry {registry} timed out while pulling {reference}")]
    TimedOut {
        /// The registry.
        registry: String,
        /// The reference pulled.
        reference: String,
        /// The timeout that expired.
        #[source]
        source: TransportError,
    },
    /// A manifest or blob whose content does not match its digest.
    #[error("{reference}: {what} from the registry does not match its digest")]
    DigestMismatch {
        /// The reference pulled.
        reference: String,
        /// What it is ("manifest", "config", "layer").
        what: &'static str,
        /// The digest expected and the digest of what came.
        #[source]
        source: DigestMismatch,
    },
    /// A blob longer than its descriptor says (or than a JSON document
    /// may be): the rest is not read.
    #[error("{reference}: {what} {digest} from the registry is longer than {limit} bytes")]
    TooLarge {
        /// The reference pulled.
        reference: String,
        /// What it is ("manifest", "config", "layer").
        what: &'static str,
        /// The blob (for a manifest: what it was asked by).
        digest: String,
        /// The most bytes it may have.
        limit: u64,
    },
    /// An index with no image for the wanted platform.
    #[error("{reference} has no image for {wanted} (it has {})", available.join(", "))]
    NoMatchingPlatform {
        /// The reference pulled.
        reference: String,
        /// The platform wanted.
        wanted: String,
        /// The platforms it has.
        available: Vec<String>,
    },
    /// A manifest, index or config that is not an image this crate
    /// handles: an unsupported media type or schema version (a schema 1
    /// manifest, an artifact), invalid JSON, sizes or layer counts that do
    /// not add up.
    #[error("{reference} is not an image that can be pulled")]
    Image {
        /// The reference pulled.
        reference: String,
        /// What is wrong with it.
        #[source]
        source: ArchiveError,
    },
    /// Any other failed request: a 5xx, an unexpected status, a response
    /// that breaks the distribution spec.
    #[error("registry {registry} failed a request for {reference}")]
    Response {
        /// The registry.
        registry: String,
        /// The reference pulled.
        reference: String,
        /// The error.
        #[source]
        source: OciDistributionError,
    },
    /// A blob's content stopped in the middle (the connection broke).
    #[error("{reference}: reading {what} {digest} from the registry failed")]
    Read {
        /// The reference pulled.
        reference: String,
        /// What it is ("config", "layer").
        what: &'static str,
        /// The blob.
        digest: Digest,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A blob could not be written to the store's staging directory.
    #[error("cannot stage {} for the store", path.display())]
    Stage {
        /// The staging file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The HTTP client could not be set up (TLS roots, proxy settings).
    #[error("cannot set up an HTTP client to pull {reference}")]
    Client {
        /// The reference pulled.
        reference: String,
        /// Why.
        #[source]
        source: OciDistributionError,
    },
    /// The host has no CA certificates, which the HTTP client needs even
    /// to speak plain HTTP.
    #[error("cannot pull {reference}: this host has no CA certificates (install ca-certificates, or set SSL_CERT_FILE)")]
    NoCaCertificates {
        /// The reference pulled.
        reference: String,
    },
    /// Docker's config file could not be read.
    #[error("cannot read docker config {}", path.display())]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Docker's config file is not valid JSON of its shape.
    #[error("invalid docker config {}", path.display())]
    DockerConfigJson {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// An `auths` entry whose `auth` is not base64 of `user:password`.
    #[error("docker config {}: invalid auth for {key:?}", path.display())]
    DockerConfigAuth {
        /// The file.
        path: PathBuf,
        /// The `auths` key.
        key: String,
        /// The base64 error, when it is not base64 at all.
        #[source]
        source: Option<base64::DecodeError>,
    },
    /// The pull was cancelled: the runtime shut down while the store
    /// committed it.
    #[error("the pull of {reference} was cancelled")]
    Cancelled {
        /// The reference pulled.
        reference: String,
    },
}

/// What a request was for, to classify its failure.
#[derive(Debug, Clone, Copy)]
pub(super) enum Request<'a> {
    /// A manifest or index.
    Manifest,
    /// A blob: what it is, and its digest.
    Blob(&'static str, &'a Digest),
}

/// Who a request was made as.
#[derive(Debug, Clone)]
pub(super) struct Identity<'a> {
    /// The reference pulled, as shown in errors.
    pub reference: &'a str,
    /// Its registry.
    pub registry: &'a str,
    /// The user the request authenticated as, if any.
    pub username: Option<&'a str>,
}

/// The [`RegistryError`] for a failed `oci-client` request.
pub(super) fn classify(
    source: OciDistributionError,
    request: Request<'_>,
    who: &Identity<'_>,
) -> RegistryError {
    let reference = who.reference.to_owned();
    if is_auth_failure(&source) {
        return match who.username {
            Some(username) => RegistryError::AuthRefused {
                reference,
                username: username.to_owned(),
                source,
            },
            None => RegistryError::AuthRequired {
                reference,
                registry: who.registry.to_owned(),
                source,
            },
        };
    }
    if is_not_found(&source) {
        let what = match request {
            Request::Manifest => "manifest".to_owned(),
            Request::Blob(what, digest) => format!("{what} {digest}"),
        };
        return RegistryError::NotFound {
            reference,
            what,
            source,
        };
    }
    if let OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError {
        expected,
        actual,
    }) = &source
    {
        if let (Ok(expected), Ok(actual)) = (Digest::parse(expected), Digest::parse(actual)) {
            let what = match request {
                Request::Manifest => "manifest",
                Request::Blob(what, _) => what,
            };
            return RegistryError::DigestMismatch {
                reference,
                what,
                source: DigestMismatch { expected, actual },
            };
        }
    }
    match transport_failure(&source) {
        Some(failure) => failure.into_error(who, Box::new(source)),
        None => RegistryError::Response {
            registry: who.registry.to_owned(),
            reference,
            source,
        },
    }
}

/// A transport failure found in an error's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transport {
    /// No connection could be made.
    Connect,
    /// A timeout expired.
    Timeout,
}

impl Transport {
    /// The error for this failure, with `source` as its cause.
    pub(super) fn into_error(self, who: &Identity<'_>, source: TransportError) -> RegistryError {
        let registry = who.registry.to_owned();
        let reference = who.reference.to_owned();
        match self {
            Self::Connect => RegistryError::Unreachable {
                registry,
                reference,
                source,
            },
            Self::Timeout => RegistryError::TimedOut {
                registry,
                reference,
                source,
            },
        }
    }
}

/// Whether `error`, or an error it was caused by, is a connect failure or
/// a timeout.
pub(super) fn transport_failure(error: &(dyn StdError + 'static)) -> Option<Transport> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(http) = error.downcast_ref::<reqwest::Error>() {
            if http.is_timeout() {
                return Some(Transport::Timeout);
            }
            if http.is_connect() {
                return Some(Transport::Connect);
            }
        }
        // Wrappers whose `source()` skips the error they wrap.
        if let Some(OciDistributionError::RequestError(http)) = error.downcast_ref() {
            if let Some(failure) = transport_failure(http) {
                return Some(failure);
            }
        }
        if let Some(io) = error.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::TimedOut {
                return Some(Transport::Timeout);
            }
            if let Some(failure) = io.get_ref().and_then(|inner| transport_failure(inner)) {
                return Some(failure);
            }
        }
        next = error.source();
    }
    None
}

fn is_auth_failure(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::UnauthorizedError { .. } => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)),
        OciDistributionError::ServerError { code, .. } => *code == 401 || *code == 403,
        _ => false,
    }
}

fn is_not_found(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::NotFound
                    | OciErrorCode::BlobUnknown
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        _ => false,
    }
}
