//! The tests' own pusher: blobs by the monolithic upload (`POST
//! /v2/<name>/blobs/uploads/`, then `PUT <location>&digest=…`) and
//! manifests by `PUT /v2/<name>/manifests/<reference>`, over plain HTTP.

use base64::Engine as _;
use krunbox_image::digest::Digest;
use serde_json::{json, Value};

use super::support::{descriptor, TestImage};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Pushes to the registry at `127.0.0.1:PORT`.
pub struct Pusher {
    base: String,
    authorization: Option<String>,
}

impl Pusher {
    /// Pushes anonymously.
    pub fn new(addr: &str) -> Self {
        Self {
            base: format!("http://{addr}"),
            authorization: None,
        }
    }

    /// Pushes as `user`.
    pub fn with_login(addr: &str, user: &str, password: &str) -> Self {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Self {
            authorization: Some(format!("Basic {token}")),
            ..Self::new(addr)
        }
    }

    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(value) => request.header("Authorization", value),
            None => request,
        }
    }

    /// Uploads a blob to `repository`.
    pub fn blob(&self, repository: &str, bytes: &[u8]) {
        let start = format!("{}/v2/{repository}/blobs/uploads/", self.base);
        let response = self
            .authorized(ureq::post(&start))
            .header("Content-Length", "0")
            .send_empty()
            .unwrap();
        assert_eq!(response.status(), 202, "upload start");
        let location = response.headers()["Location"].to_str().unwrap().to_owned();
        let location = match location.starts_with('/') {
            true => format!("{}{location}", self.base),
            false => location,
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{separator}digest={}", Digest::of(bytes));
        let response = self
            .authorized(ureq::put(&url))
            .header("Content-Type", "application/octet-stream")
            .send(bytes)
            .unwrap();
        assert_eq!(response.status(), 201, "upload end");
    }

    /// Puts a manifest or index under `reference` (a tag or its digest).
    pub fn manifest(&self, repository: &str, reference: &str, media_type: &str, bytes: &[u8]) {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let response = self
            .authorized(ureq::put(&url))
            .header("Content-Type", media_type)
            .send(bytes)
            .unwrap();
        assert_eq!(response.status(), 201, "manifest put");
    }

    /// Pushes an image's config and layers, then its manifest tagged `tag`
    /// (or by its digest when `tag` is `None`).
    pub fn image(&self, repository: &str, tag: Option<&str>, image: &TestImage) {
        self.blob(repository, &image.config);
        for layer in &image.layers {
            self.blob(repository, layer);
        }
        let digest = image.manifest_digest().to_string();
        let reference = tag.unwrap_or(&digest);
        self.manifest(repository, reference, OCI_MANIFEST, &image.manifest);
    }
}

/// An index of `images`, each entry for `linux/<arch>`.
pub fn index(images: &[(&TestImage, &str)]) -> Vec<u8> {
    let manifests: Vec<Value> = images
        .iter()
        .map(|(image, arch)| {
            let mut entry = descriptor(OCI_MANIFEST, &image.manifest);
            entry["platform"] = json!({"os": "linux", "architecture": arch});
            entry
        })
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    }))
    .unwrap()
}
