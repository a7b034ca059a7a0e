//! Virtual time: sleep, timeout, interval, and the clock jumping over idle spans.

use std::time::Duration;

use roof::time::Instant;
use roof::Policy;

use crate::{quiet, run_with};

#[test]
fn a_simulated_day_passes_instantly_and_exactly() {
    let (now, report) = run_with(quiet(0), |event_loop| {
        event_loop
            .run_until_complete(async {
                for _ in 0..24 {
                    roof::sleep(Duration::from_secs(3600)).await;
                }
                roof::time::now()
            })
            .unwrap()
    });
    assert_eq!(now.as_nanos(), 86_400 * 1_000_000_000);
    assert_eq!(report.virtual_time, now);
}

#[test]
fn sleep_until_wakes_at_the_instant_and_zero_sleep_still_yields() {
    let (times, _) = run_with(quiet(0).policy(Policy::Fifo), |event_loop| {
        event_loop
            .run_until_complete(async {
                let other = roof::spawn(async { roof::time::now() });
                roof::sleep(Duration::ZERO).await;
                assert!(other.is_finished(), "sleep(0) let the other task run");
                roof::time::sleep_until(Instant::from_nanos(1234)).await;
                let at = roof::time::now();
                roof::time::sleep_until(Instant::ORIGIN).await;
                (other.await.unwrap(), at, roof::time::now())
            })
            .unwrap()
    });
    assert_eq!(
        times,
        (
            Instant::ORIGIN,
            Instant::from_nanos(1234),
            Instant::from_nanos(1234)
        )
    );
}

#[test]
fn timeout_passes_a_fast_future_and_cuts_a_slow_one() {
    let (results, _) = run_with(quiet(0), |event_loop| {
        event_loop
            .run_until_complete(async {
                let fast = roof::timeout(Duration::from_secs(2), async {
                    roof::sleep(Duration::from_secs(1)).await;
                    "fast"
                })
                .await;
                let started = roof::time::now();
                let slow =
                    roof::timeout(Duration::from_secs(2), roof::sleep(Duration::from_secs(10)))
                        .await;
                (fast, slow, roof::time::now() - started)
            })
            .unwrap()
    });
    assert_eq!(results.0, Ok("fast"));
    assert!(results.1.is_err());
    let io: std::io::Error = results.1.unwrap_err().into();
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(results.2, Duration::from_secs(2));
}

#[test]
fn a_timed_out_sleep_disarms_its_timer() {
    let (_, report) = run_with(quiet(0).trace(roof::TraceMode::Record), |event_loop| {
        event_loop
            .run_until_complete(roof::timeout(
                Duration::from_secs(1),
                roof::sleep(Duration::from_secs(5)),
            ))
            .unwrap()
    });
    let text = report.trace.unwrap().render();
    assert!(text.contains("timer-cancel t1"), "{text}");
    // The loop ended at 1 s: the cancelled 5 s timer did not keep it going.
    assert_eq!(report.virtual_time.as_nanos(), 1_000_000_000);
}

#[test]
fn interval_ticks_on_a_fixed_grid_even_when_the_consumer_is_late() {
    let (ticks, _) = run_with(quiet(0), |event_loop| {
        event_loop
            .run_until_complete(async {
                let mut interval = roof::time::interval(Duration::from_millis(100));
                let mut ticks = Vec::new();
                for _ in 0..4 {
                    ticks.push(interval.tick().await.as_nanos() / 1_000_000);
                    roof::sleep(Duration::from_millis(30)).await;
                }
                ticks
            })
            .unwrap()
    });
    assert_eq!(ticks, [0, 100, 200, 300]);
}

/// Each host reads its own wall clock: offset, drift and jumps move it; the monotonic clock
/// stays one and never goes back.
#[test]
fn each_host_has_a_wall_clock_that_skews_drifts_and_jumps() {
    use roof::time::{system_time, ClockJump, ClockSkew, WALL_START_SECS};
    use std::time::UNIX_EPOCH;
    let wall_ns = || system_time().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i128;
    let start = i128::from(WALL_START_SECS) * 1_000_000_000;
    let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
    lp.set_clock("main", ClockSkew::default().drift_ppm(100))
        .unwrap();
    let late = lp
        .client("late", async move {
            roof::sleep(std::time::Duration::from_secs(1000)).await;
            wall_ns()
        })
        .unwrap();
    lp.set_clock(
        "late",
        ClockSkew::default().behind(std::time::Duration::from_secs(3)),
    )
    .unwrap();
    let (main_then, main_back, mono) = lp
        .run_until_complete(async move {
            roof::sleep(std::time::Duration::from_secs(1000)).await;
            let then = wall_ns();
            let before = roof::time::now();
            roof::get_running_loop()
                .jump_clock(
                    "main",
                    ClockJump::Backward(std::time::Duration::from_secs(60)),
                )
                .unwrap();
            (then, wall_ns(), roof::time::now() - before)
        })
        .unwrap();
    // 1000 s at +100 ppm: 100 ms fast.
    assert_eq!(main_then - start, 1_000_100_000_000);
    assert_eq!(
        main_then - main_back,
        60_000_000_000,
        "the jump back shows at once"
    );
    assert_eq!(
        mono,
        std::time::Duration::ZERO,
        "the monotonic clock did not move"
    );
    let late = lp.run_until_complete(late).unwrap().unwrap();
    assert_eq!(late - start, 997_000_000_000, "3 s behind, no drift");
    // Limits are errors, not clamps.
    let too_far = ClockSkew::default().ahead(roof::time::CLOCK_OFFSET_MAX * 2);
    assert_eq!(
        lp.set_clock("main", too_far).unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
}
