//! `krunbox-oci` driven by real OCI runtime callers that nobody here
//! wrote, on booted VMs: Debian's containerd (its runc v2 shim pointed at
//! `krunbox-oci` with `ctr run --runc-binary`, which sets the shim's
//! `BinaryName` option) and Debian's Podman (`--runtime`, with conmon;
//! with and without `--tty`, the console coming through conmon's
//! `--console-socket`).
//!
//! A container is also run in a network namespace of its own (`ctr run
//! --with-ns network:PATH`, what CRI does with a pod's), where a server
//! on that namespace's loopback is what the guest reaches.
//!
//! Both run from an image archive the case builds from the test rootfs
//! (`ctr image import`, `podman load`). Each case starts what it needs
//! itself (containerd on a socket in a temporary directory; Podman with
//! its storage there), and ends by checking that nothing of the
//! containers is left: no container or task in the client, nothing but
//! the lock in the runtime's `--root`, no `krunbox-oci` process.
//!
//! The host's binaries (`cargo xtask setup` installs the packages) go
//! into the lab with their libraries when the run selects a case here.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use krunbox_lab::LabSpec;
use libtest_mimic::{Failed, Trial};

use crate::cases::{check, text};
use crate::image_archive::{self, Layer};
use crate::support::{in_lab, rootfs, selects_any};
use krunbox_suite::trial;

/// The cases.
pub const CONTAINERD: &str = "oci::containerd_runs_execs_and_kills_through_krunbox_oci";
pub const PODMAN: &str = "oci::podman_runs_and_execs_through_krunbox_oci";

/// The host programs each case needs, from Debian's packages.
const CONTAINERD_PROGRAMS: [&str; 3] = [
    "/usr/bin/containerd",
    "/usr/bin/ctr",
    "/usr/bin/containerd-shim-runc-v2",
];
const PODMAN_PROGRAMS: [&str; 2] = ["/usr/bin/podman", "/usr/bin/conmon"];
/// Podman's image trust policy (package containers-common).
const POLICY: &str = "/etc/containers/policy.json";
/// Why the host's programs could not go into the lab.
const MISSING_VAR: &str = "KRUNBOX_VM_TESTS_OCI_CLIENTS_MISSING";
/// The image both clients run.
const IMAGE: &str = "krunbox.test/busybox:1";
/// Longest a client command or a wait may take.
const STEP_LIMIT: Duration = Duration::from_secs(180);

pub fn all() -> Vec<Trial> {
    vec![
        trial(CONTAINERD, containerd_runs_execs_and_kills),
        trial(PODMAN, podman_runs_and_execs),
    ]
}

/// Adds the clients' programs to a lab boot when the run selects a case
/// here; when one is missing on the host, why.
pub fn put_in_lab(mut spec: LabSpec) -> LabSpec {
    let mut wanted: Vec<&str> = Vec::new();
    if selects_any(&[CONTAINERD]) {
        wanted.extend(CONTAINERD_PROGRAMS);
    }
    if selects_any(&[PODMAN]) {
        wanted.extend(PODMAN_PROGRAMS);
        wanted.push(POLICY);
    }
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|path| !Path::new(path).exists())
        .collect();
    if !missing.is_empty() {
        return spec.env(
            MISSING_VAR,
            format!(
                "{} missing on the host; `cargo xtask setup` installs containerd and podman",
                missing.join(", ")
            ),
        );
    }
    for path in wanted {
        spec = if path == POLICY {
            spec.file(path, path)
        } else {
            spec.executable(path)
        };
    }
    spec
}

/// The runtime, or why the case cannot run.
fn runtime() -> Result<PathBuf, Failed> {
    if let Ok(why) = std::env::var(MISSING_VAR) {
        return Err(why.into());
    }
    crate::oci_cases::program()
}

/// A docker-save archive of the test rootfs, named [`IMAGE`].
fn image_archive(dir: &Path) -> PathBuf {
    let path = dir.join("image.tar");
    let config = serde_json::json!({"Env": ["PATH=/bin:/sbin:/usr/bin"]});
    image_archive::write(&path, IMAGE, vec![Layer::new().tree(&rootfs())], config);
    path
}

/// Runs `command` to its end: its output.
fn output(command: &mut Command) -> Result<Output, Failed> {
    let shown = format!("{command:?}");
    command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}").into())
}

