//! Output flow control for one exec: what was sent on each output stream
//! (declared in the stream's end-of-stream frame, so the host can tell a
//! complete stream from a cut one) and the window the host grants.
//!
//! With a window (the request's `output_window`), the agent sends at most
//! that many data bytes beyond what the host has granted back with
//! `Control::Credit`. While the window is closed it stops reading the
//! process's output, so the process blocks on its full pipe: a reader that
//! is slow or starts late slows the guest process down, and the bytes in
//! flight never exceed what the host socket buffers (libkrun's vsock
//! device would otherwise block on that socket, for every connection).

use krunbox_proto::{Control, Frame, FrameType, CHUNK_SIZE};

/// Sent bytes and granted window of one exec's output.
#[derive(Debug)]
pub struct OutputFlow {
    /// Total bytes the host has allowed so far; `None`: no limit.
    granted: Option<u64>,
    /// Data bytes sent, all streams.
    sent: u64,
    /// Data bytes sent per stream id.
    per_stream: Vec<(u32, u64)>,
}

impl OutputFlow {
    /// A flow with `window` bytes allowed before the first credit.
    pub fn new(window: Option<u32>) -> Self {
        Self {
            granted: window.map(u64::from),
            sent: 0,
            per_stream: Vec::new(),
        }
    }

    /// The host took `bytes` more off the connection.
    pub fn grant(&mut self, bytes: u64) {
        if let Some(granted) = &mut self.granted {
            *granted = granted.saturating_add(bytes);
        }
    }

    /// How many bytes may be read from the process and sent now; 0 while
    /// the window is closed.
    pub fn allowance(&self) -> usize {
        match self.granted {
            None => CHUNK_SIZE,
            Some(granted) => granted.saturating_sub(self.sent).min(CHUNK_SIZE as u64) as usize,
        }
    }

    /// Whether output may be read now.
    pub fn is_open(&self) -> bool {
        self.allowance() > 0
    }

    /// Records `len` data bytes sent on `stream`.
    pub fn record(&mut self, stream: u32, len: usize) {
        self.sent += len as u64;
        match self.per_stream.iter_mut().find(|(id, _)| *id == stream) {
            Some((_, total)) => *total += len as u64,
            None => self.per_stream.push((stream, len as u64)),
        }
    }

    /// The end-of-stream frame for `stream`, with its total.
    pub fn eof(&self, stream: u32) -> Frame {
        let total = self
            .per_stream
            .iter()
            .find(|(id, _)| *id == stream)
            .map_or(0, |(_, total)| *total);
        Frame::eof_counted(stream, total)
    }
}

/// Stdin on its way to the process: bytes from the host not yet written,
/// whether the host closed it, and (with the request's `stdin_window`)
/// the credit owed back to the host for bytes taken off its window.
///
/// With a window the host never has more than that many stdin bytes in
/// flight, so the agent can read every host frame as it comes (credits for
/// the output among them) while the process is not reading its stdin.
/// Without one, host frames wait while stdin bytes do.
#[derive(Debug, Default)]
pub struct StdinFlow {
    /// Bytes received, not yet written to the process.
    pub pending: Vec<u8>,
    /// The host sent end of stream; close once `pending` is written.
    close_requested: bool,
    window: Option<u32>,
    owed: u64,
}

impl StdinFlow {
    /// A flow with the host's stdin window, if it uses one.
    pub fn new(window: Option<u32>) -> Self {
        Self {
            window,
            ..Self::default()
        }
    }

    /// Whether host frames may be read now.
    pub fn takes_host_frames(&self) -> bool {
        self.window.is_some() || self.pending.is_empty()
    }

    /// Stdin bytes from the host: kept for the process, or (its stdin is
    /// closed) dropped and credited at once.
    pub fn push(&mut self, bytes: &[u8], stdin_open: bool) {
        if stdin_open {
            self.pending.extend_from_slice(bytes);
        } else {
            self.owed += bytes.len() as u64;
        }
    }

    /// The host closed stdin.
    pub fn request_close(&mut self) {
        self.close_requested = true;
    }

    /// Whether the process's stdin is to be closed now: the host closed it
    /// and everything it sent was written. True once.
    pub fn close_due(&mut self) -> bool {
        let due = self.close_requested && self.pending.is_empty();
        self.close_requested &= !due;
        due
    }

    /// `n` pending bytes were written to the process.
    pub fn wrote(&mut self, n: usize) {
        self.pending.drain(..n);
        self.owed += n as u64;
    }

    /// The process closed its stdin: what is pending is dropped.
    pub fn drop_pending(&mut self) {
        self.owed += self.pending.len() as u64;
        self.pending.clear();
    }

    /// The credit frame to send now, if one is due: half a window's worth
    /// taken, or everything written.
    pub fn credit_due(&mut self) -> Option<Frame> {
        let window = u64::from(self.window?);
        if self.owed == 0 || (self.owed < window / 2 && !self.pending.is_empty()) {
            return None;
        }
        let credit = Control::Credit { bytes: self.owed };
        self.owed = 0;
        Some(Frame::json(FrameType::Control, &credit).expect("a credit is small"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_window_output_always_flows() {
        let mut flow = OutputFlow::new(None);
        flow.record(1, 10 << 20);
        assert_eq!(flow.allowance(), CHUNK_SIZE);
    }

    #[test]
    fn the_window_closes_and_credit_reopens_it() {
        let mut flow = OutputFlow::new(Some(100));
        assert_eq!(flow.allowance(), 100);
        flow.record(1, 60);
        flow.record(2, 40);
        assert!(!flow.is_open());
        flow.grant(30);
        assert_eq!(flow.allowance(), 30);
    }

    #[test]
    fn end_of_stream_frames_declare_each_streams_total() {
        let mut flow = OutputFlow::new(None);
        flow.record(1, 5);
        flow.record(2, 7);
        flow.record(1, 5);
        assert_eq!(flow.eof(1).eof_total(), Some(10));
        assert_eq!(flow.eof(2).eof_total(), Some(7));
        assert_eq!(flow.eof(3).eof_total(), Some(0));
    }

    fn credited(frame: Option<Frame>) -> Option<u64> {
        match frame?.parse_json::<Control>().unwrap() {
            Control::Credit { bytes } => Some(bytes),
            other => panic!("not a credit: {other:?}"),
        }
    }

    #[test]
    fn stdin_credit_is_owed_for_bytes_written_or_dropped() {
        let mut stdin = StdinFlow::new(Some(100));
        assert!(stdin.takes_host_frames());
        stdin.push(&[0; 80], true);
        assert!(stdin.takes_host_frames(), "a window lets host frames in");
        stdin.wrote(30);
        assert_eq!(credited(stdin.credit_due()), None, "under half a window");
        stdin.wrote(30);
        assert_eq!(credited(stdin.credit_due()), Some(60));
        stdin.drop_pending();
        stdin.push(&[0; 5], false);
        assert_eq!(credited(stdin.credit_due()), Some(25));
    }

    #[test]
    fn without_a_stdin_window_host_frames_wait_and_nothing_is_credited() {
        let mut stdin = StdinFlow::new(None);
        stdin.push(b"abc", true);
        assert!(!stdin.takes_host_frames());
        stdin.wrote(3);
        assert!(stdin.takes_host_frames());
        assert!(stdin.credit_due().is_none());
    }
}
