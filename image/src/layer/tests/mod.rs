//! Layers built in memory and applied to temporary roots beside a
//! sentinel directory: what the OCI layer spec asks for in [`spec`], the
//! hostile cases in [`hostile`].

mod hostile;
mod spec;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::*;

/// The modification time every test entry has.
const MTIME: u64 = 1_600_000_000;

/// A layer built in memory.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn header(kind: EntryType, mode: u32, size: u64) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(MTIME);
        header.set_uid(0);
        header.set_gid(0);
        header
    }

    fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut header = Self::header(EntryType::Directory, mode, 0);
        self.0.append_data(&mut header, path, io::empty()).unwrap();
        self
    }

    fn file(mut self, path: &str, data: &[u8], mode: u32) -> Self {
        let mut header = Self::header(EntryType::Regular, mode, data.len() as u64);
        self.0.append_data(&mut header, path, data).unwrap();
        self
    }

    fn owned_file(mut self, path: &str, uid: u64, gid: u64) -> Self {
        let mut header = Self::header(EntryType::Regular, 0o4755, 1);
        header.set_uid(uid);
        header.set_gid(gid);
        self.0.append_data(&mut header, path, &b"x"[..]).unwrap();
        self
    }

    fn link(mut self, kind: EntryType, path: &str, target: &str) -> Self {
        let mut header = Self::header(kind, 0o777, 0);
        self.0.append_link(&mut header, path, target).unwrap();
        self
    }

    fn symlink(self, path: &str, target: &str) -> Self {
        self.link(EntryType::Symlink, path, target)
    }

    fn hard_link(self, path: &str, target: &str) -> Self {
        self.link(EntryType::Link, path, target)
    }

    fn whiteout(self, path: &str) -> Self {
        self.file(path, b"", 0o644)
    }

    fn special(mut self, path: &str, kind: EntryType, mode: u32, dev: (u32, u32)) -> Self {
        let mut header = Self::header(kind, mode, 0);
        header.set_device_major(dev.0).unwrap();
        header.set_device_minor(dev.1).unwrap();
        self.0.append_data(&mut header, path, io::empty()).unwrap();
        self
    }

    /// An entry whose name and link name bytes go into the header as they
    /// are: `tar::Builder` refuses `..` and absolute names.
    fn raw(mut self, name: &[u8], kind: EntryType, link: &[u8], data: &[u8]) -> Self {
        let mut header = Self::header(kind, 0o644, data.len() as u64);
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name);
        gnu.linkname[..link.len()].copy_from_slice(link);
        header.set_cksum();
        self.0.append(&header, data).unwrap();
        self
    }

    /// A PAX extended header (`x`) for the next entry.
    fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        let mut data = Vec::new();
        for (key, value) in records {
            data.extend_from_slice(&pax_record(key, value));
        }
        let mut header = Self::header(EntryType::XHeader, 0o644, data.len() as u64);
        self.0
            .append_data(&mut header, "PaxHeader", &data[..])
            .unwrap();
        self
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// One PAX record, `"<len> <key>=<value>\n"` where len counts itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut record = format!("{len} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

/// A root to apply layers to, inside an outer directory that also holds
/// a sentinel directory: nothing outside the root may ever change.
struct Sandbox {
    outer: tempfile::TempDir,
    root: PathBuf,
    sentinel: PathBuf,
    before: BTreeMap<PathBuf, String>,
}

impl Sandbox {
    fn new() -> Self {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        let sentinel = outer.path().join("sentinel");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&sentinel).unwrap();
        fs::write(sentinel.join("secret"), "keep me").unwrap();
        fs::write(sentinel.join("victim"), "do not remove").unwrap();
        fs::create_dir(sentinel.join("sub")).unwrap();
        fs::write(sentinel.join("sub/inner"), "inner").unwrap();
        std::os::unix::fs::symlink("secret", sentinel.join("link")).unwrap();
        let before = snapshot_outside(outer.path());
        Sandbox {
            outer,
            root,
            sentinel,
            before,
        }
    }

    /// The sentinel's absolute path, as a hostile layer would name it.
    fn sentinel_str(&self) -> &str {
        self.sentinel.to_str().unwrap()
    }

    fn apply(&self, layer: &[u8]) -> Result<Applied, LayerError> {
        apply(&self.root, layer, &ApplyOptions::default())
    }

    fn apply_ok(&self, layer: Layer) -> Applied {
        self.apply(&layer.bytes()).unwrap()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }

    fn meta(&self, rel: &str) -> fs::Metadata {
        fs::symlink_metadata(self.path(rel)).unwrap()
    }

    fn mode(&self, rel: &str) -> u32 {
        self.meta(rel).mode() & 0o7777
    }

    fn exists(&self, rel: &str) -> bool {
        fs::symlink_metadata(self.path(rel)).is_ok()
    }

    /// Everything outside the root is as it was, byte for byte, down to
    /// modes, link counts and change times.
    fn assert_outside_untouched(&self) {
        assert_eq!(snapshot_outside(self.outer.path()), self.before);
    }
}

/// Everything under `outer` except its `root`: kind, mode, link count,
/// times, content or target.
fn snapshot_outside(outer: &Path) -> BTreeMap<PathBuf, String> {
    let mut seen = BTreeMap::new();
    snapshot(outer, outer, &mut seen);
    seen
}

fn snapshot(outer: &Path, dir: &Path, seen: &mut BTreeMap<PathBuf, String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path == outer.join("root") {
            continue;
        }
        let meta = fs::symlink_metadata(&path).unwrap();
        let what = if meta.file_type().is_symlink() {
            format!("-> {:?}", fs::read_link(&path).unwrap())
        } else if meta.is_file() {
            format!("{:?}", fs::read(&path).unwrap())
        } else {
            String::from("dir")
        };
        let record = format!(
            "{:o} uid {} gid {} nlink {} mtime {}.{} ctime {}.{} {what}",
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.nlink(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
        );
        seen.insert(path.clone(), record);
        if meta.is_dir() {
            snapshot(outer, &path, seen);
        }
    }
    let meta = fs::symlink_metadata(dir).unwrap();
    let record = format!(
        "dir {:o} mtime {}.{}",
        meta.mode(),
        meta.mtime(),
        meta.mtime_nsec()
    );
    seen.insert(dir.join("."), record);
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
