//! A writer for the `newc` cpio format, the one the Linux kernel unpacks as
//! an initramfs.
//!
//! Each entry is a 110-byte ASCII header, the NUL-terminated name, padding
//! to a multiple of 4, the data, and padding to a multiple of 4 again:
//!
//! ```text
//! "070701" ino mode uid gid nlink mtime filesize devmajor devminor
//!          rdevmajor rdevminor namesize check      (13 fields, 8 hex digits each)
//! name\0 [pad to 4] data [pad to 4]
//! ```
//!
//! The archive ends with an entry named `TRAILER!!!`. Names are relative
//! (`bin/sh`, not `/bin/sh`); every entry is owned by root, dated 0, so the
//! same inputs give the same bytes. Writing our own (instead of running
//! `cpio`) lets the archive hold `/dev/console` without root and stream
//! large files straight from where they are.

use std::io::{self, Read, Write};

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

const TRAILER: &str = "TRAILER!!!";

/// Streams newc entries into `W`.
pub(crate) struct NewcWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
}

impl<W: Write> NewcWriter<W> {
    pub(crate) fn new(out: W) -> Self {
        NewcWriter {
            out,
            written: 0,
            next_ino: 1,
        }
    }

    /// A directory; `mode` holds the permission bits only.
    pub(crate) fn dir(&mut self, name: &str, mode: u32) -> io::Result<()> {
        self.header(name, S_IFDIR | mode, 2, 0, (0, 0))?;
        self.pad()
    }

    /// A regular file of exactly `size` bytes read from `data`.
    pub(crate) fn file(
        &mut self,
        name: &str,
        mode: u32,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        self.with_data(name, S_IFREG | mode, size, data)
    }

    /// A symbolic link to `target`.
    pub(crate) fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.with_data(
            name,
            S_IFLNK | 0o777,
            target.len() as u64,
            &mut target.as_bytes(),
        )
    }

    fn with_data(
        &mut self,
        name: &str,
        mode: u32,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let size32 = u32::try_from(size).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name} is {size} bytes; newc entries are limited to 4 GiB"),
            )
        })?;
        self.header(name, mode, 1, size32, (0, 0))?;
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{name} shrank while being archived ({copied} of {size} bytes)"),
            ));
        }
        self.written += copied;
        self.pad()
    }

    /// A character device node.
    pub(crate) fn char_dev(
        &mut self,
        name: &str,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        self.header(name, S_IFCHR | mode, 1, 0, (major, minor))?;
        self.pad()
    }

    /// Writes the trailer and returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.header(TRAILER, 0, 1, 0, (0, 0))?;
        self.pad()?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn header(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        size: u32,
        rdev: (u32, u32),
    ) -> io::Result<()> {
        if name.is_empty() || name.starts_with('/') || name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad cpio entry name {name:?}"),
            ));
        }
        let ino = if name == TRAILER { 0 } else { self.next_ino };
        self.next_ino += 1;
        let namesize = name.len() as u32 + 1;
        let fields = [
            ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
        ];
        let mut head = String::with_capacity(110);
        head.push_str("070701");
        for field in fields {
            head.push_str(&format!("{field:08x}"));
        }
        self.out.write_all(head.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.written += head.len() as u64 + u64::from(namesize);
        self.pad()
    }

    fn pad(&mut self) -> io::Result<()> {
        let pad = (4 - (self.written % 4)) % 4;
        self.out.write_all(&[0u8; 3][..pad as usize])?;
        self.written += pad;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One parsed entry: name, mode, (rdevmajor, rdevminor), data.
    type Entry = (String, u32, (u32, u32), Vec<u8>);

    /// Parses an archive back into its entries, checking alignment.
    fn parse(mut bytes: &[u8]) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut offset = 0usize;
        loop {
            assert_eq!(offset % 4, 0, "entry not aligned");
            assert_eq!(&bytes[..6], b"070701");
            let field = |i: usize| {
                let s = std::str::from_utf8(&bytes[6 + 8 * i..14 + 8 * i]).unwrap();
                u32::from_str_radix(s, 16).unwrap()
            };
            let (mode, size, rdev, namesize) =
                (field(1), field(6), (field(9), field(10)), field(11));
            let name_end = 110 + namesize as usize;
            let name = std::str::from_utf8(&bytes[110..name_end - 1])
                .unwrap()
                .to_owned();
            assert_eq!(bytes[name_end - 1], 0);
            let data_start = name_end.next_multiple_of(4);
            let data_end = data_start + size as usize;
            let data = bytes[data_start..data_end].to_vec();
            let next = data_end.next_multiple_of(4);
            offset += next;
            bytes = &bytes[next..];
            if name == TRAILER {
                assert!(bytes.is_empty());
                return out;
            }
            out.push((name, mode, rdev, data));
        }
    }

    #[test]
    fn round_trips_every_kind_of_entry() {
        let mut w = NewcWriter::new(Vec::new());
        w.dir("bin", 0o755).unwrap();
        w.file("bin/x", 0o755, 5, &mut &b"hello"[..]).unwrap();
        w.symlink("bin/sh", "busybox").unwrap();
        w.char_dev("console", 0o600, 5, 1).unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let entries = parse(&bytes);
        assert_eq!(
            entries,
            vec![
                ("bin".into(), 0o040_755, (0, 0), vec![]),
                ("bin/x".into(), 0o100_755, (0, 0), b"hello".to_vec()),
                ("bin/sh".into(), 0o120_777, (0, 0), b"busybox".to_vec()),
                ("console".into(), 0o020_600, (5, 1), vec![]),
            ]
        );
    }

    #[test]
    fn header_is_110_bytes_and_name_is_padded() {
        let mut w = NewcWriter::new(Vec::new());
        w.dir("ab", 0o755).unwrap();
        let bytes = w.out;
        // 110 header + "ab\0" = 113, padded to 116.
        assert_eq!(bytes.len(), 116);
        assert_eq!(&bytes[110..113], b"ab\0");
    }

    #[test]
    fn short_reader_is_an_error() {
        let mut w = NewcWriter::new(Vec::new());
        let err = w.file("f", 0o644, 10, &mut &b"abc"[..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn absolute_names_are_refused() {
        let mut w = NewcWriter::new(Vec::new());
        assert!(w.dir("/bin", 0o755).is_err());
    }
}
