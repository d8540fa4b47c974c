//! A read-only root under a writable layer in guest memory, as every VM
//! booted from an image gets: each VM sees only its own writes, the tree
//! on the host never changes, and the guest cannot write to the share
//! even by mounting it itself.

use std::path::Path;

use libtest_mimic::{Failed, Trial};

use crate::cases::{chain, check, text};
use crate::image_archive::{self, Layer};
use crate::named_cases::State;
use crate::support::{rootfs, vm};
use krunbox_suite::trial;

/// The image-root cases, by name.
pub fn all() -> Vec<Trial> {
    vec![
        trial(
            "images::overlay_roots_keep_writes_apart_and_the_tree_unchanged",
            overlay_roots_keep_writes_apart_and_the_tree_unchanged,
        ),
        trial(
            "images::a_loaded_archive_runs_with_its_config",
            a_loaded_archive_runs_with_its_config,
        ),
        trial(
            "images::a_named_vm_from_an_image_takes_exec_and_cp",
            a_named_vm_from_an_image_takes_exec_and_cp,
        ),
        trial(
            "images::a_debian_image_from_a_registry_runs_apt",
            a_debian_image_from_a_registry_runs_apt,
        ),
    ]
}

/// Writes to `/etc`, `/` and the workdir in two VMs one after the other
/// from the same tree, and tries to write through the share directly.
fn overlay_roots_keep_writes_apart_and_the_tree_unchanged() -> Result<(), Failed> {
    let tree = rootfs();
    let before = listing(&tree)?;
    for id in ["first", "second"] {
        let script = format!(
            "test ! -e /etc/marker || {{ echo saw another VM; exit 3; }}; \
             echo {id} > /etc/marker && touch /new-at-root && cat /etc/marker && pwd; \
             mkdir -p /mnt/share && mount -t virtiofs krunbox-root /mnt/share \
             && {{ touch /mnt/share/pwned 2>/dev/null && echo wrote through the share; true; }}"
        );
        let out = vm()
            .overlay_root(true)
            .workdir("/tmp")
            .command(["sh", "-c", &script])
            .output()
            .map_err(chain)?;
        let said = format!(
            "status {:?}, stdout {:?}, stderr {:?}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        check(out.status.success(), || said.clone())?;
        check(text(&out.stdout) == format!("{id}\n/tmp\n"), || {
            said.clone()
        })?;
    }
    let after = listing(&tree)?;
    check(before == after, || {
        format!("the tree changed: before {before:?}, after {after:?}")
    })
}

/// Names and sizes at the top of `tree` and in its `etc`.
fn listing(tree: &Path) -> Result<Vec<(String, u64)>, Failed> {
    let mut out = Vec::new();
    for dir in [tree.to_owned(), tree.join("etc")] {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            out.push((entry.path().display().to_string(), meta.len()));
        }
    }
    out.sort();
    Ok(out)
}

/// The image the CLI cases load: the test rootfs as its base layer, and
/// a second layer that adds accounts and a file and whites one out.
pub fn build_archive(out: &Path) {
    let top = Layer::new()
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n",
            0o644,
        )
        .file("etc/group", b"root:x:0:\napp:x:1001:\n", 0o644)
        .file("etc/greeting", b"from the second layer\n", 0o644)
        .whiteout("etc/hostname");
    image_archive::write(
        out,
        "kbtest:1",
        vec![Layer::new().tree(&rootfs()), top],
        serde_json::json!({
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo $GREETING; pwd; id -u; id -g; test -e /etc/hostname && echo whiteout ignored; cat /etc/greeting"],
            "Env": ["GREETING=hello from the image", "PATH=/bin:/sbin"],
            "WorkingDir": "/work",
            "User": "app",
        }),
    );
}

/// `krunbox load` of a `docker save` archive, then `krunbox run --image`
/// with the image's Entrypoint, Cmd, Env, WorkingDir and User, and with
/// each overridden; the unpacked tree is unchanged afterwards.
fn a_loaded_archive_runs_with_its_config() -> Result<(), Failed> {
    let state = State::new()?;
    let images = Loaded::new()?;
    let krunbox = |args: &[&str]| images.krunbox(&state, args);
    let out = krunbox(&["load", "-i", images.archive.to_str().unwrap()])?;
    expect(&out, "Loaded image: docker.io/library/kbtest:1\n")?;
    let out = krunbox(&["images", "-q"])?;
    check(out.status.success(), || said(&out))?;
    let id = text(&out.stdout).trim().to_owned();
    let tree = images
        .store
        .join("roots")
        .join(krunbox_image_hex(&images.store, &id)?);
    let before = listing(&tree)?;

    let out = krunbox(&["run", "--mem", "256", "--image", "kbtest:1"])?;
    expect(
        &out,
        "hello from the image\n/work\n1000\n1001\nfrom the second layer\n",
    )?;
    let out = krunbox(&[
        "run",
        "--mem",
        "256",
        "--image",
        &id,
        "-e",
        "GREETING=overridden",
        "-w",
        "/tmp",
        "--entrypoint",
        "/bin/sh",
        "--",
        "-c",
        "echo $GREETING in $(pwd) as $(id -u)",
    ])?;
    expect(&out, "overridden in /tmp as 1000\n")?;
    let out = krunbox(&["demo", "--image", "kbtest:1", "--execs", "1"])?;
    check(
        out.status.success() && text(&out.stdout).contains("10 skills"),
        || said(&out),
    )?;
    let after = listing(&tree)?;
    check(before == after, || {
        format!("the image tree changed: before {before:?}, after {after:?}")
    })
}

