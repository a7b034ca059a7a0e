//! The ids everyone shares, as leaf types: nothing here imports anything of the crate.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// A task's id, unique within one run and numbered from 1 in spawn order.
///
/// ```
/// let lp = roof::EventLoop::new();
/// let id = lp.run_until_complete(async { roof::current_task().unwrap() }).unwrap();
/// assert_eq!(id.as_u64(), 1);
/// assert_eq!(id.to_string(), "#1");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TaskId(pub(crate) u64);

impl TaskId {
    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A point in virtual time: nanoseconds since the simulation's origin.
///
/// ```
/// use roof::time::Instant;
/// use std::time::Duration;
/// let t = Instant::ORIGIN + Duration::from_millis(1500);
/// assert_eq!(t.to_string(), "1.500000000s");
/// assert_eq!(t.as_secs_f64(), 1.5);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub(crate) u64);

impl Instant {
    /// The instant every simulation starts at.
    pub const ORIGIN: Instant = Instant(0);

    /// The instant `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant(nanos)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Seconds since the origin, as asyncio's `loop.time()` reports them.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// Time since the origin.
    pub const fn elapsed_since_origin(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self + duration`, or `None` past the end of time (about 584 years).
    pub fn checked_add(self, duration: Duration) -> Option<Instant> {
        let nanos = u64::try_from(duration.as_nanos()).ok()?;
        self.0.checked_add(nanos).map(Instant)
    }

    /// `self + duration`, clamped at the end of time.
    pub fn saturating_add(self, duration: Duration) -> Instant {
        self.checked_add(duration).unwrap_or(Instant(u64::MAX))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, duration: Duration) -> Instant {
        self.saturating_add(duration)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, duration: Duration) {
        *self = *self + duration;
    }
}

impl Sub for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}s",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

/// A host of the simulation, numbered in creation order (0 is `main`).
///
/// ```
/// let lp = roof::EventLoop::new();
/// let id = lp.host("db", || async {}).unwrap();
/// assert_eq!(id.to_string(), "host 1");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(pub(crate) u32);

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host {}", self.0)
    }
}

/// A timer's id, unique within one run and numbered from 1 in creation order (also the
/// tie-breaker between equal deadlines).
///
/// ```
/// let lp = roof::EventLoop::with_config(roof::Config::new(0).trace(roof::TraceMode::Record));
/// lp.run_until_complete(roof::sleep(std::time::Duration::from_secs(1))).unwrap();
/// let trace = lp.report().trace.unwrap();
/// let armed = trace.events.iter().find_map(|event| match &event.kind {
///     roof::trace::EventKind::TimerSet { timer, .. } => Some(*timer),
///     _ => None,
/// });
/// assert_eq!(armed.unwrap().to_string(), "t1");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TimerId(pub(crate) u64);

impl TimerId {
    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TimerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}
