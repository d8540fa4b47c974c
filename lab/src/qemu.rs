//! Running the L1 VM: QEMU's command line, and supervising it while the
//! command's output streams out of the serial-port files.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::host::HostPaths;
use crate::init_script::Status;
use crate::LabError;

/// How often the serial-port files are polled when nothing arrives.
const POLL: Duration = Duration::from_millis(20);

/// Lines of the kernel console kept in errors.
const CONSOLE_TAIL_LINES: usize = 40;

/// The host files behind the four serial ports (see `init_script`).
#[derive(Debug)]
pub(crate) struct Channels {
    pub(crate) console: PathBuf,
    pub(crate) stdout: PathBuf,
    pub(crate) stderr: PathBuf,
    pub(crate) status: PathBuf,
    /// QEMU's own stderr.
    pub(crate) qemu_log: PathBuf,
}

impl Channels {
    pub(crate) fn in_dir(dir: &Path) -> Channels {
        Channels {
            console: dir.join("console.log"),
            stdout: dir.join("stdout"),
            stderr: dir.join("stderr"),
            status: dir.join("status"),
            qemu_log: dir.join("qemu.log"),
        }
    }

    fn serial_ports(&self) -> [&Path; 4] {
        [&self.console, &self.stdout, &self.stderr, &self.status]
    }
}

/// One L1 VM to run.
pub(crate) struct Qemu<'a> {
    pub(crate) host: &'a HostPaths,
    /// What `-kernel` boots: the host's bzImage or its extracted vmlinux.
    pub(crate) kernel: &'a Path,
    pub(crate) initramfs: &'a Path,
    pub(crate) memory_mib: u32,
    pub(crate) cpus: u32,
    pub(crate) channels: &'a Channels,
}

/// How a run ended, when the lab reported the command's exit code.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) exit_code: i32,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    pub(crate) console: String,
    pub(crate) boot_time: Option<Duration>,
    pub(crate) guest_uptime_at_start: Option<String>,
    pub(crate) total_time: Duration,
    pub(crate) notes: Vec<String>,
}

