//! `cargo xtask setup`: the lab's host packages, installed with apt.
//!
//! Debian bookworm lists bookworm, bookworm-updates and bookworm-security.
//! The lab also needs QEMU 10 from bookworm-backports and libkrunfw5 from
//! sid, so setup adds both suites on the machine's own mirror (the URI and
//! keyring of its bookworm entry, never a host name of ours) with an apt
//! pin that keeps sid below bookworm, then installs. Every step is skipped
//! when already done: with every package installed, it changes nothing
//! (not even the apt sources) and needs no root.
//!
//! Last, as the calling user, it builds the default guest rootfs (static
//! busybox) that `krunbox demo` and `krunbox bench` boot when given none,
//! with the lab's own builder.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

const SUITE: &str = "bookworm";
const DEBIAN_SOURCES: &str = "/etc/apt/sources.list.d/debian.sources";
const LEGACY_SOURCES: &str = "/etc/apt/sources.list";
const EXTRA_SOURCES: &str = "/etc/apt/sources.list.d/krunbox-extra.sources";
const SID_PIN: &str = "/etc/apt/preferences.d/krunbox-sid";
const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Packages, grouped by the suite they come from (`None`: the default).
const PACKAGES: [(Option<&str>, &[&str]); 3] = [
    (
        None,
        &[
            "busybox-static",
            "cpio",
            "libclang-dev",
            "linux-image-amd64",
            "pkg-config",
            // The image tests: a real registry on loopback (the CNCF
            // distribution registry) with htpasswd basic auth.
            "docker-registry",
            "apache2-utils",
            "ca-certificates",
            // The Debian minbase image (debootstrap) and the tools
            // `krunbox bench pull` measures against (skopeo, umoci).
            "debootstrap",
            "skopeo",
            "umoci",
            // The OCI runtime's callers in the VM suite: containerd (with
            // ctr and its runc v2 shim) and Podman (with conmon).
            "containerd",
            "podman",
        ],
    ),
    (Some("bookworm-backports"), &["qemu-system-x86"]),
    (Some("sid"), &["libkrunfw5"]),
];

/// The oldest QEMU known to run the lab (bookworm itself has 7.2).
const MIN_QEMU: (&str, &str) = ("qemu-system-x86", "1:10~");

const SID_PIN_TEXT: &str = "Package: *\nPin: release n=sid\nPin-Priority: 100\n";

