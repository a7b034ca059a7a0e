//! The durations of the peers' `timers` scenario, shared by the benchmarks that run it.

/// The peers' LCG seed, 0x5EED_0F_71AE.
const TIMER_LCG_SEED: u64 = 0x005E_ED0F_71AE;
/// The longest timer, in milliseconds: one hour.
const TIMER_MAX_MS: u64 = 3_600_000;

/// `count` durations in milliseconds, each in 1..=1 h, from the MMIX LCG with the peers'
/// fixed seed: the same for every peer.
pub fn timer_durations_ms(count: u64) -> Vec<u64> {
    let mut state = TIMER_LCG_SEED;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            1 + (state >> 33) % TIMER_MAX_MS
        })
        .collect()
}
