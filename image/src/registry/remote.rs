//! One registry repository, reached through `oci-client`: which scheme
//! it is spoken to over, who as, and its manifests and blobs fetched with
//! every byte checked against the digest asked for.

use std::io::{self, Write as _};
use std::net::Ipv4Addr;
use std::sync::Once;
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::Client;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::auth::Login;
use super::error::{classify, transport_failure, Identity, RegistryError, Request, Transport};
use super::{Progress, ProgressState, PullOptions};
use crate::archive::{MANIFEST_MEDIA_TYPES, MAX_JSON};
use crate::digest::{Digest, DigestWriter};
use crate::reference::Reference;

/// The `User-Agent` of pulls.
const USER_AGENT: &str = concat!("krunbox-image/", env!("CARGO_PKG_VERSION"));

/// A registry repository, and who it is spoken to as.
pub(super) struct Remote {
    client: Client,
    auth: RegistryAuth,
    username: Option<String>,
    /// The repository (at the tag or digest pulled), as `oci-client` takes it.
    target: oci_client::Reference,
    /// The reference pulled, as errors show it.
    shown: String,
    registry: String,
    stall: Duration,
}

impl Remote {
    /// Fetches the manifest `reference` names, anonymously first and, if
    /// the registry asks for credentials and some are configured for it,
    /// with them: the remote that got it, the manifest and its digest.
    pub(super) async fn connect(
        reference: &Reference,
        options: &PullOptions,
    ) -> Result<(Self, Vec<u8>, Digest), RegistryError> {
        let anonymous = Self::new(reference, options, None)?;
        let first = anonymous.manifest(reference.digest.as_ref()).await;
        let needs_login = matches!(first, Err(RegistryError::AuthRequired { .. }));
        let login = match needs_login {
            true => options.credentials.login_for(&reference.registry)?,
            false => None,
        };
        let Some(login) = login else {
            let (manifest, digest) = first?;
            return Ok((anonymous, manifest, digest));
        };
        let remote = Self::new(reference, options, Some(login))?;
        let (manifest, digest) = remote.manifest(reference.digest.as_ref()).await?;
        Ok((remote, manifest, digest))
    }

    fn new(
        reference: &Reference,
        options: &PullOptions,
        login: Option<Login>,
    ) -> Result<Self, RegistryError> {
        install_crypto_provider();
        let shown = reference.to_string();
        // The HTTP client panics when the system has no CA certificates.
        if rustls_native_certs::load_native_certs().certs.is_empty() {
            return Err(RegistryError::NoCaCertificates { reference: shown });
        }
        let plain = plain_http_allowed(&reference.registry, &options.insecure_registries);
        let config = ClientConfig {
            protocol: match plain {
                true => ClientProtocol::Http,
                false => ClientProtocol::Https,
            },
            // Indexes are resolved here, by the archive module's rules.
            platform_resolver: None,
            connect_timeout: Some(options.connect_timeout),
            read_timeout: Some(options.stall_timeout),
            user_agent: USER_AGENT,
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(|source| RegistryError::Client {
            reference: shown.clone(),
            source,
        })?;
        let target = match &reference.tag {
            Some(tag) => oci_client::Reference::with_tag(
                reference.registry.clone(),
                reference.repository.clone(),
                tag.clone(),
            ),
            None => oci_client::Reference::with_digest(
                reference.registry.clone(),
                reference.repository.clone(),
                reference
                    .digest
                    .as_ref()
                    .map(Digest::to_string)
                    .unwrap_or_default(),
            ),
        };
        let (auth, username) = match login {
            Some(login) => (
                RegistryAuth::Basic(login.username.clone(), login.password),
                Some(login.username),
            ),
            None => (RegistryAuth::Anonymous, None),
        };
        Ok(Self {
            client,
            auth,
            username,
            target,
            shown,
            registry: reference.registry.clone(),
            stall: options.stall_timeout,
        })
    }

    fn identity(&self) -> Identity<'_> {
        Identity {
            reference: &self.shown,
            registry: &self.registry,
            username: self.username.as_deref(),
        }
    }

    /// The manifest (or index) `digest` names, or the one the pulled tag
    /// names when `digest` is `None`; with its digest, checked.
    pub(super) async fn manifest(
        &self,
        digest: Option<&Digest>,
    ) -> Result<(Vec<u8>, Digest), RegistryError> {
        let target = match digest {
            Some(digest) => self.target.clone_with_digest(digest.to_string()),
            None => self.target.clone(),
        };
        let (body, _) = self
            .client
            .pull_manifest_raw(&target, &self.auth, &MANIFEST_MEDIA_TYPES)
            .await
            .map_err(|e| classify(e, Request::Manifest, &self.identity()))?;
        if body.len() as u64 > MAX_JSON {
            return Err(RegistryError::TooLarge {
                reference: self.shown.clone(),
                what: "manifest",
                digest: target.digest().or(target.tag()).unwrap_or("").to_owned(),
                limit: MAX_JSON,
            });
        }
        // oci-client checks the body against the digest asked for and the
        // one the registry names; checked again here, with this crate's
        // digests, which are what the store is keyed by.
        let actual = Digest::of(&body);
        if let Some(expected) = digest {
            expected
                .verify(&actual)
                .map_err(|source| RegistryError::DigestMismatch {
                    reference: self.shown.clone(),
                    what: "manifest",
                    source,
                })?;
        }
        Ok((body.to_vec(), actual))
    }

