//! Which decoder a layer's bytes need: from the manifest's media type, or
//! sniffed from the bytes when there is none (docker-archive layers).

use std::io::{self, Read};

/// How a layer's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip, of one member or several concatenated (as `pigz` writes).
    Gzip,
    /// Zstandard.
    Zstd,
}

/// The first bytes of a gzip member (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The first bytes of a Zstandard frame (RFC 8878).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// From an OCI or Docker layer media type (`…layer.v1.tar`,
    /// `…tar+gzip`, `…tar+zstd`, their deprecated `nondistributable`
    /// forms, Docker's `…rootfs.diff.tar.gzip` and `…foreign.diff.tar.gzip`);
    /// `None` if it is not a layer type this module applies.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(Compression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// Sniffed from the first bytes of the layer (gzip `1f 8b`, zstd
    /// `28 b5 2f fd`, anything else a plain tar): docker-archive layers
    /// have no media type. Peek them with [`std::io::BufRead::fill_buf`]
    /// so that they are still there for [`decompressed`].
    pub fn sniff(first_bytes: &[u8]) -> Compression {
        if first_bytes.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if first_bytes.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// A reader of the layer's tar stream, decompressed.
///
/// Fails only when the zstd decoder cannot be set up; corrupt compressed
/// data shows as read errors later.
pub fn decompressed<'a>(
    compression: Compression,
    reader: impl Read + 'a,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
    })
}
