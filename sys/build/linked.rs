//! A system libkrun: pkg-config first, or a directory given by the user.

use crate::env;

/// The versions whose ABI matches `include/krun.h`.
const VERSION_RANGE: std::ops::Range<&str> = "1.19.0".."2.0.0";
/// [`VERSION_RANGE`] for messages.
pub const VERSION_RANGE_TEXT: &str = ">= 1.19.0, < 2.0.0";

/// A libkrun found on the system.
pub struct SystemLibrary {
    /// Its version, or `unknown` when given by directory.
    pub version: String,
}

/// Looks for a system libkrun and, when found, tells cargo to link it.
pub fn probe() -> Result<SystemLibrary, String> {
    if let Some(dir) = env::value(env::LIB_DIR) {
        println!("cargo:rustc-link-search=native={dir}");
        println!("cargo:rustc-link-lib=dylib=krun");
        println!("cargo:root={dir}");
        return Ok(SystemLibrary {
            version: "unknown".to_owned(),
        });
    }
    pkg_config::Config::new()
        .range_version(VERSION_RANGE)
        .probe("libkrun")
        .map(|lib| {
            for dir in &lib.link_paths {
                println!("cargo:root={}", dir.display());
            }
            SystemLibrary {
                version: lib.version,
            }
        })
        .map_err(|e| first_line(&e.to_string()))
}

/// Whether pkg-config knows a libkrun at all, whatever its version.
pub fn installed() -> bool {
    pkg_config::Config::new()
        .cargo_metadata(false)
        .env_metadata(false)
        .probe("libkrun")
        .is_ok()
}

/// pkg-config's errors span many lines; the first says what went wrong.
fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("pkg-config failed")
        .to_owned()
}