impl Qemu<'_> {
    /// QEMU's arguments (without the program).
    pub(crate) fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = [
            "-accel",
            "tcg,thread=multi",
            "-machine",
            "pc",
            "-cpu",
            "max",
            "-smp",
            &self.cpus.to_string(),
            "-m",
            &self.memory_mib.to_string(),
            "-no-reboot",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-monitor",
            "none",
            "-nic",
            "none",
            "-append",
            "console=ttyS0 quiet panic=-1",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        args.push("-kernel".into());
        args.push(self.kernel.into());
        args.push("-initrd".into());
        args.push(self.initramfs.into());
        for (i, path) in self.channels.serial_ports().iter().enumerate() {
            let mut chardev = OsString::from(format!("file,id=serial{i},path="));
            chardev.push(escape_option_value(path.as_os_str()));
            args.extend(["-chardev".into(), chardev]);
            args.extend(["-serial".into(), format!("chardev:serial{i}").into()]);
        }
        args
    }

    /// Boots the VM and waits for it to power off, streaming the command's
    /// output to this process' stdout and stderr when `stream` is set;
    /// gives up once notes have come and then none for `silence_limit`.
    pub(crate) fn run(
        &self,
        timeout: Duration,
        silence_limit: Option<Duration>,
        stream: bool,
    ) -> Result<Outcome, LabError> {
        let io_err = |doing| move |source| LabError::Io { doing, source };
        // Created up front so the tails can open them before QEMU does;
        // QEMU truncates them on open, before writing anything.
        for path in self.channels.serial_ports() {
            File::create(path).map_err(io_err("creating the serial-port files"))?;
        }
        let qemu_log =
            File::create(&self.channels.qemu_log).map_err(io_err("creating qemu.log"))?;
        let mut stdout = Tail::open(&self.channels.stdout).map_err(io_err("opening stdout"))?;
        let mut stderr = Tail::open(&self.channels.stderr).map_err(io_err("opening stderr"))?;
        let mut status = Tail::open(&self.channels.status).map_err(io_err("opening status"))?;

        let started = Instant::now();
        let deadline = started + timeout;
        let child = Command::new(&self.host.qemu)
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(qemu_log)
            .spawn()
            .map_err(|source| LabError::QemuSpawn {
                program: self.host.qemu.clone(),
                source,
            })?;
        let mut child = KillOnDrop(child);

        let mut out_sink = stream.then(io::stdout);
        let mut err_sink = stream.then(io::stderr);
        let mut status_lines = StatusLines::default();
        let mut boot_time = None;
        // When the last note came (silence is counted from it).
        let mut last_note: Option<Instant> = None;
        let exit_status = loop {
            let mut got = stdout
                .pump(out_sink.as_mut().map(|s| s as &mut dyn Write))
                .map_err(io_err("reading the command's stdout"))?;
            got += stderr
                .pump(err_sink.as_mut().map(|s| s as &mut dyn Write))
                .map_err(io_err("reading the command's stderr"))?;
            got += status
                .pump(None)
                .map_err(io_err("reading the status port"))?;
            let notes_before = status_lines.notes.len();
            status_lines.feed(&status.captured);
            if status_lines.notes.len() > notes_before {
                last_note = Some(Instant::now());
            }
            if boot_time.is_none() && status_lines.guest_uptime_at_start.is_some() {
                boot_time = Some(started.elapsed());
            }
            if let (Some(limit), Some(at)) = (silence_limit, last_note) {
                if at.elapsed() >= limit {
                    drop(child);
                    return Err(LabError::Silent {
                        silent_for: at.elapsed(),
                        console_tail: self.console_tail(),
                        notes: status_lines.notes,
                    });
                }
            }
            if let Some(exit) = child.0.try_wait().map_err(io_err("waiting for QEMU"))? {
                break exit;
            }
            if Instant::now() >= deadline {
                // Dropping the guard kills and reaps QEMU.
                drop(child);
                return Err(LabError::Timeout {
                    after: timeout,
                    console_tail: self.console_tail(),
                });
            }
            if got == 0 {
                thread::sleep(POLL);
            }
        };
        // QEMU has exited and closed the files: drain what is left.
        stdout
            .pump(out_sink.as_mut().map(|s| s as &mut dyn Write))
            .map_err(io_err("reading the command's stdout"))?;
        stderr
            .pump(err_sink.as_mut().map(|s| s as &mut dyn Write))
            .map_err(io_err("reading the command's stderr"))?;
        status
            .pump(None)
            .map_err(io_err("reading the status port"))?;
        status_lines.feed(&status.captured);
        self.finish(
            exit_status,
            status_lines,
            boot_time,
            started,
            stdout,
            stderr,
        )
    }

    fn finish(
        &self,
        exit_status: ExitStatus,
        status_lines: StatusLines,
        boot_time: Option<Duration>,
        started: Instant,
        stdout: Tail,
        stderr: Tail,
    ) -> Result<Outcome, LabError> {
        if let Some(reason) = status_lines.failure {
            return Err(LabError::Setup {
                reason,
                console_tail: self.console_tail(),
            });
        }
        let Some(exit_code) = status_lines.exit_code else {
            let qemu_log = fs::read(&self.channels.qemu_log).unwrap_or_default();
            return Err(LabError::NoExitStatus {
                status: exit_status,
                qemu_log: String::from_utf8_lossy(&qemu_log).trim().to_owned(),
                console_tail: self.console_tail(),
                notes: status_lines.notes,
            });
        };
        Ok(Outcome {
            exit_code,
            stdout: stdout.captured,
            stderr: stderr.captured,
            console: self.console(),
            boot_time,
            guest_uptime_at_start: status_lines.guest_uptime_at_start,
            total_time: started.elapsed(),
            notes: status_lines.notes,
        })
    }

    /// The kernel console so far, with `\r\n` turned into `\n`.
    fn console(&self) -> String {
        match fs::read(&self.channels.console) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).replace("\r\n", "\n"),
            Err(e) => format!("(console log unreadable: {e})"),
        }
    }

    fn console_tail(&self) -> String {
        tail(&self.console(), CONSOLE_TAIL_LINES)
    }
}

