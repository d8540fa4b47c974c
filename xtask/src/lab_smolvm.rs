//! `cargo xtask lab --smolvm`: smolvm in the lab, ready to be measured
//! beside krunbox (`krunbox bench --peer smolvm`).
//!
//! smolvm comes from its PyPI wheel (`smolmachines`), which ships its CLI
//! (`smol/smol-vmm`) with its own libkrun, libkrunfw and agent rootfs. Its
//! first machine start expands two disk templates beside the binary
//! (sparse files of 10 and 20 GiB) and unpacks its agent's rootfs into its
//! state directory: seconds on the host, minutes of emulated CPU in the
//! lab. So the host does that once, under `target/peer/`, and the lab gets
//! the result as one sparse tar archive (the lab's initramfs cannot hold a
//! sparse file), unpacked with the host's GNU tar before the command runs.
//! In the lab `smolvm` is on `PATH`, and `KRUNBOX_BENCH_SMOLVM_STATE`
//! names its prepared state directory for `krunbox bench --peer smolvm`.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use krunbox_lab::LabSpec;

/// The wheel's version measured.
const VERSION: &str = "1.32.2";
/// Where the prepared smolvm is unpacked in the lab.
const LAB_DIR: &str = "/opt/smolvm";
/// Its prepared state directory in the lab.
const LAB_STATE: &str = "/opt/smolvm/state";
/// Where the archive goes in the lab.
const LAB_ARCHIVE: &str = "/opt/smolvm.tar";
/// The wheel's files the CLI needs.
const KEPT: [&str; 6] = [
    "smol/smol-vmm",
    "smol/libkrun.so",
    "smol/libkrunfw.so.5",
    "smol/agent-rootfs.tar.zst",
    "smol/overlay-template.ext4.zst",
    "smol/storage-template.ext4.zst",
];

/// Why smolvm could not be prepared.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LabSmolvmError {
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("could not prepare {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "smolvm's first start did not expand {}: it cannot be prepared on this host",
        path.display()
    )]
    NotExpanded { path: PathBuf },
}

/// Runs `program args…`; it must exit 0 unless `may_fail`.
fn run(program: &str, args: &[&str], may_fail: bool) -> Result<(), LabSmolvmError> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| LabSmolvmError::Command {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if out.status.success() || may_fail {
        return Ok(());
    }
    Err(LabSmolvmError::Command {
        command,
        detail: format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ),
    })
}

/// The wheel's files under `dir/smol`, from a wheel downloaded into `dir`.
fn unpack_wheel(dir: &Path) -> Result<(), LabSmolvmError> {
    let cli = dir.join(KEPT[0]);
    if cli.is_file() {
        return Ok(());
    }
    let dir_text = dir.to_string_lossy();
    run(
        "python3",
        &[
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            &format!("smolmachines=={VERSION}"),
            "-d",
            &dir_text,
        ],
        false,
    )?;
    let script = format!(
        "import glob, zipfile\n\
         wheel = glob.glob('{dir_text}/smolmachines-{VERSION}-*.whl')[0]\n\
         with zipfile.ZipFile(wheel) as z:\n    \
         for name in {KEPT:?}:\n        z.extract(name, '{dir_text}')\n"
    );
    run("python3", &["-c", &script], false)?;
    let io = |source| LabSmolvmError::Io {
        path: cli.clone(),
        source,
    };
    let mut perms = std::fs::metadata(&cli).map_err(io)?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&cli, perms).map_err(io)
}

/// Starts a machine once (it need not boot here), which expands the
/// templates and fills the state's caches; the machine is deleted.
fn first_start(dir: &Path) -> Result<(), LabSmolvmError> {
    let expanded = dir.join("smol/storage-template.ext4");
    let state = dir.join("state");
    if expanded.is_file() && state.is_dir() {
        return Ok(());
    }
    let image = dir.join("empty-rootfs");
    std::fs::create_dir_all(&image).map_err(|source| LabSmolvmError::Io {
        path: image.clone(),
        source,
    })?;
    let cli = dir.join(KEPT[0]);
    let cli = cli.to_string_lossy();
    let state = state.to_string_lossy();
    let image = format!("{}/", image.display());
    let common = ["--state-dir", &state, "--name", "prepare"];
    run(
        &cli,
        &[&["machine", "create", "--image", &image], &common[..]].concat(),
        false,
    )?;
    // On a host whose KVM cannot run the guest the boot fails after the
    // expansion; either way the machine goes.
    run(&cli, &[&["machine", "start"], &common[..]].concat(), true)?;
    run(&cli, &[&["machine", "stop"], &common[..]].concat(), true)?;
    run(
        &cli,
        &[&["machine", "delete", "--force"], &common[..]].concat(),
        true,
    )?;
    if !expanded.is_file() {
        return Err(LabSmolvmError::NotExpanded { path: expanded });
    }
    Ok(())
}

/// The prepared smolvm as one sparse archive under `target/peer`.
fn archive(target: &Path) -> Result<PathBuf, LabSmolvmError> {
    let dir = target.join("peer").join(format!("smolvm-{VERSION}"));
    std::fs::create_dir_all(&dir).map_err(|source| LabSmolvmError::Io {
        path: dir.clone(),
        source,
    })?;
    unpack_wheel(&dir)?;
    first_start(&dir)?;
    let tar = dir.with_file_name(format!("smolvm-{VERSION}.tar"));
    if !tar.is_file() {
        let partial = dir.with_file_name(format!("smolvm-{VERSION}.tar.partial"));
        run(
            "tar",
            &[
                "--sparse",
                "-cf",
                &partial.to_string_lossy(),
                "-C",
                &dir.to_string_lossy(),
                "smol",
                "state",
            ],
            false,
        )?;
        std::fs::rename(&partial, &tar).map_err(|source| LabSmolvmError::Io {
            path: tar.clone(),
            source,
        })?;
    }
    Ok(tar)
}

/// `spec` with the prepared smolvm and GNU tar (to unpack it) in it.
pub(crate) fn put_in(spec: LabSpec, target: &Path) -> Result<LabSpec, LabSmolvmError> {
    let tar = archive(target)?;
    let cli = target
        .join("peer")
        .join(format!("smolvm-{VERSION}"))
        .join(KEPT[0]);
    Ok(spec
        .file(tar, LAB_ARCHIVE)
        .executable("/usr/bin/tar")
        // For the C libraries it needs (it stays unused at /lab/bin).
        .executable(cli)
        .env("KRUNBOX_BENCH_SMOLVM_STATE", LAB_STATE))
}

/// `command`, run after smolvm is unpacked and on `PATH`. smolvm's VMM
/// drops to an unprivileged user, which needs `/dev/kvm`.
pub(crate) fn wrap(command: &[String]) -> Vec<String> {
    let setup = format!(
        "set -e; chmod 666 /dev/kvm; mkdir -p {LAB_DIR}; \
         /lab/bin/tar --sparse -C {LAB_DIR} -xf {LAB_ARCHIVE}; rm {LAB_ARCHIVE}; \
         ln -sf {LAB_DIR}/smol/smol-vmm /lab/bin/smolvm; exec \"$@\""
    );
    ["sh", "-c", &setup, "sh"]
        .into_iter()
        .map(str::to_owned)
        .chain(command.iter().cloned())
        .collect()
}
