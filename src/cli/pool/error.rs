//! Errors of the pool commands that are not the library's.

use std::io;

use super::super::image::ImageError;
use super::super::report::Advised;

/// A pool command that failed.
#[derive(Debug, thiserror::Error)]
pub enum PoolCliError {
    /// The pool or a VM in the state directory.
    #[error(transparent)]
    State(#[from] krunbox::state::Error),
    /// The pool's image, or its root.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The VM options given to the pool do not parse. Shown by clap's
    /// first line, which says what is wrong; its usage line would name a
    /// command that does not exist.
    #[error("the pool's VM options are not `krunbox start`'s: {}", first_line(.0))]
    Options(clap::Error),
    /// An option every VM of a pool would share, which only one may have.
    #[error("{0} cannot be given to a pool: its VMs would all take the same one")]
    Shared(&'static str),
    /// The background refill could not be started.
    #[error("cannot start the refill of pool {pool:?}")]
    Refill {
        /// The pool.
        pool: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl Advised for PoolCliError {
    fn advice(&self) -> Option<String> {
        match self {
            PoolCliError::State(e) => e.advice(),
            PoolCliError::Image(e) => e.advice(),
            PoolCliError::Options(_) => Some(
                "give `krunbox start`'s VM options after the pool's own: \
                 krunbox pool create NAME --size N --rootfs DIR [--mem MIB …]"
                    .into(),
            ),
            PoolCliError::Shared(_) => Some(
                "publish ports on each VM you start instead; each VM keeps its own logs \
                 (`krunbox logs NAME`, `krunbox logs --egress NAME`)"
                    .into(),
            ),
            PoolCliError::Refill { .. } => {
                Some("`krunbox pool rm POOL` removes the pool; create it again".into())
            }
        }
    }
}

/// The first line of clap's message, without its `error: `.
fn first_line(error: &clap::Error) -> String {
    let said = error.render().to_string();
    let first = said.lines().next().unwrap_or_default();
    first.trim_start_matches("error: ").to_owned()
}
