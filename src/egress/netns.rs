//! The runner's side of the egress wall: a network namespace whose only
//! device is `lo`, and the listening sockets the egress process serves.
//!
//! ```text
//! lo: 127.0.0.1/8, 198.18.0.1/15   (an address on lo makes its prefix
//!                                   local: all of 198.18.0.0/15 is "here")
//! routes: none other               (any other address: ENETUNREACH, at once)
//! ```
//!
//! [`enter`] moves the calling process into such a namespace. It must be
//! single-threaded (`unshare(CLONE_NEWUSER)` refuses a threaded caller):
//! the runner calls it before its first thread. Where the caller may not
//! make a network namespace by itself (not root, nor root of the user
//! namespace it is in), it makes a user namespace with it, in which its
//! uid and gid map to themselves, so `/dev/kvm` and the rootfs keep their
//! permission checks.
//!
//! [`Listeners::open`] then makes the sockets of [`GATEWAY`] inside: a
//! listening socket keeps the namespace it was made in, so the egress
//! process, which stayed outside, accepts the guest's connections from it
//! and dials upstream from the host's namespace.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};

/// The address the guest's proxy and DNS server have: the first of
/// 198.18.0.0/15 (RFC 2544's benchmarking range, used by no real host).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The prefix length of the range made local on `lo`.
pub const PREFIX_LEN: u8 = 15;
/// The HTTP(S) proxy's port at [`GATEWAY`].
pub const PROXY_PORT: u16 = 3128;
/// The DNS server's port at [`GATEWAY`] (UDP).
pub const DNS_PORT: u16 = 53;

/// The namespace could not be made or set up.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `unshare` refused.
    #[error(
        "cannot make a network namespace (with a user namespace: user namespaces may be \
         disabled here: sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone)"
    )]
    Unshare(#[source] io::Error),
    /// The user namespace's id maps could not be written.
    #[error("cannot map the runner's uid and gid in its user namespace")]
    IdMap(#[source] io::Error),
    /// `lo` could not be brought up or given the gateway's range.
    #[error("cannot set up the namespace's loopback device ({step})")]
    Loopback {
        /// Which step.
        step: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A listening socket could not be made.
    #[error("cannot listen on {addr} in the namespace")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Moves the calling, single-threaded process into a network namespace of
/// its own with only `lo`, up, holding 127.0.0.0/8 and 198.18.0.0/15.
pub fn enter() -> Result<(), NetnsError> {
    // SAFETY: unshare takes a flag word and touches no memory of ours.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } < 0 {
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EPERM) {
            return Err(NetnsError::Unshare(error));
        }
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        // SAFETY: as above.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) } < 0 {
            return Err(NetnsError::Unshare(io::Error::last_os_error()));
        }
        map_ids(uid, gid).map_err(NetnsError::IdMap)?;
    }
    loopback_up()
}

fn map_ids(uid: u32, gid: u32) -> io::Result<()> {
    // A process that changed its uid (the runner dropping root) is not
    // dumpable, and its /proc/self files are root's: it could not write
    // its own maps. Dumpable for the three writes only.
    // SAFETY: prctl(PR_GET_DUMPABLE / PR_SET_DUMPABLE) takes integers.
    let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE) };
    // SAFETY: as above.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) };
    let written = (|| {
        std::fs::write("/proc/self/setgroups", "deny")?;
        std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1\n"))?;
        std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1\n"))
    })();
    if dumpable >= 0 {
        // SAFETY: as above.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, dumpable) };
    }
    written
}

/// Brings `lo` up and gives it [`GATEWAY`]/[`PREFIX_LEN`] as the alias
/// `lo:egress` (the legacy ioctls: three calls, no netlink needed). On a
/// loopback device the kernel makes an address's whole prefix local.
fn loopback_up() -> Result<(), NetnsError> {
    let step = |step| move |source| NetnsError::Loopback { step, source };
    // SAFETY: socket takes plain values; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(step("socket")(io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by socket and is owned only here.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);

    let mut lo = ifreq(b"lo");
    ioctl(fd, libc::SIOCGIFFLAGS, &mut lo).map_err(step("read lo's flags"))?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { lo.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    ioctl(fd, libc::SIOCSIFFLAGS, &mut lo).map_err(step("bring lo up"))?;

    let mut alias = ifreq(b"lo:egress");
    alias.ifr_ifru.ifru_addr = sockaddr(GATEWAY);
    ioctl(fd, libc::SIOCSIFADDR, &mut alias).map_err(step("add 198.18.0.1"))?;
    let mask = Ipv4Addr::from(u32::MAX << (32 - PREFIX_LEN));
    alias.ifr_ifru.ifru_netmask = sockaddr(mask);
    ioctl(fd, libc::SIOCSIFNETMASK, &mut alias).map_err(step("set the /15 mask"))
}

fn ifreq(name: &[u8]) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    req
}

fn sockaddr(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; the kernel
    // reads the former's layout from the latter for AF_INET.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn ioctl(fd: libc::c_int, request: libc::Ioctl, req: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: `req` is a live, initialised ifreq, which these requests
    // read and write; `fd` is an open socket.
    if unsafe { libc::ioctl(fd, request, req as *mut libc::ifreq) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The sockets the egress process serves, made inside the namespace.
#[derive(Debug)]
pub struct Listeners {
    /// The HTTP(S) proxy, [`GATEWAY`]:[`PROXY_PORT`].
    pub proxy: TcpListener,
    /// The DNS server, [`GATEWAY`]:[`DNS_PORT`] over UDP.
    pub dns: UdpSocket,
}

impl Listeners {
    /// Opens them, in the calling process's namespace.
    pub fn open() -> Result<Self, NetnsError> {
        let proxy_addr = SocketAddr::V4(SocketAddrV4::new(GATEWAY, PROXY_PORT));
        let dns_addr = SocketAddr::V4(SocketAddrV4::new(GATEWAY, DNS_PORT));
        let listen = |addr| move |source| NetnsError::Listen { addr, source };
        Ok(Self {
            proxy: TcpListener::bind(proxy_addr).map_err(listen(proxy_addr))?,
            dns: UdpSocket::bind(dns_addr).map_err(listen(dns_addr))?,
        })
    }
}
