//! Build script of krunbox-sys: finds libkrun and provides the bindings.
//!
//! One module per concern, in the manner of `libsqlite3-sys`:
//! - [`linked`]: a system libkrun, probed with pkg-config (or a directory
//!   given in `LIBKRUN_LIB_DIR`);
//! - [`bundled`]: the pinned `libkrun` crate from crates.io, which the
//!   library links as a Rust dependency (its `krun_*` functions are
//!   `#[no_mangle] extern "C"`);
//! - [`bindings`]: the Rust declarations, checked in or regenerated.
//!
//! Every environment variable read here is listed in [`env`] and documented
//! in `sys/README.md`.

mod bindings;
mod bundled;
mod env;
mod linked;

/// The cfg set when a system libkrun is linked instead of the bundled crate.
const CFG_LINKED: &str = "krunbox_sys_linked";

fn main() {
    println!("cargo:rustc-check-cfg=cfg({CFG_LINKED})");
    println!("cargo:rerun-if-changed=include/krun.h");
    env::declare_reruns();

    let header_dir = std::path::Path::new(&env::manifest_dir()).join("include");
    println!("cargo:include={}", header_dir.display());

    let source = choose_source();
    match source {
        Source::Linked(ref lib) => {
            println!("cargo:rustc-cfg={CFG_LINKED}");
            println!("cargo:version={}", lib.version);
            println!(
                "cargo:rustc-env=KRUNBOX_SYS_LIBKRUN_VERSION={}",
                lib.version
            );
            println!("cargo:bundled=0");
        }
        Source::Bundled => {
            println!("cargo:version={}", bundled::VERSION);
            println!(
                "cargo:rustc-env=KRUNBOX_SYS_LIBKRUN_VERSION={}",
                bundled::VERSION
            );
            println!("cargo:bundled=1");
        }
    }
    bindings::provide();
}

/// Where libkrun's symbols come from.
enum Source {
    Linked(linked::SystemLibrary),
    Bundled,
}

fn choose_source() -> Source {
    let bundled_available = bundled::available();
    if env::flag(env::BUNDLED) {
        if !bundled_available {
            fail(&format!(
                "{} is set but the `bundled` feature is off",
                env::BUNDLED
            ));
        }
        return Source::Bundled;
    }
    match linked::probe() {
        Ok(lib) => Source::Linked(lib),
        Err(reason) if bundled_available && !env::flag(env::NO_VENDOR) => {
            // No system libkrun at all is the common case (Debian has
            // none): bundled is then the plan, not news, and a warning on
            // every build would be noise. A system libkrun passed over
            // (its version outside the range) is worth saying.
            if linked::installed() {
                println!(
                    "cargo:warning=using the bundled libkrun {}: the system libkrun is not \
                     usable ({reason})",
                    bundled::VERSION
                );
            }
            Source::Bundled
        }
        Err(reason) => fail(&format!(
            "no usable system libkrun: {reason}; install libkrun {} (pkg-config name \
             `libkrun`) or enable the `bundled` feature and unset {}",
            linked::VERSION_RANGE_TEXT,
            env::NO_VENDOR
        )),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("krunbox-sys: {message}");
    std::process::exit(1);
}
