//! Connection handles as host applications see them: the owner (flow-group
//! engine) in the top byte, then the engine's slab index and generation.
//! Opaque to the application and checked on every use: a handle only works
//! for the application it was given to.

use crate::app::ConnId;

/// Slab indices above this do not fit a handle (engines hold far fewer).
const INDEX_MASK: u64 = 0xFF_FFFF;

/// The handle of connection `id` in owner `owner` (never 0).
pub fn encode(owner: usize, id: ConnId) -> u64 {
    debug_assert!(u64::from(id.index) <= INDEX_MASK && owner < 255);
    ((owner as u64 + 1) << 56)
        | ((u64::from(id.index) & INDEX_MASK) << 32)
        | u64::from(id.generation)
}

/// The owner and connection a handle names, if it is well formed for a
/// service with `owners` owners. Whether it belongs to the caller is the
/// caller's check.
pub fn decode(handle: u64, owners: usize) -> Option<(usize, ConnId)> {
    let owner = (handle >> 56) as usize;
    if owner == 0 || owner > owners {
        return None;
    }
    Some((
        owner - 1,
        ConnId {
            index: ((handle >> 32) & INDEX_MASK) as u32,
            generation: handle as u32,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let id = ConnId {
            index: 77,
            generation: 3,
        };
        let h = encode(2, id);
        assert_ne!(h, 0);
        assert_eq!(decode(h, 4), Some((2, id)));
        assert_eq!(decode(h, 2), None, "owner out of range");
        assert_eq!(decode(0, 4), None);
        assert_eq!(decode(u64::MAX, 4), None);
    }
}
