//! The native part of krunbox's Python package, imported as
//! `krunbox._krunbox`.
//!
//! A thin layer over the `krunbox` crate: each method turns Python
//! arguments into the library's types, calls the library, and turns the
//! result (or the error, through the `errors` module) back. The Python-facing API
//! (`krunbox.Vm`, `krunbox.Process`, the exceptions, the blocking facade)
//! is written in Python over this module (`python/krunbox/`).
//!
//! Awaitables run on a tokio runtime that this module owns
//! (`pyo3-async-runtimes`); cancelling one drops its future, which ends
//! the operation the way dropping it ends it in Rust (a dropped exec kills
//! its guest process).

use pyo3::prelude::*;

mod agent;
mod command;
mod errors;
mod machine;
mod process;
mod values;

/// In a runner process (the parent set `KRUNBOX_RUNNER_CONFIG`), configures
/// libkrun and boots the VM, never returning; elsewhere returns at once.
/// The package starts its runners as `python -I -c` calling this.
#[pyfunction]
fn enter_runner() {
    krunbox::runner::enter_if_requested();
}

/// The module's contents.
#[pymodule]
fn _krunbox(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<agent::Agent>()?;
    m.add_class::<agent::AgentListener>()?;
    m.add_class::<process::Process>()?;
    m.add_class::<machine::Machine>()?;
    m.add_function(wrap_pyfunction!(machine::boot, m)?)?;
    m.add_function(wrap_pyfunction!(machine::attach, m)?)?;
    m.add_function(wrap_pyfunction!(enter_runner, m)?)?;
    m.add("VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
