//! How the CLI tells people what went wrong.

use super::EXIT_KRUNBOX_FAILED;

/// An error that may know what the user can do about it.
pub trait Advised: std::error::Error {
    /// What to do next, when there is something.
    fn advice(&self) -> Option<String>;
}

impl Advised for krunbox::vm::Error {
    fn advice(&self) -> Option<String> {
        krunbox::vm::Error::advice(self)
    }
}

impl Advised for krunbox::state::Error {
    fn advice(&self) -> Option<String> {
        krunbox::state::Error::advice(self)
    }
}

/// Prints `error` with its causes and the advice, if any; returns the exit
/// code for krunbox's own failures.
pub fn fail<E: Advised>(error: &E) -> i32 {
    eprintln!("krunbox: error: {}", krunbox::error_chain(error));
    if let Some(advice) = error.advice() {
        eprintln!("krunbox: hint: {advice}");
    }
    EXIT_KRUNBOX_FAILED
}

/// Runs `job` on a single-threaded async runtime: 0 when it succeeds,
/// else its error printed ([`fail`]) and krunbox's failure code.
pub fn exit_code<E: Advised>(job: impl std::future::Future<Output = Result<(), E>>) -> i32 {
    block_on(async move {
        match job.await {
            Ok(()) => 0,
            Err(e) => fail(&e),
        }
    })
}

/// Runs `job` on a single-threaded async runtime and returns its exit code.
pub fn block_on(job: impl std::future::Future<Output = i32>) -> i32 {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => {
            let code = runtime.block_on(job);
            // A task blocked reading standard input must not hold the exit.
            runtime.shutdown_background();
            code
        }
        Err(e) => {
            eprintln!("krunbox: error: cannot start the async runtime: {e}");
            EXIT_KRUNBOX_FAILED
        }
    }
}
