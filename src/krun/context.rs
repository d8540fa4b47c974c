//! [`Context`]: one libkrun VM configuration, freed on drop.

use std::ffi::{c_char, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

use krunbox_sys as sys;

use super::error::{check, Error};

/// A libkrun configuration context.
///
/// Configure it with the `set_*`/`add_*` methods, then hand the process
/// over to the VM with [`Context::start_enter`].
#[derive(Debug)]
pub struct Context {
    id: u32,
}

impl Context {
    /// Creates a context (`krun_create_ctx`).
    pub fn new() -> Result<Self, Error> {
        // SAFETY: takes no arguments; returns an id or a negative errno.
        let ret = unsafe { sys::krun_create_ctx() };
        Ok(Self {
            id: check("krun_create_ctx", ret)?,
        })
    }

    /// The raw context id, for calls this wrapper does not cover.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sets the number of vCPUs and the guest memory in MiB.
    pub fn set_vm_config(&mut self, vcpus: u8, ram_mib: u32) -> Result<(), Error> {
        if vcpus == 0 {
            return Err(Error::OutOfRange {
                what: "vCPU count",
                value: 0,
            });
        }
        // SAFETY: plain integers on a context this value owns.
        let ret = unsafe { sys::krun_set_vm_config(self.id, vcpus, ram_mib) };
        check("krun_set_vm_config", ret).map(drop)
    }

    /// Serves the host directory `path` as the guest's root (virtio-fs).
    pub fn set_root(&mut self, path: &Path) -> Result<(), Error> {
        let path = path_cstring("root path", path)?;
        // SAFETY: `path` is a valid C string that outlives the call;
        // libkrun copies it.
        let ret = unsafe { sys::krun_set_root(self.id, path.as_ptr()) };
        check("krun_set_root", ret).map(drop)
    }

    /// Shares the host directory `path` with the guest under `tag`,
    /// optionally read-only.
    pub fn add_virtiofs(&mut self, tag: &str, path: &Path, read_only: bool) -> Result<(), Error> {
        let tag = cstring("virtio-fs tag", tag)?;
        let path = path_cstring("shared directory", path)?;
        // SAFETY: both strings are valid and outlive the call; libkrun
        // copies them. A zero shm size asks for libkrun's default.
        let ret =
            unsafe { sys::krun_add_virtiofs3(self.id, tag.as_ptr(), path.as_ptr(), 0, read_only) };
        check("krun_add_virtiofs3", ret).map(drop)
    }

    /// Serves `data` as the file `path` of the filesystem tagged `fs_tag`
    /// (e.g. [`super::ROOT_FS_TAG`]), without touching the host directory.
    pub fn add_overlay_file(
        &mut self,
        fs_tag: &str,
        path: &str,
        data: &'static [u8],
        mode: u32,
    ) -> Result<(), Error> {
        let tag = cstring("virtio-fs tag", fs_tag)?;
        let path = cstring("overlay path", path)?;
        // SAFETY: the strings are valid for the call (libkrun copies them);
        // `data` is 'static, as libkrun keeps the pointer for the VM's life.
        let ret = unsafe {
            sys::krun_fs_add_overlay_file(
                self.id,
                tag.as_ptr(),
                path.as_ptr(),
                data.as_ptr(),
                data.len(),
                mode,
                false,
            )
        };
        check("krun_fs_add_overlay_file", ret).map(drop)
    }

    /// Sets the guest's working directory for the workload.
    pub fn set_workdir(&mut self, path: &str) -> Result<(), Error> {
        let path = cstring("working directory", path)?;
        // SAFETY: valid C string, copied by libkrun.
        let ret = unsafe { sys::krun_set_workdir(self.id, path.as_ptr()) };
        check("krun_set_workdir", ret).map(drop)
    }

    /// Sets the workload: the program, its arguments (without `argv[0]`) and
    /// its environment (`KEY=VALUE`). An empty `env` gives the workload
    /// libkrun's minimal default environment rather than the runner's.
    pub fn set_exec(
        &mut self,
        program: &str,
        args: &[String],
        env: &[String],
    ) -> Result<(), Error> {
        let program = cstring("program", program)?;
        let args = CStringArray::new("argument", args)?;
        let env = CStringArray::new("environment variable", env)?;
        // SAFETY: all pointers are to NUL-terminated strings and
        // NULL-terminated arrays that live until the call returns; libkrun
        // copies them.
        let ret =
            unsafe { sys::krun_set_exec(self.id, program.as_ptr(), args.as_ptr(), env.as_ptr()) };
        check("krun_set_exec", ret).map(drop)
    }

    /// Sets resource limits, each `RESOURCE=SOFT:HARD` with the resource
    /// as a number (e.g. `7=1024:1024` for RLIMIT_NOFILE).
    pub fn set_rlimits(&mut self, limits: &[String]) -> Result<(), Error> {
        let limits = CStringArray::new("rlimit", limits)?;
        // SAFETY: NULL-terminated array of valid strings, copied by libkrun.
        let ret = unsafe { sys::krun_set_rlimits(self.id, limits.as_ptr()) };
        check("krun_set_rlimits", ret).map(drop)
    }

    /// Publishes guest TCP ports on the host through TSI, each
    /// `HOST_PORT:GUEST_PORT`.
    pub fn set_port_map(&mut self, ports: &[String]) -> Result<(), Error> {
        let ports = CStringArray::new("port mapping", ports)?;
        // SAFETY: NULL-terminated array of valid strings, copied by libkrun.
        let ret = unsafe { sys::krun_set_port_map(self.id, ports.as_ptr()) };
        check("krun_set_port_map", ret).map(drop)
    }

    /// Bridges guest vsock `port` to the host unix socket at `path`.
    ///
    /// With `listen == false` the guest connects and libkrun connects to a
    /// host listener that must already exist at `path`; with
    /// `listen == true` libkrun listens at `path` (which must not exist)
    /// and bridges each host connection to the guest's listener.
    pub fn add_vsock_port(&mut self, port: u32, path: &Path, listen: bool) -> Result<(), Error> {
        let path = path_cstring("vsock socket path", path)?;
        // SAFETY: valid C string, copied by libkrun.
        let ret = unsafe { sys::krun_add_vsock_port2(self.id, port, path.as_ptr(), listen) };
        check("krun_add_vsock_port2", ret).map(drop)
    }

    /// Replaces the implicit vsock device with one whose TSI features are
    /// `tsi_features` (0 disables TSI: the guest has no network).
    pub fn set_vsock_tsi(&mut self, tsi_features: u32) -> Result<(), Error> {
        // SAFETY: plain integers on a context this value owns.
        let ret = unsafe { sys::krun_disable_implicit_vsock(self.id) };
        check("krun_disable_implicit_vsock", ret)?;
        // SAFETY: as above.
        let ret = unsafe { sys::krun_add_vsock(self.id, tsi_features) };
        check("krun_add_vsock", ret).map(drop)
    }

    /// Writes the guest console (kernel and init messages) to `path`.
    ///
    /// libkrun's implicit console then has a single port writing to the
    /// file, and no `krun-stdin`/`krun-stdout`/`krun-stderr` ports: the
    /// workload's streams go to the file too, unless
    /// [`Context::add_stdio_console`] adds them back.
    pub fn set_console_output(&mut self, path: &Path) -> Result<(), Error> {
        let path = path_cstring("console log path", path)?;
        // SAFETY: valid C string, copied by libkrun.
        let ret = unsafe { sys::krun_set_console_output(self.id, path.as_ptr()) };
        check("krun_set_console_output", ret).map(drop)
    }

    /// Adds a second virtio console whose ports `krun-stdin`,
    /// `krun-stdout` and `krun-stderr` carry this process's standard
    /// streams (fds 0, 1, 2, duplicated by libkrun at start). libkrun's
    /// init points the workload's streams at ports of those names.
    pub fn add_stdio_console(&mut self) -> Result<(), Error> {
        // SAFETY: plain integer on a context this value owns.
        let ret = unsafe { sys::krun_add_virtio_console_multiport(self.id) };
        let console = check("krun_add_virtio_console_multiport", ret)?;
        for (name, input, output) in [
            (c"krun-stdin", 0, -1),
            (c"krun-stdout", -1, 1),
            (c"krun-stderr", -1, 2),
        ] {
            // SAFETY: `name` is a static C string, copied by libkrun; the
            // descriptors are this process's standard streams (or -1: no
            // direction), which libkrun duplicates when the VM starts.
            let ret = unsafe {
                sys::krun_add_console_port_inout(self.id, console, name.as_ptr(), input, output)
            };
            check("krun_add_console_port_inout", ret)?;
        }
        Ok(())
    }

    /// Starts the VM. On success this never returns: libkrun ends the
    /// process with the workload's exit code. What comes back is the
    /// failure to start.
    pub fn start_enter(self) -> Error {
        let id = self.id;
        // The context is consumed by libkrun, so it must not be freed.
        std::mem::forget(self);
        // SAFETY: `id` is a configured context; libkrun takes it over.
        let ret = unsafe { sys::krun_start_enter(id) };
        match check("krun_start_enter", ret) {
            Err(e) => e,
            Ok(_) => Error::Call {
                function: "krun_start_enter",
                errno: nix::errno::Errno::UnknownErrno,
            },
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the id came from krun_create_ctx and is freed only here.
        unsafe { sys::krun_free_ctx(self.id) };
    }
}

fn cstring(what: &'static str, s: &str) -> Result<CString, Error> {
    CString::new(s).map_err(|source| Error::Nul { what, source })
}

fn path_cstring(what: &'static str, path: &Path) -> Result<CString, Error> {
    CString::new(path.as_os_str().as_bytes()).map_err(|source| Error::Nul { what, source })
}

/// A NULL-terminated `char *[]` whose strings it owns.
struct CStringArray {
    _strings: Vec<CString>,
    pointers: Vec<*const c_char>,
}

impl CStringArray {
    fn new(what: &'static str, items: &[String]) -> Result<Self, Error> {
        let strings = items
            .iter()
            .map(|s| cstring(what, s))
            .collect::<Result<Vec<_>, _>>()?;
        let pointers = strings
            .iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(ptr::null()))
            .collect();
        Ok(Self {
            _strings: strings,
            pointers,
        })
    }

    fn as_ptr(&self) -> *const *const c_char {
        self.pointers.as_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_is_created_configured_and_freed() {
        let mut ctx = Context::new().expect("krun_create_ctx");
        ctx.set_vm_config(1, 256).expect("set_vm_config");
        ctx.set_exec("/bin/true", &[], &[]).expect("set_exec");
        ctx.set_workdir("/").expect("set_workdir");
    }

    #[test]
    fn zero_vcpus_is_rejected_before_libkrun() {
        let mut ctx = Context::new().unwrap();
        assert!(matches!(
            ctx.set_vm_config(0, 256),
            Err(Error::OutOfRange { .. })
        ));
    }

    #[test]
    fn nul_in_argument_is_a_typed_error() {
        let mut ctx = Context::new().unwrap();
        let err = ctx
            .set_exec("/bin/echo", &["a\0b".to_owned()], &[])
            .unwrap_err();
        assert!(matches!(
            err,
            Error::Nul {
                what: "argument",
                ..
            }
        ));
    }

    #[test]
    fn missing_root_directory_is_reported_by_errno_or_accepted() {
        // libkrun checks nothing here; the runner checks the rootfs before.
        let mut ctx = Context::new().unwrap();
        let _ = ctx.set_root(Path::new("/nonexistent"));
    }

    #[test]
    fn array_is_null_terminated() {
        let arr = CStringArray::new("x", &["a".to_owned(), "b".to_owned()]).unwrap();
        assert_eq!(arr.pointers.len(), 3);
        assert!(arr.pointers[2].is_null());
    }
}
