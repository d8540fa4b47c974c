//! The egress process's own filesystem fence (Landlock), applied once it
//! holds everything it opens for good (the pair, its listeners, the
//! events file): from then on it may only read what the host's resolver
//! reads.
//!
//! | path | access |
//! |---|---|
//! | `/etc` (resolv.conf, hosts, nsswitch.conf, gai.conf) | read |
//! | `/lib`, `/lib64`, `/usr/lib` (NSS modules glibc loads) | read |
//! | `/run/systemd/resolve` (where a resolved host's resolv.conf points) | read |
//!
//! Nothing else can be opened, made or removed, and nothing executed.
//! Best effort, as the runner's own: an older kernel applies what it has,
//! one without Landlock nothing.

use std::path::Path;

use landlock::{
    Access, AccessFs, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError,
    ABI,
};

/// The directories the resolver may read, those that exist.
const READABLE: [&str; 5] = ["/etc", "/lib", "/lib64", "/usr/lib", "/run/systemd/resolve"];

/// Fences the calling process (single-threaded: before its runtime).
pub fn restrict() -> Result<(), RulesetError> {
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) takes integers only; Landlock
    // needs it without CAP_SYS_ADMIN (the runner set it already).
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    let abi = ABI::V5;
    let read = AccessFs::from_read(abi) & !AccessFs::Execute;
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))?
        .create()?;
    for dir in READABLE.iter().map(Path::new).filter(|d| d.is_dir()) {
        if let Ok(fd) = PathFd::new(dir) {
            ruleset = ruleset.add_rule(PathBeneath::new(fd, read))?;
        }
    }
    ruleset.restrict_self().map(drop)
}
