//! The lab's initramfs: a map from lab paths to what goes there, filled from
//! host files (stripped, with their shared libraries) and written as newc.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cpio::NewcWriter;
use crate::{ldd, LabError};

/// What is at one lab path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Dir {
        mode: u32,
    },
    /// A host file, copied (not followed if it changes meanwhile).
    HostFile {
        path: PathBuf,
        mode: u32,
    },
    /// Bytes generated here (the init script, /etc files).
    Bytes {
        data: Vec<u8>,
        mode: u32,
    },
    Symlink {
        target: String,
    },
    CharDev {
        major: u32,
        minor: u32,
        mode: u32,
    },
}

/// Every entry of the initramfs, keyed by path without the leading `/`.
///
/// Sorted keys put every directory before what it contains, which is the
/// order the kernel needs to unpack.
#[derive(Debug, Default)]
pub(crate) struct Layout {
    nodes: BTreeMap<String, Node>,
}

impl Layout {
    /// Adds `node` at `lab_path`, creating missing parent directories.
    ///
    /// Adding the same node twice is fine (two binaries needing libc);
    /// anything else already there is an error naming the path.
    pub(crate) fn add(&mut self, lab_path: &str, node: Node) -> Result<(), LabError> {
        let key = normalize(lab_path)?;
        let mut parent = String::new();
        for component in key
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map_or(&[][..], |(_, p)| p)
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(component);
            match self.nodes.get(&parent) {
                None => {
                    self.nodes.insert(parent.clone(), Node::Dir { mode: 0o755 });
                }
                Some(Node::Dir { .. }) => {}
                Some(_) => return Err(conflict(&parent, "it is not a directory")),
            }
        }
        match self.nodes.get(&key) {
            None => {
                self.nodes.insert(key, node);
                Ok(())
            }
            Some(existing) if *existing == node => Ok(()),
            // An explicit directory mode wins over an implicit parent's.
            Some(Node::Dir { .. }) if matches!(node, Node::Dir { .. }) => {
                self.nodes.insert(key, node);
                Ok(())
            }
            Some(_) => Err(conflict(&key, "something else is already there")),
        }
    }

    /// Whether something is at `lab_path`.
    #[cfg(test)]
    pub(crate) fn get(&self, lab_path: &str) -> Option<&Node> {
        self.nodes.get(lab_path.trim_start_matches('/'))
    }

    /// Every entry, parents before their contents, keyed by path without
    /// the leading `/`.
    pub(crate) fn nodes(&self) -> impl DoubleEndedIterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Writes the whole layout as an uncompressed newc archive at `path`.
    pub(crate) fn write(&self, path: &Path) -> Result<(), LabError> {
        let file = File::create(path).map_err(|source| LabError::Initramfs {
            path: path.to_owned(),
            source,
        })?;
        let mut out = NewcWriter::new(BufWriter::with_capacity(1 << 20, file));
        for (name, node) in &self.nodes {
            self.write_node(&mut out, name, node)
                .map_err(|source| match source {
                    WriteError::Input(path, source) => LabError::ReadInput { path, source },
                    WriteError::Output(source) => LabError::Initramfs {
                        path: path.to_owned(),
                        source,
                    },
                })?;
        }
        out.finish().map_err(|source| LabError::Initramfs {
            path: path.to_owned(),
            source,
        })?;
        Ok(())
    }

    fn write_node(
        &self,
        out: &mut NewcWriter<BufWriter<File>>,
        name: &str,
        node: &Node,
    ) -> Result<(), WriteError> {
        match node {
            Node::Dir { mode } => out.dir(name, *mode).map_err(WriteError::Output),
            Node::HostFile { path, mode } => {
                let input = |e| WriteError::Input(path.clone(), e);
                let mut file = File::open(path).map_err(input)?;
                let size = file.metadata().map_err(input)?.len();
                // Tell a failing read from a failing write.
                let mut reader = ReadTracking {
                    inner: &mut file,
                    failed: None,
                };
                let result = out.file(name, *mode, size, &mut reader);
                match (reader.failed, result) {
                    (Some(e), _) => Err(WriteError::Input(path.clone(), e)),
                    (None, r) => r.map_err(WriteError::Output),
                }
            }
            Node::Bytes { data, mode } => out
                .file(name, *mode, data.len() as u64, &mut data.as_slice())
                .map_err(WriteError::Output),
            Node::Symlink { target } => out.symlink(name, target).map_err(WriteError::Output),
            Node::CharDev { major, minor, mode } => out
                .char_dev(name, *mode, *major, *minor)
                .map_err(WriteError::Output),
        }
    }
}

enum WriteError {
    Input(PathBuf, io::Error),
    Output(io::Error),
}

