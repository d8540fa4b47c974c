//! libkrunfw, the guest kernel packaged as a shared library, which libkrun
//! `dlopen`s when a VM starts.

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The soname libkrun loads.
#[cfg(target_os = "macos")]
pub const SONAME: &str = "libkrunfw.5.dylib";
/// The soname libkrun loads.
#[cfg(not(target_os = "macos"))]
pub const SONAME: &str = "libkrunfw.so.5";

/// A libkrunfw that the dynamic loader found.
#[derive(Debug, Clone)]
pub struct Libkrunfw {
    /// The file that was loaded (symlinks resolved).
    pub path: PathBuf,
    /// What `krunfw_get_version()` returned (the ABI version).
    pub abi_version: u32,
    /// The library version read off the file name (`5.5.0`), if it has one.
    pub version: Option<String>,
}

/// Why libkrunfw could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LibkrunfwError {
    /// The dynamic loader did not find or could not load it.
    #[error("{SONAME} cannot be loaded: {reason}")]
    NotLoadable {
        /// What the loader said (`dlerror()`).
        reason: String,
    },
    /// It loaded but lacks the functions libkrun calls.
    #[error("{SONAME} has no krunfw_get_version symbol: not a libkrunfw")]
    NotKrunfw,
}

impl LibkrunfwError {
    /// What to do about it.
    pub fn advice(&self) -> &'static str {
        "install libkrunfw 5: on Debian `cargo xtask setup` (package libkrunfw5 from sid), \
         on Fedora `dnf install libkrunfw`, on macOS `brew install libkrunfw`"
    }
}

/// Finds libkrunfw the way libkrun will (the process's loader path). The
/// answer is computed once per process.
pub fn probe() -> Result<Libkrunfw, LibkrunfwError> {
    static PROBE: OnceLock<Result<Libkrunfw, LibkrunfwError>> = OnceLock::new();
    PROBE.get_or_init(load).clone()
}

fn load() -> Result<Libkrunfw, LibkrunfwError> {
    let soname = CString::new(SONAME).expect("no NUL in soname");
    // SAFETY: `soname` is a valid C string. Loading libkrunfw runs no
    // initialisers with side effects (it only holds the kernel image).
    let handle = unsafe { libc::dlopen(soname.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(LibkrunfwError::NotLoadable {
            reason: last_dl_error(),
        });
    }
    let symbol = CString::new("krunfw_get_version").expect("no NUL");
    // SAFETY: `handle` is a live handle from dlopen; `symbol` is valid.
    let function = unsafe { libc::dlsym(handle, symbol.as_ptr()) };
    if function.is_null() {
        return Err(LibkrunfwError::NotKrunfw);
    }
    // SAFETY: libkrunfw declares `uint32_t krunfw_get_version(void)`.
    let get_version: extern "C" fn() -> u32 = unsafe { std::mem::transmute(function) };
    let abi_version = get_version();
    let path = loaded_path(function).unwrap_or_else(|| PathBuf::from(SONAME));
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    let version = version_from_file_name(&path);
    // The handle stays open: libkrun will load the same library again.
    Ok(Libkrunfw {
        path,
        abi_version,
        version,
    })
}

/// The file holding `address`, as the loader knows it.
fn loaded_path(address: *mut c_void) -> Option<PathBuf> {
    // SAFETY: Dl_info is plain data; all-zero is a valid value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: `address` lies in a loaded object; `info` is writable.
    let found = unsafe { libc::dladdr(address, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr filled dli_fname with a NUL-terminated string owned by
    // the loader, valid while the object stays loaded (it does).
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(PathBuf::from(name.to_string_lossy().into_owned()))
}

fn last_dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string valid until
    // the next dl* call on this thread.
    let message: *const c_char = unsafe { libc::dlerror() };
    if message.is_null() {
        return "unknown error".to_owned();
    }
    // SAFETY: non-NULL, NUL-terminated, copied out before any other dl call.
    unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned()
}

fn version_from_file_name(path: &std::path::Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_prefix("libkrunfw.so.").or_else(|| {
        name.strip_prefix("libkrunfw.")
            .and_then(|r| r.strip_suffix(".dylib"))
    })?;
    Some(rest.to_owned())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn version_is_read_off_the_file_name() {
        let v = version_from_file_name(Path::new("/usr/lib/libkrunfw.so.5.5.0"));
        assert_eq!(v.as_deref(), Some("5.5.0"));
        let v = version_from_file_name(Path::new("/opt/lib/libkrunfw.5.dylib"));
        assert_eq!(v.as_deref(), Some("5"));
        assert_eq!(version_from_file_name(Path::new("/lib/other.so")), None);
    }

    #[test]
    fn missing_library_error_says_what_to_install() {
        let err = LibkrunfwError::NotLoadable {
            reason: "cannot open shared object file".into(),
        };
        assert!(err.to_string().contains(SONAME));
        assert!(err.advice().contains("libkrunfw"));
    }
}
