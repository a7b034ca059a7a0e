//! Virtual time: the [`Instant`] type, the timer queue, and the futures that wait on it.
//!
//! A simulation has one clock, owned by its event loop. It starts at [`Instant::ORIGIN`] and
//! only moves when nothing is ready to run: it then jumps straight to the earliest pending
//! deadline, fires every timer due at that instant in (deadline, creation order) order, and
//! the loop carries on. A run that sleeps for a simulated day takes as long as its events
//! take to process, not a day.
//!
//! # Precision
//! Time is an integer count of nanoseconds since the origin, so it never drifts and two runs
//! of one seed agree to the nanosecond.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::engine::timer::TimerKey;
use crate::kernel;

pub use crate::engine::id::Instant;

mod wall;
pub use wall::{
    system_time, ClockJump, ClockSkew, CLOCK_OFFSET_MAX, DRIFT_PPM_MAX, WALL_START_SECS,
};

/// The current virtual time of the running simulation (on a real loop, the wall clock's time
/// since the loop was made).
///
/// Panics outside a running [`EventLoop`](crate::EventLoop).
///
/// ```
/// use std::time::Duration;
/// let lp = roof::EventLoop::new();
/// let (start, end) = lp.run_until_complete(async {
///     let start = roof::time::now();
///     roof::sleep(Duration::from_millis(1500)).await;
///     (start, roof::time::now())
/// }).unwrap();
/// assert_eq!(start, roof::time::Instant::ORIGIN);
/// assert_eq!(end - start, Duration::from_millis(1500));
/// ```
pub fn now() -> Instant {
    kernel::with(|kernel| kernel.time_now())
}

/// Wait until `duration` of virtual time has passed.
///
/// Like `asyncio.sleep`, it always yields to the loop at least once. `sleep(Duration::ZERO)`
/// is asyncio's `sleep(0)`: a bare yield, with no timer; the task goes to the back of the
/// ready queue, behind what is queued already, and runs again in the loop's next iteration.
///
/// ```
/// use std::time::Duration;
/// let lp = roof::EventLoop::new();
/// let elapsed = lp.run_until_complete(async {
///     roof::sleep(Duration::from_secs(3600)).await;
///     roof::time::now()
/// }).unwrap();
/// assert_eq!(elapsed.as_secs_f64(), 3600.0);
/// ```
#[doc(alias = "delay")]
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        deadline: Deadline::After(duration),
        key: None,
        waker: (0, 0),
    }
}

/// Wait until the clock reads `deadline`. A deadline that has passed is a bare yield, as
/// [`sleep`] of zero is.
///
/// ```
/// use roof::time::{now, sleep_until};
/// use std::time::Duration;
/// let lp = roof::EventLoop::new();
/// let woke = lp.run_until_complete(async {
///     let deadline = now() + Duration::from_secs(5);
///     roof::sleep(Duration::from_secs(2)).await;
///     sleep_until(deadline).await; // 3 s more
///     sleep_until(deadline).await; // passed: a bare yield
///     now()
/// }).unwrap();
/// assert_eq!(woke.as_secs_f64(), 5.0);
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline: Deadline::At(deadline),
        key: None,
        waker: (0, 0),
    }
}

#[derive(Clone, Copy, Debug)]
enum Deadline {
    /// Relative to the time of the first poll, so a `Sleep` built early waits its full span.
    After(Duration),
    At(Instant),
    /// The deadline had passed at the first poll: the sleep yielded once, without a timer,
    /// and is done at the next poll.
    Yielded(Instant),
}

/// The future returned by [`sleep`] and [`sleep_until`].
///
/// ```
/// use std::time::Duration;
/// let lp = roof::EventLoop::new();
/// let woke = lp.run_until_complete(async {
///     let sleep: roof::time::Sleep = roof::sleep(Duration::from_secs(2));
///     assert_eq!(sleep.deadline(), None, "a relative sleep starts when first polled");
///     roof::sleep(Duration::from_secs(1)).await;
///     sleep.await; // its full 2 s from here
///     roof::time::now()
/// }).unwrap();
/// assert_eq!(woke.as_secs_f64(), 3.0);
/// ```
#[must_use = "a Sleep does nothing unless awaited"]
#[derive(Debug)]
pub struct Sleep {
    deadline: Deadline,
    key: Option<TimerKey>,
    /// Identity (data, vtable addresses) of the waker the armed timer holds.
    waker: (usize, usize),
}

fn waker_identity(waker: &std::task::Waker) -> (usize, usize) {
    (
        waker.data() as usize,
        std::ptr::from_ref(waker.vtable()) as usize,
    )
}

