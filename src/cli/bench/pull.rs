//! The pull case: fetching and unpacking an image from its registry into
//! an empty store, against the tools people use for the same job without
//! a daemon: `skopeo copy` into an OCI layout, then `umoci unpack` of it.
//!
//! Both start cold every run (a new store, a new layout and bundle, all
//! in one temporary directory removed outside the timing) and both verify
//! every blob's digest, so the ratio is the work itself: HTTP, hashing,
//! decompression and writing the tree. A registry on loopback (or named
//! with `--insecure-registry`) is spoken to in plain HTTP by both.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use krunbox::image::registry::PullOptions;
use krunbox::image::{Reference, Store};

use super::error::BenchError;
use super::stats::Figure;
use super::Ctx;

/// krunbox: an empty store → the image pulled and its root unpacked.
pub const KRUNBOX_PULL: &str = "pull.krunbox";
/// `skopeo copy docker://REF oci:DIR` then `umoci unpack`.
pub const SKOPEO_UMOCI: &str = "pull.skopeo_umoci";

/// Samples taken per run.
pub const SAMPLES_PER_RUN: u64 = 2;

const CASE: &str = "pull";

/// What the pull case pulls and how the registry is reached.
#[derive(Debug, Clone)]
pub struct PullTarget {
    /// The image, in a registry.
    pub reference: Reference,
    /// Registries spoken to in plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
}

impl PullTarget {
    /// Whether this target's registry is spoken to in plain HTTP.
    fn plain_http(&self) -> bool {
        krunbox::image::registry::plain_http_allowed(
            &self.reference.registry,
            &self.insecure_registries,
        )
    }
}

/// krunbox's pull and skopeo + umoci, interleaved so both see the same
/// load.
pub async fn pull(ctx: &mut Ctx, target: &PullTarget) -> Result<(), BenchError> {
    let ours = ctx.figure(Figure::new(
        KRUNBOX_PULL,
        "krunbox pull into an empty store (fetch, verify, unpack)",
    ));
    let theirs = ctx.figure(Figure::new(
        SKOPEO_UMOCI,
        "skopeo copy to an OCI layout + umoci unpack",
    ));
    let options = PullOptions {
        insecure_registries: target.insecure_registries.clone(),
        ..PullOptions::default()
    };
    for run in ctx.all_runs() {
        let dir = tempfile::tempdir().map_err(BenchError::io(CASE, "a temporary directory"))?;
        let t = Instant::now();
        let store = Store::open(dir.path().join("store")).map_err(BenchError::Pull)?;
        store
            .pull(&target.reference, &options)
            .await
            .map_err(BenchError::Pull)?;
        ctx.sample(run, ours, t.elapsed());
        let took = skopeo_umoci(target, dir.path())?;
        ctx.sample(run, theirs, took);
    }
    Ok(())
}

/// `skopeo copy` then `umoci unpack` into `dir`; the time both took.
fn skopeo_umoci(target: &PullTarget, dir: &Path) -> Result<Duration, BenchError> {
    let layout = format!("oci:{}:bench", dir.join("layout").display());
    let tls = format!("--src-tls-verify={}", !target.plain_http());
    let source = format!("docker://{}", target.reference);
    let image = format!("{}:bench", dir.join("layout").display());
    let bundle = dir.join("bundle");
    let mut umoci = vec!["unpack", "--image", &image];
    if !nix::unistd::geteuid().is_root() {
        umoci.push("--rootless");
    }
    let t = Instant::now();
    tool("skopeo", &["copy", "--quiet", &tls, &source, &layout])?;
    let bundle = bundle.to_string_lossy();
    umoci.push(&bundle);
    tool("umoci", &umoci)?;
    Ok(t.elapsed())
}

/// Runs `program args` (blocking: nothing else runs while the bench
/// times it); its failure, with its stderr, is the case's.
fn tool(program: &'static str, args: &[&str]) -> Result<(), BenchError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .map_err(|source| BenchError::Tool { program, source })?;
    if !out.status.success() {
        return Err(BenchError::wrong(
            CASE,
            format!(
                "`{program} {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            ),
        ));
    }
    Ok(())
}