/// A scratch image store and the test image's archive.
struct Loaded {
    _scratch: tempfile::TempDir,
    archive: std::path::PathBuf,
    store: std::path::PathBuf,
}

impl Loaded {
    fn new() -> Result<Self, Failed> {
        let scratch = tempfile::tempdir()?;
        let archive = scratch.path().join("image.tar");
        build_archive(&archive);
        Ok(Self {
            store: scratch.path().join("store"),
            archive,
            _scratch: scratch,
        })
    }

    /// `krunbox ARGS…` with this store.
    fn krunbox(&self, state: &State, args: &[&str]) -> Result<std::process::Output, Failed> {
        let mut cmd = state.krunbox();
        cmd.env("KRUNBOX_IMAGE_STORE", &self.store).args(args);
        cmd.output().map_err(chain)
    }
}

/// A named VM started from an image: every exec gets the image's user,
/// environment and working directory unless it names its own; `cp` works
/// both ways; `stop` ends it.
fn a_named_vm_from_an_image_takes_exec_and_cp() -> Result<(), Failed> {
    let state = State::new()?;
    let images = Loaded::new()?;
    let krunbox = |args: &[&str]| images.krunbox(&state, args);
    let out = krunbox(&["load", "-q", "-i", images.archive.to_str().unwrap()])?;
    check(out.status.success(), || said(&out))?;
    let out = krunbox(&[
        "start", "--name", "imgvm", "--mem", "256", "--image", "kbtest:1",
    ])?;
    check(out.status.success(), || said(&out))?;
    let result = (|| {
        let out = krunbox(&[
            "exec",
            "imgvm",
            "--",
            "sh",
            "-c",
            "id -u; pwd; echo $GREETING",
        ])?;
        expect(&out, "1000\n/work\nhello from the image\n")?;
        let out = krunbox(&["exec", "-u", "0", "imgvm", "--", "id", "-u"])?;
        expect(&out, "0\n")?;
        let host = tempfile::tempdir()?;
        let sent = host.path().join("sent.txt");
        std::fs::write(&sent, "to the guest\n")?;
        let out = krunbox(&["cp", sent.to_str().unwrap(), "imgvm:/work/sent.txt"])?;
        check(out.status.success(), || said(&out))?;
        let out = krunbox(&["exec", "imgvm", "--", "cat", "/work/sent.txt"])?;
        expect(&out, "to the guest\n")?;
        let back = host.path().join("greeting");
        let out = krunbox(&["cp", "imgvm:/etc/greeting", back.to_str().unwrap()])?;
        check(out.status.success(), || said(&out))?;
        let got = std::fs::read_to_string(&back)?;
        check(got == "from the second layer\n", || {
            format!("copied out {got:?}")
        })
    })();
    let out = krunbox(&["stop", "imgvm"])?;
    result?;
    check(out.status.success(), || said(&out))
}

/// Debian minbase (debootstrap, in setup) pushed to a real registry on
/// loopback, `krunbox pull`ed, booted with its config: the image's Cmd
/// runs `apt-get` and prints Debian's os-release, in its WorkingDir, as
/// its User.
fn a_debian_image_from_a_registry_runs_apt() -> Result<(), Failed> {
    use crate::registry::{push::Pusher, server::RegistryServer, support::TestImage};
    let (layer, diff_id) = crate::debian::layer()?;
    let registry = RegistryServer::start();
    let arch = krunbox_image::archive::host_platform().1;
    let config = serde_json::json!({
        "Cmd": ["sh", "-c", "apt-get --version | head -n 1; cat /etc/os-release; pwd; id -un"],
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "WorkingDir": "/srv",
        "User": "nobody",
    });
    let image = TestImage::of_gzipped_layer(layer, &diff_id, arch, config);
    Pusher::new(&registry.addr).image("library/debian", Some("bookworm"), &image);
    let name = format!("{}/library/debian:bookworm", registry.addr);
    let state = State::new()?;
    let images = Loaded::new()?;
    let krunbox = |args: &[&str]| images.krunbox(&state, args);
    let out = krunbox(&["pull", "-q", &name])?;
    check(out.status.success(), || said(&out))?;
    let out = krunbox(&["run", "--mem", "256", "--image", &name, "--pull", "never"])?;
    let stdout = text(&out.stdout);
    check(
        out.status.success()
            && stdout.starts_with("apt 2.6")
            && stdout.contains("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"")
            && stdout.ends_with("\n/srv\nnobody\n"),
        || {
            format!(
                "wanted apt's version, Debian 12's os-release, /srv and nobody; got {}",
                said(&out)
            )
        },
    )
}

/// The root directory name of the image whose short ID is `id`.
fn krunbox_image_hex(store: &Path, id: &str) -> Result<String, Failed> {
    for entry in std::fs::read_dir(store.join("roots"))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with(id) && !name.ends_with(".json") {
            return Ok(name);
        }
    }
    Err(format!("no root for image {id} in the store").into())
}

fn said(out: &std::process::Output) -> String {
    format!(
        "status {:?}, stdout {:?}, stderr {:?}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// `out` succeeded and printed exactly `stdout`.
fn expect(out: &std::process::Output, stdout: &str) -> Result<(), Failed> {
    check(out.status.success() && text(&out.stdout) == stdout, || {
        format!("wanted stdout {stdout:?}; got {}", said(out))
    })
}
