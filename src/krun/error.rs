//! Errors of the libkrun wrapper.

use std::ffi::NulError;

use nix::errno::Errno;

/// A libkrun call that failed, or an argument it cannot take.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// libkrun returned a negative errno.
    #[error("{function} failed")]
    Call {
        /// The C function, e.g. `krun_set_root`.
        function: &'static str,
        /// The errno it returned.
        #[source]
        errno: Errno,
    },
    /// A string argument holds a NUL byte, which C strings cannot carry.
    #[error("{what} contains a NUL byte")]
    Nul {
        /// What the string was (e.g. "environment variable").
        what: &'static str,
        /// Where the NUL byte was.
        #[source]
        source: NulError,
    },
    /// Something libkrun needs is not available in this build.
    #[error("{what} is not available")]
    Unavailable {
        /// What is missing.
        what: &'static str,
    },
    /// A value is outside what libkrun accepts.
    #[error("{what} is out of range: {value}")]
    OutOfRange {
        /// What the value was.
        what: &'static str,
        /// The value given.
        value: u64,
    },
}

impl Error {
    /// The errno of a failed call, if this is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Call { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// Turns libkrun's return convention (negative errno on failure) into a
/// `Result` carrying the non-negative value.
pub(crate) fn check(function: &'static str, ret: i32) -> Result<u32, Error> {
    if ret < 0 {
        Err(Error::Call {
            function,
            errno: Errno::from_raw(-ret),
        })
    } else {
        Ok(ret.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_return_names_function_and_errno() {
        let err = check("krun_set_root", -libc::ENOENT).unwrap_err();
        assert_eq!(err.errno(), Some(Errno::ENOENT));
        assert_eq!(err.to_string(), "krun_set_root failed");
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("No such file"), "{source}");
    }

    #[test]
    fn non_negative_return_is_the_value() {
        assert_eq!(check("krun_create_ctx", 7).unwrap(), 7);
    }
}