/// Remembers a read error so it is not blamed on the archive.
struct ReadTracking<'a> {
    inner: &'a mut File,
    failed: Option<io::Error>,
}

impl Read for ReadTracking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let kind = e.kind();
            self.failed = Some(e);
            io::Error::new(kind, "reading the input failed")
        })
    }
}

fn conflict(key: &str, why: &str) -> LabError {
    LabError::InvalidSpec {
        reason: format!("cannot put two things at /{key}: {why}"),
    }
}

/// `/a/b/` → `a/b`; refuses relative paths, `.`, `..` and empty names.
fn normalize(lab_path: &str) -> Result<String, LabError> {
    let invalid = |why: &str| LabError::InvalidSpec {
        reason: format!("lab path {lab_path:?} {why}"),
    };
    let rest = lab_path
        .strip_prefix('/')
        .ok_or_else(|| invalid("must be absolute"))?;
    let components: Vec<&str> = rest.split('/').filter(|c| !c.is_empty()).collect();
    if components.is_empty() {
        return Err(invalid("names no file"));
    }
    if components
        .iter()
        .any(|c| *c == "." || *c == ".." || c.contains('\0'))
    {
        return Err(invalid("may not contain `.`, `..` or NUL"));
    }
    Ok(components.join("/"))
}

/// Copies host files into a [`Layout`]: ELF files are stripped of debug
/// info into `staging_dir` and bring their shared libraries along.
pub(crate) struct Stager<'a> {
    pub(crate) layout: &'a mut Layout,
    pub(crate) staging_dir: &'a Path,
    staged: usize,
}

impl<'a> Stager<'a> {
    pub(crate) fn new(layout: &'a mut Layout, staging_dir: &'a Path) -> Self {
        Stager {
            layout,
            staging_dir,
            staged: 0,
        }
    }

    /// Puts `host` (a file, or a directory copied recursively) at `lab_path`.
    pub(crate) fn add(&mut self, host: &Path, lab_path: &str) -> Result<(), LabError> {
        let read_err = |source| LabError::ReadInput {
            path: host.to_owned(),
            source,
        };
        let meta = fs::metadata(host).map_err(read_err)?;
        if meta.is_dir() {
            return self.add_dir(host, lab_path);
        }
        let mode = meta.permissions().mode() & 0o7777;
        if is_elf(host).map_err(read_err)? {
            let stripped = self.strip(host)?;
            self.layout.add(
                lab_path,
                Node::HostFile {
                    path: stripped,
                    mode,
                },
            )?;
            for lib in ldd::libraries(host)? {
                let real =
                    fs::canonicalize(&lib.host_path).map_err(|source| LabError::ReadInput {
                        path: lib.host_path.clone(),
                        source,
                    })?;
                if self.layout_has_source(&lib.lab_path) {
                    continue;
                }
                let stripped = self.strip(&real)?;
                self.layout.add(
                    &lib.lab_path,
                    Node::HostFile {
                        path: stripped,
                        mode: 0o755,
                    },
                )?;
            }
        } else {
            self.layout.add(
                lab_path,
                Node::HostFile {
                    path: host.to_owned(),
                    mode,
                },
            )?;
        }
        Ok(())
    }

