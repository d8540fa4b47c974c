//! The guest agent binary that the host injects into every VM it manages:
//! served from memory into the root filesystem with libkrun's overlay
//! API, so the user's rootfs is not touched.
//!
//! `build.rs` builds it (a static Linux binary) and embeds it here.

/// Where the agent appears in the guest.
pub const GUEST_PATH: &str = "/.krunbox-agent";

#[cfg(krunbox_agent_embedded)]
static AGENT: &[u8] = include_bytes!(env!("KRUNBOX_AGENT_PATH"));

/// The agent's bytes, when this build embeds one.
pub fn bytes() -> Option<&'static [u8]> {
    #[cfg(krunbox_agent_embedded)]
    return Some(AGENT);
    #[cfg(not(krunbox_agent_embedded))]
    return None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_agent_is_a_static_elf() {
        let bytes = bytes().expect("Linux builds embed the agent");
        assert_eq!(&bytes[..4], b"\x7fELF");
        // A static binary has no PT_INTERP (no dynamic loader to name).
        assert!(
            !bytes.windows(b"ld-linux".len()).any(|w| w == b"ld-linux"),
            "the agent must not need the dynamic loader"
        );
    }
}
