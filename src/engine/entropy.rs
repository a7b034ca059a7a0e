//! The only source of randomness in a simulation.
//!
//! Every random decision of a run is drawn from [`ChaCha8Rng`] seeded with the run's `u64`
//! seed through `seed_from_u64`, which is bit-stable across `rand_chacha` versions. Each
//! concern owns its own ChaCha *stream* of that seed ([`Stream`]), so a new draw in one place
//! (say, user code calling [`random`](crate::random)) never reshuffles another (the
//! scheduler's picks).
//!
//! Bounded draws use our own [`Rng::below`] (Lemire's multiply-and-reject), never rand's range
//! helpers, whose values changed between versions.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// The concern a random stream belongs to; each is an independent ChaCha8 stream of the seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Which ready task runs next.
    Scheduler = 0,
    /// Network decisions: latency jitter, segmentation, loss.
    Network = 1,
    /// Fault plans and `buggify`.
    Faults = 2,
    /// Draws made by user code through [`random`](crate::random) and friends.
    User = 3,
    /// `buggify!()` decisions, apart from the fault plan so that adding a fault point does not
    /// change the plan.
    Buggify = 4,
    /// The simulated disks: latency jitter and what a crash keeps of unsynced writes.
    Disk = 5,
    /// The host faults of a plan (pauses, stalls, disk and clock faults), drawn apart from
    /// the network faults so that adding them left the older plans as they were.
    HostFaults = 6,
}

/// Whether fault point `site` is active in the run of `seed`: in one seed in `one_in`. It
/// depends on the seed and the site only, not on which site happened to be reached first.
pub(crate) fn site_active(seed: u64, site: &str, one_in: u64) -> bool {
    let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for byte in site.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    Rng::new(hash, Stream::Buggify).below(one_in) == 0
}

/// A seeded random stream: ChaCha8 with a fixed stream number.
#[derive(Clone, Debug)]
pub struct Rng {
    inner: ChaCha8Rng,
}

impl Rng {
    /// The stream `stream` of `seed`.
    pub fn new(seed: u64, stream: Stream) -> Rng {
        let mut inner = ChaCha8Rng::seed_from_u64(seed);
        inner.set_stream(stream as u64);
        Rng { inner }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// A uniform draw from `0..bound`; `bound` must be at least 1.
    ///
    /// Lemire's nearly divisionless method: multiply, and reject the few low products that
    /// would bias the result. Its values are part of the determinism contract, so it never
    /// changes with a dependency upgrade.
    #[inline]
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(
            bound > 0,
            "entropy invariant: below(0) has no value to draw"
        );
        let mut product = u128::from(self.next_u64()) * u128::from(bound);
        let mut low = product as u64;
        if low < bound {
            let threshold = bound.wrapping_neg() % bound;
            while low < threshold {
                product = u128::from(self.next_u64()) * u128::from(bound);
                low = product as u64;
            }
        }
        (product >> 64) as u64
    }

    /// True with probability `numerator / denominator`.
    pub fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        self.below(denominator) < numerator
    }

    /// A uniform float in `[0, 1)` with 53 bits of precision.
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// A stream seeded on its first draw. Many runs never draw from some streams (the user's,
/// `buggify`'s, the network's without jitter or splits), and a ChaCha8 state is a few hundred
/// bytes to seed and to move with the loop that owns it. A stream's draws depend only on the
/// seed, the stream and how many came before, so seeding it late changes none of them.
#[derive(Clone, Debug)]
pub(crate) struct LazyRng {
    seed: u64,
    stream: Stream,
    rng: Option<Box<Rng>>,
}

impl LazyRng {
    /// The stream `stream` of `seed`, not seeded yet.
    pub(crate) fn new(seed: u64, stream: Stream) -> LazyRng {
        LazyRng {
            seed,
            stream,
            rng: None,
        }
    }

    /// The stream, seeded now if this is its first use.
    #[inline]
    pub(crate) fn get(&mut self) -> &mut Rng {
        if self.rng.is_none() {
            self.seed_now();
        }
        self.rng.as_mut().expect("seeded above")
    }

    /// Seed the stream: once per run at most, so kept out of the callers' code.
    #[cold]
    #[inline(never)]
    fn seed_now(&mut self) {
        self.rng = Some(Box::new(Rng::new(self.seed, self.stream)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_replays_with_its_seed_and_bounds_hold() {
        let mut a = Rng::new(7, Stream::User);
        let mut b = Rng::new(7, Stream::User);
        assert_eq!(a.next_u64(), b.next_u64());
        assert!((0..1000).all(|_| a.below(10) < 10));
    }

    #[test]
    fn streams_are_independent() {
        let mut scheduler = Rng::new(42, Stream::Scheduler);
        let mut user = Rng::new(42, Stream::User);
        let a: Vec<u64> = (0..4).map(|_| scheduler.next_u64()).collect();
        let b: Vec<u64> = (0..4).map(|_| user.next_u64()).collect();
        assert_ne!(a, b);
    }

    /// Pinned values: if this fails, every recorded seed and snapshot changes meaning.
    #[test]
    fn draws_are_pinned() {
        let mut rng = Rng::new(0, Stream::Scheduler);
        let raw: Vec<u64> = (0..2).map(|_| rng.next_u64()).collect();
        let bounded: Vec<u64> = (0..8).map(|_| rng.below(6)).collect();
        assert_eq!(raw, [13_080_132_717_333_068_652, 8_594_738_769_458_413_623]);
        assert_eq!(bounded, [4, 0, 5, 3, 4, 5, 4, 0]);
    }

    #[test]
    fn below_is_roughly_uniform() {
        let mut rng = Rng::new(1, Stream::User);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[rng.below(6) as usize] += 1;
        }
        for count in counts {
            assert!((9_000..11_000).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn a_lazy_stream_draws_what_an_eager_one_does() {
        let mut eager = Rng::new(9, Stream::Network);
        let mut lazy = LazyRng::new(9, Stream::Network);
        for _ in 0..100 {
            assert_eq!(lazy.get().next_u64(), eager.next_u64());
        }
    }

    #[test]
    fn below_one_is_zero() {
        let mut rng = Rng::new(3, Stream::Faults);
        assert!((0..100).all(|_| rng.below(1) == 0));
    }
}
