//! `krunbox-oci`, the OCI runtime command line, on booted VMs: the
//! lifecycle as containerd's shim and conmon drive it (create, state,
//! start, kill, delete), with the exit status collected the way they
//! collect it, by waiting on the `--pid-file` pid as its subreaper.
//!
//! The waiting is done by a helper: this test binary started again with
//! [`SHIM_VAR`] set, which makes itself a child subreaper (as the shim and
//! conmon are), runs `create`, prints the pid and then the pid's exit
//! status. The case itself runs the other commands, as the shim does.
//!
//! Where the lab runs the cases, the host builds `krunbox-oci` before
//! booting the lab (only when the run selects a case here) and puts it
//! in; a build that fails fails the cases with cargo's words.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use krunbox_lab::LabSpec;
use libtest_mimic::{Failed, Trial};

use crate::cases::{check, text};
use crate::support::{in_lab, rootfs};
use krunbox_suite::trial;

/// The cases.
const EXITS: &str = "oci::a_container_that_exits_by_itself";
const KILLED: &str = "oci::containers_killed_running_and_before_start";

/// Set (to the runtime's path) in the helper that plays the shim.
const SHIM_VAR: &str = "KRUNBOX_VM_TESTS_OCI_SHIM";
/// Why the host could not build the runtime, passed into the lab.
const BUILD_ERROR_VAR: &str = "KRUNBOX_VM_TESTS_OCI_ERROR";
/// The runtime's name.
const PROGRAM: &str = "krunbox-oci";
/// Longest any step waits.
const STEP_LIMIT: Duration = Duration::from_secs(120);

pub fn all() -> Vec<Trial> {
    vec![
        trial(EXITS, a_container_that_exits_by_itself),
        trial(KILLED, containers_killed_running_and_before_start),
    ]
}

/// Adds the runtime to a lab boot, built once, when the run selects a
/// case here; or, when the build failed, why.
pub fn put_in_lab(spec: LabSpec) -> LabSpec {
    let cases = [
        EXITS,
        KILLED,
        crate::oci_clients::CONTAINERD,
        crate::oci_clients::PODMAN,
    ];
    if !crate::support::selects_any(&cases) {
        return spec;
    }
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILT.get_or_init(build) {
        Ok(program) => spec.executable(program),
        Err(why) => spec.env(BUILD_ERROR_VAR, why.clone()),
    }
}

/// Builds the runtime into this build's target directory; its path.
fn build() -> Result<PathBuf, String> {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .ok_or("CARGO_TARGET_TMPDIR has no parent")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", PROGRAM])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building {PROGRAM} failed ({status}); cargo's errors are in the output above"
        ));
    }
    Ok(target.join("debug").join(PROGRAM))
}

/// The runtime: the lab's copy inside the lab, else this build's.
pub fn program() -> Result<PathBuf, Failed> {
    if in_lab() {
        if let Ok(why) = std::env::var(BUILD_ERROR_VAR) {
            return Err(why.into());
        }
        return Ok(Path::new(krunbox_lab::LAB_BIN).join(PROGRAM));
    }
    build().map_err(Failed::from)
}

/// In the helper: plays the shim for one `create` and exits; otherwise
/// `None`. Arguments: the runtime's global flags, then `create`'s.
pub fn shim_if_requested() -> Option<ExitCode> {
    let program = std::env::var_os(SHIM_VAR)?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    Some(match shim(Path::new(&program), &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            println!("shim failed: {why}");
            ExitCode::FAILURE
        }
    })
}

