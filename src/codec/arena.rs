//! One buffer for the decoded payloads of one message.
//!
//! Decoding a message writes each payload's plaintext here, back to back,
//! instead of into a buffer of its own: the rewriter records where each one
//! is and writes the message out once. Decryption opens in place here and
//! snappy decompresses straight into the next free bytes.
//!
//! The bytes behind `used` are kept initialised between uses (the buffer's
//! length is its high-water mark): taking room there costs nothing, and the
//! zero-fill snappy's `decompress_vec` does for every payload happens only
//! where a buffer grows past anything it held before. A thread keeps one
//! buffer of up to [`KEEP`] bytes for its next message.

use std::{cell::RefCell, ops::Range, thread::LocalKey};

/// The largest buffer a thread keeps between messages.
const KEEP: usize = 1 << 20;

thread_local! {
    static SPARE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A thread's spare vector, kept between messages so its room is reused
/// (this arena's buffer, the rewriter's patch list).
pub(crate) type Spare<T> = LocalKey<RefCell<Vec<T>>>;

/// The thread's spare vector (empty when it has none).
pub(crate) fn take_spare<T>(spare: &'static Spare<T>) -> Vec<T> {
    spare.with(|s| std::mem::take(&mut *s.borrow_mut()))
}

/// Keeps `v`, contents as they are, as the thread's spare when it has room
/// for at most `max` elements and more room than the spare there is;
/// otherwise it is freed.
pub(crate) fn keep_spare<T>(spare: &'static Spare<T>, v: Vec<T>, max: usize) {
    if v.capacity() == 0 || v.capacity() > max {
        return;
    }
    spare.with(|s| {
        let mut s = s.borrow_mut();
        if s.capacity() < v.capacity() {
            *s = v;
        }
    });
}

/// Decoded bytes, addressed by range.
#[derive(Debug, Default)]
pub struct Arena {
    buf: Vec<u8>,
    used: usize,
}

impl Arena {
    /// The thread's spare buffer (or a new, empty one).
    pub fn take() -> Arena {
        Arena {
            buf: take_spare(&SPARE),
            used: 0,
        }
    }

    /// Hands the buffer back for the thread's next message, unless it grew
    /// past [`KEEP`] (then it is freed).
    pub fn give_back(&mut self) {
        // Its bytes stay initialised: the next user need not zero them.
        keep_spare(&SPARE, std::mem::take(&mut self.buf), KEEP);
        self.used = 0;
    }

    /// Bytes in use.
    pub fn used(&self) -> usize {
        self.used
    }

    /// `n` more bytes at the end (contents unspecified: bytes an earlier
    /// use left, or zeroes): their range.
    pub fn grow(&mut self, n: usize) -> Range<usize> {
        let start = self.used;
        let end = start + n;
        if end > self.buf.len() {
            self.buf.resize(end, 0);
        }
        self.used = end;
        start..end
    }

    /// A copy of `bytes` at the end: its range.
    pub fn push(&mut self, bytes: &[u8]) -> Range<usize> {
        let r = self.grow(bytes.len());
        self.buf[r.clone()].copy_from_slice(bytes);
        r
    }

    /// Gives back everything from `len` on.
    pub fn truncate(&mut self, len: usize) {
        self.used = self.used.min(len);
    }

    /// The bytes in `r` (a range this arena handed out).
    pub fn get(&self, r: Range<usize>) -> &[u8] {
        &self.buf[r]
    }

    /// The bytes in `r`, to change in place.
    pub fn get_mut(&mut self, r: Range<usize>) -> &mut [u8] {
        &mut self.buf[r]
    }

    /// Bytes in `from` to read and bytes in `to` to write, at once; `from`
    /// ends at or before `to` starts.
    pub fn split(&mut self, from: Range<usize>, to: Range<usize>) -> (&[u8], &mut [u8]) {
        let (lo, hi) = self.buf.split_at_mut(to.start);
        (&lo[from], &mut hi[..to.len()])
    }

    /// Where `inner` (a slice of this arena's bytes) lies, as a range.
    pub fn range_of(&self, inner: &[u8]) -> Option<Range<usize>> {
        let base = self.buf.as_ptr() as usize;
        let at = (inner.as_ptr() as usize).checked_sub(base)?;
        (at + inner.len() <= self.used).then_some(at..at + inner.len())
    }

    /// The bytes in `r` as a vector of their own (the buffer itself when
    /// `r` starts it).
    pub fn into_vec(mut self, r: Range<usize>) -> Vec<u8> {
        if r.start == 0 {
            let mut buf = std::mem::take(&mut self.buf);
            buf.truncate(r.end);
            buf
        } else {
            self.buf[r].to_vec()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_stay_put_and_room_is_reused_without_zeroing() {
        let mut a = Arena::default();
        let x = a.push(b"hello");
        let y = a.push(b"world");
        assert_eq!(
            (a.get(x.clone()), a.get(y.clone())),
            (&b"hello"[..], &b"world"[..])
        );
        a.truncate(x.end);
        // The room behind `used` keeps its bytes: no zero-fill on reuse.
        let z = a.grow(5);
        assert_eq!(z, y);
        assert_eq!(a.get(z), b"world");
        let (from, to) = a.split(x.clone(), 5..10);
        to.copy_from_slice(from);
        assert_eq!(a.get(5..10), b"hello");
        let elsewhere = a.get(1..3).to_owned();
        assert_eq!(a.range_of(&elsewhere), None);
        let inner = a.get(1..3);
        assert_eq!(a.range_of(inner), Some(1..3));
        assert_eq!(a.into_vec(0..5), b"hello");
    }

    #[test]
    fn a_thread_keeps_one_modest_buffer() {
        let mut a = Arena::take();
        a.push(&[7; 1000]);
        a.give_back();
        let b = Arena::take();
        assert!(b.buf.capacity() >= 1000 && b.used() == 0);
        let mut big = Arena::default();
        big.grow(KEEP + 1);
        big.give_back();
        assert_eq!(
            Arena::take().buf.capacity(),
            0,
            "a buffer over KEEP is freed"
        );
    }
}
