//! `krunbox pull`, `images`, `rmi` and `--pull` against a real registry
//! on loopback (Debian's docker-registry, started here), driven as a user
//! would: the CLI's output, exit codes and hints. Booting a pulled image
//! is the same path as a loaded one (tests/vm/image_cases.rs); everything
//! here happens before a VM would boot, so no VM is needed.

#[path = "../image/tests/support/mod.rs"]
mod support;

#[allow(dead_code)]
#[path = "../image/tests/registry/push.rs"]
mod push;

#[allow(dead_code)]
#[path = "../image/tests/registry/server.rs"]
mod server;

use std::path::Path;
use std::process::{Command, Output};

use push::Pusher;
use server::RegistryServer;
use support::TestImage;

/// The CLI with a private image store and state directory.
fn krunbox(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_krunbox"))
        .env("KRUNBOX_IMAGE_STORE", store.join("images"))
        .env("KRUNBOX_STATE_DIR", store.join("state"))
        .env("DOCKER_CONFIG", store.join("no-docker-config"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn said(out: &Output) -> String {
    format!(
        "{:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

fn test_image() -> TestImage {
    let arch = krunbox::image::archive::host_platform().1;
    TestImage::new(support::two_layers(), true, arch, "/app/run")
}

#[test]
fn pull_then_list_remove_and_pull_policies() {
    let registry = RegistryServer::start();
    Pusher::new(&registry.addr).image("team/app", Some("1"), &test_image());
    let dir = tempfile::tempdir().unwrap();
    let name = format!("{}/team/app:1", registry.addr);

    let out = krunbox(dir.path(), &["pull", &name]);
    assert!(out.status.success(), "{}", said(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("Digest: sha256:"), "{}", said(&out));
    assert!(
        stdout.ends_with(&format!("Pulled: {name}\n")),
        "{}",
        said(&out)
    );
    // Not a terminal: one line, no progress bars.
    assert_eq!(text(&out.stderr), format!("krunbox: pulling {name}\n"));

    let out = krunbox(dir.path(), &["images"]);
    let listing = text(&out.stdout);
    assert!(
        listing.contains(&format!("{}/team/app", registry.addr)) && listing.contains("   1   "),
        "{}",
        said(&out)
    );
    // Pulled again: only the manifest is fetched.
    let blobs = registry.requests("GET /v2/team/app/blobs/");
    let out = krunbox(dir.path(), &["pull", "-q", &name]);
    assert!(out.status.success(), "{}", said(&out));
    assert_eq!(registry.requests("GET /v2/team/app/blobs/"), blobs);

    let out = krunbox(dir.path(), &["rmi", &name]);
    assert!(out.status.success(), "{}", said(&out));
    assert_eq!(
        text(&out.stdout).lines().next(),
        Some(format!("Untagged: {name}").as_str())
    );

    // --pull never: the store must have it, and says how to get it.
    let out = krunbox(
        dir.path(),
        &["run", "--image", &name, "--pull", "never", "--", "true"],
    );
    assert_eq!(out.status.code(), Some(125), "{}", said(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no image") && stderr.contains("krunbox pull"),
        "{stderr}"
    );
}

#[test]
fn pull_errors_exit_125_with_what_to_do() {
    let registry = RegistryServer::start();
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("{}/team/nothing:1", registry.addr);
    let out = krunbox(dir.path(), &["pull", &missing]);
    assert_eq!(out.status.code(), Some(125), "{}", said(&out));
    assert!(text(&out.stderr).contains("team/nothing"), "{}", said(&out));

    // --pull missing (the default) on `run` pulls first, and fails the same.
    let out = krunbox(dir.path(), &["run", "--image", &missing, "--", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", said(&out));

    let closed = format!("127.0.0.1:{}/x:1", server::free_port());
    let out = krunbox(dir.path(), &["pull", &closed]);
    assert_eq!(out.status.code(), Some(125), "{}", said(&out));
    assert!(text(&out.stderr).contains("hint:"), "{}", said(&out));

    let out = krunbox(dir.path(), &["pull", "Not/A/Valid/NAME"]);
    assert_eq!(out.status.code(), Some(125), "{}", said(&out));
    assert!(
        text(&out.stderr).contains("invalid image reference"),
        "{}",
        said(&out)
    );

    let out = krunbox(dir.path(), &["images", "-q"]);
    assert_eq!(
        text(&out.stdout),
        "",
        "a failed pull left an image: {}",
        said(&out)
    );
}

/// `krunbox bench --cases pull`: krunbox's pull into an empty store and
/// skopeo + umoci on the same image, side by side, in the JSON report.
#[test]
fn bench_pull_compares_with_skopeo_and_umoci() {
    let registry = RegistryServer::start();
    Pusher::new(&registry.addr).image("team/app", Some("1"), &test_image());
    let dir = tempfile::tempdir().unwrap();
    let name = format!("{}/team/app:1", registry.addr);
    let out = krunbox(
        dir.path(),
        &[
            "bench", "--cases", "pull", "--image", &name, "--runs", "2", "--warmup", "0", "--json",
            "-",
        ],
    );
    assert!(out.status.success(), "{}", said(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let figures: Vec<(&str, usize)> = doc["figures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let samples = f["samples_ms"].as_array().map_or(0, Vec::len);
            (f["id"].as_str().unwrap(), samples)
        })
        .collect();
    assert_eq!(figures, [("pull.krunbox", 2), ("pull.skopeo_umoci", 2)]);
    let comparison = &doc["comparisons"][0];
    assert_eq!(comparison["id"], "pull_vs_skopeo_umoci", "{doc}");
    assert!(
        comparison["ratio"].as_f64().is_some_and(|r| r > 0.0),
        "{doc}"
    );
    // The cold stores were temporary: the user's store got nothing.
    assert!(
        !dir.path().join("images").exists()
            || support::dir_entries(&dir.path().join("images/roots")).is_empty()
    );
}

/// `--cases pull` without an image says what it needs.
#[test]
fn bench_pull_without_an_image_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = krunbox(dir.path(), &["bench", "--cases", "pull"]);
    assert_eq!(out.status.code(), Some(125), "{}", said(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the pull case needs --image"),
        "{}",
        said(&out)
    );
}
