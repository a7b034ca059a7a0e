//! The bytes a segment carries and the bytes a TCP end holds unread, kept inline when small:
//! with thousands of connections, a separate allocation was a cache miss on every delivery
//! and read.

use std::collections::VecDeque;

/// A segment's bytes: small ones (most of them) inline, so sending allocates nothing.
#[derive(Debug)]
pub(super) enum Chunk {
    Inline { len: u8, bytes: [u8; CHUNK_INLINE] },
    Heap(Vec<u8>),
}

/// Copy `src`, at most 32 bytes, to the front of `dst`. A `copy_from_slice` of a length known
/// only at run time is a call to `memcpy`, which costs more than copying a small message; two
/// overlapping fixed-size copies cover any length in a range.
#[inline(always)]
pub(super) fn copy_short(dst: &mut [u8], src: &[u8]) {
    let len = src.len();
    debug_assert!(len <= 32 && len <= dst.len(), "copy_short of {len} bytes");
    if len >= 16 {
        dst[..16].copy_from_slice(&src[..16]);
        dst[len - 16..len].copy_from_slice(&src[len - 16..]);
    } else if len >= 8 {
        dst[..8].copy_from_slice(&src[..8]);
        dst[len - 8..len].copy_from_slice(&src[len - 8..]);
    } else if len >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[len - 4..len].copy_from_slice(&src[len - 4..]);
    } else if len > 0 {
        // First, middle and last byte: every one of 1 to 3 bytes.
        dst[0] = src[0];
        dst[len / 2] = src[len / 2];
        dst[len - 1] = src[len - 1];
    }
}

/// Bytes a segment carries inline.
pub(super) const CHUNK_INLINE: usize = 22;

impl Chunk {
    pub(super) fn as_slice(&self) -> &[u8] {
        match self {
            Chunk::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Chunk::Heap(bytes) => bytes,
        }
    }
}

/// Bytes a receive buffer keeps inline before it moves to the heap.
pub(super) const RECV_INLINE: usize = 30;

/// The bytes delivered to a TCP end and not yet read. Most reads take whole small messages,
/// so up to [`RECV_INLINE`] bytes sit inside the end itself: delivering and reading them
/// touches no separate allocation (with thousands of connections, that allocation was a
/// cache miss on every delivery and every read). More moves them to a `VecDeque`, which
/// stays.
pub(super) enum RecvBuf {
    Inline { len: u8, bytes: [u8; RECV_INLINE] },
    Heap(VecDeque<u8>),
}

impl Default for RecvBuf {
    fn default() -> Self {
        RecvBuf::Inline {
            len: 0,
            bytes: [0; RECV_INLINE],
        }
    }
}

impl RecvBuf {
    pub(super) fn len(&self) -> usize {
        match self {
            RecvBuf::Inline { len, .. } => usize::from(*len),
            RecvBuf::Heap(queue) => queue.len(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append `data` after the bytes already here.
    pub(super) fn push(&mut self, data: &[u8]) {
        match self {
            RecvBuf::Inline { len, bytes } => {
                let held = usize::from(*len);
                if held + data.len() <= RECV_INLINE {
                    copy_short(&mut bytes[held..], data);
                    *len = (held + data.len()) as u8;
                } else {
                    let mut queue = VecDeque::with_capacity(held + data.len());
                    queue.extend(&bytes[..held]);
                    queue.extend(data);
                    *self = RecvBuf::Heap(queue);
                }
            }
            RecvBuf::Heap(queue) => queue.extend(data),
        }
    }

    /// Move the oldest bytes into `buf`, as many as fit; returns how many.
    pub(super) fn take_into(&mut self, buf: &mut [u8]) -> usize {
        match self {
            RecvBuf::Inline { len, bytes } => {
                let held = usize::from(*len);
                let count = buf.len().min(held);
                copy_short(buf, &bytes[..count]);
                if count < held {
                    bytes.copy_within(count..held, 0);
                }
                *len = (held - count) as u8;
                count
            }
            RecvBuf::Heap(queue) => {
                let count = buf.len().min(queue.len());
                let (front, back) = queue.as_slices();
                let from_front = count.min(front.len());
                buf[..from_front].copy_from_slice(&front[..from_front]);
                buf[from_front..count].copy_from_slice(&back[..count - from_front]);
                queue.drain(..count);
                count
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::copy_short;

    #[test]
    fn copy_short_copies_every_length() {
        let source: Vec<u8> = (1..=32).collect();
        for len in 0..=32 {
            let mut target = [0u8; 32];
            copy_short(&mut target, &source[..len]);
            assert_eq!(&target[..len], &source[..len], "length {len}");
            assert!(target[len..].iter().all(|&byte| byte == 0), "length {len}");
        }
    }
}
