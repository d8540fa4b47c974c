//! Builds the guest agent as a static Linux binary and embeds it in the
//! `krunbox` library, which injects it into every VM it manages.
//!
//! The agent's sources are the `krunbox-agent` crate, a build-dependency
//! whose library only says where cargo put them (this workspace, a git
//! checkout or the registry: so the build works for a crates.io or git
//! dependency too). The binary is built from them by a nested `cargo build
//! --release` for this target with `+crt-static` (a static-pie with the
//! gnu target), in its own target directory
//! (`<target>/krunbox-agent-<sources hash>`) so it never waits on the
//! outer build's lock, and two checkouts sharing a target dir keep their
//! agents apart. `KRUNBOX_AGENT_BIN=/path` embeds a
//! prebuilt agent instead (e.g. one cross-built for the guest of a macOS
//! host, which runs aarch64 Linux guests).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const AGENT_BIN_ENV: &str = "KRUNBOX_AGENT_BIN";

fn main() {
    println!("cargo:rustc-check-cfg=cfg(krunbox_agent_embedded)");
    println!("cargo:rerun-if-env-changed={AGENT_BIN_ENV}");
    let agent = Path::new(krunbox_agent::MANIFEST_DIR);
    for path in [agent.join("src"), agent.join("Cargo.toml")] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    // In this workspace the agent's protocol crate is beside it (from the
    // registry it is a dependency cargo already tracks). A path that does
    // not exist would rerun this script on every build.
    for path in ["proto/src", "proto/Cargo.toml"] {
        if Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let embedded = out_dir.join("krunbox-agent");
    let source = match env::var_os(AGENT_BIN_ENV).filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => match build_agent(&out_dir) {
            Ok(path) => path,
            Err(reason) => {
                println!("cargo:warning=no guest agent embedded: {reason}");
                return;
            }
        },
    };
    if let Err(e) = std::fs::copy(&source, &embedded) {
        panic!("cannot copy the agent {}: {e}", source.display());
    }
    println!("cargo:rustc-cfg=krunbox_agent_embedded");
    println!("cargo:rustc-env=KRUNBOX_AGENT_PATH={}", embedded.display());
}

fn build_agent(out_dir: &Path) -> Result<PathBuf, String> {
    let target = env::var("TARGET").expect("cargo sets TARGET");
    if !target.contains("-linux-") {
        return Err(format!(
            "{target} is not Linux: build the agent for the guest and set {AGENT_BIN_ENV}"
        ));
    }
    // OUT_DIR is <target-dir>[/<triple>]/<profile>/build/<pkg>/out. The
    // agent's directory is keyed by its sources' place: two checkouts
    // sharing one target dir must not embed each other's agent.
    let checkout = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        krunbox_agent::MANIFEST_DIR.hash(&mut hasher);
        hasher.finish()
    };
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .ok_or("unexpected OUT_DIR layout")?
        .join(format!("krunbox-agent-{checkout:016x}"));
    let manifest = Path::new(krunbox_agent::MANIFEST_DIR).join("Cargo.toml");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--bin", "krunbox-agent"])
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--target", &target])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        panic!("building the guest agent failed ({status}); see the errors above");
    }
    Ok(target_dir.join(&target).join("release/krunbox-agent"))
}
