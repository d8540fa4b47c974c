//! [`VmName`]: a name that is safe as a directory name and short enough
//! for socket paths.

use std::fmt;
use std::str::FromStr;

use super::Error;

/// Longest VM name.
pub const MAX_NAME_LEN: usize = 63;

/// A VM name: 1 to 63 ASCII letters, digits, `_`, `.` or `-`, starting
/// with a letter or digit (as container names are).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VmName(String);

impl VmName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for VmName {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Error> {
        let mut chars = name.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if first_ok && rest_ok && name.len() <= MAX_NAME_LEN {
            Ok(Self(name.to_owned()))
        } else {
            Err(Error::BadName {
                name: name.to_owned(),
            })
        }
    }
}

impl fmt::Display for VmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["a", "web-1", "A.b_c", &"x".repeat(63)] {
            assert_eq!(good.parse::<VmName>().unwrap().as_str(), good);
        }
        for bad in ["", "-a", ".", "..", "a/b", "a b", "é", &"x".repeat(64)] {
            assert!(bad.parse::<VmName>().is_err(), "{bad:?}");
        }
    }
}
