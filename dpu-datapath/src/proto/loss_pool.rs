//! Spare [`LossState`]s, kept per thread. Each flow-group owner is one
//! thread, so this is the per-owner pool issue 13 asks for: a loss episode
//! takes a scoreboard from it and gives it back when the holes are filled,
//! without the allocator and without a lock.
#![forbid(unsafe_code)]

use super::LossState;
use std::cell::RefCell;

/// Spares kept at most per thread (112 B each); more go back to the
/// allocator.
const KEEP: usize = 1024;

thread_local! {
    // Boxes, not values: a flow holds its loss state boxed, and a spare
    // goes back to a flow as it is, without a copy or an allocation.
    #[allow(clippy::vec_box)]
    static SPARE: RefCell<Vec<Box<LossState>>> = const { RefCell::new(Vec::new()) };
}

/// An empty loss state, a spare one when the thread has it.
pub(super) fn take() -> Box<LossState> {
    SPARE
        .try_with(|s| s.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Returns an empty loss state for reuse.
pub(super) fn give(state: Box<LossState>) {
    debug_assert!(state.ooo.is_empty() && state.sacked.is_empty());
    let _ = SPARE.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < KEEP {
            s.push(state);
        }
    });
}

/// Spares held by this thread (for tests).
#[cfg(test)]
pub(super) fn spares() -> usize {
    SPARE.with(|s| s.borrow().len())
}
