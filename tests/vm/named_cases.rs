//! Named VMs through the CLI, as a VM CLI user works: `krunbox start`,
//! `exec` (plain, `-i`, `-t`), `cp` both ways, `ls`, `stop`, and the errors
//! that name the VM. Each case uses its own state directory.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use libtest_mimic::{Failed, Trial};

use crate::cases::{chain, check, text};
use crate::support::{cli, rootfs};
use krunbox_suite::trial;

/// The named-VM cases, by name.
pub fn all() -> Vec<Trial> {
    vec![
        trial("named::cli_lifecycle", cli_lifecycle),
        trial(
            "named::dead_vm_is_reported_and_reclaimed",
            dead_vm_is_reported_and_reclaimed,
        ),
    ]
}

/// A private state directory for one case.
pub(crate) struct State {
    dir: tempfile::TempDir,
}

impl State {
    pub(crate) fn new() -> Result<Self, Failed> {
        Ok(Self {
            dir: tempfile::Builder::new()
                .prefix("st")
                .tempdir_in("/tmp")
                .map_err(chain)?,
        })
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub(crate) fn krunbox(&self) -> Command {
        let mut cmd = cli();
        cmd.env("KRUNBOX_STATE_DIR", self.path())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `krunbox ARGS…` and returns its output.
    pub(crate) fn run(&self, args: &[&str]) -> Result<Output, Failed> {
        self.krunbox().args(args).output().map_err(chain)
    }

    /// Runs `krunbox ARGS…`, which must exit with `code`.
    pub(crate) fn expect(&self, code: i32, args: &[&str]) -> Result<Output, Failed> {
        let out = self.run(args)?;
        check(out.status.code() == Some(code), || {
            format!(
                "krunbox {args:?}: status {:?}, wanted {code}; stdout {:?}; stderr {:?}",
                out.status,
                text(&out.stdout),
                text(&out.stderr)
            )
        })?;
        Ok(out)
    }

    pub(crate) fn start(&self, name: &str) -> Result<(), Failed> {
        let root = rootfs();
        let root = root.to_str().ok_or("rootfs path is not UTF-8")?;
        self.expect(0, &["start", "--name", name, "--rootfs", root])
            .map(drop)
    }

    /// `krunbox ls --json`, as (name, status, pid).
    fn ls(&self) -> Result<Vec<(String, String, Option<u64>)>, Failed> {
        let out = self.expect(0, &["ls", "--json"])?;
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(chain)?;
        let rows = rows.as_array().ok_or("ls --json is not an array")?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap_or_default().to_owned(),
                    r["status"].as_str().unwrap_or_default().to_owned(),
                    r["pid"].as_u64(),
                )
            })
            .collect())
    }
}

fn mode(path: &Path) -> Result<u32, Failed> {
    Ok(std::fs::metadata(path).map_err(chain)?.permissions().mode() & 0o777)
}

fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

fn stderr_has(out: &Output, words: &[&str]) -> Result<(), Failed> {
    let stderr = text(&out.stderr);
    check(words.iter().all(|w| stderr.contains(w)), || {
        format!("stderr {stderr:?} lacks one of {words:?}")
    })
}

