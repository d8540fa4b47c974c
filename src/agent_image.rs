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

    /// Whether an ELF64 little-endian image has a PT_INTERP program
    /// header (it names a dynamic loader).
    fn has_interpreter(elf: &[u8]) -> bool {
        let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
        let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
        let (entsize, count) = (u16_at(0x36), u16_at(0x38));
        (0..count).any(|i| {
            let at = phoff + i * entsize;
            u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3
        })
    }

    #[test]
    fn embedded_agent_is_a_static_elf() {
        let bytes = bytes().expect("Linux builds embed the agent");
        assert_eq!(&bytes[..4], b"\x7fELF");
        assert_eq!(bytes[4], 2, "ELF64");
        assert!(
            !has_interpreter(bytes),
            "the agent must not need a dynamic loader (PT_INTERP)"
        );
    }
}
