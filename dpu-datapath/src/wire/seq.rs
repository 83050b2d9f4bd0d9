//! TCP sequence numbers: arithmetic modulo 2^32 and RFC 1982 serial-number comparison.

use core::borrow::Borrow;
use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A TCP sequence (or acknowledgement) number.
///
/// Only `PartialOrd` is provided: modular order is not transitive, and two numbers exactly
/// 2^31 apart are incomparable (every comparison between them is false).
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// `self < other` in sequence space. Accepts `other` by value or by reference, so it reads
    /// the same as `PartialOrd::lt` which it shadows.
    pub fn lt(self, other: impl Borrow<SeqNumber>) -> bool {
        self.partial_cmp(other.borrow()) == Some(Ordering::Less)
    }

    /// `self <= other` in sequence space.
    pub fn le(self, other: impl Borrow<SeqNumber>) -> bool {
        matches!(
            self.partial_cmp(other.borrow()),
            Some(Ordering::Less | Ordering::Equal)
        )
    }

    /// `self > other` in sequence space.
    pub fn gt(self, other: impl Borrow<SeqNumber>) -> bool {
        self.partial_cmp(other.borrow()) == Some(Ordering::Greater)
    }

    /// `self >= other` in sequence space.
    pub fn ge(self, other: impl Borrow<SeqNumber>) -> bool {
        matches!(
            self.partial_cmp(other.borrow()),
            Some(Ordering::Greater | Ordering::Equal)
        )
    }

    /// The later of the two; `self` when they are incomparable.
    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if self.lt(other) {
            other
        } else {
            self
        }
    }

    /// The earlier of the two; `self` when they are incomparable.
    pub fn min(self, other: SeqNumber) -> SeqNumber {
        if self.gt(other) {
            other
        } else {
            self
        }
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match *self - *other {
            // Exactly half the space apart: RFC 1982 leaves this undefined.
            i32::MIN => None,
            distance => Some(distance.cmp(&0)),
        }
    }
}

impl Add<u32> for SeqNumber {
    type Output = SeqNumber;
    fn add(self, rhs: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(rhs))
    }
}

impl Add<usize> for SeqNumber {
    type Output = SeqNumber;
    fn add(self, rhs: usize) -> SeqNumber {
        // Truncating is exact here: the result is taken modulo 2^32 anyway.
        SeqNumber(self.0.wrapping_add(rhs as u32))
    }
}

impl AddAssign<u32> for SeqNumber {
    fn add_assign(&mut self, rhs: u32) {
        *self = *self + rhs;
    }
}

impl AddAssign<usize> for SeqNumber {
    fn add_assign(&mut self, rhs: usize) {
        *self = *self + rhs;
    }
}

impl Sub<u32> for SeqNumber {
    type Output = SeqNumber;
    fn sub(self, rhs: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(rhs))
    }
}

/// Signed distance `self - rhs`: positive when `self` is after `rhs` (within 2^31).
impl Sub<SeqNumber> for SeqNumber {
    type Output = i32;
    fn sub(self, rhs: SeqNumber) -> i32 {
        self.0.wrapping_sub(rhs.0).cast_signed()
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEAR_WRAP: SeqNumber = SeqNumber(u32::MAX - 2);

    #[test]
    fn ordering_across_wrap() {
        let after = NEAR_WRAP + 5u32; // wrapped to 2
        assert_eq!(after, SeqNumber(2));
        assert!(NEAR_WRAP.lt(after));
        assert!(NEAR_WRAP < after);
        assert!(after.gt(NEAR_WRAP));
        // The by-reference form `PartialOrd::ge` callers write must still compile.
        let by_ref = &NEAR_WRAP;
        assert!(after.ge(by_ref));
        assert!(NEAR_WRAP.le(NEAR_WRAP));
        assert!(NEAR_WRAP.ge(NEAR_WRAP));
        assert!(!NEAR_WRAP.lt(NEAR_WRAP));
        assert_eq!(after - NEAR_WRAP, 5);
        assert_eq!(NEAR_WRAP - after, -5);
        assert_eq!(after - 5u32, NEAR_WRAP);
    }

    #[test]
    fn half_space_apart_is_incomparable() {
        let a = SeqNumber(7);
        let b = a + (1u32 << 31);
        assert_eq!(a.partial_cmp(&b), None);
        assert_eq!(b.partial_cmp(&a), None);
        assert!(!a.lt(b) && !a.gt(b) && !a.le(b) && !a.ge(b));
        assert_eq!(a.max(b), a);
        assert_eq!(a.min(b), a);
    }

    #[test]
    fn max_min_and_add_assign() {
        let mut s = NEAR_WRAP;
        s += 10u32;
        assert_eq!(s.max(NEAR_WRAP), s);
        assert_eq!(s.min(NEAR_WRAP), NEAR_WRAP);
        s += 3usize;
        assert_eq!(s, SeqNumber(10));
        assert_eq!(NEAR_WRAP + 3usize, SeqNumber(0));
        assert_eq!(SeqNumber(1) + (u32::MAX as usize + 2), SeqNumber(2));
        assert_eq!(s.to_string(), "10");
    }
}