    fn add_dir(&mut self, host: &Path, lab_path: &str) -> Result<(), LabError> {
        let read_err = |source| LabError::ReadInput {
            path: host.to_owned(),
            source,
        };
        let mode = fs::metadata(host).map_err(read_err)?.permissions().mode() & 0o7777;
        self.layout.add(lab_path, Node::Dir { mode })?;
        for entry in fs::read_dir(host).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let path = entry.path();
            let name = entry.file_name();
            let child = format!(
                "{}/{}",
                lab_path.trim_end_matches('/'),
                name.to_string_lossy()
            );
            if entry.file_type().map_err(read_err)?.is_symlink() {
                let target = fs::read_link(&path).map_err(read_err)?;
                self.layout.add(
                    &child,
                    Node::Symlink {
                        target: target.to_string_lossy().into_owned(),
                    },
                )?;
            } else {
                self.add(&path, &child)?;
            }
        }
        Ok(())
    }

    /// Whether a library is already staged at `lab_path` (skip re-stripping).
    fn layout_has_source(&self, lab_path: &str) -> bool {
        self.layout
            .nodes
            .contains_key(lab_path.trim_start_matches('/'))
    }

    /// `strip --strip-debug` into the staging dir; without `strip` on the
    /// host the file goes in as it is.
    fn strip(&mut self, host: &Path) -> Result<PathBuf, LabError> {
        self.staged += 1;
        let name = host
            .file_name()
            .map_or_else(|| "file".into(), |n| n.to_string_lossy());
        let out = self.staging_dir.join(format!("{}-{name}", self.staged));
        let status = Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(&out)
            .arg(host)
            .stdin(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => Ok(out),
            Ok(s) => Err(LabError::Strip {
                path: host.to_owned(),
                source: io::Error::other(format!("strip {s}")),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(host.to_owned()),
            Err(source) => Err(LabError::Strip {
                path: host.to_owned(),
                source,
            }),
        }
    }
}

fn is_elf(path: &Path) -> io::Result<bool> {
    let mut magic = [0u8; 4];
    let mut file = File::open(path)?;
    match file.read_exact(&mut magic) {
        Ok(()) => Ok(&magic == b"\x7fELF"),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_created_and_sorted_first() {
        let mut layout = Layout::default();
        layout
            .add(
                "/lab/bin/tool",
                Node::Bytes {
                    data: b"x".to_vec(),
                    mode: 0o755,
                },
            )
            .unwrap();
        layout.add("/lab-other", Node::Dir { mode: 0o700 }).unwrap();
        let keys: Vec<&String> = layout.nodes.keys().collect();
        assert_eq!(keys, ["lab", "lab-other", "lab/bin", "lab/bin/tool"]);
        assert_eq!(layout.get("/lab/bin"), Some(&Node::Dir { mode: 0o755 }));
    }

    #[test]
    fn same_node_twice_is_fine_but_conflicts_are_not() {
        let mut layout = Layout::default();
        let lib = Node::HostFile {
            path: "/lib/libc.so.6".into(),
            mode: 0o755,
        };
        layout.add("/lib/libc.so.6", lib.clone()).unwrap();
        layout.add("/lib/libc.so.6", lib).unwrap();
        let other = Node::Symlink { target: "x".into() };
        assert!(layout.add("/lib/libc.so.6", other.clone()).is_err());
        assert!(layout.add("/lib/libc.so.6/below", other).is_err());
    }

    #[test]
    fn lab_paths_must_be_absolute_and_plain() {
        assert_eq!(normalize("/a//b/").unwrap(), "a/b");
        assert!(normalize("a/b").is_err());
        assert!(normalize("/").is_err());
        assert!(normalize("/a/../b").is_err());
    }

    #[test]
    fn stages_a_dynamic_binary_with_its_libraries_stripped() {
        let work = tempfile::tempdir().unwrap();
        let mut layout = Layout::default();
        let mut stager = Stager::new(&mut layout, work.path());
        stager.add(Path::new("/bin/sh"), "/lab/bin/sh").unwrap();
        let Some(Node::HostFile { path, mode }) = layout.get("/lab/bin/sh").cloned() else {
            panic!("sh not staged");
        };
        assert!(
            path.starts_with(work.path()),
            "{path:?} not stripped into staging"
        );
        assert_eq!(mode & 0o111, 0o111);
        if !ldd::libraries(Path::new("/bin/sh")).unwrap().is_empty() {
            assert!(layout.get("/lib64/ld-linux-x86-64.so.2").is_some());
        }
    }

    #[test]
    fn directories_are_copied_with_symlinks() {
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a.txt"), b"a").unwrap();
        std::os::unix::fs::symlink("a.txt", src.path().join("link")).unwrap();
        let work = tempfile::tempdir().unwrap();
        let mut layout = Layout::default();
        Stager::new(&mut layout, work.path())
            .add(src.path(), "/data")
            .unwrap();
        assert!(matches!(
            layout.get("/data/a.txt"),
            Some(Node::HostFile { .. })
        ));
        assert_eq!(
            layout.get("/data/link"),
            Some(&Node::Symlink {
                target: "a.txt".into()
            })
        );
    }

    #[test]
    fn writes_a_newc_archive() {
        let work = tempfile::tempdir().unwrap();
        let mut layout = Layout::default();
        layout
            .add(
                "/init",
                Node::Bytes {
                    data: b"#!/bin/sh\n".to_vec(),
                    mode: 0o755,
                },
            )
            .unwrap();
        layout
            .add(
                "/dev/console",
                Node::CharDev {
                    major: 5,
                    minor: 1,
                    mode: 0o600,
                },
            )
            .unwrap();
        let out = work.path().join("initramfs.cpio");
        layout.write(&out).unwrap();
        let bytes = fs::read(&out).unwrap();
        assert!(bytes.starts_with(b"070701"));
        assert!(bytes.windows(10).any(|w| w == b"TRAILER!!!"));
    }

    #[test]
    fn missing_input_is_a_read_error() {
        let work = tempfile::tempdir().unwrap();
        let mut layout = Layout::default();
        let err = Stager::new(&mut layout, work.path())
            .add(Path::new("/nonexistent/x"), "/x")
            .unwrap_err();
        assert!(matches!(err, LabError::ReadInput { .. }));
    }
}
