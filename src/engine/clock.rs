//! A host's wall clock, as data: where it starts, how fast it runs against virtual time,
//! and the jumps it made. The monotonic clock is the kernel's alone and never moves back;
//! this one may.

/// Nanoseconds from the UNIX epoch to the simulation's wall-clock start, 2026-01-01T00:00:00Z.
pub(crate) const START_NS: i128 = 1_767_225_600 * 1_000_000_000;

/// One host's wall clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WallClock {
    /// Nanoseconds ahead of (positive) or behind (negative) the simulation's wall time.
    pub(crate) offset_ns: i64,
    /// Parts per million it runs fast (positive) or slow (negative).
    pub(crate) drift_ppm: i32,
    /// The sum of its jumps, in nanoseconds.
    pub(crate) jumps_ns: i64,
}

impl WallClock {
    /// Nanoseconds since the UNIX epoch at virtual time `virtual_ns`.
    pub(crate) fn at(&self, virtual_ns: u64) -> i128 {
        let elapsed = i128::from(virtual_ns);
        START_NS
            + elapsed
            + elapsed * i128::from(self.drift_ppm) / 1_000_000
            + i128::from(self.offset_ns)
            + i128::from(self.jumps_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_offset_and_jumps_add_up() {
        let clock = WallClock {
            offset_ns: -5,
            drift_ppm: 100,
            jumps_ns: 1_000,
        };
        assert_eq!(clock.at(0), START_NS + 995);
        assert_eq!(
            clock.at(1_000_000_000),
            START_NS + 1_000_000_000 + 100_000 + 995
        );
        assert_eq!(WallClock::default().at(7), START_NS + 7);
    }
}