fn cli_lifecycle() -> Result<(), Failed> {
    let st = State::new()?;
    st.start("a")?;
    // Private state: the directories 0700, the agent's socket 0600.
    check(mode(&st.path())? == 0o700, || "state dir not 0700".into())?;
    check(mode(&st.path().join("a"))? == 0o700, || {
        "vm dir not 0700".into()
    })?;
    check(mode(&st.path().join("a/ops.sock"))? == 0o600, || {
        "ops.sock not 0600".into()
    })?;
    let errno = connect_as_nobody(&st.path().join("a/ops.sock"))?;
    check(errno == libc::EACCES, || {
        format!("uid 65534 connecting to the ops socket: errno {errno}, wanted EACCES")
    })?;
    let vms = st.ls()?;
    check(
        vms.len() == 1 && vms[0].0 == "a" && vms[0].1 == "running",
        || format!("ls: {vms:?}"),
    )?;
    let pid = vms[0].2.ok_or("ls shows no pid")?;
    // What the runner applied to itself, as it reported at boot.
    let out = st.expect(0, &["ls", "--json"])?;
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(chain)?;
    let confinement = &rows[0]["confinement"];
    check(
        confinement["no_new_privs"] == true
            && confinement["seccomp"]["state"] == "full"
            && ["full", "partial"]
                .contains(&confinement["landlock"]["state"].as_str().unwrap_or("")),
        || format!("ls --json confinement: {confinement}"),
    )?;

    let out = st.expect(0, &["exec", "a", "--", "echo", "hi"])?;
    check(out.stdout == b"hi\n", || {
        format!("stdout {:?}", text(&out.stdout))
    })?;
    st.expect(7, &["exec", "a", "--", "sh", "-c", "echo err >&2; exit 7"])
        .and_then(|out| stderr_has(&out, &["err"]))?;
    // logs of a healthy VM: its console, or a word that it is empty and
    // where else to look; never nothing at all.
    let out = st.expect(0, &["logs", "a"])?;
    check(
        !out.stdout.is_empty() || text(&out.stderr).contains("is empty; `krunbox logs --runner a`"),
        || format!("logs a printed nothing: stderr {:?}", text(&out.stderr)),
    )?;
    let out = st.expect(0, &["logs", "--runner", "a"])?;
    check(
        !out.stdout.is_empty() || text(&out.stderr).contains("is empty"),
        || "logs --runner a printed nothing".into(),
    )?;

    // -i: standard input reaches the command.
    let mut child = st
        .krunbox()
        .args(["exec", "-i", "a", "--", "tr", "a-z", "A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(chain)?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    stdin.write_all(b"piped text\n").map_err(chain)?;
    drop(stdin);
    let out = child.wait_with_output().map_err(chain)?;
    check(out.stdout == b"PIPED TEXT\n", || {
        format!("exec -i stdout {:?}", text(&out.stdout))
    })?;

    // cp in and out: a file, and a directory into an existing directory.
    let work = tempfile::tempdir().map_err(chain)?;
    let file = work.path().join("x");
    std::fs::write(&file, "lab-file\n").map_err(chain)?;
    let tree = work.path().join("skills");
    std::fs::create_dir_all(tree.join("one")).map_err(chain)?;
    std::fs::write(tree.join("one/SKILL.md"), "skill one\n").map_err(chain)?;
    let path = |p: &Path| p.to_str().map(str::to_owned).ok_or("path is not UTF-8");
    st.expect(0, &["cp", &path(&file)?, "a:/tmp/h"])?;
    st.expect(0, &["cp", &path(&tree)?, "a:/tmp"])?;
    let out = st.expect(
        0,
        &[
            "exec",
            "a",
            "--",
            "cat",
            "/tmp/h",
            "/tmp/skills/one/SKILL.md",
        ],
    )?;
    check(out.stdout == b"lab-file\nskill one\n", || {
        format!("guest files: {:?}", text(&out.stdout))
    })?;
    let back = work.path().join("back");
    st.expect(0, &["cp", "a:/tmp/h", &path(&back)?])?;
    check(
        std::fs::read(&back).map_err(chain)? == b"lab-file\n",
        || "copied-out file differs".into(),
    )?;
    let out_dir = work.path().join("out");
    std::fs::create_dir(&out_dir).map_err(chain)?;
    st.expect(0, &["cp", "a:/tmp/skills", &path(&out_dir)?])?;
    check(
        std::fs::read(out_dir.join("skills/one/SKILL.md")).map_err(chain)? == b"skill one\n",
        || "copied-out tree differs".into(),
    )?;

    // -t: the command runs on a terminal of the caller's size.
    let out = exec_on_pty(
        &st,
        &["exec", "-t", "a", "--", "sh", "-c", "tty; stty size"],
    )?;
    check(out.contains("/dev/pts/") && out.contains("33 101"), || {
        format!("exec -t output {out:?}")
    })?;

    // Errors name the VM and say what to do; nothing is left half-written.
    let missing = work.path().join("missing");
    let out = st.expect(125, &["cp", "a:/no/such", &path(&missing)?])?;
    stderr_has(&out, &["/no/such", "VM \"a\"", "hint:"])?;
    check(!missing.exists(), || "a failed cp left a file".into())?;
    let out = st.expect(125, &["exec", "nosuch", "--", "true"])?;
    stderr_has(&out, &["no VM named \"nosuch\"", "hint:"])?;
    let root = rootfs();
    let out = st.expect(
        125,
        &[
            "start",
            "--name",
            "a",
            "--rootfs",
            root.to_str().unwrap_or("/"),
        ],
    )?;
    stderr_has(&out, &["\"a\" already exists", "hint:"])?;

    st.expect(0, &["stop", "a"])?;
    check(!st.path().join("a").exists(), || {
        "stop left the VM dir".into()
    })?;
    check(!alive(pid), || {
        format!("runner {pid} still alive after stop")
    })?;
    let out = st.expect(125, &["exec", "a", "--", "true"])?;
    stderr_has(&out, &["no VM named \"a\""])
}

/// Runs `krunbox ARGS…` with a 33×101 pty as its terminal; returns what it
/// wrote there.
fn exec_on_pty(st: &State, args: &[&str]) -> Result<String, Failed> {
    let size = nix::pty::Winsize {
        ws_row: 33,
        ws_col: 101,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).map_err(chain)?;
    let slave = |fd: &OwnedFd| fd.try_clone().map(Stdio::from).map_err(chain);
    let mut child = st
        .krunbox()
        .args(args)
        .stdin(slave(&pty.slave)?)
        .stdout(slave(&pty.slave)?)
        .stderr(slave(&pty.slave)?)
        .spawn()
        .map_err(chain)?;
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        // Ends with EIO once the last slave descriptor closes.
        let _ = master.read_to_end(&mut out);
        out
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(chain)? {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            return Err("exec -t did not finish within 120 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out =
        String::from_utf8_lossy(&reader.join().map_err(|_| "pty reader panicked")?).into_owned();
    check(status.success(), || {
        format!("exec -t: {status}; output {out:?}")
    })?;
    Ok(out)
}

fn dead_vm_is_reported_and_reclaimed() -> Result<(), Failed> {
    let st = State::new()?;
    st.start("b")?;
    let pid = st.ls()?.first().and_then(|vm| vm.2).ok_or("no pid")?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .map_err(chain)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let vms = st.ls()?;
    check(vms.first().is_some_and(|vm| vm.1 == "dead"), || {
        format!("ls after kill: {vms:?}")
    })?;
    let out = st.expect(125, &["exec", "b", "--", "true"])?;
    stderr_has(&out, &["VM \"b\" is not running", "krunbox stop b"])?;
    // A new start of the same name reclaims the dead VM's directory.
    st.start("b")?;
    let out = st.expect(0, &["exec", "b", "--", "echo", "again"])?;
    check(out.stdout == b"again\n", || {
        format!("stdout {:?}", text(&out.stdout))
    })?;
    st.expect(0, &["stop", "b"])?;
    check(st.ls()?.is_empty(), || "stop left a VM behind".into())
}

/// Tries to connect to the unix socket `path` as uid/gid 65534 (nobody);
/// returns the errno of `connect`, 0 if it connected.
fn connect_as_nobody(path: &Path) -> Result<i32, Failed> {
    use std::os::unix::process::CommandExt;
    let addr = nix::sys::socket::UnixAddr::new(path).map_err(chain)?;
    let mut cmd = Command::new("/bin/true");
    cmd.uid(65534).gid(65534);
    // SAFETY: runs in the forked child after std switched to uid/gid
    // 65534; it only makes system calls (socket, connect, _exit), which are
    // async-signal-safe, on an address built before the fork, and never
    // returns, so nothing is exec'ed.
    unsafe {
        cmd.pre_exec(move || {
            use nix::sys::socket::SockaddrLike;
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            let rc = libc::connect(fd, SockaddrLike::as_ptr(&addr), addr.len());
            libc::_exit(if rc == 0 {
                0
            } else {
                *libc::__errno_location()
            });
        });
    }
    let status = cmd.status().map_err(chain)?;
    status
        .code()
        .ok_or_else(|| format!("the probe child ended with {status}").into())
}