/// Creates the container with stdout and stderr into files beside the
/// pid file, prints `monitor PID`, waits for it and prints `exit CODE`.
fn shim(program: &Path, args: &[String]) -> Result<(), String> {
    use nix::sys::wait::{waitpid, WaitStatus};
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| format!("subreaper: {e}"))?;
    let pid_file = args
        .windows(2)
        .find(|w| w[0] == "--pid-file")
        .map(|w| PathBuf::from(&w[1]))
        .ok_or("no --pid-file")?;
    let dir = pid_file.parent().ok_or("pid file has no directory")?;
    let file =
        |name: &str| std::fs::File::create(dir.join(name)).map_err(|e| format!("{name}: {e}"));
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(file("stdout")?)
        .stderr(file("stderr")?)
        .env_remove("KRUNBOX_RUNNER")
        .status()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if !status.success() {
        return Err(format!("create: {status}"));
    }
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .map_err(|e| format!("pid file: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("pid file: {e}"))?;
    println!("monitor {pid}");
    let code = match waitpid(nix::unistd::Pid::from_raw(pid), None) {
        Ok(WaitStatus::Exited(_, code)) => code,
        Ok(WaitStatus::Signaled(_, signal, _)) => 1000 + signal as i32,
        other => return Err(format!("waiting for the monitor: {other:?}")),
    };
    println!("exit {code}");
    Ok(())
}

/// One container's bundle, state root and helper.
struct Container {
    id: String,
    dir: tempfile::TempDir,
    program: PathBuf,
    lines: mpsc::Receiver<String>,
    helper: std::process::Child,
    monitor: u32,
}

impl Container {
    /// Writes a bundle running `args` on the test rootfs and creates it
    /// through the helper.
    fn create(id: &str, args: &[&str], mounts: serde_json::Value) -> Result<Self, Failed> {
        let program = program()?;
        let dir = tempfile::tempdir()?;
        let config = serde_json::json!({
            "ociVersion": "1.2.0",
            "root": {"path": rootfs()},
            "hostname": "oci-test",
            "process": {
                "args": args,
                "cwd": "/",
                "user": {"uid": 0, "gid": 0},
                "env": ["PATH=/bin:/sbin:/usr/bin", "GREETING=oci"]
            },
            "mounts": mounts,
            "linux": {"resources": {"memory": {"limit": 256u64 << 20}}}
        });
        std::fs::create_dir(dir.path().join("bundle"))?;
        std::fs::write(dir.path().join("bundle/config.json"), config.to_string())?;
        let mut helper = Command::new(std::env::current_exe()?)
            .env(SHIM_VAR, &program)
            .args(global(dir.path()))
            .arg("create")
            .arg("--bundle")
            .arg(dir.path().join("bundle"))
            .arg("--pid-file")
            .arg(dir.path().join("pid"))
            .arg(id)
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = helper.stdout.take().ok_or("no helper stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut container = Self {
            id: id.to_owned(),
            dir,
            program,
            lines,
            helper,
            monitor: 0,
        };
        let line = container.next_line("the monitor's pid")?;
        container.monitor = line
            .strip_prefix("monitor ")
            .and_then(|pid| pid.parse().ok())
            .ok_or_else(|| format!("the helper said {line:?}; {}", container.log()))?;
        Ok(container)
    }

    fn next_line(&self, what: &str) -> Result<String, Failed> {
        self.lines.recv_timeout(STEP_LIMIT).map_err(|_| {
            format!(
                "no {what} from the helper within {STEP_LIMIT:?}; {}",
                self.log()
            )
            .into()
        })
    }

    /// The exit status the helper collected.
    fn exit_code(&mut self) -> Result<i32, Failed> {
        let line = self.next_line("exit status")?;
        let _ = self.helper.wait();
        line.strip_prefix("exit ")
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("the helper said {line:?}; {}", self.log()).into())
    }

    /// Runs the runtime with `args` after the global flags.
    fn run(&self, args: &[&str]) -> Result<Output, Failed> {
        Ok(Command::new(&self.program)
            .args(global(self.dir.path()))
            .args(args)
            .env_remove("KRUNBOX_RUNNER")
            .output()?)
    }

    /// Runs `args`, which must succeed: their stdout.
    fn ok(&self, args: &[&str]) -> Result<String, Failed> {
        let out = self.run(args)?;
        check(out.status.success(), || {
            format!("{args:?} failed: {}; {}", text(&out.stderr), self.log())
        })?;
        Ok(text(&out.stdout))
    }

    /// Runs `args`, which must fail with an error saying `says`.
    fn refused(&self, args: &[&str], says: &str) -> Result<(), Failed> {
        let before = self.log();
        let out = self.run(args)?;
        let log = self.log();
        let new = log.strip_prefix(&before).unwrap_or(&log);
        check(out.status.code() == Some(1) && new.contains(says), || {
            format!(
                "{args:?} gave {} with log {new:?}, not an error saying {says:?}",
                out.status
            )
        })
    }

    /// The `state` JSON.
    fn state(&self) -> Result<serde_json::Value, Failed> {
        let out = self.ok(&["state", &self.id])?;
        Ok(serde_json::from_str(&out)?)
    }

    fn status(&self) -> Result<String, Failed> {
        Ok(self.state()?["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// What the container wrote to `stream` (`stdout` or `stderr`).
    fn output(&self, stream: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(stream)).unwrap_or_default()
    }

    /// The runtime's log file (JSON lines).
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log.json")).unwrap_or_default()
    }

    /// Deletes it and checks that nothing of it is left in the root.
    fn delete(&self) -> Result<(), Failed> {
        self.ok(&["delete", &self.id])?;
        self.refused(&["state", &self.id], "does not exist")?;
        let root = self.dir.path().join("root");
        let left: Vec<_> = std::fs::read_dir(&root)?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .filter(|name| name.to_string_lossy() != ".lock")
            .collect();
        check(left.is_empty(), || {
            format!("delete left {left:?} in {}", root.display())
        })
    }
}

/// The global flags, as containerd's shim passes them.
fn global(dir: &Path) -> Vec<String> {
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    vec![
        "--root".into(),
        path("root"),
        "--log".into(),
        path("log.json"),
        "--log-format".into(),
        "json".into(),
    ]
}

/// Waits until `cond`, at most [`STEP_LIMIT`].
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) -> Result<(), Failed> {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > STEP_LIMIT {
            return Err(format!("{what} did not happen within {STEP_LIMIT:?}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn a_container_that_exits_by_itself() -> Result<(), Failed> {
    let data = tempfile::tempdir()?;
    std::fs::write(data.path().join("note"), "from a bind mount\n")?;
    let script = "echo hello from $GREETING on $(hostname); cat /root/note; \
                  echo to-stderr >&2; exit 7";
    let mounts = serde_json::json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/root", "type": "bind", "source": data.path(), "options": ["rbind", "ro"]}
    ]);
    let mut c = Container::create("exits-1", &["sh", "-c", script], mounts)?;
    let state = c.state()?;
    check(
        state["status"] == "created" && state["pid"] == c.monitor && state["id"] == "exits-1",
        || format!("state after create: {state}"),
    )?;
    c.refused(
        &["create", "--bundle", "/nonexistent", "exits-1"],
        "exists already",
    )?;
    c.ok(&["start", &c.id])?;
    c.refused(&["start", &c.id], "start needs it created")?;
    let code = c.exit_code()?;
    check(code == 7, || {
        format!("exit status {code}, not 7; {}", c.log())
    })?;
    let state = c.state()?;
    check(state["status"] == "stopped" && state["pid"] == 0, || {
        format!("state after exit: {state}")
    })?;
    c.refused(&["kill", &c.id, "TERM"], "container not running")?;
    let (stdout, stderr) = (c.output("stdout"), c.output("stderr"));
    check(
        stdout == "hello from oci on oci-test\nfrom a bind mount\n" && stderr == "to-stderr\n",
        || format!("stdout {stdout:?}, stderr {stderr:?}"),
    )?;
    c.delete()
}

fn containers_killed_running_and_before_start() -> Result<(), Failed> {
    let mounts = serde_json::json!([]);
    let mut running = Container::create(
        "killed-1",
        &["sh", "-c", "echo ready; exec sleep 600"],
        mounts.clone(),
    )?;
    running.ok(&["start", &running.id])?;
    wait_for("the process's first line", || {
        running.output("stdout") == "ready\n"
    })?;
    check(running.status()? == "running", || {
        "not running after start".into()
    })?;
    exec_in(&running)?;
    let ps = running.ok(&["ps", "--format", "json", &running.id])?;
    check(ps.trim() == format!("[{}]", running.monitor), || {
        format!("ps said {ps}")
    })?;
    running.refused(&["delete", &running.id], "delete needs it stopped")?;
    running.refused(&["kill", &running.id, "SIGNOPE"], "unknown signal")?;
    running.ok(&["kill", &running.id, "SIGTERM"])?;
    let code = running.exit_code()?;
    check(code == 128 + 15, || format!("exit status {code}, not 143"))?;
    running.delete()?;

    let mut created = Container::create("killed-2", &["true"], mounts)?;
    check(created.status()? == "created", || "not created".into())?;
    created.ok(&["kill", &created.id, "KILL"])?;
    let code = created.exit_code()?;
    check(code == 128 + 9, || format!("exit status {code}, not 137"))?;
    check(created.status()? == "stopped", || {
        "not stopped after kill".into()
    })?;
    check(created.output("stdout").is_empty(), || {
        "a process ran".into()
    })?;
    created.delete()
}

/// `exec` attached (its exit status and output are this command's) and
/// detached (from a `--process` file, its pid in `--pid-file`).
fn exec_in(c: &Container) -> Result<(), Failed> {
    let path = "PATH=/bin:/sbin:/usr/bin";
    let script = "echo in-exec on $(hostname); exit 3";
    let out = c.run(&["exec", "--env", path, &c.id, "sh", "-c", script])?;
    check(
        out.status.code() == Some(3) && text(&out.stdout) == "in-exec on oci-test\n",
        || {
            format!(
                "exec gave {} with {:?}; {}",
                out.status,
                text(&out.stdout),
                c.log()
            )
        },
    )?;
    let process = c.dir.path().join("process.json");
    let json = serde_json::json!({
        "args": ["sh", "-c", "echo detached-out"],
        "cwd": "/",
        "user": {"uid": 0, "gid": 0},
        "env": [path]
    });
    std::fs::write(&process, json.to_string())?;
    let pid_file = c.dir.path().join("exec.pid");
    let (process, pid_file) = (process.to_string_lossy(), pid_file.to_string_lossy());
    // The detached child keeps this command's stdout: reading it to its
    // end waits for the process.
    let out = c.run(&[
        "exec",
        "--detach",
        "--pid-file",
        &pid_file,
        "--process",
        &process,
        &c.id,
    ])?;
    let pid = std::fs::read_to_string(&*pid_file).unwrap_or_default();
    check(
        out.status.success()
            && text(&out.stdout) == "detached-out\n"
            && pid.trim().parse::<u32>().is_ok(),
        || {
            format!(
                "exec --detach gave {} with {:?}, pid file {pid:?}; {}",
                out.status,
                text(&out.stdout),
                c.log()
            )
        },
    )
}
