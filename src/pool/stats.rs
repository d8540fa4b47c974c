//! [`PoolStats`]: what a pool holds and has done.

/// A pool's state and counters at one moment ([`super::Pool::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// How many VMs the pool keeps idle.
    pub size: usize,
    /// VMs booted and waiting for a lease.
    pub idle: usize,
    /// Boots under way (the refill's and cold acquires').
    pub booting: usize,
    /// Leases served by an idle VM.
    pub warm_leases: u64,
    /// Leases that had to boot their VM.
    pub cold_leases: u64,
    /// Idle VMs that died before a lease (killed from outside, crashed)
    /// and were replaced.
    pub idle_lost: u64,
    /// The refill's boots that failed.
    pub boot_failures: u64,
    /// The refill's last failure, with its causes, while it is failing.
    pub failing: Option<String>,
    /// The runner process of each idle VM.
    pub idle_runners: Vec<u32>,
    /// Memory the idle VMs' runners hold resident (guest memory the
    /// guests touched, and the runners' own), in bytes.
    pub idle_resident_bytes: u64,
}

/// The resident memory of process `pid`, in bytes (`None` once gone).
pub(super) fn resident_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the running kernel; no pointers.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_resident_memory() {
        let mine = resident_bytes(std::process::id()).expect("our own statm");
        assert!(mine > 0 && mine.is_multiple_of(page_size()), "{mine}");
        assert_eq!(resident_bytes(u32::MAX), None);
    }
}
