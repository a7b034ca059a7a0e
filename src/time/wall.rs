//! Wall-clock time per host: [`system_time`], with each host's clock set ahead or behind,
//! running fast or slow, and jumping, while the monotonic [`Instant`](super::Instant) stays
//! one global clock that never goes back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::engine::clock::START_NS;
use crate::kernel;

/// Where every simulated wall clock starts: 2026-01-01T00:00:00Z, as seconds since the UNIX
/// epoch.
///
/// ```
/// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
/// let wall = lp.run_until_complete(async { roof::time::system_time() }).unwrap();
/// let since = wall.duration_since(std::time::UNIX_EPOCH).unwrap();
/// assert_eq!(since.as_secs(), roof::time::WALL_START_SECS);
/// ```
pub const WALL_START_SECS: u64 = (START_NS / 1_000_000_000) as u64;

/// The most a host's clock may be set off or jump at once: ten years.
pub const CLOCK_OFFSET_MAX: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// The fastest or slowest a host's clock may run, in parts per million (10%).
pub const DRIFT_PPM_MAX: i32 = 100_000;

/// The wall-clock time on the calling task's host: [`WALL_START_SECS`] plus the virtual time
/// since the run began, moved by the host's offset, drift and jumps
/// ([`LoopHandle::set_clock`](crate::LoopHandle::set_clock),
/// [`LoopHandle::jump_clock`](crate::LoopHandle::jump_clock)). On a real loop it is the
/// operating system's clock.
///
/// Panics outside a running [`EventLoop`](crate::EventLoop).
pub fn system_time() -> SystemTime {
    kernel::with(|kernel| {
        if kernel.is_real() {
            return real_time();
        }
        let host = kernel.exec.current_host.get() as usize;
        let clock = kernel.hosts.borrow()[host].clock;
        at(clock.at(kernel.time_now().as_nanos()))
    })
}

/// The operating system's clock, for a real loop.
#[allow(
    clippy::disallowed_methods,
    reason = "a real loop's wall clock is the operating system's"
)]
fn real_time() -> SystemTime {
    SystemTime::now()
}

/// Nanoseconds since the UNIX epoch (possibly before it) as a `SystemTime`.
fn at(ns: i128) -> SystemTime {
    let magnitude = Duration::from_nanos(ns.unsigned_abs().min(u128::from(u64::MAX)) as u64);
    if ns >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// How a host's wall clock is set: ahead or behind, fast or slow. It reads
/// [`WALL_START_SECS`] + elapsed × (1 + drift) + offset, plus its jumps.
///
/// ```
/// use roof::time::ClockSkew;
/// use std::time::Duration;
/// let skew = ClockSkew::default().behind(Duration::from_secs(2)).drift_ppm(-50);
/// assert_eq!((skew.offset_ns(), skew.drift()), (-2_000_000_000, -50));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockSkew {
    offset_ns: i128,
    drift_ppm: i32,
}

impl ClockSkew {
    /// The clock reads `by` ahead of the simulation's wall time.
    pub fn ahead(mut self, by: Duration) -> ClockSkew {
        self.offset_ns = by.as_nanos() as i128;
        self
    }

    /// The clock reads `by` behind.
    pub fn behind(mut self, by: Duration) -> ClockSkew {
        self.offset_ns = -(by.as_nanos() as i128);
        self
    }

    /// It runs `ppm` parts per million fast (negative: slow).
    pub fn drift_ppm(mut self, ppm: i32) -> ClockSkew {
        self.drift_ppm = ppm;
        self
    }

    /// The offset in nanoseconds (negative: behind).
    pub fn offset_ns(&self) -> i128 {
        self.offset_ns
    }

    /// The drift in parts per million.
    pub fn drift(&self) -> i32 {
        self.drift_ppm
    }
}

/// Which way a clock jumps ([`LoopHandle::jump_clock`](crate::LoopHandle::jump_clock)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClockJump {
    /// Forward by this much (an NTP step forward, a VM resumed).
    Forward(Duration),
    /// Backward by this much (an NTP step back).
    Backward(Duration),
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
}

impl crate::LoopHandle {
    /// Set `host`'s wall clock ahead or behind, fast or slow (set it before the run: a new
    /// drift mid-run steps the clock to where it would have been). An offset past
    /// [`CLOCK_OFFSET_MAX`] or a drift past [`DRIFT_PPM_MAX`] is an `InvalidInput` error.
    ///
    /// ```
    /// use roof::time::ClockSkew;
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
    /// lp.set_clock("main", ClockSkew::default().ahead(Duration::from_secs(30))).unwrap();
    /// let wall = lp.run_until_complete(async { roof::time::system_time() }).unwrap();
    /// assert_eq!(wall.duration_since(UNIX_EPOCH).unwrap().as_secs(), roof::time::WALL_START_SECS + 30);
    /// assert!(lp.set_clock("main", ClockSkew::default().drift_ppm(200_000)).is_err());
    /// ```
    pub fn set_clock(&self, host: &str, skew: ClockSkew) -> std::io::Result<()> {
        let index = self.host_index(host)? as usize;
        if skew.offset_ns.unsigned_abs() > CLOCK_OFFSET_MAX.as_nanos() {
            return Err(invalid(format!(
                "clock offset of {host}: at most {CLOCK_OFFSET_MAX:?} either way"
            )));
        }
        if skew.drift_ppm.unsigned_abs() > DRIFT_PPM_MAX as u32 {
            return Err(invalid(format!(
                "clock drift of {host}: at most {DRIFT_PPM_MAX} ppm either way"
            )));
        }
        self.kernel.record_fault(|| {
            format!(
                "clock {host} offset {}ns drift {}ppm",
                skew.offset_ns, skew.drift_ppm
            )
        });
        let clock = &mut self.kernel.hosts.borrow_mut()[index].clock;
        clock.offset_ns = skew.offset_ns as i64;
        clock.drift_ppm = skew.drift_ppm;
        Ok(())
    }

    /// Make `host`'s wall clock jump, now: what [`system_time`] reads there moves by the
    /// jump at once (backward too); the monotonic clock does not. A jump past
    /// [`CLOCK_OFFSET_MAX`] is an `InvalidInput` error.
    ///
    /// ```
    /// use roof::time::ClockJump;
    /// use std::time::Duration;
    /// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
    /// let back = lp.run_until_complete(async {
    ///     let before = roof::time::system_time();
    ///     roof::get_running_loop().jump_clock("main", ClockJump::Backward(Duration::from_secs(5))).unwrap();
    ///     before.duration_since(roof::time::system_time()).unwrap()
    /// }).unwrap();
    /// assert_eq!(back, Duration::from_secs(5));
    /// ```
    pub fn jump_clock(&self, host: &str, jump: ClockJump) -> std::io::Result<()> {
        let index = self.host_index(host)? as usize;
        let (by, sign, word) = match jump {
            ClockJump::Forward(by) => (by, 1, "forward"),
            ClockJump::Backward(by) => (by, -1, "backward"),
        };
        if by > CLOCK_OFFSET_MAX {
            return Err(invalid(format!(
                "clock jump of {host}: at most {CLOCK_OFFSET_MAX:?}"
            )));
        }
        self.kernel
            .record_fault(|| format!("clock {host} jumps {word} {by:?}"));
        let clock = &mut self.kernel.hosts.borrow_mut()[index].clock;
        clock.jumps_ns = clock.jumps_ns.saturating_add(sign * by.as_nanos() as i64);
        Ok(())
    }
}