/// Why setup could not finish.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    #[error("this machine is not Debian {SUITE} ({found}); install qemu-system-x86 (10+), linux-image-amd64, busybox-static, cpio, libclang-dev, pkg-config, docker-registry, apache2-utils, ca-certificates, debootstrap, skopeo, umoci, containerd, podman and libkrunfw5 by hand")]
    NotBookworm { found: String },
    #[error("no `{SUITE}` entry with a URI in {DEBIAN_SOURCES} or {LEGACY_SOURCES}")]
    NoMirror,
    #[error("could not read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("setup needs root, and sudo is not installed; run it as root")]
    NotRoot,
    #[error("could not run `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status})")]
    Failed { command: String, status: String },
    #[error("neither XDG_DATA_HOME nor HOME is set: nowhere to put the default guest rootfs")]
    NoDataDir,
    #[error("could not build the default guest rootfs")]
    Rootfs(#[source] krunbox_lab::LabError),
    #[error("could not build the Debian minbase layer")]
    DebianImage(#[source] crate::debian_image::DebianImageError),
    #[error("could not make the Python test environment")]
    Python(#[source] crate::python_env::PythonEnvError),
}

/// Arguments of `cargo xtask setup`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SetupArgs {
    /// Print what would be written and run, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Go through every step even if all packages are installed.
    #[arg(long)]
    force: bool,
    /// Do what needs root only (the sudo re-run does this).
    #[arg(long, hide = true)]
    packages_only: bool,
    /// Where the Debian minbase layer goes (the sudo re-run is told the
    /// caller's).
    #[arg(long, hide = true)]
    debian_layer: Option<PathBuf>,
}

pub(crate) fn run(mut args: SetupArgs) -> Result<(), SetupError> {
    if args.debian_layer.is_none() {
        args.debian_layer = Some(default_debian_layer().ok_or(SetupError::NoDataDir)?);
    }
    let layer = args.debian_layer.clone().ok_or(SetupError::NoDataDir)?;
    if args.dry_run || is_root()? {
        install_packages(&args)?;
        crate::debian_image::build(&layer, &find_mirror()?.uri, args.dry_run)
            .map_err(SetupError::DebianImage)?;
    } else if args.force
        || !layer.exists()
        || missing_packages()?.iter().any(|(_, pkgs)| !pkgs.is_empty())
    {
        // Only what needs root goes through sudo, and only when there is
        // something to do.
        rerun_with_sudo(&args)?;
    }
    if !args.packages_only {
        build_default_rootfs(args.dry_run)?;
        crate::python_env::prepare(args.dry_run).map_err(SetupError::Python)?;
    }
    Ok(())
}

/// Where the image tests and `krunbox bench pull` look for the Debian
/// minbase layer: `$XDG_DATA_HOME/krunbox/test-images/`, or the same under
/// `$HOME/.local/share` (keep in step with `tests/vm/debian.rs`).
fn default_debian_layer() -> Option<PathBuf> {
    Some(
        data_dir()?
            .join("krunbox/test-images")
            .join(crate::debian_image::LAYER_NAME),
    )
}

/// The default rootfs directory: `$XDG_DATA_HOME/krunbox/rootfs`, or
/// `$HOME/.local/share/krunbox/rootfs` (the path
/// `krunbox::host::default_rootfs_dir` looks at; keep them in step).
fn default_rootfs_dir() -> Option<PathBuf> {
    Some(data_dir()?.join("krunbox/rootfs"))
}

/// `$XDG_DATA_HOME`, or `$HOME/.local/share`.
fn data_dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    var("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".local/share")))
}

fn build_default_rootfs(dry_run: bool) -> Result<(), SetupError> {
    let dest = default_rootfs_dir().ok_or(SetupError::NoDataDir)?;
    if dest.exists() {
        eprintln!("setup: default guest rootfs: {} (exists)", dest.display());
        return Ok(());
    }
    if dry_run {
        eprintln!(
            "setup: would build the default guest rootfs at {}",
            dest.display()
        );
        return Ok(());
    }
    krunbox_lab::build_busybox_rootfs(Path::new("/bin/busybox"), &dest)
        .map_err(SetupError::Rootfs)?;
    eprintln!(
        "setup: built the default guest rootfs at {}",
        dest.display()
    );
    Ok(())
}

fn install_packages(args: &SetupArgs) -> Result<(), SetupError> {
    let os_release = read("/etc/os-release")?;
    let codename = os_release_field(&os_release, "VERSION_CODENAME").unwrap_or_default();
    if codename != SUITE {
        return Err(SetupError::NotBookworm { found: codename });
    }
    let mut missing = missing_packages()?;
    if args.force {
        missing = PACKAGES
            .iter()
            .map(|(suite, pkgs)| (*suite, pkgs.iter().map(|p| (*p).to_owned()).collect()))
            .collect();
    }
    if missing.iter().all(|(_, pkgs)| pkgs.is_empty()) {
        eprintln!("setup: every package is installed already");
        return Ok(());
    }
    let mirror = find_mirror()?;
    write_if_changed(EXTRA_SOURCES, &extra_sources(&mirror), args.dry_run)?;
    write_if_changed(SID_PIN, SID_PIN_TEXT, args.dry_run)?;
    apt(&["update"], args.dry_run)?;
    for (suite, packages) in &missing {
        if packages.is_empty() {
            continue;
        }
        let mut apt_args = vec!["install", "-y", "--no-install-recommends"];
        if let Some(suite) = suite {
            apt_args.extend(["-t", suite]);
        }
        apt_args.extend(packages.iter().map(String::as_str));
        apt(&apt_args, args.dry_run)?;
        if packages.iter().any(|p| p == "docker-registry") {
            stop_registry_service(args.dry_run)?;
        }
    }
    eprintln!("setup: done");
    Ok(())
}

/// Debian's docker-registry package starts a registry on port 5000 for
/// every boot; the tests start their own on loopback, so where systemd
/// runs, the package's service is stopped and disabled.
fn stop_registry_service(dry_run: bool) -> Result<(), SetupError> {
    if !Path::new("/run/systemd/system").exists() {
        return Ok(());
    }
    let command = "systemctl disable --now docker-registry";
    eprintln!("setup: {command} (the tests run their own)");
    if dry_run {
        return Ok(());
    }
    let status = Command::new("systemctl")
        .args(["disable", "--now", "docker-registry"])
        .status()
        .map_err(|source| SetupError::Spawn {
            command: command.into(),
            source,
        })?;
    if !status.success() {
        return Err(SetupError::Failed {
            command: command.into(),
            status: status.to_string(),
        });
    }
    Ok(())
}

/// A bookworm entry's URI and keyring.
#[derive(Debug, PartialEq, Eq)]
struct Mirror {
    uri: String,
    signed_by: Option<String>,
}

fn find_mirror() -> Result<Mirror, SetupError> {
    if Path::new(DEBIAN_SOURCES).exists() {
        if let Some(mirror) = mirror_from_deb822(&read(DEBIAN_SOURCES)?) {
            return Ok(mirror);
        }
    }
    if Path::new(LEGACY_SOURCES).exists() {
        if let Some(mirror) = mirror_from_one_line(&read(LEGACY_SOURCES)?) {
            return Ok(mirror);
        }
    }
    Err(SetupError::NoMirror)
}

/// The first deb822 stanza whose `Suites` include bookworm itself.
fn mirror_from_deb822(text: &str) -> Option<Mirror> {
    let mut stanza: Vec<(String, String)> = Vec::new();
    let mut stanzas = Vec::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if !stanza.is_empty() {
                stanzas.push(std::mem::take(&mut stanza));
            }
        } else if line.starts_with('#') {
            continue;
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = stanza.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            stanza.push((key.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    stanzas.into_iter().find_map(|fields| {
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let types = get("types").unwrap_or("deb");
        let suites = get("suites")?;
        if !types.split_whitespace().any(|t| t == "deb")
            || !suites.split_whitespace().any(|s| s == SUITE)
        {
            return None;
        }
        Some(Mirror {
            uri: get("uris")?.split_whitespace().next()?.to_owned(),
            signed_by: get("signed-by").map(str::to_owned),
        })
    })
}

/// `deb [options] URI bookworm components…` from a sources.list.
fn mirror_from_one_line(text: &str) -> Option<Mirror> {
    text.lines().find_map(|line| {
        let line = line.trim();
        let rest = line.strip_prefix("deb ")?.trim_start();
        let (options, rest) = match rest.strip_prefix('[') {
            Some(after) => after.split_once(']')?,
            None => ("", rest),
        };
        let mut words = rest.split_whitespace();
        let (uri, suite) = (words.next()?, words.next()?);
        (suite == SUITE).then(|| Mirror {
            uri: uri.to_owned(),
            signed_by: options
                .split_whitespace()
                .find_map(|o| o.strip_prefix("signed-by="))
                .map(str::to_owned),
        })
    })
}

fn extra_sources(mirror: &Mirror) -> String {
    format!(
        "# Added by `cargo xtask setup` (krunbox lab): QEMU 10 from backports,\n\
         # libkrunfw5 from sid, pinned below bookworm in {SID_PIN}.\n\
         Types: deb\nURIs: {}\nSuites: bookworm-backports sid\nComponents: main\nSigned-By: {}\n",
        mirror.uri,
        mirror.signed_by.as_deref().unwrap_or(DEFAULT_KEYRING)
    )
}

/// Packages to install from one suite (`None`: the default).
type SuitePackages = (Option<&'static str>, Vec<String>);

/// Per suite, the packages not installed yet (or too old: QEMU).
fn missing_packages() -> Result<Vec<SuitePackages>, SetupError> {
    let all: Vec<&str> = PACKAGES
        .iter()
        .flat_map(|(_, p)| p.iter().copied())
        .collect();
    let command = "dpkg-query -W";
    // Exits 1 when some package is unknown; the output lists the others.
    let output = Command::new("dpkg-query")
        .arg("-W")
        .arg("-f=${Package} ${db:Status-Status} ${Version}\\n")
        .args(&all)
        .output()
        .map_err(|source| SetupError::Spawn {
            command: command.into(),
            source,
        })?;
    let installed = parse_dpkg_query(&String::from_utf8_lossy(&output.stdout));
    let mut missing = Vec::new();
    for (suite, packages) in PACKAGES {
        let mut need = Vec::new();
        for &package in packages {
            let ok = match installed.iter().find(|(p, _)| p == package) {
                None => false,
                Some((_, version)) if package == MIN_QEMU.0 => {
                    version_at_least(version, MIN_QEMU.1)?
                }
                Some(_) => true,
            };
            if !ok {
                need.push(package.to_owned());
            }
        }
        missing.push((suite, need));
    }
    Ok(missing)
}

/// `(package, version)` of the installed packages in dpkg-query output.
fn parse_dpkg_query(output: &str) -> Vec<(String, String)> {
    output
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (package, status, version) = (words.next()?, words.next()?, words.next()?);
            (status == "installed").then(|| (package.to_owned(), version.to_owned()))
        })
        .collect()
}

fn version_at_least(version: &str, min: &str) -> Result<bool, SetupError> {
    let status = Command::new("dpkg")
        .args(["--compare-versions", version, "ge", min])
        .status()
        .map_err(|source| SetupError::Spawn {
            command: "dpkg --compare-versions".into(),
            source,
        })?;
    Ok(status.success())
}

fn apt(args: &[&str], dry_run: bool) -> Result<(), SetupError> {
    let command = format!("apt-get {}", args.join(" "));
    if dry_run {
        eprintln!("setup: would run {command}");
        return Ok(());
    }
    eprintln!("setup: {command}");
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|source| SetupError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !status.success() {
        return Err(SetupError::Failed {
            command,
            status: status.to_string(),
        });
    }
    Ok(())
}

/// Effective uid 0, from `/proc/self/status` (`Uid: real effective …`).
fn is_root() -> Result<bool, SetupError> {
    let status = read("/proc/self/status")?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0"))
}

/// Runs this same task again under sudo.
fn rerun_with_sudo(args: &SetupArgs) -> Result<(), SetupError> {
    let exe = std::env::current_exe().map_err(|source| SetupError::Read {
        path: "/proc/self/exe".into(),
        source,
    })?;
    eprintln!("setup: not root; re-running with sudo");
    let mut sudo = Command::new("sudo");
    sudo.arg("--").arg(&exe).arg("setup").arg("--packages-only");
    if let Some(layer) = &args.debian_layer {
        sudo.arg("--debian-layer").arg(layer);
    }
    if args.force {
        sudo.arg("--force");
    }
    let status = match sudo.status() {
        Ok(status) => status,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(SetupError::NotRoot),
        Err(source) => {
            return Err(SetupError::Spawn {
                command: "sudo".into(),
                source,
            })
        }
    };
    if !status.success() {
        return Err(SetupError::Failed {
            command: format!("sudo {} setup", exe.display()),
            status: status.to_string(),
        });
    }
    Ok(())
}

fn os_release_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix('=')?;
        Some(value.trim_matches('"').to_owned())
    })
}

