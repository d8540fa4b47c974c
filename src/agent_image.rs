//! The guest agent binary that the host injects into every VM it manages
//! (served from memory into the root filesystem, the user's rootfs is not
//! touched).

/// Where the agent appears in the guest.
pub const GUEST_PATH: &str = "/.krunbox-agent";

/// The agent's bytes, when this build embeds one.
pub fn bytes() -> Option<&'static [u8]> {
    None
}
