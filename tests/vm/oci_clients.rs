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
        // Not more often: each check may start a client, a Go program
        // that is slow to start under the lab's emulation.
        std::thread::sleep(Duration::from_secs(1));
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

/// containerd on a socket of its own, stopped when dropped, and the
/// runtime its runc shim is pointed at.
struct Containerd {
    dir: PathBuf,
    child: Child,
    runtime: PathBuf,
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

    fn start(dir: &Path, runtime: PathBuf) -> Result<Self, Failed> {
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
            runtime,
        };
        let socket = dir.join("containerd.sock");
        wait_for("containerd's socket", || Ok(socket.exists()))
            .map_err(|e| format!("{}; {}", e.message().unwrap_or_default(), containerd.log()))?;
        Ok(containerd)
    }

    /// `ctr ARGS` on this containerd.
    fn ctr(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ctr");
        command
            .arg("--address")
            .arg(self.dir.join("containerd.sock"))
            .args(args);
        command
    }

    /// The runtime's root, as the shim passes it (`--root`).
    fn runc_root(&self) -> PathBuf {
        self.dir.join("runc-root")
    }

    /// `ctr run` through the runtime, then `args`.
    fn run(&self, args: &[&str]) -> Command {
        let mut command = self.ctr(&["run", "--snapshotter", "native", "--runc-binary"]);
        command
            .arg(&self.runtime)
            .arg("--runc-root")
            .arg(self.runc_root())
            .args(args);
        command
    }

    /// Runs `command`, which must exit with `code`: its stdout and stderr.
    fn expect(&self, mut command: Command, code: i32) -> Result<(String, String), Failed> {
        expect(&mut command, code, &|| self.log())
    }

    /// The status `ctr task ls` gives `id`'s task.
    fn task_status(&self, id: &str) -> Result<String, Failed> {
        let (listing, _) = self.expect(self.ctr(&["task", "ls"]), 0)?;
        Ok(listing
            .lines()
            .find(|line| line.split_whitespace().next() == Some(id))
            .and_then(|line| line.split_whitespace().nth(2))
            .unwrap_or("absent")
            .to_owned())
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
    let dir = tempfile::tempdir()?;
    let containerd = Containerd::start(dir.path(), runtime()?)?;
    let mut import = containerd.ctr(&["image", "import", "--snapshotter", "native"]);
    import.arg(image_archive(dir.path()));
    containerd.expect(import, 0)?;

    exits_in_a_pod_namespace(&containerd, dir.path())?;
    killed_after_an_exec(&containerd)?;

    let (containers, _) = containerd.expect(containerd.ctr(&["container", "ls", "--quiet"]), 0)?;
    check(containers.trim().is_empty(), || {
        format!("containers left in containerd: {containers:?}")
    })?;
    nothing_left(&containerd.runtime, &containerd.runc_root().join("default"))
}

/// A container that exits by itself (its output and exit status), in a
/// pod's network namespace (as CRI passes it): a server there, on its
/// loopback, is what the guest reaches.
fn exits_in_a_pod_namespace(containerd: &Containerd, dir: &Path) -> Result<(), Failed> {
    let pod = PodNetwork::start(dir)?;
    let with_ns = format!("network:{}", pod.path());
    let script = format!(
        "echo hello from containerd; echo to-stderr >&2; \
         wget -q -O - http://127.0.0.1:{POD_PORT}/pod.txt; exit 3"
    );
    let args = [
        "--rm",
        "--with-ns",
        &with_ns,
        IMAGE,
        "c1",
        "sh",
        "-c",
        &script,
    ];
    let (stdout, stderr) = containerd.expect(containerd.run(&args), 3)?;
    check(
        stdout == format!("hello from containerd\n{POD_TEXT}") && stderr == "to-stderr\n",
        || format!("ctr run printed {stdout:?} and {stderr:?}"),
    )
}

