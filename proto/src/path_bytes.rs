//! [`PathBytes`]: a path in a tree entry, as the raw bytes Linux uses.
//!
//! Linux file names are bytes, not text. On the wire a path that is valid
//! UTF-8 is a JSON string (`"src/main.rs"`), as it always was; any other
//! path is a JSON array of its byte values (`[97,255,98]` for `a\xFFb`).
//! A receiver accepts either form. There is no escaping of its own to
//! undo: a string is its UTF-8 bytes, an array is its bytes. What the bytes
//! may be is the receiver's to check, as for any path
//! ([`crate::path::entry_components`]).

use std::ffi::OsStr;
use std::fmt;
use std::ops::Deref;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A path as raw bytes, sent as a JSON string when it is UTF-8 and as an
/// array of byte values otherwise.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathBytes(Vec<u8>);

impl PathBytes {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as a path (Linux paths are bytes).
    pub fn as_path(&self) -> &Path {
        Path::new(OsStr::from_bytes(&self.0))
    }

    /// The owned bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl Deref for PathBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for PathBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for PathBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&[u8]> for PathBytes {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl From<String> for PathBytes {
    fn from(text: String) -> Self {
        Self(text.into_bytes())
    }
}

impl From<&str> for PathBytes {
    fn from(text: &str) -> Self {
        Self(text.as_bytes().to_vec())
    }
}

impl From<&Path> for PathBytes {
    fn from(path: &Path) -> Self {
        Self(path.as_os_str().as_bytes().to_vec())
    }
}

impl fmt::Debug for PathBytes {
    /// Quoted, with bytes that are not UTF-8 as `\xNN` escapes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(OsStr::from_bytes(&self.0), f)
    }
}

impl Serialize for PathBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => self.0.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for PathBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PathBytesVisitor)
    }
}

struct PathBytesVisitor;

impl<'de> Visitor<'de> for PathBytesVisitor {
    type Value = PathBytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a path: a string, or an array of byte values")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<PathBytes, E> {
        Ok(text.into())
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<PathBytes, E> {
        Ok(text.into())
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<PathBytes, E> {
        Ok(bytes.into())
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<PathBytes, E> {
        Ok(bytes.into())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PathBytes, A::Error> {
        // The frame that holds the array bounds its length; the hint is
        // not trusted beyond a small first allocation.
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(256));
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        Ok(bytes.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_a_string_and_other_bytes_an_array() {
        let text = PathBytes::from("a/é");
        assert_eq!(serde_json::to_string(&text).unwrap(), "\"a/é\"");
        let raw = PathBytes::from(&b"a\xffb"[..]);
        assert_eq!(serde_json::to_string(&raw).unwrap(), "[97,255,98]");
        for path in [text, raw] {
            let json = serde_json::to_string(&path).unwrap();
            assert_eq!(serde_json::from_str::<PathBytes>(&json).unwrap(), path);
        }
    }

    #[test]
    fn malformed_forms_are_refused() {
        for bad in ["[256]", "[-1]", "[1.5]", "[\"a\"]", "{}", "null", "7"] {
            assert!(serde_json::from_str::<PathBytes>(bad).is_err(), "{bad}");
        }
        let escaped: PathBytes = serde_json::from_str("\"a\\u0000b\"").unwrap();
        assert_eq!(escaped.as_bytes(), b"a\0b", "kept for the path check");
    }

    #[test]
    fn debug_escapes_bytes_that_are_not_utf8() {
        let raw = PathBytes::from(&b"a\xffb"[..]);
        assert_eq!(format!("{raw:?}"), "\"a\\xFFb\"");
    }
}
