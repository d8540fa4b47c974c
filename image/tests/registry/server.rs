//! A real registry on loopback: Debian's `docker-registry` (the CNCF
//! distribution registry 2.8) started on a free port with a private
//! storage directory, optionally with htpasswd basic auth. Its access log
//! (one line a request, on standard output) is kept to count requests.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use krunbox_image::Reference;

/// What to run when a tool the tests need is missing.
const SETUP_HINT: &str = "run `cargo xtask setup` (it installs Debian's docker-registry and \
                          apache2-utils packages)";

/// A running registry, stopped on drop.
pub struct RegistryServer {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    dir: tempfile::TempDir,
}

impl RegistryServer {
    /// A registry that lets anyone pull and push.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A registry that wants basic auth as `user`/`password` for
    /// everything.
    pub fn start_with_auth(user: &str, password: &str) -> Self {
        Self::start_with(Some((user, password)))
    }

    fn start_with(login: Option<(&str, &str)>) -> Self {
        let binary = find_tool("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let auth = match login {
            Some((user, password)) => {
                let htpasswd = dir.path().join("htpasswd");
                fs::write(&htpasswd, htpasswd_line(user, password)).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: krunbox-test\n    path: {}\n",
                    htpasswd.display()
                )
            }
            None => String::new(),
        };
        // The port is free when asked for, and may be taken before the
        // registry binds it: then the registry exits and another is tried.
        for _ in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            fs::write(&config, config_yml(&addr, &dir.path().join("data"), &auth)).unwrap();
            let mut child = Command::new(&binary)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(fs::File::create(dir.path().join("access.log")).unwrap())
                .stderr(fs::File::create(dir.path().join("registry.log")).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            if wait_listening(&addr, &mut child) {
                return Self { child, addr, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
        panic!("docker-registry did not start; its log:\n{log}");
    }

    /// `127.0.0.1:PORT/<repository_tag>`, parsed.
    pub fn reference(&self, repository_tag: &str) -> Reference {
        Reference::parse(&format!("{}/{repository_tag}", self.addr)).unwrap()
    }

    /// The requests logged so far whose request line contains `needle`
    /// (e.g. `"GET /v2/app/blobs/`), once the log has settled (the
    /// registry logs a request after its response is sent).
    pub fn requests(&self, needle: &str) -> usize {
        let log = self.dir.path().join("access.log");
        let count = || {
            fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter(|line| line.contains(needle))
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut last = count();
        loop {
            std::thread::sleep(Duration::from_millis(150));
            let now = count();
            if now == last || Instant::now() > deadline {
                return now;
            }
            last = now;
        }
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of `tool` on `$PATH`; fails the test if it is not installed.
fn find_tool(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("`{tool}` is not installed: {SETUP_HINT}"))
}

/// An htpasswd line (bcrypt, as the registry requires) made by
/// `htpasswd -Bbn`.
fn htpasswd_line(user: &str, password: &str) -> Vec<u8> {
    let output = Command::new(find_tool("htpasswd"))
        .args(["-Bbn", user, password])
        .output()
        .unwrap();
    assert!(output.status.success(), "htpasswd failed: {output:?}");
    output.stdout
}

fn config_yml(addr: &str, storage: &Path, auth: &str) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: {addr}\n\
         {auth}",
        storage.display()
    )
}

/// A port nothing listens on (as of now).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits up to 10 s for `addr` to accept connections; false if the
/// registry exited first.
fn wait_listening(addr: &str, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            // Another process may hold the port: then ours has exited.
            std::thread::sleep(Duration::from_millis(100));
            return child.try_wait().unwrap().is_none();
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
