//! `krunbox load`: images from a `docker save` archive (a file or standard
//! input) or an OCI layout directory, into the store.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use krunbox::image::store::Image;

use super::ImageError;
use crate::cli::report;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The archive (`docker save` output, either form), or `oci:DIR[:TAG]`
    /// for an OCI image layout; standard input when absent.
    #[arg(short, long, value_name = "FILE")]
    input: Option<String>,
    /// Print only the loaded images' IDs.
    #[arg(short, long)]
    quiet: bool,
}

pub fn load(args: LoadArgs) -> i32 {
    match loaded(&args) {
        Ok(images) => {
            for image in images {
                print(&image, args.quiet);
            }
            0
        }
        Err(e) => report::fail(&e),
    }
}

fn loaded(args: &LoadArgs) -> Result<Vec<Image>, ImageError> {
    let store = super::store()?;
    match args.input.as_deref() {
        Some(spec) if spec.starts_with("oci:") => {
            let rest = &spec["oci:".len()..];
            let (dir, tag) = match rest.split_once(':') {
                Some((dir, tag)) => (dir, Some(tag)),
                None => (rest, None),
            };
            Ok(vec![store.load_oci_layout(dir.as_ref(), tag)?])
        }
        Some(path) => {
            let path = PathBuf::from(path);
            let file =
                std::fs::File::open(&path).map_err(|source| ImageError::Input { path, source })?;
            Ok(store.load_archive(std::io::BufReader::new(file))?)
        }
        None if std::io::stdin().is_terminal() => Err(ImageError::StdinIsATerminal),
        None => Ok(store.load_archive(std::io::stdin().lock())?),
    }
}

/// As docker says it: every name, or the ID of an image without one.
fn print(image: &Image, quiet: bool) {
    if quiet {
        println!("{}", image.manifest_digest);
        return;
    }
    if image.names.is_empty() {
        println!("Loaded image ID: {}", image.manifest_digest);
    }
    for name in &image.names {
        println!("Loaded image: {name}");
    }
    for skipped in &image.skipped {
        eprintln!(
            "krunbox: note: {:?} (layer {}) was not unpacked: {}",
            skipped.path,
            skipped.layer.short(),
            skipped.reason
        );
    }
}