/// Runs `command`, which must exit with `code`: its stdout and stderr.
fn expect(
    command: &mut Command,
    code: i32,
    log: &dyn Fn() -> String,
) -> Result<(String, String), Failed> {
    let shown = format!("{:?}", command.get_args().collect::<Vec<_>>());
    let out = output(command)?;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    check(out.status.code() == Some(code), || {
        format!(
            "{shown} exited with {}, not {code}: stdout {stdout:?}, stderr {stderr:?}; {}",
            out.status,
            log()
        )
    })?;
    Ok((stdout, stderr))
}

/// Waits until `cond` holds, at most [`STEP_LIMIT`].
fn wait_for(what: &str, mut cond: impl FnMut() -> Result<bool, Failed>) -> Result<(), Failed> {
    let start = Instant::now();
    while !cond()? {
        if start.elapsed() > STEP_LIMIT {
            return Err(format!("{what} did not happen within {STEP_LIMIT:?}").into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// What is left in a runtime root besides its lock file.
fn left_in(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name != ".lock")
                .collect()
        })
        .unwrap_or_default()
}

/// Pids of `krunbox-oci` processes (monitors, runners, exec children).
fn runtime_processes(runtime: &Path) -> Vec<String> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(Result::ok)
        .filter(|e| std::fs::read_link(e.path().join("exe")).is_ok_and(|exe| exe == runtime))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Checks that no container is left: `root` holds only its lock and no
/// runtime process runs.
fn nothing_left(runtime: &Path, root: &Path) -> Result<(), Failed> {
    let left = left_in(root);
    check(left.is_empty(), || {
        format!("{} still holds {left:?}", root.display())
    })?;
    let pids = runtime_processes(runtime);
    check(pids.is_empty(), || {
        format!("krunbox-oci processes left: {pids:?}")
    })
}

/// The port and the text the pod's server serves.
const POD_PORT: u16 = 18080;
const POD_TEXT: &str = "from the pod's network namespace\n";

/// A network namespace of its own with busybox's httpd on its loopback,
/// as a pod's sandbox holds one; stopped when dropped.
struct PodNetwork(Child);

impl PodNetwork {
    fn start(dir: &Path) -> Result<Self, Failed> {
        let www = dir.join("www");
        std::fs::create_dir(&www)?;
        std::fs::write(www.join("pod.txt"), POD_TEXT)?;
        let script = format!(
            "ip link set lo up && exec httpd -f -p 127.0.0.1:{POD_PORT} -h {}",
            www.display()
        );
        let child = Command::new("unshare")
            .args(["-n", "sh", "-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run unshare: {e}"))?;
        let pod = Self(child);
        // Listening there, and not in the lab's own namespace.
        let listening = format!(":{POD_PORT:04X} 00000000:0000 0A");
        let tcp = format!("/proc/{}/net/tcp", pod.0.id());
        wait_for("the pod's server listening", || {
            Ok(std::fs::read_to_string(&tcp).is_ok_and(|t| t.contains(&listening)))
        })?;
        let outside = std::net::TcpStream::connect(("127.0.0.1", POD_PORT));
        check(outside.is_err(), || {
            format!("port {POD_PORT} answers outside the pod's namespace too")
        })?;
        Ok(pod)
    }

    fn path(&self) -> String {
        format!("/proc/{}/ns/net", self.0.id())
    }
}

impl Drop for PodNetwork {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// containerd on a socket of its own, stopped when dropped.
struct Containerd {
    dir: PathBuf,
    child: Child,
}

impl Containerd {
    /// The configuration the case runs containerd with (also in
    /// docs/kubernetes.md). CRI is off: nothing here is a kubelet.
    fn config(dir: &Path) -> String {
        format!(
            "version = 2\n\
             root = \"{dir}/root\"\n\
             state = \"{dir}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{dir}/containerd.sock\"\n",
            dir = dir.display()
        )
    }

    fn start(dir: &Path) -> Result<Self, Failed> {
        std::fs::write(dir.join("config.toml"), Self::config(dir))?;
        let log = std::fs::File::create(dir.join("containerd.log"))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env_remove("KRUNBOX_RUNNER")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start containerd: {e}"))?;
        let containerd = Self {
            dir: dir.to_owned(),
            child,
        };
        let socket = dir.join("containerd.sock");
        wait_for("containerd's socket", || Ok(socket.exists()))
            .map_err(|e| format!("{}; {}", e.message().unwrap_or_default(), containerd.log()))?;
        Ok(containerd)
    }

    /// `ctr` on this containerd.
    fn ctr(&self) -> Command {
        let mut command = Command::new("ctr");
        command
            .arg("--address")
            .arg(self.dir.join("containerd.sock"));
        command
    }

    /// The tail of containerd's log, for failures.
    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        format!(
            "containerd's log ends:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

fn containerd_runs_execs_and_kills() -> Result<(), Failed> {
    let runtime = runtime()?;
    let dir = tempfile::tempdir()?;
    let containerd = Containerd::start(dir.path())?;
    let log = || containerd.log();
    let archive = image_archive(dir.path());
    let runc_root = dir.path().join("runc-root");
    let run = |rest: &[&str]| {
        let mut command = containerd.ctr();
        command
            .args(["run", "--snapshotter", "native", "--runc-binary"])
            .arg(&runtime)
            .arg("--runc-root")
            .arg(&runc_root)
            .args(rest);
        command
    };
    let mut import = containerd.ctr();
    import
        .args(["image", "import", "--snapshotter", "native"])
        .arg(&archive);
    expect(&mut import, 0, &log)?;

    // A container that exits by itself: its output and exit status.
    let script = "echo hello from containerd; echo to-stderr >&2; exit 3";
    let (stdout, stderr) = expect(
        &mut run(&["--rm", IMAGE, "c1", "sh", "-c", script]),
        3,
        &log,
    )?;
    check(
        stdout == "hello from containerd\n" && stderr == "to-stderr\n",
        || format!("ctr run printed {stdout:?} and {stderr:?}"),
    )?;

    // One in a pod's network namespace (as CRI passes it): a server
    // there, on its loopback, is what the guest reaches.
    let pod = PodNetwork::start(dir.path())?;
    let with_ns = format!("network:{}", pod.path());
    let script = format!("wget -q -O - http://127.0.0.1:{POD_PORT}/pod.txt");
    let args = [
        "--rm",
        "--with-ns",
        &with_ns,
        IMAGE,
        "c3",
        "sh",
        "-c",
        &script,
    ];
    let (stdout, _) = expect(&mut run(&args), 0, &log)?;
    check(stdout == POD_TEXT, || {
        format!("the container in the pod's namespace fetched {stdout:?}")
    })?;
    drop(pod);

    // One that runs until killed, with an exec into it.
    let script = "echo ready; exec sleep 600";
    expect(
        &mut run(&["--detach", IMAGE, "c2", "sh", "-c", script]),
        0,
        &log,
    )?;
    let task_status = || -> Result<String, Failed> {
        let mut ls = containerd.ctr();
        let (listing, _) = expect(ls.args(["task", "ls"]), 0, &log)?;
        Ok(listing
            .lines()
            .find(|line| line.starts_with("c2 "))
            .and_then(|line| line.split_whitespace().nth(2))
            .unwrap_or("absent")
            .to_owned())
    };
    check(task_status()? == "RUNNING", || {
        "c2 is not RUNNING after ctr run --detach".into()
    })?;
    let mut exec = containerd.ctr();
    exec.args(["task", "exec", "--exec-id", "e1", "c2", "sh", "-c"])
        .arg("echo in exec on $(hostname); exit 4");
    let (stdout, _) = expect(&mut exec, 4, &log)?;
    check(stdout.starts_with("in exec on "), || {
        format!("ctr task exec printed {stdout:?}")
    })?;
    let mut kill = containerd.ctr();
    expect(
        kill.args(["task", "kill", "--signal", "SIGTERM", "c2"]),
        0,
        &log,
    )?;
    wait_for("c2 stopping after SIGTERM", || {
        Ok(task_status()? == "STOPPED")
    })?;
    let mut delete = containerd.ctr();
    let (_, said) = expect(delete.args(["task", "delete", "c2"]), 0, &log)?;
    check(said.contains("exit code 143"), || {
        format!("ctr task delete said {said:?}, not that c2 exited with 143")
    })?;
    let mut delete = containerd.ctr();
    expect(delete.args(["container", "delete", "c2"]), 0, &log)?;

    let mut ls = containerd.ctr();
    let (containers, _) = expect(ls.args(["container", "ls", "--quiet"]), 0, &log)?;
    check(containers.trim().is_empty(), || {
        format!("containers left in containerd: {containers:?}")
    })?;
    nothing_left(&runtime, &runc_root.join("default"))
}

/// Mounts what Podman needs that the lab does not mount: the cgroup2
/// hierarchy and a tmpfs on `/dev/shm` (its lock manager).
fn mount_for_podman() -> Result<(), Failed> {
    let mounts = std::fs::read_to_string("/proc/mounts")?;
    for (fs, dir, options) in [
        ("cgroup2", "/sys/fs/cgroup", "rw"),
        ("tmpfs", "/dev/shm", "mode=1777"),
    ] {
        if mounts
            .lines()
            .any(|line| line.split(' ').nth(1) == Some(dir))
        {
            continue;
        }
        std::fs::create_dir_all(dir)?;
        let out = output(Command::new("mount").args(["-t", fs, "-o", options, fs, dir]))?;
        check(out.status.success(), || {
            format!("mounting {fs} on {dir}: {}", text(&out.stderr))
        })?;
    }
    Ok(())
}

/// conmon: the lab's copy inside the lab, else Debian's.
fn conmon() -> PathBuf {
    if in_lab() {
        Path::new(krunbox_lab::LAB_BIN).join("conmon")
    } else {
        PathBuf::from("/usr/bin/conmon")
    }
}

fn podman_runs_and_execs() -> Result<(), Failed> {
    let runtime = runtime()?;
    mount_for_podman()?;
    let dir = tempfile::tempdir()?;
    let archive = image_archive(dir.path());
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp)?;
    let podman = || {
        let mut command = Command::new("podman");
        command
            .arg("--root")
            .arg(dir.path().join("storage"))
            .arg("--runroot")
            .arg(dir.path().join("run"))
            .arg("--tmpdir")
            .arg(&tmp)
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file", "--conmon"])
            .arg(conmon())
            .arg("--runtime")
            .arg(&runtime)
            .env_remove("KRUNBOX_RUNNER");
        command
    };
    let no_log = String::new;
    expect(
        podman().arg("load").arg("--input").arg(&archive),
        0,
        &no_log,
    )?;

    let script = "echo hello from podman; exit 5";
    let run = [
        "run",
        "--rm",
        "--network",
        "none",
        IMAGE,
        "sh",
        "-c",
        script,
    ];
    let (stdout, _) = expect(podman().args(run), 5, &no_log)?;
    check(stdout == "hello from podman\n", || {
        format!("podman run printed {stdout:?}")
    })?;

    // On a terminal: conmon passes --console-socket and reads the pty.
    let script = "tty; exit 2";
    let run = [
        "run",
        "--rm",
        "--tty",
        "--network",
        "none",
        IMAGE,
        "sh",
        "-c",
        script,
    ];
    let (stdout, _) = expect(podman().args(run), 2, &no_log)?;
    check(
        stdout.starts_with("/dev/pts/") && stdout.ends_with("\r\n"),
        || format!("podman run --tty printed {stdout:?}, not a pty's name and a terminal's CR LF"),
    )?;

    let script = "echo ready; exec sleep 600";
    let run = [
        "run",
        "--detach",
        "--name",
        "p2",
        "--network",
        "none",
        IMAGE,
        "sh",
        "-c",
        script,
    ];
    expect(podman().args(run), 0, &no_log)?;
    let exec = ["exec", "p2", "sh", "-c", "echo in podman exec; exit 6"];
    let (stdout, _) = expect(podman().args(exec), 6, &no_log)?;
    check(stdout == "in podman exec\n", || {
        format!("podman exec printed {stdout:?}")
    })?;
    let exec = ["exec", "--tty", "p2", "sh", "-c", "tty; exit 8"];
    let (stdout, _) = expect(podman().args(exec), 8, &no_log)?;
    check(
        stdout.starts_with("/dev/pts/") && stdout.ends_with("\r\n"),
        || format!("podman exec --tty printed {stdout:?}"),
    )?;
    expect(podman().args(["stop", "--time", "5", "p2"]), 0, &no_log)?;
    let inspect = ["inspect", "--format", "{{.State.ExitCode}}", "p2"];
    let (code, _) = expect(podman().args(inspect), 0, &no_log)?;
    check(code.trim() == "143", || {
        format!("p2 exited with {code:?} after podman stop, not 143")
    })?;
    let (logs, _) = expect(podman().args(["logs", "p2"]), 0, &no_log)?;
    check(logs == "ready\n", || {
        format!("podman logs printed {logs:?}")
    })?;
    expect(podman().args(["rm", "p2"]), 0, &no_log)?;

    let (listing, _) = expect(podman().args(["ps", "--all", "--quiet"]), 0, &no_log)?;
    check(listing.trim().is_empty(), || {
        format!("containers left in podman: {listing:?}")
    })?;
    // Podman passes no --root: the runtime's default.
    nothing_left(&runtime, Path::new("/run/krunbox-oci"))
}
