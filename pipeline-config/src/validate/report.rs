//! Collects every problem found during validation, with the common checks.

use std::fmt::Display;
use std::ops::RangeInclusive;

use crate::{ConfigError, ConfigErrors};

/// Accumulates errors; each check returns whether the value passed so that
/// cross-field checks can skip values already reported.
#[derive(Debug, Default)]
pub(crate) struct Report {
    errors: Vec<ConfigError>,
}

impl Report {
    pub(crate) fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(path, message));
    }

    /// Records `result`'s error, if any, and returns the value.
    pub(crate) fn take<T>(&mut self, result: Result<T, ConfigError>) -> Option<T> {
        result.map_err(|error| self.errors.push(error)).ok()
    }

    /// `X is out of range A..=B`.
    pub(crate) fn range<T>(&mut self, path: &str, value: T, range: RangeInclusive<T>) -> bool
    where
        T: PartialOrd + Display,
    {
        let ok = range.contains(&value);
        if !ok {
            let (low, high) = range.into_inner();
            self.error(path, format!("{value} is out of range {low}..={high}"));
        }
        ok
    }

    /// A finite probability: `X is out of range 0.0..=1.0`.
    pub(crate) fn probability(&mut self, path: &str, value: f64) -> bool {
        let ok = (0.0..=1.0).contains(&value);
        if !ok {
            self.error(path, format!("{value:?} is out of range 0.0..=1.0"));
        }
        ok
    }

    /// In `range` (whose bounds are powers of two), then a power of two:
    /// `X is not a power of two; use A or B`.
    pub(crate) fn power_of_two(
        &mut self,
        path: &str,
        value: u64,
        range: RangeInclusive<u64>,
    ) -> bool {
        if !self.range(path, value, range) {
            return false;
        }
        let ok = value.is_power_of_two();
        if !ok {
            let above = value.next_power_of_two();
            self.error(
                path,
                format!(
                    "{value} is not a power of two; use {} or {above}",
                    above / 2
                ),
            );
        }
        ok
    }

    pub(crate) fn finish(self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}