/// A container that runs until killed, with an exec into it; its task
/// and container deleted.
fn killed_after_an_exec(containerd: &Containerd) -> Result<(), Failed> {
    let script = "echo ready; exec sleep 600";
    containerd.expect(
        containerd.run(&["--detach", IMAGE, "c2", "sh", "-c", script]),
        0,
    )?;
    check(containerd.task_status("c2")? == "RUNNING", || {
        "c2 is not RUNNING after ctr run --detach".into()
    })?;
    let mut exec = containerd.ctr(&["task", "exec", "--exec-id", "e1", "c2", "sh", "-c"]);
    exec.arg("echo in exec on $(hostname); exit 4");
    let (stdout, _) = containerd.expect(exec, 4)?;
    check(stdout.starts_with("in exec on "), || {
        format!("ctr task exec printed {stdout:?}")
    })?;
    let kill = containerd.ctr(&["task", "kill", "--signal", "SIGTERM", "c2"]);
    containerd.expect(kill, 0)?;
    wait_for("c2 stopping after SIGTERM", || {
        Ok(containerd.task_status("c2")? == "STOPPED")
    })?;
    let (_, said) = containerd.expect(containerd.ctr(&["task", "delete", "c2"]), 0)?;
    check(said.contains("exit code 143"), || {
        format!("ctr task delete said {said:?}, not that c2 exited with 143")
    })?;
    containerd.expect(containerd.ctr(&["container", "delete", "c2"]), 0)?;
    Ok(())
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

/// Podman with its storage in a directory of its own and the runtime.
struct Podman {
    dir: tempfile::TempDir,
    runtime: PathBuf,
}

impl Podman {
    fn new(runtime: PathBuf) -> Result<Self, Failed> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("tmp"))?;
        Ok(Self { dir, runtime })
    }

    /// `podman` with the global flags, then `args`.
    fn cmd(&self, args: &[&str]) -> Command {
        let dir = self.dir.path();
        let mut command = Command::new("podman");
        command
            .arg("--root")
            .arg(dir.join("storage"))
            .arg("--runroot")
            .arg(dir.join("run"))
            .arg("--tmpdir")
            .arg(dir.join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file", "--conmon"])
            .arg(conmon())
            .arg("--runtime")
            .arg(&self.runtime)
            .args(args)
            .env_remove("KRUNBOX_RUNNER");
        command
    }

    /// `podman run FLAGS IMAGE sh -c SCRIPT`, without a network.
    fn run(&self, flags: &[&str], script: &str) -> Command {
        let mut command = self.cmd(&["run", "--network", "none"]);
        command.args(flags).args([IMAGE, "sh", "-c", script]);
        command
    }

    /// Runs `command`, which must exit with `code`: its stdout.
    fn expect(&self, mut command: Command, code: i32) -> Result<String, Failed> {
        Ok(expect(&mut command, code, &String::new)?.0)
    }
}

/// Whether `out` is what `tty` prints on a terminal: a pty's name, with
/// the terminal's CR LF.
fn on_a_pty(out: &str) -> bool {
    out.starts_with("/dev/pts/") && out.ends_with("\r\n")
}

fn podman_runs_and_execs() -> Result<(), Failed> {
    let podman = Podman::new(runtime()?)?;
    mount_for_podman()?;
    let archive = image_archive(podman.dir.path());
    let mut load = podman.cmd(&["load", "--input"]);
    load.arg(&archive);
    podman.expect(load, 0)?;

    let out = podman.expect(podman.run(&["--rm"], "echo hello from podman; exit 5"), 5)?;
    check(out == "hello from podman\n", || {
        format!("podman run printed {out:?}")
    })?;
    // On a terminal: conmon passes --console-socket and logs the pty.
    let flags = ["--detach", "--tty", "--name", "p2"];
    podman.expect(podman.run(&flags, "tty; exec sleep 600"), 0)?;
    let exec = ["exec", "p2", "sh", "-c", "echo in podman exec; exit 6"];
    let out = podman.expect(podman.cmd(&exec), 6)?;
    check(out == "in podman exec\n", || {
        format!("podman exec printed {out:?}")
    })?;
    let out = podman.expect(
        podman.cmd(&["exec", "--tty", "p2", "sh", "-c", "tty; exit 8"]),
        8,
    )?;
    check(on_a_pty(&out), || {
        format!("podman exec --tty printed {out:?}")
    })?;
    podman.expect(podman.cmd(&["stop", "--time", "5", "p2"]), 0)?;
    let inspect = ["inspect", "--format", "{{.State.ExitCode}}", "p2"];
    let code = podman.expect(podman.cmd(&inspect), 0)?;
    check(code.trim() == "143", || {
        format!("p2 exited with {code:?} after podman stop, not 143")
    })?;
    let logs = podman.expect(podman.cmd(&["logs", "p2"]), 0)?;
    check(on_a_pty(&logs), || {
        format!("podman logs of a --tty container printed {logs:?}, not a pty's name and CR LF")
    })?;
    podman.expect(podman.cmd(&["rm", "p2"]), 0)?;

    let listing = podman.expect(podman.cmd(&["ps", "--all", "--quiet"]), 0)?;
    check(listing.trim().is_empty(), || {
        format!("containers left in podman: {listing:?}")
    })?;
    // Podman passes no --root: the runtime's default.
    nothing_left(&podman.runtime, Path::new("/run/krunbox-oci"))
}
