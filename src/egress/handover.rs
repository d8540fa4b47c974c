//! Handing the namespace's [`Listeners`] from the runner to the egress
//! process, over a unix socket pair, as `SCM_RIGHTS`.
//!
//! One message: the byte `b'L'` with two descriptors, the proxy's
//! listener first, then the DNS socket. Anything else is refused.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use super::netns::Listeners;

const TAG: u8 = b'L';

/// Sends `listeners` over `channel`.
pub fn send(channel: &UnixStream, listeners: &Listeners) -> io::Result<()> {
    let fds = [listeners.proxy.as_raw_fd(), listeners.dns.as_raw_fd()];
    let control = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(
        channel.as_raw_fd(),
        &[IoSlice::new(&[TAG])],
        &control,
        MsgFlags::empty(),
        None,
    )
    .map_err(io::Error::from)?;
    Ok(())
}

/// Receives the listeners [`send`] sent; blocks until they come. An end
/// of the channel first (the runner failed before it could send) is
/// `UnexpectedEof`.
pub fn receive(channel: &UnixStream) -> io::Result<Listeners> {
    let (tag, mut fds, truncated) = receive_tag(channel)?;
    if tag != TAG || fds.len() != 2 || truncated {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the runner's hand-over was not one tag and two descriptors",
        ));
    }
    let dns = fds.pop().expect("two descriptors");
    let proxy = fds.pop().expect("two descriptors");
    Ok(Listeners {
        proxy: proxy.into(),
        dns: dns.into(),
    })
}

/// One message of one tag byte, and the descriptors it carried (at most
/// two kept; `true` when the kernel had to drop some). An end of the
/// channel is `UnexpectedEof`.
pub(crate) fn receive_tag(channel: &UnixStream) -> io::Result<(u8, Vec<OwnedFd>, bool)> {
    let mut tag = [0u8; 1];
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let mut iov = [IoSliceMut::new(&mut tag)];
    let message = recvmsg::<()>(
        channel.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let mut fds = Vec::new();
    for cmsg in message.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            // SAFETY: the kernel just installed these descriptors in this
            // process for this message; nothing else owns them.
            fds.extend(
                received
                    .into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if message.bytes == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let truncated = message.flags.contains(MsgFlags::MSG_CTRUNC);
    Ok((tag[0], fds, truncated))
}
