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
///
/// ```
/// let draw = |seed| {
///     let lp = roof::EventLoop::with_config(roof::Config::new(seed));
///     lp.run_until_complete(async { roof::random::u64() }).unwrap()
/// };
/// assert_eq!(draw(1), draw(1), "the same seed draws the same bits");
/// assert_ne!(draw(1), draw(2));
/// ```
pub fn u64() -> u64 {
    kernel::with(|kernel| kernel.user_rng.borrow_mut().get().next_u64())
}

/// A uniform draw from `0..bound` (`bound` at least 1).
///
/// ```
/// let lp = roof::EventLoop::new();
/// let rolls: Vec<u64> = lp.run_until_complete(async {
///     (0..100).map(|_| roof::random::below(6)).collect()
/// }).unwrap();
/// assert!(rolls.iter().all(|&roll| roll < 6));
/// assert!((0..6).all(|face| rolls.contains(&face)));
/// ```
pub fn below(bound: u64) -> u64 {
    assert!(
        bound > 0,
        "roof::random::below: the bound must be at least 1"
    );
    kernel::with(|kernel| kernel.user_rng.borrow_mut().get().below(bound))
}

/// A uniform draw from `range` (which must not be empty).
///
/// ```
/// let lp = roof::EventLoop::new();
/// let port = lp.run_until_complete(async { roof::random::range(49152..65536) }).unwrap();
/// assert!((49152..65536).contains(&port));
/// ```
pub fn range(range: std::ops::Range<u64>) -> u64 {
    assert!(
        range.start < range.end,
        "roof::random::range: the range {range:?} is empty"
    );
    range.start + below(range.end - range.start)
}

/// True with probability `p` (clamped to `[0, 1]`).
///
/// ```
/// let lp = roof::EventLoop::new();
/// let (hits, never, always) = lp.run_until_complete(async {
///     let hits = (0..1000).filter(|_| roof::random::chance(0.25)).count();
///     (hits, roof::random::chance(0.0), roof::random::chance(1.0))
/// }).unwrap();
/// assert!((200..300).contains(&hits), "about a quarter: {hits}");
/// assert_eq!((never, always), (false, true));
/// ```
pub fn chance(p: f64) -> bool {
    f64() < p
}

/// A uniform float in `[0, 1)`.
///
/// ```
/// let lp = roof::EventLoop::new();
/// let x = lp.run_until_complete(async { roof::random::f64() }).unwrap();
/// assert!((0.0..1.0).contains(&x));
/// ```
pub fn f64() -> f64 {
    kernel::with(|kernel| kernel.user_rng.borrow_mut().get().unit_f64())
}

/// Shuffle `items` in place (Fisher–Yates).
///
/// ```
/// let lp = roof::EventLoop::new();
/// let deck = lp.run_until_complete(async {
///     let mut deck: Vec<u32> = (1..=10).collect();
///     roof::random::shuffle(&mut deck);
///     deck
/// }).unwrap();
/// let mut sorted = deck.clone();
/// sorted.sort();
/// assert_eq!(sorted, (1..=10).collect::<Vec<_>>(), "the same cards, in another order");
/// ```
pub fn shuffle<T>(items: &mut [T]) {
    for index in (1..items.len()).rev() {
        let other = below(index as u64 + 1) as usize;
        items.swap(index, other);
    }
}
