//! `krunbox image prune`: remove what no image name refers to.

use clap::{Args, Subcommand};

use crate::cli::report;

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Remove unnamed images, blobs no image was made from, and leftovers
    /// of interrupted loads.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {}

pub fn image(command: ImageCommand) -> i32 {
    match command {
        ImageCommand::Prune(_) => prune(),
    }
}

fn prune() -> i32 {
    match super::store().and_then(|s| Ok(s.prune()?)) {
        Ok(report) => {
            for digest in &report.roots {
                println!("Deleted: {digest}");
            }
            println!(
                "Total reclaimed space: {:.1}MB in {} blobs ({} leftovers of interrupted loads)",
                report.blob_bytes as f64 / 1e6,
                report.blobs,
                report.tmp_entries
            );
            0
        }
        Err(e) => report::fail(&e),
    }
}
