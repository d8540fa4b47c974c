//! Booting the L1 kernel faster: the uncompressed `vmlinux` inside the
//! `bzImage`, booted by QEMU through its PVH entry point.
//!
//! A bzImage starts by decompressing itself, which under emulation takes
//! about 4 s, as long as the rest of the boot. The compressed payload's
//! place is in the boot header (`payload_offset`, `payload_length`, boot
//! protocol 2.08+); its last 4 bytes are the uncompressed size. Decompressed
//! once with the host's `xz` (or `gzip`, `zstd`) and cached, the ELF
//! `vmlinux` boots directly when it carries the Xen `PHYS32_ENTRY` note
//! (`CONFIG_PVH=y`, as Debian's kernels do).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::UNIX_EPOCH;

/// Offsets in the x86 boot header (Documentation/arch/x86/boot.rst).
mod defs {
    pub(super) const SETUP_SECTS: usize = 0x1f1;
    pub(super) const HEADER_MAGIC: usize = 0x202;
    pub(super) const VERSION: usize = 0x206;
    pub(super) const PAYLOAD_OFFSET: usize = 0x248;
    pub(super) const PAYLOAD_LENGTH: usize = 0x24c;
    /// Boot protocol 2.08 added the payload fields.
    pub(super) const MIN_VERSION: u16 = 0x0208;
    /// ELF note `Xen`, XEN_ELFNOTE_PHYS32_ENTRY (18), 8-byte address.
    pub(super) const PVH_NOTE: [u8; 16] =
        [4, 0, 0, 0, 8, 0, 0, 0, 18, 0, 0, 0, b'X', b'e', b'n', 0];
}

/// Where a compressed payload starts and how to decompress it.
#[derive(Debug, PartialEq, Eq)]
struct Payload<'a> {
    data: &'a [u8],
    uncompressed_len: u32,
    decompressor: &'static str,
}

/// Returns a cached PVH-bootable `vmlinux` for `bzimage`, extracting it into
/// `cache_dir` the first time. `Err` says why it cannot (callers then boot
/// the bzImage as it is, only slower).
pub(crate) fn pvh_vmlinux(bzimage: &Path, cache_dir: &Path) -> io::Result<PathBuf> {
    let meta = fs::metadata(bzimage)?;
    let mtime = meta
        .modified()?
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = bzimage
        .file_name()
        .map_or_else(|| "kernel".into(), |n| n.to_string_lossy());
    let cached = cache_dir.join(format!("{name}-{}-{mtime}.vmlinux", meta.len()));
    if cached.is_file() {
        return Ok(cached);
    }
    let image = fs::read(bzimage)?;
    let payload = find_payload(&image).ok_or_else(|| unsupported("no known payload"))?;
    let vmlinux = decompress(&payload)?;
    if !vmlinux.starts_with(b"\x7fELF") || vmlinux.len() != payload.uncompressed_len as usize {
        return Err(unsupported("payload is not the expected ELF"));
    }
    if !vmlinux
        .windows(defs::PVH_NOTE.len())
        .any(|w| w == defs::PVH_NOTE)
    {
        return Err(unsupported("vmlinux has no PVH entry note (CONFIG_PVH)"));
    }
    // Write then rename: concurrent runs never see half a kernel.
    fs::create_dir_all(cache_dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(cache_dir)?;
    tmp.write_all(&vmlinux)?;
    tmp.persist(&cached).map_err(|e| e.error)?;
    Ok(cached)
}

fn unsupported(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, why.to_owned())
}

