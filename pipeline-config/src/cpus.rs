//! Which CPU ids exist on this machine, for validating `topology.cores`.

use std::fmt;

/// A set of CPU ids, kept as sorted, disjoint inclusive ranges.
///
/// Displays in the kernel's list format, e.g. `0-1` or `0-3,8,10-11`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSet {
    ranges: Vec<(u32, u32)>,
}

impl CpuSet {
    /// The CPUs online on this machine: `/sys/devices/system/cpu/online` when
    /// readable, otherwise `0..available_parallelism()`, otherwise just CPU 0.
    pub fn online() -> CpuSet {
        std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|text| CpuSet::parse(&text))
            .unwrap_or_else(|| {
                let count = std::thread::available_parallelism().map_or(1, |n| n.get());
                let last = u32::try_from(count - 1).unwrap_or(u32::MAX);
                CpuSet {
                    ranges: vec![(0, last)],
                }
            })
    }

    /// Parses the kernel's CPU list format (`0-3,8,10-11`); `None` if it is
    /// malformed or empty.
    pub fn parse(text: &str) -> Option<CpuSet> {
        let mut ranges = Vec::new();
        for item in text.trim().split(',') {
            let (first, last) = match item.split_once('-') {
                Some((first, last)) => (first.parse().ok()?, last.parse().ok()?),
                None => {
                    let cpu = item.parse().ok()?;
                    (cpu, cpu)
                }
            };
            if first > last {
                return None;
            }
            ranges.push((first, last));
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (first, last) in ranges {
            match merged.last_mut() {
                Some(prev) if first <= prev.1.saturating_add(1) => prev.1 = prev.1.max(last),
                _ => merged.push((first, last)),
            }
        }
        Some(CpuSet { ranges: merged })
    }

    /// The CPUs this process may run on (its affinity, which `taskset`, a
    /// cgroup cpuset or a container's `--cpuset-cpus` narrow):
    /// `Cpus_allowed_list` of `/proc/self/status` when readable, otherwise
    /// [`CpuSet::online`].
    pub fn allowed() -> CpuSet {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                    .and_then(CpuSet::parse)
            })
            .unwrap_or_else(CpuSet::online)
    }

    /// The CPU ids, ascending.
    pub fn cpus(&self) -> Vec<u32> {
        self.ranges
            .iter()
            .flat_map(|&(first, last)| first..=last)
            .collect()
    }

    /// Whether CPU `cpu` is in the set.
    pub fn contains(&self, cpu: u32) -> bool {
        self.ranges
            .iter()
            .any(|&(first, last)| (first..=last).contains(&cpu))
    }
}

impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(first, last)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if first == last {
                write!(f, "{first}")?;
            } else {
                write!(f, "{first}-{last}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::CpuSet;

    #[test]
    fn parses_kernel_lists() {
        let set = CpuSet::parse("0-3,8,10-11\n").unwrap();
        assert_eq!(set.to_string(), "0-3,8,10-11");
        assert!(set.contains(3) && set.contains(8) && set.contains(11));
        assert!(!set.contains(4) && !set.contains(9) && !set.contains(12));
        assert_eq!(CpuSet::parse("2,0-1").unwrap().to_string(), "0-2");
        for bad in ["", "a", "3-1", "0-", "0,,1"] {
            assert_eq!(CpuSet::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn online_contains_cpu_zero() {
        assert!(CpuSet::online().contains(0));
    }

    #[test]
    fn allowed_is_within_online_and_lists_its_cpus() {
        let (allowed, online) = (CpuSet::allowed(), CpuSet::online());
        let cpus = allowed.cpus();
        assert!(!cpus.is_empty());
        assert!(
            cpus.iter().all(|&c| online.contains(c)),
            "{allowed} vs {online}"
        );
        assert!(cpus.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(CpuSet::parse("0-2,8").unwrap().cpus(), vec![0, 1, 2, 8]);
    }
}
