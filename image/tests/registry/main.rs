//! Pulls from a real registry on loopback (Debian's `docker-registry`,
//! started by each test; missing, the tests fail and say to run `cargo
//! xtask setup`), and from a fault-injecting one of the tests' own.

#[path = "../support/mod.rs"]
mod support;

mod fault;
mod push;
mod server;

use std::fs;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use krunbox_image::archive::{host_platform, ArchiveError};
use krunbox_image::registry::{Credentials, Progress, ProgressState, PullOptions};
use krunbox_image::{Platform, Reference, RegistryError, Store, StoreError};
use push::{Pusher, OCI_INDEX, OCI_MANIFEST};
use server::RegistryServer;
use support::{assert_nothing_loaded, roots_entries, TestImage};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

/// Anonymous pulls, whatever docker config the machine has.
fn anonymous() -> PullOptions {
    PullOptions {
        credentials: Credentials::Anonymous,
        ..PullOptions::default()
    }
}

/// Options that record every progress report.
fn recording() -> (PullOptions, Arc<Mutex<Vec<Progress>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let options = PullOptions {
        progress: Some(Arc::new(move |p: &Progress| {
            sink.lock().unwrap().push(p.clone())
        })),
        ..anonymous()
    };
    (options, seen)
}

fn registry_error(err: StoreError) -> RegistryError {
    match err {
        StoreError::Pull(err) => err,
        other => panic!("not a registry error: {other:?}"),
    }
}

