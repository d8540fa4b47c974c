//! The python case: exec round trips from the Python package, against the
//! Rust library on the same VM, and against `krunbox exec` started per
//! call from Python (`subprocess.run`, the shell-out pattern the package
//! replaces).
//!
//! One named VM (in a state directory of the case's own) serves all
//! three. The Python side is one interpreter (`--python`, with the package
//! installed) that stays up for the whole case, so its start is not in
//! the figures: for each sample it reads a word on stdin (`py` or `sh`),
//! runs [`EXECS`] `true`s one after the other, and prints the mean in
//! microseconds. Each run takes the three samples one after the other.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use krunbox::client::{ClientConfig, GuestCommand};
use krunbox::state::{NamedVm, StateDir, VmName};

use super::error::BenchError;
use super::stats::Figure;
use super::Ctx;

/// Mean exec `true` round trip through the Rust library.
pub const RUST: &str = "python.exec_true_rust";
/// The same through the Python package, on the same VM.
pub const PYTHON: &str = "python.exec_true_python";
/// `subprocess.run(["krunbox", "exec", NAME, "--", "true"])` from Python.
pub const SHELL_OUT: &str = "python.exec_true_subprocess";
/// Samples per run.
pub const SAMPLES_PER_RUN: u64 = 3;

/// Execs per sample (its mean is the sample).
const EXECS: u32 = 10;
const CASE: &str = "python";
const NAME: &str = "bench-python";

/// The Python side: `python -c SCRIPT NAME EXECS KRUNBOX`.
const SCRIPT: &str = r#"
import asyncio, subprocess, sys, time, krunbox
name, execs, cli = sys.argv[1], int(sys.argv[2]), sys.argv[3]
async def main():
    vm = await krunbox.Vm.attach(name)
    for word in sys.stdin:
        t = time.perf_counter()
        for _ in range(execs):
            if word.strip() == "py":
                (await vm.exec(["true"])).check()
            else:
                subprocess.run([cli, "exec", name, "--", "true"], check=True)
        print(round((time.perf_counter() - t) / execs * 1e6), flush=True)
asyncio.run(main())
"#;

pub async fn python(ctx: &mut Ctx) -> Result<(), BenchError> {
    let rust = ctx.figure(Figure::new(RUST, "exec true: Rust library (mean of 10)"));
    let py = ctx.figure(Figure::new(
        PYTHON,
        "exec true: Python package (mean of 10)",
    ));
    let sh = ctx.figure(Figure::new(
        SHELL_OUT,
        "exec true: Python runs krunbox exec (mean of 10)",
    ));
    let dir = tempfile::tempdir().map_err(BenchError::io(CASE, "making a state directory"))?;
    let state_dir = dir.path().join("state");
    let state = StateDir::at(&state_dir).map_err(BenchError::state(CASE))?;
    let name: VmName = NAME.parse().map_err(BenchError::state(CASE))?;
    let vm = NamedVm::start(&state, &name, &ctx.vm(), ClientConfig::default())
        .await
        .map_err(BenchError::state(CASE))?;
    let measured = measure(ctx, &vm, &state_dir, [rust, py, sh]).await;
    let stopped = vm.stop(Duration::from_secs(10)).await;
    measured?;
    stopped.map_err(BenchError::state(CASE))?;
    Ok(())
}

async fn measure(
    ctx: &mut Ctx,
    vm: &NamedVm,
    state_dir: &Path,
    [rust, py, sh]: [usize; 3],
) -> Result<(), BenchError> {
    let agent = vm
        .agent(ClientConfig::default())
        .map_err(BenchError::state(CASE))?;
    let mut python = PythonSide::start(ctx.python(), state_dir)?;
    let result = async {
        let command = GuestCommand::new("true");
        for run in ctx.all_runs() {
            let t = Instant::now();
            for _ in 0..EXECS {
                let out = agent
                    .exec(&command)
                    .await
                    .map_err(BenchError::agent(CASE, "exec"))?;
                if !out.status.success() {
                    return Err(BenchError::wrong(
                        CASE,
                        format!("true failed: {:?}", out.status),
                    ));
                }
            }
            ctx.sample(run, rust, t.elapsed() / EXECS);
            ctx.sample(run, py, python.sample("py")?);
            ctx.sample(run, sh, python.sample("sh")?);
        }
        Ok(())
    }
    .await;
    python.end();
    result
}

/// The interpreter running [`SCRIPT`].
struct PythonSide {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl PythonSide {
    fn start(python: &Path, state_dir: &Path) -> Result<Self, BenchError> {
        let cli = std::env::current_exe().map_err(BenchError::io(CASE, "finding krunbox"))?;
        let mut child = Command::new(python)
            .args(["-c", SCRIPT, NAME, &EXECS.to_string()])
            .arg(cli)
            .env(krunbox::state::STATE_DIR_ENV, state_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(BenchError::io(
                CASE,
                format!("running {}", python.display()),
            ))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(BenchError::wrong(CASE, "the Python side has no pipes"));
        };
        Ok(Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    /// Asks for one sample; its mean per exec.
    fn sample(&mut self, word: &str) -> Result<Duration, BenchError> {
        writeln!(self.stdin, "{word}").map_err(BenchError::io(CASE, "writing to Python"))?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(BenchError::io(CASE, "reading from Python"))?;
        let micros: u64 = line.trim().parse().map_err(|_| {
            BenchError::wrong(
                CASE,
                format!(
                    "the Python side answered {line:?} (its error is above; is the krunbox \
                     package installed for this Python? pass --python)"
                ),
            )
        })?;
        Ok(Duration::from_micros(micros))
    }

    fn end(mut self) {
        drop(self.stdin);
        let _ = self.child.wait();
    }
}