    /// Streams the blob `digest` of `size` bytes into `out`, hashing it on
    /// the way: never more than `size` bytes are taken, and the content
    /// must have the digest. `report` hears of the progress; `stage_err`
    /// makes the error for a failed write. The bytes fetched.
    pub(super) async fn blob<W: AsyncWrite + Unpin>(
        &self,
        (what, digest, size): (&'static str, &Digest, u64),
        out: &mut W,
        report: impl Fn(Progress),
        stage_err: impl Fn(io::Error) -> RegistryError,
    ) -> Result<u64, RegistryError> {
        let digest_text = digest.to_string();
        let mut stream = self
            .client
            .pull_blob_stream(&self.target, digest_text.as_str())
            .await
            .map_err(|e| classify(e, Request::Blob(what, digest), &self.identity()))?;
        let progress = |done, state| Progress {
            digest: digest.clone(),
            what,
            done,
            total: size,
            state,
        };
        report(progress(0, ProgressState::Fetching));
        let mut hash = DigestWriter::new(io::sink());
        loop {
            let next = tokio::time::timeout(self.stall, stream.next()).await;
            let chunk = match next {
                Err(elapsed) => {
                    return Err(Transport::Timeout.into_error(&self.identity(), Box::new(elapsed)))
                }
                Ok(None) => break,
                Ok(Some(Ok(chunk))) => chunk,
                // oci-client's own check failed at the end of the stream:
                // the check below says how.
                Ok(Some(Err(e))) if is_digest_error(&e) => break,
                Ok(Some(Err(e))) => return Err(self.read_error(what, digest, e)),
            };
            if hash.len() + chunk.len() as u64 > size {
                return Err(RegistryError::TooLarge {
                    reference: self.shown.clone(),
                    what,
                    digest: digest_text,
                    limit: size,
                });
            }
            hash.write_all(&chunk).expect("a sink takes everything");
            out.write_all(&chunk).await.map_err(&stage_err)?;
            report(progress(hash.len(), ProgressState::Fetching));
        }
        out.flush().await.map_err(&stage_err)?;
        let done = hash.len();
        hash.verify(digest)
            .map_err(|source| RegistryError::DigestMismatch {
                reference: self.shown.clone(),
                what,
                source,
            })?;
        report(progress(done, ProgressState::Verified));
        Ok(done)
    }

    fn read_error(&self, what: &'static str, digest: &Digest, source: io::Error) -> RegistryError {
        match transport_failure(&source) {
            Some(failure) => failure.into_error(&self.identity(), Box::new(source)),
            None => RegistryError::Read {
                reference: self.shown.clone(),
                what,
                digest: digest.clone(),
                source,
            },
        }
    }
}

/// Whether a stream error is `oci-client`'s digest check failing.
fn is_digest_error(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<oci_client::errors::DigestError>())
}

/// Whether `registry` may be spoken to over plain HTTP: a loopback one
/// (`localhost`, `127.0.0.0/8`, `[::1]`, any port), or one listed in
/// `insecure` (as `host:port`, or as a host for any of its ports).
pub fn plain_http_allowed(registry: &str, insecure: &[String]) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(addr, _)| addr),
        None => registry.split(':').next().unwrap_or(registry),
    };
    let loopback = host == "localhost"
        || host == "::1"
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
    loopback
        || insecure
            .iter()
            .any(|entry| entry == registry || entry == host)
}

/// rustls needs a process-wide crypto provider; ring is installed unless
/// the program installed one already.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err: another provider is installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_listed_registries() {
        let none: &[String] = &[];
        for loopback in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.8.9.10",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(plain_http_allowed(loopback, none), "{loopback}");
        }
        for remote in [
            "docker.io",
            "ghcr.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:5000",
            "128.0.0.1",
        ] {
            assert!(!plain_http_allowed(remote, none), "{remote}");
        }
        let listed = ["registry.lan:5000".to_owned(), "10.0.0.1".to_owned()];
        assert!(plain_http_allowed("registry.lan:5000", &listed));
        assert!(!plain_http_allowed("registry.lan:5001", &listed));
        assert!(plain_http_allowed("10.0.0.1:5000", &listed));
    }
}