async fn pull_err(store: &Store, reference: &Reference, options: &PullOptions) -> RegistryError {
    registry_error(store.pull(reference, options).await.unwrap_err())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_by_tag_then_again_then_by_digest() {
    let registry = RegistryServer::start();
    let image = TestImage::host("/app/run");
    Pusher::new(&registry.addr).image("app", Some("1"), &image);
    let (_dir, store) = store();
    let reference = registry.reference("app:1");
    let (options, seen) = recording();

    let pulled = store.pull(&reference, &options).await.unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest_digest());
    assert_eq!(pulled.names, [format!("{}/app:1", registry.addr)]);
    assert_eq!(pulled.config.cmd, ["/app/run"]);
    assert_eq!(fs::read(pulled.root.join("etc/keep")).unwrap(), b"keep");
    assert!(!pulled.root.join("etc/old").exists());
    assert_eq!(
        registry.requests("\"GET /v2/app/blobs/"),
        3,
        "config, 2 layers"
    );
    let verified: Vec<Progress> = seen.lock().unwrap().drain(..).collect();
    let verified: Vec<&Progress> = verified
        .iter()
        .filter(|p| p.state == ProgressState::Verified)
        .collect();
    assert_eq!(verified.len(), 3);
    assert!(verified.iter().all(|p| p.done == p.total));

    // Again: the manifest only.
    let again = store.pull(&reference, &options).await.unwrap();
    assert_eq!(again, pulled);
    assert_eq!(registry.requests("\"GET /v2/app/blobs/"), 3);
    assert_eq!(registry.requests("\"GET /v2/app/manifests/1 "), 2);
    let states: Vec<ProgressState> = seen.lock().unwrap().iter().map(|p| p.state).collect();
    assert_eq!(states, [ProgressState::Cached; 3]);

    // By digest, present: nothing at all.
    let requests = registry.requests("/v2/");
    let pinned = registry.reference(&format!("app@{}", image.manifest_digest()));
    let by_digest = store.pull(&pinned, &options).await.unwrap();
    assert_eq!(by_digest, pulled);
    assert_eq!(registry.requests("/v2/"), requests);
    assert_eq!(roots_entries(store.dir()).len(), 2, "one tree, one record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_by_digest_names_nothing() {
    let registry = RegistryServer::start();
    let image = TestImage::host("/bin/true");
    Pusher::new(&registry.addr).image("ns/app", None, &image);
    let (_dir, store) = store();
    let pinned = registry.reference(&format!("ns/app@{}", image.manifest_digest()));
    let pulled = store.pull(&pinned, &anonymous()).await.unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest_digest());
    assert!(pulled.names.is_empty());
    let found = store.get(&image.manifest_digest().to_string()).unwrap();
    assert_eq!(found, pulled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tag_or_repository() {
    let registry = RegistryServer::start();
    Pusher::new(&registry.addr).image("app", Some("1"), &TestImage::host("/bin/true"));
    let (_dir, store) = store();
    for missing in ["app:2", "nothing:1"] {
        let err = pull_err(&store, &registry.reference(missing), &anonymous()).await;
        let RegistryError::NotFound {
            reference, what, ..
        } = &err
        else {
            panic!("{missing}: {err:?}");
        };
        assert_eq!(reference, &format!("{}/{missing}", registry.addr));
        assert_eq!(what, "manifest");
    }
    assert_nothing_loaded(&store);
}

/// A docker config directory with `user:password` for `registry`.
fn docker_config(registry: &str, user: &str, password: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{user}:{password}"),
    );
    let config = serde_json::json!({"auths": {registry: {"auth": auth}}});
    fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_from_docker_config() {
    let registry = RegistryServer::start_with_auth("krunbox", "s3cret");
    let image = TestImage::host("/bin/true");
    Pusher::with_login(&registry.addr, "krunbox", "s3cret").image("private", Some("1"), &image);
    let (_dir, store) = store();
    let reference = registry.reference("private:1");

    let err = pull_err(&store, &reference, &anonymous()).await;
    assert!(
        matches!(&err, RegistryError::AuthRequired { registry: r, .. } if *r == registry.addr),
        "{err:?}"
    );

    let wrong = docker_config(&registry.addr, "krunbox", "wrong");
    let options = PullOptions {
        credentials: Credentials::DockerConfigDir(wrong.path().to_owned()),
        ..PullOptions::default()
    };
    let err = pull_err(&store, &reference, &options).await;
    assert!(
        matches!(&err, RegistryError::AuthRefused { username, .. } if username == "krunbox"),
        "{err:?}"
    );
    assert_nothing_loaded(&store);

    // The default: $DOCKER_CONFIG/config.json. No other test of this
    // binary meets a registry that asks for credentials.
    let right = docker_config(&format!("http://{}", registry.addr), "krunbox", "s3cret");
    std::env::set_var("DOCKER_CONFIG", right.path());
    let pulled = store
        .pull(&reference, &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest_digest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_platform_index() {
    let registry = RegistryServer::start();
    let host_arch = host_platform().1;
    let other_arch = if host_arch == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let host = TestImage::new(support::two_layers(), true, host_arch, "/host");
    let other = TestImage::new(support::two_layers(), true, other_arch, "/other");
    let pusher = Pusher::new(&registry.addr);
    pusher.image("multi", None, &host);
    pusher.image("multi", None, &other);
    let index = push::index(&[(&other, other_arch), (&host, host_arch)]);
    pusher.manifest("multi", "1", OCI_INDEX, &index);
    let (_dir, store) = store();
    let reference = registry.reference("multi:1");

    let pulled = store.pull(&reference, &anonymous()).await.unwrap();
    assert_eq!(pulled.manifest_digest, host.manifest_digest());
    assert_eq!(pulled.config.cmd, ["/host"]);

    let wanted = PullOptions {
        platform: Some(format!("linux/{other_arch}").parse().unwrap()),
        ..anonymous()
    };
    let pulled = store.pull(&reference, &wanted).await.unwrap();
    assert_eq!(pulled.manifest_digest, other.manifest_digest());
    assert_eq!(
        registry.requests("\"GET /v2/multi/blobs/"),
        4,
        "each config, the shared layers once"
    );

    let absent = PullOptions {
        platform: Some("linux/riscv64".parse::<Platform>().unwrap()),
        ..anonymous()
    };
    let err = pull_err(&store, &reference, &absent).await;
    let RegistryError::NoMatchingPlatform {
        wanted, available, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(wanted, "linux/riscv64");
    assert_eq!(available.len(), 2, "{available:?}");
}

/// A fault server's content for `image` at `repository:1` (and by digest).
fn served(image: &TestImage) -> fault::Content {
    let mut content = fault::Content::default();
    let manifest = (OCI_MANIFEST.to_owned(), image.manifest.clone());
    content.manifests.insert("1".into(), manifest.clone());
    content
        .manifests
        .insert(image.manifest_digest().to_string(), manifest);
    for (digest, bytes) in image.blobs().into_iter().skip(1) {
        content.blobs.insert(digest.to_string(), bytes);
    }
    content
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_layer_pulls_nothing() {
    let image = TestImage::host("/bin/true");
    let mut content = served(&image);
    let layer = krunbox_image::Digest::of(&image.layers[1]);
    let mut tampered = image.layers[1].clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    content.blobs.insert(layer.to_string(), tampered.clone());
    let server = fault::FaultServer::start(content);
    let (_dir, store) = store();
    let reference = Reference::parse(&format!("{}/app:1", server.addr)).unwrap();
    let err = pull_err(&store, &reference, &anonymous()).await;
    let RegistryError::DigestMismatch { what, source, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*what, "layer");
    assert_eq!(source.expected, layer);
    assert_eq!(source.actual, krunbox_image::Digest::of(&tampered));
    assert_nothing_loaded(&store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_not_matching_its_digest() {
    let image = TestImage::host("/bin/true");
    let other = TestImage::host("/other");
    let mut content = served(&image);
    let digest = image.manifest_digest().to_string();
    let wrong = (OCI_MANIFEST.to_owned(), other.manifest.clone());
    content.manifests.insert(digest.clone(), wrong);
    let server = fault::FaultServer::start(content);
    let (_dir, store) = store();
    let pinned = Reference::parse(&format!("{}/app@{digest}", server.addr)).unwrap();
    let err = pull_err(&store, &pinned, &anonymous()).await;
    assert!(
        matches!(
            &err,
            RegistryError::DigestMismatch {
                what: "manifest",
                ..
            }
        ),
        "{err:?}"
    );
    assert_nothing_loaded(&store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_1_manifests_are_refused() {
    let mut content = fault::Content::default();
    let v1 = br#"{"schemaVersion":1,"name":"app","tag":"1","fsLayers":[],"history":[]}"#;
    let media_type = "application/vnd.docker.distribution.manifest.v1+prettyjws";
    content
        .manifests
        .insert("1".into(), (media_type.into(), v1.to_vec()));
    let server = fault::FaultServer::start(content);
    let (_dir, store) = store();
    let reference = Reference::parse(&format!("{}/app:1", server.addr)).unwrap();
    let err = pull_err(&store, &reference, &anonymous()).await;
    assert!(
        matches!(
            &err,
            RegistryError::Image {
                source: ArchiveError::SchemaVersion { version: 1, .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_blob_times_out() {
    let image = TestImage::host("/bin/true");
    let mut content = served(&image);
    content
        .stalled
        .push(krunbox_image::Digest::of(&image.layers[0]).to_string());
    let server = fault::FaultServer::start(content);
    let (_dir, store) = store();
    let reference = Reference::parse(&format!("{}/app:1", server.addr)).unwrap();
    let options = PullOptions {
        stall_timeout: Duration::from_secs(1),
        ..anonymous()
    };
    let err = pull_err(&store, &reference, &options).await;
    assert!(
        matches!(&err, RegistryError::TimedOut { registry, .. } if *registry == server.addr),
        "{err:?}"
    );
    assert_nothing_loaded(&store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registry() {
    let addr = format!("127.0.0.1:{}", server::free_port());
    let (_dir, store) = store();
    let reference = Reference::parse(&format!("{addr}/app:1")).unwrap();
    let err = pull_err(&store, &reference, &anonymous()).await;
    assert!(
        matches!(&err, RegistryError::Unreachable { registry, .. } if *registry == addr),
        "{err:?}"
    );
    assert!(err.to_string().contains(&addr), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pulls_at_once() {
    let registry = RegistryServer::start();
    let image = TestImage::host("/bin/true");
    Pusher::new(&registry.addr).image("app", Some("1"), &image);
    let (dir, store) = store();
    let other = Store::open(dir.path().join("store")).unwrap();
    let reference = registry.reference("app:1");
    let options = anonymous();
    let (a, b) = tokio::join!(
        store.pull(&reference, &options),
        other.pull(&reference, &options)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b);
    assert_eq!(roots_entries(store.dir()).len(), 2, "one tree, one record");
    assert!(support::dir_entries(&store.dir().join("tmp")).is_empty());
    assert_eq!(fs::read(a.root.join("app/run")).unwrap(), b"#!/bin/sh\n");
}

#[test]
fn pulls_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let (_dir, store) = store();
    let reference = Reference::parse("localhost:1/app").unwrap();
    let options = anonymous();
    let pull = store.pull(&reference, &options);
    assert_send(&pull);
}
