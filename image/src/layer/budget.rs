//! A cap on how much of the stream the tar reader may take between two
//! entries' contents.
//!
//! The `tar` crate reads GNU long names, long link names and PAX records
//! into memory whole, whatever size their headers declare. A layer is
//! usually compressed, so a few bytes of it could declare gigabytes of
//! "long name". While the reader looks for the next entry the stream is
//! therefore capped at [`MAX_HEADER_BYTES`]; while an entry's content is
//! read it is not (its size was checked against the caller's limit).

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

/// Most bytes of the stream that one entry's headers may take: the padding
/// after the previous entry, its own header, long-name and long-link
/// records, PAX records and sparse maps.
pub(super) const MAX_HEADER_BYTES: u64 = 1 << 20;

/// The layer stream, capped while headers are read.
pub(super) struct HeaderCapped<R> {
    inner: R,
    /// Bytes still allowed before the next content, or `None` in content.
    left: Rc<Cell<Option<u64>>>,
}

/// Switches a [`HeaderCapped`] stream between headers and content.
pub(super) struct HeaderGate {
    left: Rc<Cell<Option<u64>>>,
}

/// Wraps `inner`; the gate starts it in content (uncapped).
pub(super) fn cap_headers<R: Read>(inner: R) -> (HeaderCapped<R>, HeaderGate) {
    let left = Rc::new(Cell::new(None));
    let gate = HeaderGate {
        left: Rc::clone(&left),
    };
    (HeaderCapped { inner, left }, gate)
}

impl HeaderGate {
    /// The reader is about to look for the next entry: cap it.
    pub(super) fn headers(&self) {
        self.left.set(Some(MAX_HEADER_BYTES));
    }

    /// An entry was found: its content may be read in full.
    pub(super) fn content(&self) {
        self.left.set(None);
    }
}

impl<R: Read> Read for HeaderCapped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(left) = self.left.get() else {
            return self.inner.read(buf);
        };
        if left == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the headers of one layer entry take more than 1 MiB",
            ));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left.set(Some(left - n as u64));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_capped_and_content_is_not() {
        let data = vec![7u8; MAX_HEADER_BYTES as usize + 10];
        let (mut capped, gate) = cap_headers(&data[..]);
        gate.headers();
        let mut sink = Vec::new();
        let err = capped.read_to_end(&mut sink).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(sink.len() as u64, MAX_HEADER_BYTES);
        gate.content();
        capped.read_to_end(&mut sink).unwrap();
        assert_eq!(sink.len(), data.len());
    }
}
