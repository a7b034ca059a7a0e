//! Randomness for user code, drawn from the run's user stream of the seed.
//!
//! Inside a simulation these are the only random numbers a program should use: they replay
//! with the seed and do not disturb the scheduler's or the network's streams.
//!
//! ```
//! let lp = roof::EventLoop::with_config(roof::Config::new(5));
//! let a = lp.run_until_complete(async { roof::random::below(100) }).unwrap();
//! let lp = roof::EventLoop::with_config(roof::Config::new(5));
//! let b = lp.run_until_complete(async { roof::random::below(100) }).unwrap();
//! assert_eq!(a, b);
//! ```

use crate::kernel;

/// 64 random bits.
pub fn u64() -> u64 {
    kernel::with(|kernel| kernel.user_rng.borrow_mut().get().next_u64())
}

/// A uniform draw from `0..bound` (`bound` at least 1).
pub fn below(bound: u64) -> u64 {
    assert!(
        bound > 0,
        "roof::random::below: the bound must be at least 1"
    );
    kernel::with(|kernel| kernel.user_rng.borrow_mut().get().below(bound))
}

/// A uniform draw from `range` (which must not be empty).
pub fn range(range: std::ops::Range<u64>) -> u64 {
    assert!(
        range.start < range.end,
        "roof::random::range: the range {range:?} is empty"
    );
    range.start + below(range.end - range.start)
}

/// True with probability `p` (clamped to `[0, 1]`).
pub fn chance(p: f64) -> bool {
    f64() < p
}

/// A uniform float in `[0, 1)`.
pub fn f64() -> f64 {
    kernel::with(|kernel| kernel.user_rng.borrow_mut().get().unit_f64())
}

/// Shuffle `items` in place (Fisher–Yates).
pub fn shuffle<T>(items: &mut [T]) {
    for index in (1..items.len()).rev() {
        let other = below(index as u64 + 1) as usize;
        items.swap(index, other);
    }
}
