//! Why a pool could not start or hand out a VM.

/// A pool that could not start, or an acquire that got no VM.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The VM configuration cannot boot; nothing was started.
    #[error("the pool's VM configuration is invalid")]
    Config(#[source] crate::vm::ConfigError),
    /// A pool runs its refill on the caller's tokio runtime, and there was
    /// none.
    #[error("a pool must be started inside a tokio runtime")]
    NoRuntime(#[source] tokio::runtime::TryCurrentError),
    /// At most this many boots at once must be at least one.
    #[error("a pool needs at least one boot at a time (max_boots is 0)")]
    NoBoots,
    /// No VM was warm and the cold boot failed.
    #[error("no warm VM, and booting one failed")]
    Boot(#[source] crate::vm::Error),
    /// The pool's refill keeps failing to boot (so it will not fill).
    #[error("the pool's refill failed to boot {failures} VMs in a row; the last: {last}")]
    Refill {
        /// Failed boots in a row.
        failures: u32,
        /// The last failure, with its causes.
        last: String,
    },
    /// The pool was closed.
    #[error("the pool is closed")]
    Closed,
}
