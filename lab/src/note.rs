//! Notes from the command to the host: lines sent on the lab's status
//! port, which reach the host as they are written, so they survive a lab
//! that dies before the command ends (its stdout does too, but mixed with
//! everything else the command prints).

use std::fs::OpenOptions;
use std::io::{self, Write};

/// The variable the lab sets to the port notes are written to.
pub const NOTES_VAR: &str = "KRUNBOX_LAB_NOTES";

/// Sends `text` to the host as one note, when running inside a lab; does
/// nothing elsewhere. The host gets it in [`LabRun::notes`], or in
/// [`LabError::NoExitStatus`] when the lab dies first.
///
/// Newlines in `text` become spaces: a note is one line.
///
/// [`LabRun::notes`]: crate::LabRun::notes
/// [`LabError::NoExitStatus`]: crate::LabError::NoExitStatus
pub fn note(text: &str) -> io::Result<()> {
    let Some(port) = std::env::var_os(NOTES_VAR) else {
        return Ok(());
    };
    let line = format!("note {}\n", text.replace(['\n', '\r'], " "));
    // One write per line, so notes from one process never interleave.
    OpenOptions::new()
        .append(true)
        .open(port)?
        .write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_one_line_on_the_port() {
        let dir = tempfile::tempdir().unwrap();
        let port = dir.path().join("port");
        std::fs::write(&port, "").unwrap();
        // Tests in this crate run in threads of one process: this is the
        // only test that sets the variable.
        std::env::set_var(NOTES_VAR, &port);
        note("case-end a::b ok").unwrap();
        note("two\nlines").unwrap();
        std::env::remove_var(NOTES_VAR);
        note("not sent").unwrap();
        assert_eq!(
            std::fs::read_to_string(&port).unwrap(),
            "note case-end a::b ok\nnote two lines\n"
        );
    }
}