fn find_payload(image: &[u8]) -> Option<Payload<'_>> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(image.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(image.get(at..at + 4)?.try_into().ok()?));
    if image.get(defs::HEADER_MAGIC..defs::HEADER_MAGIC + 4)? != b"HdrS"
        || u16_at(defs::VERSION)? < defs::MIN_VERSION
    {
        return None;
    }
    let setup_sects = match *image.get(defs::SETUP_SECTS)? {
        0 => 4,
        n => usize::from(n),
    };
    let start = (setup_sects + 1) * 512 + u32_at(defs::PAYLOAD_OFFSET)? as usize;
    let len = u32_at(defs::PAYLOAD_LENGTH)? as usize;
    let with_size = image.get(start..start.checked_add(len)?)?;
    let (data, size) = with_size.split_at(with_size.len().checked_sub(4)?);
    let decompressor = match data {
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => "xz",
        [0x1f, 0x8b, ..] => "gzip",
        [0x28, 0xb5, 0x2f, 0xfd, ..] => "zstd",
        _ => return None,
    };
    Some(Payload {
        data,
        uncompressed_len: u32::from_le_bytes(size.try_into().ok()?),
        decompressor,
    })
}

fn decompress(payload: &Payload<'_>) -> io::Result<Vec<u8>> {
    let mut child = Command::new(payload.decompressor)
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("decompressor stdin not piped"))?;
    let output = std::thread::scope(|scope| {
        let writer = scope.spawn(move || stdin.write_all(payload.data));
        let output = child.wait_with_output();
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("writer thread panicked")));
        (output, written)
    });
    let (output, written) = output;
    let output = output?;
    written?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "{} -dc: {}",
            payload.decompressor, output.status
        )));
    }
    Ok(output.stdout)
}

/// The kernel image QEMU should boot: the cached vmlinux, or the bzImage.
pub(crate) fn boot_image(bzimage: &Path, cache_dir: &Path) -> PathBuf {
    pvh_vmlinux(bzimage, cache_dir).unwrap_or_else(|_| bzimage.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake bzImage: header fields plus an xz payload of `content`.
    fn fake_bzimage(payload: &[u8], uncompressed_len: u32) -> Vec<u8> {
        let mut image = vec![0u8; 5 * 512];
        image[defs::SETUP_SECTS] = 4;
        image[defs::HEADER_MAGIC..defs::HEADER_MAGIC + 4].copy_from_slice(b"HdrS");
        image[defs::VERSION..defs::VERSION + 2].copy_from_slice(&0x020fu16.to_le_bytes());
        image[defs::PAYLOAD_OFFSET..defs::PAYLOAD_OFFSET + 4].copy_from_slice(&16u32.to_le_bytes());
        let len = payload.len() as u32 + 4;
        image[defs::PAYLOAD_LENGTH..defs::PAYLOAD_LENGTH + 4].copy_from_slice(&len.to_le_bytes());
        image.extend_from_slice(&[0u8; 16]);
        image.extend_from_slice(payload);
        image.extend_from_slice(&uncompressed_len.to_le_bytes());
        image
    }

    #[test]
    fn finds_the_payload_from_the_header() {
        let xz = b"\xfd7zXZ\0rest";
        let image = fake_bzimage(xz, 1234);
        assert_eq!(
            find_payload(&image),
            Some(Payload {
                data: xz,
                uncompressed_len: 1234,
                decompressor: "xz"
            })
        );
    }

    #[test]
    fn refuses_non_kernels_and_old_protocols() {
        assert_eq!(find_payload(b"not a kernel"), None);
        let mut image = fake_bzimage(b"\xfd7zXZ\0", 1);
        image[defs::VERSION] = 0x06; // 2.06
        assert_eq!(find_payload(&image), None);
        let unknown = fake_bzimage(b"????", 1);
        assert_eq!(find_payload(&unknown), None);
    }

    #[test]
    fn host_kernel_extracts_and_is_cached() {
        let Ok(host) = crate::HostPaths::discover() else {
            eprintln!("no lab kernel on this host; skipping");
            return;
        };
        let cache = tempfile::tempdir().unwrap();
        let first = pvh_vmlinux(&host.kernel, cache.path()).unwrap();
        let modified = fs::metadata(&first).unwrap().modified().unwrap();
        let second = pvh_vmlinux(&host.kernel, cache.path()).unwrap();
        assert_eq!(first, second);
        assert_eq!(fs::metadata(&second).unwrap().modified().unwrap(), modified);
    }
}