/// The last `lines` lines of `text`.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// QEMU option values escape `,` as `,,`.
fn escape_option_value(value: &OsStr) -> OsString {
    let mut out = Vec::with_capacity(value.len());
    for &b in value.as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

/// Follows a file QEMU appends to, keeping everything read.
struct Tail {
    file: File,
    captured: Vec<u8>,
}

impl Tail {
    fn open(path: &Path) -> io::Result<Tail> {
        Ok(Tail {
            file: File::open(path)?,
            captured: Vec::new(),
        })
    }

    /// Reads what arrived since the last call; copies it to `sink` if given.
    /// A failing sink (closed stdout) is dropped, the output still captured.
    fn pump(&mut self, sink: Option<&mut dyn Write>) -> io::Result<usize> {
        let before = self.captured.len();
        self.file.read_to_end(&mut self.captured)?;
        let new = &self.captured[before..];
        if let Some(sink) = sink {
            if !new.is_empty() {
                let _ = sink.write_all(new).and_then(|()| sink.flush());
            }
        }
        Ok(new.len())
    }
}

/// What the status port said so far.
#[derive(Debug, Default)]
struct StatusLines {
    parsed_up_to: usize,
    guest_uptime_at_start: Option<String>,
    exit_code: Option<i32>,
    failure: Option<String>,
    notes: Vec<String>,
}

impl StatusLines {
    /// Parses the complete lines of `bytes` not seen yet.
    fn feed(&mut self, bytes: &[u8]) {
        while let Some(end) = bytes[self.parsed_up_to..].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&bytes[self.parsed_up_to..self.parsed_up_to + end]);
            self.parsed_up_to += end + 1;
            match Status::parse(&line) {
                Status::Started { guest_uptime } => self.guest_uptime_at_start = Some(guest_uptime),
                Status::Exited(code) => self.exit_code = Some(code),
                Status::Failed(reason) => self.failure = Some(reason),
                Status::Note(text) => self.notes.push(text),
                Status::Unknown(_) => {}
            }
        }
    }
}

/// Kills and reaps QEMU unless it already exited (timeouts, panics, `?`).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostPaths {
        HostPaths {
            qemu: "/usr/bin/qemu-system-x86_64".into(),
            kernel: "/boot/vmlinuz-6.1.0-56-amd64".into(),
            modules_dir: "/lib/modules/6.1.0-56-amd64".into(),
            libkrunfw: "/usr/lib/x86_64-linux-gnu/libkrunfw.so.5".into(),
            busybox: "/bin/busybox".into(),
        }
    }

    #[test]
    fn command_line() {
        let host = host();
        let channels = Channels::in_dir(Path::new("/work,dir"));
        let qemu = Qemu {
            host: &host,
            kernel: &host.kernel,
            initramfs: Path::new("/work/initramfs.cpio"),
            memory_mib: 2048,
            cpus: 2,
            channels: &channels,
        };
        let args: Vec<String> = qemu
            .args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let joined = args.join(" ");
        for expected in [
            "-accel tcg,thread=multi",
            "-cpu max",
            "-smp 2",
            "-m 2048",
            "-no-reboot",
            "-display none",
            "-monitor none",
            "-nic none",
            "-kernel /boot/vmlinuz-6.1.0-56-amd64",
            "-initrd /work/initramfs.cpio",
            "-chardev file,id=serial0,path=/work,,dir/console.log -serial chardev:serial0",
            "-chardev file,id=serial3,path=/work,,dir/status -serial chardev:serial3",
        ] {
            assert!(joined.contains(expected), "{expected:?} not in {joined}");
        }
        let append = args.iter().position(|a| a == "-append").unwrap();
        assert_eq!(args[append + 1], "console=ttyS0 quiet panic=-1");
        assert!(!args.iter().any(|a| a == "-nographic"));
    }

    #[test]
    fn status_lines_parse_incrementally() {
        let mut lines = StatusLines::default();
        lines.feed(b"start 5.1");
        assert_eq!(lines.guest_uptime_at_start, None);
        lines.feed(b"start 5.1\nnote one\nnote two\nexit 3\n");
        assert_eq!(lines.notes, ["one", "two"]);
        assert_eq!(lines.guest_uptime_at_start.as_deref(), Some("5.1"));
        assert_eq!(lines.exit_code, Some(3));
        assert_eq!(lines.failure, None);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }

    #[test]
    fn tail_follows_a_growing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"one ").unwrap();
        let mut t = Tail::open(&path).unwrap();
        let mut sink = Vec::new();
        assert_eq!(t.pump(Some(&mut sink)).unwrap(), 4);
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"two")
            .unwrap();
        assert_eq!(t.pump(Some(&mut sink)).unwrap(), 3);
        assert_eq!(sink, b"one two");
        assert_eq!(t.captured, b"one two");
    }
}
