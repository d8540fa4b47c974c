//! Validation of the relative paths in tree entries.
//!
//! A receiver places each entry under its destination. Only paths made of
//! plain names pass: no absolute paths, no `..` or `.`, no empty components,
//! no NUL bytes, and bounded lengths. Symlinks inside the tree are the
//! receiver's to handle (it must never create an entry below one).

/// Longest relative path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest path component accepted, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Why a tree entry's path was rejected. Paths are bytes; the messages
/// show them lossily (bytes that are not UTF-8 as U+FFFD).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// It starts with `/`.
    #[error("entry path {0:?} is absolute")]
    Absolute(String),
    /// It has a `..` component.
    #[error("entry path {0:?} has a `..` component")]
    ParentDir(String),
    /// It has an empty or `.` component.
    #[error("entry path {0:?} has an empty or `.` component")]
    EmptyComponent(String),
    /// It holds a NUL byte.
    #[error("entry path {0:?} holds a NUL byte")]
    Nul(String),
    /// It or one of its components is too long.
    #[error("entry path of {len} bytes is too long")]
    TooLong {
        /// Its length.
        len: usize,
    },
}

/// Checks a tree entry path (raw bytes, `/`-separated) and returns its
/// components (empty for the root, written `""`).
pub fn entry_components(path: &[u8]) -> Result<Vec<&[u8]>, PathError> {
    let shown = || String::from_utf8_lossy(path).into_owned();
    if path.is_empty() {
        return Ok(Vec::new());
    }
    if path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong { len: path.len() });
    }
    if path.contains(&0) {
        return Err(PathError::Nul(shown()));
    }
    if path.starts_with(b"/") {
        return Err(PathError::Absolute(shown()));
    }
    let mut parts = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b".." => return Err(PathError::ParentDir(shown())),
            b"" | b"." => return Err(PathError::EmptyComponent(shown())),
            name if name.len() > MAX_NAME_LEN => {
                return Err(PathError::TooLong { len: name.len() })
            }
            name => parts.push(name),
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_pass() {
        assert_eq!(entry_components(b""), Ok(vec![]));
        assert_eq!(entry_components(b"a"), Ok(vec![&b"a"[..]]));
        assert_eq!(
            entry_components(b"a/b c/.d"),
            Ok(vec![&b"a"[..], b"b c", b".d"])
        );
        assert_eq!(
            entry_components(b"\xff/x\xfe"),
            Ok(vec![&b"\xff"[..], b"x\xfe"]),
            "names that are not UTF-8 are plain names"
        );
    }

    #[test]
    fn escapes_are_rejected() {
        assert!(matches!(
            entry_components(b"/etc"),
            Err(PathError::Absolute(_))
        ));
        assert!(matches!(
            entry_components(b".."),
            Err(PathError::ParentDir(_))
        ));
        assert!(matches!(
            entry_components(b"a/../../b"),
            Err(PathError::ParentDir(_))
        ));
        assert!(matches!(
            entry_components(b"a//b"),
            Err(PathError::EmptyComponent(_))
        ));
        assert!(matches!(
            entry_components(b"./a"),
            Err(PathError::EmptyComponent(_))
        ));
        assert!(matches!(
            entry_components(b"a/"),
            Err(PathError::EmptyComponent(_))
        ));
        assert!(matches!(entry_components(b"a\0b"), Err(PathError::Nul(_))));
        let long = "x".repeat(256);
        assert!(matches!(
            entry_components(long.as_bytes()),
            Err(PathError::TooLong { .. })
        ));
    }
}
