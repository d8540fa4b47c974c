//! What this host offers for running libkrun guests: the KVM device and
//! the guest kernel library (libkrunfw). Used before every boot, so that a
//! VM that cannot start fails with a reason, and by `krunbox doctor`.

pub mod confinement;
pub mod krunfw;
pub mod kvm;
pub mod rootfs;

pub use confinement::HostConfinement;
pub use krunfw::{Libkrunfw, LibkrunfwError};
pub use kvm::Kvm;
pub use rootfs::default_rootfs_dir;
