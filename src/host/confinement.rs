//! What this host's kernel offers to confine a VM's runner with
//! (`krunbox doctor` reports it; the runner applies it, see
//! `krunbox::runner::Confinement`).

/// The kernel's confinement mechanisms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfinement {
    /// Landlock's ABI version, or why there is none.
    pub landlock: Result<u32, &'static str>,
    /// Whether the kernel filters system calls with seccomp.
    pub seccomp: bool,
}

/// The Landlock ABI krunbox's rules use in full.
pub const LANDLOCK_ABI_USED: u32 = 5;

impl HostConfinement {
    /// Asks the kernel.
    pub fn probe() -> Self {
        Self {
            landlock: landlock_abi(),
            seccomp: seccomp_filters(),
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        let landlock = match self.landlock {
            Ok(abi) if abi >= LANDLOCK_ABI_USED => format!("Landlock ABI {abi}"),
            Ok(abi) => format!(
                "Landlock ABI {abi} (rights of ABI {}..{LANDLOCK_ABI_USED} unchecked)",
                abi + 1
            ),
            Err(why) => format!("no Landlock ({why})"),
        };
        let seccomp = if self.seccomp {
            "seccomp filters"
        } else {
            "no seccomp filters"
        };
        format!("runner confinement: {landlock}, {seccomp}")
    }

    /// What to do when a mechanism is missing.
    pub fn advice(&self) -> Option<String> {
        match (&self.landlock, self.seccomp) {
            (Ok(_), true) => None,
            (Err(_), _) => Some(
                "VMs boot, but their runners' filesystem is not fenced: boot a kernel with \
                 CONFIG_SECURITY_LANDLOCK and `landlock` in its lsm= list"
                    .into(),
            ),
            (Ok(_), false) => Some(
                "VMs boot, but their runners' system calls are not filtered: boot a kernel \
                 with CONFIG_SECCOMP_FILTER"
                    .into(),
            ),
        }
    }
}

fn landlock_abi() -> Result<u32, &'static str> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag
    // the call only returns the ABI version (or an error); it touches no
    // memory of ours.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v > 0 {
        return Ok(v as u32);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EOPNOTSUPP) => Err("built in, but not enabled: see the kernel's lsm= list"),
        _ => Err("the kernel is built without it"),
    }
}

fn seccomp_filters() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Seccomp_filters:")))
        || std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
            .is_ok_and(|s| s.contains("trap"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_says_what_is_missing() {
        let old = HostConfinement {
            landlock: Ok(2),
            seccomp: true,
        };
        assert_eq!(
            old.describe(),
            "runner confinement: Landlock ABI 2 (rights of ABI 3..5 unchecked), seccomp filters"
        );
        assert!(old.advice().is_none());
        let none = HostConfinement {
            landlock: Err("the kernel is built without it"),
            seccomp: true,
        };
        assert!(none.advice().is_some_and(|a| a.contains("lsm=")));
    }
}
