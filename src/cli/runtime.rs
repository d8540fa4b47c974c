//! The async runtime of the subcommands that drive an agent.

use std::future::Future;

/// Runs `future` to completion on a current-thread runtime and returns
/// its exit code (125 if the runtime cannot start).
pub fn block_on(future: impl Future<Output = i32>) -> i32 {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(e) => {
            eprintln!("krunbox: error: cannot start the async runtime: {e}");
            super::EXIT_KRUNBOX_FAILED
        }
    }
}
