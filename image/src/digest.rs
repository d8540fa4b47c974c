//! [`Digest`]: the sha256 name of a piece of content, and readers and
//! writers that compute it while the content passes through, so that a blob
//! is checked against the digest it claims without a second pass.
//!
//! Only `sha256` is accepted: it is what every image in use is named by, and
//! refusing the rest keeps one way to spell a digest (`sha256:` then 64
//! lowercase hex digits), which the store relies on for its file names.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// The algorithm prefix of every digest.
pub const SHA256_PREFIX: &str = "sha256:";

/// Hex digits in a sha256 digest.
pub const SHA256_HEX_LEN: usize = 64;

/// Hex digits in a short image ID (as `docker images` shows them).
pub const SHORT_ID_LEN: usize = 12;

/// A sha256 content digest, always valid: 64 lowercase hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

/// A digest string that is not `sha256:` followed by 64 lowercase hex digits.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    /// The algorithm is not sha256 (or there is no `algorithm:` prefix).
    #[error("digest {value:?} does not use sha256")]
    UnsupportedAlgorithm {
        /// The string given.
        value: String,
    },
    /// The hex part has the wrong length or a character that is not
    /// lowercase hex.
    #[error("digest {value:?} is not 64 lowercase hex digits")]
    MalformedHex {
        /// The string given.
        value: String,
    },
}

/// Content whose sha256 is not the digest it was expected to have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("content has digest {actual}, expected {expected}")]
pub struct DigestMismatch {
    /// The digest the content was named or described by.
    pub expected: Digest,
    /// The digest of the content actually read.
    pub actual: Digest,
}

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`.
    pub fn parse(value: &str) -> Result<Self, DigestError> {
        let Some(hex) = value.strip_prefix(SHA256_PREFIX) else {
            return Err(DigestError::UnsupportedAlgorithm {
                value: value.to_owned(),
            });
        };
        Self::from_hex(hex).map_err(|_| DigestError::MalformedHex {
            value: value.to_owned(),
        })
    }

    /// Takes the 64 hex digits alone (as in a blob's file name).
    pub fn from_hex(hex: &str) -> Result<Self, DigestError> {
        if is_sha256_hex(hex) {
            Ok(Self {
                hex: hex.to_owned(),
            })
        } else {
            Err(DigestError::MalformedHex {
                value: hex.to_owned(),
            })
        }
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    fn from_hasher(hasher: Sha256) -> Self {
        let sum = hasher.finalize();
        let mut hex = String::with_capacity(SHA256_HEX_LEN);
        for byte in sum {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Self { hex }
    }

    /// The 64 hex digits, without the algorithm.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex digits: the short image ID.
    pub fn short(&self) -> &str {
        &self.hex[..SHORT_ID_LEN]
    }

    /// Checks that `actual` is this digest.
    pub fn verify(&self, actual: &Digest) -> Result<(), DigestMismatch> {
        if self == actual {
            Ok(())
        } else {
            Err(DigestMismatch {
                expected: self.clone(),
                actual: actual.clone(),
            })
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether `hex` is 64 lowercase hex digits.
pub fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == SHA256_HEX_LEN && is_lower_hex(hex)
}

/// Whether `s` is non-empty and only lowercase hex digits.
pub(crate) fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SHA256_PREFIX}{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Self::parse(&value).map_err(serde::de::Error::custom)
    }
}

/// A writer that hashes what goes through it and counts the bytes.
#[derive(Debug)]
pub struct DigestWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> DigestWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The inner writer and the digest of everything written.
    pub fn finish(self) -> (W, Digest) {
        (self.inner, Digest::from_hasher(self.hasher))
    }

    /// The inner writer, if what was written has digest `expected`.
    pub fn verify(self, expected: &Digest) -> Result<W, DigestMismatch> {
        let (inner, actual) = self.finish();
        expected.verify(&actual)?;
        Ok(inner)
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes what is read through it and counts the bytes.
#[derive(Debug)]
pub struct DigestReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> DigestReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Bytes read so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been read yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads what is left to the end (so that the digest covers all of the
    /// content, whatever the consumer stopped at), then gives the digest.
    pub fn drain(mut self) -> io::Result<Digest> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(Digest::from_hasher(self.hasher))
    }

    /// The digest of what was read so far.
    pub fn finish(self) -> Digest {
        Digest::from_hasher(self.hasher)
    }

    /// Checks that what was read so far has digest `expected`.
    pub fn verify(self, expected: &Digest) -> Result<(), DigestMismatch> {
        expected.verify(&self.finish())
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sha256 of the empty string.
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_displays() {
        let text = format!("sha256:{EMPTY}");
        let digest = Digest::parse(&text).unwrap();
        assert_eq!(digest.hex(), EMPTY);
        assert_eq!(digest.to_string(), text);
        assert_eq!(digest.short(), &EMPTY[..12]);
        assert_eq!(text.parse::<Digest>().unwrap(), digest);
    }

    #[test]
    fn hashes_bytes() {
        assert_eq!(Digest::of(b"").hex(), EMPTY);
    }

    #[test]
    fn refuses_other_algorithms_and_bad_hex() {
        assert!(matches!(
            Digest::parse(&format!("sha512:{EMPTY}")),
            Err(DigestError::UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(
            Digest::parse(EMPTY),
            Err(DigestError::UnsupportedAlgorithm { .. })
        ));
        let upper = format!("sha256:{}", EMPTY.to_uppercase());
        assert!(matches!(
            Digest::parse(&upper),
            Err(DigestError::MalformedHex { .. })
        ));
        assert!(matches!(
            Digest::parse("sha256:abc"),
            Err(DigestError::MalformedHex { .. })
        ));
        assert!(Digest::from_hex(&format!("{}g", &EMPTY[..63])).is_err());
    }

    #[test]
    fn serde_round_trip() {
        let digest = Digest::of(b"x");
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"{digest}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), digest);
        assert!(serde_json::from_str::<Digest>("\"sha256:00\"").is_err());
    }

    #[test]
    fn writer_verifies() {
        let mut writer = DigestWriter::new(Vec::new());
        writer.write_all(b"hello").unwrap();
        assert_eq!(writer.len(), 5);
        let out = writer.verify(&Digest::of(b"hello")).unwrap();
        assert_eq!(out, b"hello");

        let mut writer = DigestWriter::new(Vec::new());
        writer.write_all(b"hello").unwrap();
        let err = writer.verify(&Digest::of(b"world")).unwrap_err();
        assert_eq!(err.expected, Digest::of(b"world"));
        assert_eq!(err.actual, Digest::of(b"hello"));
    }

    #[test]
    fn reader_drains_what_the_consumer_left() {
        let mut reader = DigestReader::new(&b"hello world"[..]);
        let mut first = [0u8; 5];
        reader.read_exact(&mut first).unwrap();
        assert_eq!(reader.len(), 5);
        assert_eq!(reader.drain().unwrap(), Digest::of(b"hello world"));

        let mut reader = DigestReader::new(&b"abc"[..]);
        io::copy(&mut reader, &mut io::sink()).unwrap();
        assert!(reader.verify(&Digest::of(b"abd")).is_err());
    }
}
