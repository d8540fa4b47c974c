//! `krunbox pull`, and the `--pull` policy of the commands that boot an
//! image: fetch from a registry into the store, with a progress line per
//! layer on a terminal.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use clap::{Args, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use krunbox::image::digest::Digest;
use krunbox::image::platform::Platform;
use krunbox::image::registry::{Progress, ProgressState, PullOptions};
use krunbox::image::{Image, Reference, Store};

use super::ImageError;
use crate::cli::report;

/// How a registry is reached: the options `pull` and `--image` share.
#[derive(Debug, Clone, Default, Args)]
pub struct RegistryArgs {
    /// The platform to pick from a multi-platform image (os/arch[/variant];
    /// default: this host's).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<Platform>,
    /// A registry (host[:port]) to speak plain HTTP to, besides loopback
    /// ones (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image: [REGISTRY/]REPOSITORY[:TAG|@sha256:DIGEST].
    #[arg(value_name = "IMAGE")]
    image: String,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print only the image's ID.
    #[arg(short, long)]
    quiet: bool,
}

/// `--pull`: when an image named with `--image` is fetched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum PullPolicy {
    /// Only if the store does not have it.
    #[default]
    Missing,
    /// Every time (a cached image's blobs are not fetched again).
    Always,
    /// Never: the store must have it.
    Never,
}

pub fn pull(args: PullArgs) -> i32 {
    report::block_on(async move {
        let result = async {
            let reference = args
                .image
                .parse::<Reference>()
                .map_err(ImageError::Reference)?;
            fetch(&super::store()?, &reference, &args.registry, args.quiet).await
        }
        .await;
        pulled(result, args.quiet)
    })
}

/// Prints what `pull` got, as docker does; the exit code.
fn pulled(result: Result<Image, ImageError>, quiet: bool) -> i32 {
    match result {
        Ok(image) if quiet => {
            println!("{}", image.manifest_digest);
            0
        }
        Ok(image) => {
            println!("Digest: {}", image.manifest_digest);
            println!("Pulled: {}", super::display_name(&image));
            0
        }
        Err(e) => report::fail(&e),
    }
}

/// The image `reference` names, from the store or a registry as `policy`
/// says.
pub async fn image(
    reference: &str,
    policy: PullPolicy,
    registry: &RegistryArgs,
) -> Result<Image, ImageError> {
    let store = super::store()?;
    if policy != PullPolicy::Always {
        match store.get(reference) {
            Ok(image) => return Ok(image),
            Err(krunbox::image::StoreError::NotFound { .. }) if policy == PullPolicy::Missing => {}
            Err(e) => return Err(e.into()),
        }
    }
    let parsed: Reference = reference.parse().map_err(ImageError::Reference)?;
    fetch(&store, &parsed, registry, false).await
}

async fn fetch(
    store: &Store,
    reference: &Reference,
    registry: &RegistryArgs,
    quiet: bool,
) -> Result<Image, ImageError> {
    let mut options = PullOptions {
        platform: registry.platform.clone(),
        insecure_registries: registry.insecure_registries.clone(),
        ..PullOptions::default()
    };
    let terminal = std::io::stderr().is_terminal();
    if terminal && !quiet {
        options.progress = Some(progress_lines());
    } else if !quiet {
        eprintln!("krunbox: pulling {reference}");
    }
    Ok(store.pull(reference, &options).await?)
}

/// A progress bar per blob, on standard error.
fn progress_lines() -> krunbox::image::registry::ProgressFn {
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{prefix:>19} {msg:10} {bar:30} {bytes}/{total_bytes}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    let shown: Mutex<HashMap<Digest, ProgressBar>> = Mutex::new(HashMap::new());
    Arc::new(move |p: &Progress| {
        let mut shown = shown.lock().unwrap_or_else(|e| e.into_inner());
        let bar = shown.entry(p.digest.clone()).or_insert_with(|| {
            let bar = bars.add(ProgressBar::new(p.total));
            bar.set_style(style.clone());
            bar.set_prefix(format!("{} {}", p.what, p.digest.short()));
            bar
        });
        bar.set_position(p.done);
        match p.state {
            ProgressState::Cached => bar.finish_with_message("cached"),
            ProgressState::Verified => bar.finish_with_message("verified"),
            _ => bar.set_message("fetching"),
        }
    })
}
