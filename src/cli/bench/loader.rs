//! `--libkrunfw FILE`: every krunbox VM of the run boots the kernel in
//! FILE. libkrun `dlopen`s libkrunfw by its soname, so a directory holding
//! only that soname (a link to FILE) goes first on the loader path, which
//! the runners inherit (the one variable they keep of the caller's).

use std::path::Path;

use tempfile::TempDir;

use super::cli_vm::loader_path_with;
use super::error::BenchError;

/// Puts FILE first on the loader path of the processes this one starts;
/// the directory holding its link lives as long as the returned value.
/// Call it before any other thread runs: it sets an environment variable.
pub fn use_libkrunfw(file: &Path) -> Result<TempDir, BenchError> {
    let failed = |source| BenchError::Libkrunfw {
        path: file.to_owned(),
        source,
    };
    let file = file.canonicalize().map_err(failed)?;
    if !file.is_file() {
        return Err(failed(std::io::Error::other("not a file")));
    }
    let dir = tempfile::Builder::new()
        .prefix("krunbox-bench-libkrunfw-")
        .tempdir()
        .map_err(failed)?;
    std::os::unix::fs::symlink(&file, dir.path().join(krunbox::host::krunfw::SONAME))
        .map_err(failed)?;
    std::env::set_var("LD_LIBRARY_PATH", loader_path_with(dir.path()));
    Ok(dir)
}
