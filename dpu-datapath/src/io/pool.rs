//! Reused frame buffers, so steady-state packet I/O does not allocate.

/// A stack of spare `Vec<u8>` frame buffers.
#[derive(Debug, Default)]
pub struct FramePool {
    spare: Vec<Vec<u8>>,
    /// Buffers kept at most; more are freed on `put`.
    cap: usize,
}

impl FramePool {
    /// A pool that keeps up to `cap` spare buffers.
    pub fn new(cap: usize) -> Self {
        FramePool {
            spare: Vec::with_capacity(cap),
            cap,
        }
    }

    /// An empty buffer (a spare one when available).
    pub fn get(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_default()
    }

    /// Returns a buffer for reuse.
    pub fn put(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < self.cap {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// Spare buffers held now.
    pub fn len(&self) -> usize {
        self.spare.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spare.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_allocations_up_to_cap() {
        let mut pool = FramePool::new(1);
        let mut a = pool.get();
        a.extend_from_slice(&[1, 2, 3]);
        let ptr = a.as_ptr();
        pool.put(a);
        pool.put(vec![9; 10]); // over cap: freed
        assert_eq!(pool.len(), 1);
        let b = pool.get();
        assert!(b.is_empty());
        assert_eq!(b.as_ptr(), ptr);
        assert!(pool.is_empty());
    }
}
