//! How the CLI tells people what went wrong.

use super::EXIT_KRUNBOX_FAILED;

/// Prints `error` with its causes and the advice, if any; returns the exit
/// code for krunbox's own failures.
pub fn fail(error: &krunbox::vm::Error) -> i32 {
    fail_with(error, error.advice().as_deref())
}

/// [`fail`] for any error, with the advice given.
pub fn fail_with(error: &dyn std::error::Error, advice: Option<&str>) -> i32 {
    eprintln!("krunbox: error: {}", krunbox::error_chain(error));
    if let Some(advice) = advice {
        eprintln!("krunbox: hint: {advice}");
    }
    EXIT_KRUNBOX_FAILED
}