fn read(path: &str) -> Result<String, SetupError> {
    fs::read_to_string(path).map_err(|source| SetupError::Read {
        path: path.into(),
        source,
    })
}

fn read_or_empty(path: &str) -> Result<String, SetupError> {
    match fs::read_to_string(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        other => other.map_err(|source| SetupError::Read {
            path: path.into(),
            source,
        }),
    }
}

fn write_if_changed(path: &str, text: &str, dry_run: bool) -> Result<(), SetupError> {
    if read_or_empty(path)? == text {
        return Ok(());
    }
    if dry_run {
        eprintln!("setup: would write {path}:\n{text}");
        return Ok(());
    }
    eprintln!("setup: writing {path}");
    fs::write(path, text).map_err(|source| SetupError::Write {
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "Types: deb\n\
        # a comment\n\
        URIs: http://mirror.example/debian\n\
        Suites: bookworm bookworm-updates\n\
        Components: main\n\
        Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\
        \n\
        Types: deb\n\
        URIs: http://mirror.example/debian-security\n\
        Suites: bookworm-security\n\
        Components: main\n";

    #[test]
    fn finds_the_bookworm_stanza() {
        assert_eq!(
            mirror_from_deb822(DEB822),
            Some(Mirror {
                uri: "http://mirror.example/debian".into(),
                signed_by: Some("/usr/share/keyrings/debian-archive-keyring.gpg".into()),
            })
        );
        let security_only = DEB822.split("\n\n").nth(1).unwrap();
        assert_eq!(mirror_from_deb822(security_only), None);
    }

    #[test]
    fn finds_a_one_line_entry() {
        let text = "# old style\n\
            deb http://mirror.example/debian-security bookworm-security main\n\
            deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n";
        assert_eq!(
            mirror_from_one_line(text),
            Some(Mirror {
                uri: "http://mirror.example/debian".into(),
                signed_by: Some("/k.gpg".into()),
            })
        );
    }

    #[test]
    fn extra_sources_reuse_the_mirror() {
        let text = extra_sources(&Mirror {
            uri: "http://mirror.example/debian".into(),
            signed_by: None,
        });
        assert!(text.contains("URIs: http://mirror.example/debian\n"));
        assert!(text.contains("Suites: bookworm-backports sid\n"));
        assert!(text.contains(&format!("Signed-By: {DEFAULT_KEYRING}\n")));
    }

    #[test]
    fn dpkg_query_output() {
        let out = "cpio installed 2.13+dfsg-7.1\n\
                   libkrunfw5 not-installed \n\
                   qemu-system-x86 installed 1:10.0.2+ds-2+deb13u1~bpo12+1\n";
        assert_eq!(
            parse_dpkg_query(out),
            vec![
                ("cpio".to_owned(), "2.13+dfsg-7.1".to_owned()),
                (
                    "qemu-system-x86".to_owned(),
                    "1:10.0.2+ds-2+deb13u1~bpo12+1".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn os_release() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_CODENAME=bookworm\n";
        assert_eq!(
            os_release_field(text, "VERSION_CODENAME").as_deref(),
            Some("bookworm")
        );
        assert_eq!(os_release_field(text, "ID"), None);
    }
}