impl Sleep {
    /// The deadline, once the sleep has been polled (a relative sleep starts on first poll).
    pub fn deadline(&self) -> Option<Instant> {
        match self.deadline {
            Deadline::At(at) | Deadline::Yielded(at) => Some(at),
            Deadline::After(_) => None,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if crate::engine::cancel::deliver_cancel() {
            return Poll::Pending;
        }
        kernel::with(|kernel| {
            let now = kernel.time_now();
            match self.key {
                None => {
                    let deadline = match self.deadline {
                        Deadline::At(at) => at,
                        Deadline::After(span) => now + span,
                        Deadline::Yielded(_) => return Poll::Ready(()),
                    };
                    if deadline <= now {
                        // asyncio's `sleep(0)`: one bare yield, no timer.
                        self.deadline = Deadline::Yielded(deadline);
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    self.deadline = Deadline::At(deadline);
                    self.key = Some(kernel.arm_timer(deadline, cx.waker().clone()));
                    Poll::Pending
                }
                Some(key) => {
                    let Deadline::At(deadline) = self.deadline else {
                        unreachable!("a registered sleep has an absolute deadline")
                    };
                    if now >= deadline {
                        kernel.disarm_timer(key);
                        self.key = None;
                        self.deadline = Deadline::At(Instant(u64::MAX));
                        return Poll::Ready(());
                    }
                    if self.waker != waker_identity(cx.waker()) {
                        self.key = Some(kernel.refresh_timer_waker(key, deadline, cx.waker()));
                        self.waker = waker_identity(cx.waker());
                    }
                    Poll::Pending
                }
            }
        })
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            kernel::try_with(|kernel| kernel.disarm_timer(key));
        }
    }
}

/// The error of a [`timeout`] whose deadline passed first.
///
/// ```
/// use std::time::Duration;
/// let lp = roof::EventLoop::new();
/// let elapsed: roof::time::Elapsed = lp.run_until_complete(async {
///     roof::timeout(Duration::from_millis(10), std::future::pending::<()>()).await.unwrap_err()
/// }).unwrap();
/// assert_eq!(elapsed.to_string(), "deadline has elapsed");
/// let error: std::io::Error = elapsed.into();
/// assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(elapsed: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, elapsed)
    }
}

/// Run `future`, giving up with [`Elapsed`] once `duration` of virtual time has passed.
///
/// The future is polled first, so one that is ready at once wins even with a zero timeout.
///
/// ```
/// use std::time::Duration;
/// let lp = roof::EventLoop::new();
/// let result = lp.run_until_complete(async {
///     roof::timeout(Duration::from_secs(1), roof::sleep(Duration::from_secs(5))).await
/// }).unwrap();
/// assert!(result.is_err());
/// ```
#[doc(alias = "wait_for")]
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep(duration),
    }
}

/// Run `future`, giving up with [`Elapsed`] once the clock reads `deadline` (asyncio's
/// `timeout_at`). As [`timeout`]: the future is polled first, and dropped when time is up,
/// which cancels it (a [`gather`](crate::gather()) aborts its members).
///
/// ```
/// use std::time::Duration;
/// let lp = roof::EventLoop::new();
/// let (first, second) = lp.run_until_complete(async {
///     let deadline = roof::time::now() + Duration::from_secs(3);
///     let first = roof::time::timeout_at(deadline, roof::sleep(Duration::from_secs(2))).await;
///     let second = roof::time::timeout_at(deadline, roof::sleep(Duration::from_secs(2))).await;
///     (first, second)
/// }).unwrap();
/// assert!(first.is_ok() && second.is_err(), "the second sleep would end past the deadline");
/// ```
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep_until(deadline),
    }
}

pin_project_lite::pin_project! {
    /// The future returned by [`timeout`].
    #[must_use = "a Timeout does nothing unless awaited"]
    #[derive(Debug)]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(value) = this.future.poll(cx) {
            return Poll::Ready(Ok(value));
        }
        match Pin::new(this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A stream of ticks `period` apart; the first tick completes immediately.
///
/// Ticks are scheduled on a fixed grid (start, start + period, …), so a slow consumer catches
/// up without drift.
///
/// ```
/// use std::time::Duration;
/// let lp = roof::EventLoop::new();
/// let ticks = lp.run_until_complete(async {
///     let mut interval = roof::time::interval(Duration::from_secs(1));
///     let mut ticks = Vec::new();
///     for _ in 0..3 {
///         ticks.push(interval.tick().await.as_secs_f64());
///     }
///     ticks
/// }).unwrap();
/// assert_eq!(ticks, vec![0.0, 1.0, 2.0]);
/// ```
pub fn interval(period: Duration) -> Interval {
    assert!(!period.is_zero(), "interval: the period must be non-zero");
    Interval { period, next: None }
}

/// Ticks at a fixed period; see [`interval`].
///
/// ```
/// use std::time::Duration;
/// let lp = roof::EventLoop::new();
/// let ticks = lp.run_until_complete(async {
///     let mut interval: roof::time::Interval = roof::time::interval(Duration::from_millis(100));
///     assert_eq!(interval.period(), Duration::from_millis(100));
///     interval.tick().await; // the first tick, at once
///     roof::sleep(Duration::from_millis(250)).await; // a slow consumer...
///     let mut ticks = Vec::new();
///     for _ in 0..3 {
///         ticks.push(interval.tick().await.elapsed_since_origin().as_millis());
///     }
///     ticks
/// }).unwrap();
/// assert_eq!(ticks, [100, 200, 300], "...catches up on the grid, without drift");
/// ```
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    next: Option<Instant>,
}

impl Interval {
    /// Wait for the next tick and return its scheduled instant.
    pub async fn tick(&mut self) -> Instant {
        let next = match self.next {
            None => {
                let start = now();
                self.next = Some(start + self.period);
                return start;
            }
            Some(next) => next,
        };
        sleep_until(next).await;
        self.next = Some(next + self.period);
        next
    }

    /// The period between ticks.
    pub fn period(&self) -> Duration {
        self.period
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_renders_seconds_with_nanos() {
        assert_eq!(
            Instant::from_nanos(2_000_341_000).to_string(),
            "2.000341000s"
        );
        assert_eq!(Instant::ORIGIN.to_string(), "0.000000000s");
    }
}
