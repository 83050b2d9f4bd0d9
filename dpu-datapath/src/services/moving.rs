//! What the services share to hand their connections to another owner
//! when a flow group moves (`pipeline/moves.rs`): take out the entries of
//! the leaving connections, and put arriving ones in under their new
//! handles.

use crate::app::ConnId;
use crate::engine::HandleMoves;
use std::collections::{HashMap, HashSet};

/// Takes out of `entries` those whose connection is in `leaving`.
pub(super) fn take_leaving<T>(
    entries: &mut Vec<T>,
    leaving: &[ConnId],
    id: impl Fn(&T) -> ConnId,
) -> Vec<T> {
    if leaving.is_empty() {
        return Vec::new();
    }
    let leaving: HashSet<ConnId> = leaving.iter().copied().collect();
    let (out, stay) = std::mem::take(entries)
        .into_iter()
        .partition(|e| leaving.contains(&id(e)));
    *entries = stay;
    out
}

/// Puts arriving entries into `entries` under their connections' new
/// handles (an entry whose connection did not arrive is dropped).
pub(super) fn put_arriving<T>(
    entries: &mut Vec<T>,
    arriving: Vec<T>,
    moves: &HandleMoves,
    id: impl Fn(&mut T) -> &mut ConnId,
) {
    if arriving.is_empty() {
        return;
    }
    let new_id: HashMap<ConnId, ConnId> = moves.iter().copied().collect();
    for mut e in arriving {
        let slot = id(&mut e);
        if let Some(&new) = new_id.get(slot) {
            *slot = new;
            entries.push(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u32) -> ConnId {
        ConnId {
            index: i,
            generation: 1,
        }
    }

    #[test]
    fn leaving_entries_arrive_under_their_new_handles() {
        let mut here = vec![(id(1), "a"), (id(2), "b"), (id(3), "c")];
        let out = take_leaving(&mut here, &[id(3), id(1), id(9)], |e| e.0);
        assert_eq!(here, vec![(id(2), "b")]);
        assert_eq!(out, vec![(id(1), "a"), (id(3), "c")]);
        let mut there = vec![(id(1), "x")];
        put_arriving(
            &mut there,
            out,
            &vec![(id(1), id(7)), (id(3), id(8))],
            |e| &mut e.0,
        );
        assert_eq!(there, vec![(id(1), "x"), (id(7), "a"), (id(8), "c")]);
    }
}
