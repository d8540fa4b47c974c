//! [`Report`]: an error for a program's `main` to return, printed with its
//! causes and what to do, not as `Debug`.

use std::error::Error;
use std::fmt;

/// Any error, for `fn main() -> Result<(), krunbox::Report>`.
///
/// Rust prints an error returned from `main` with `Debug`, which for
/// krunbox's errors is a nest of variant names
/// (`Config(Rootfs { path: …, problem: "does not exist" })`). A `Report`
/// prints the error and each of its causes, joined by `: `, and, for
/// krunbox's VM and named-VM errors, a `hint:` line saying what to do.
///
/// ```no_run
/// use krunbox::vm::VmConfig;
///
/// fn main() -> Result<(), krunbox::Report> {
///     krunbox::runner::enter_if_requested();
///     let out = VmConfig::new("/srv/rootfs").command(["true"]).output()?;
///     std::process::exit(out.status.code().unwrap_or(1));
/// }
/// ```
pub struct Report(Box<dyn Error + Send + Sync + 'static>);

impl Report {
    /// The error reported.
    pub fn error(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }

    /// What to do about it, when krunbox knows.
    pub fn advice(&self) -> Option<String> {
        if let Some(e) = self.0.downcast_ref::<crate::vm::Error>() {
            return e.advice();
        }
        if let Some(e) = self.0.downcast_ref::<crate::state::Error>() {
            return e.advice();
        }
        None
    }
}

impl<E: Error + Send + Sync + 'static> From<E> for Report {
    fn from(error: E) -> Self {
        Self(Box::new(error))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::error_chain(&*self.0))?;
        if let Some(advice) = self.advice() {
            write!(f, "\nhint: {advice}")?;
        }
        Ok(())
    }
}

/// The same as [`Display`](fmt::Display), so that `main` prints it.
impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_the_chain_and_the_hint_not_debug() {
        let err = crate::vm::VmConfig::new("/no/such/rootfs")
            .command(["true"])
            .output()
            .expect_err("a missing rootfs fails");
        let report = Report::from(err);
        let printed = format!("{report:?}");
        assert!(printed.contains("/no/such/rootfs"), "{printed}");
        assert!(!printed.contains("Config("), "printed as Debug: {printed}");
        assert_eq!(printed, report.to_string());
    }
}
