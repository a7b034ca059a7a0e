//! How a host's disk behaves and misbehaves: its latencies and capacity ([`DiskConfig`]),
//! and the faults in force on it (failing reads, writes and syncs, a full disk, a slow
//! episode, corrupted reads), as plain data the disk consults on each operation.

use std::io;
use std::time::Duration;

/// How long a read takes before jitter, by default.
pub const READ_LATENCY: Duration = Duration::from_micros(20);
/// How long a write (or a change of names) takes before jitter, by default.
pub const WRITE_LATENCY: Duration = Duration::from_micros(20);
/// How long a sync takes before jitter, by default.
pub const SYNC_LATENCY: Duration = Duration::from_millis(1);

/// How much slower every operation is during a slow-disk episode.
pub const SLOW_DISK_FACTOR: u32 = 50;

/// The largest latency a disk may be configured with.
pub const DISK_LATENCY_MAX: Duration = Duration::from_secs(60);

/// A host's disk: how long its operations take and how much it holds.
///
/// Each operation waits its latency plus up to half again of seeded jitter. The capacity
/// counts the bytes of every file's content as the program sees it; a write or a length
/// change that would grow the total past it fails with ENOSPC (`StorageFull`).
///
/// ```
/// use roof::fs::DiskConfig;
/// use std::time::Duration;
/// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
/// lp.set_disk("main", DiskConfig::default().sync_latency(Duration::from_millis(8)).capacity(4)).unwrap();
/// assert_eq!(lp.disk("main").unwrap().sync_latency, Duration::from_millis(8));
/// lp.run_until_complete(async {
///     let mut file = roof::fs::File::create("/f").await.unwrap();
///     file.write_all(b"full").await.unwrap();
///     let error = file.write_all(b"!").await.unwrap_err();
///     assert_eq!(error.kind(), std::io::ErrorKind::StorageFull);
/// }).unwrap();
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskConfig {
    /// How long a read (or a look at metadata) takes before jitter.
    pub read_latency: Duration,
    /// How long a write, a length change or a change of names takes before jitter.
    pub write_latency: Duration,
    /// How long a sync takes before jitter.
    pub sync_latency: Duration,
    /// The most bytes the disk holds (`None`: up to [`FILE_SIZE_MAX`](super::FILE_SIZE_MAX) per file).
    pub capacity: Option<u64>,
}

impl Default for DiskConfig {
    /// 20 µs reads and writes, 1 ms syncs, no capacity limit.
    fn default() -> DiskConfig {
        DiskConfig {
            read_latency: READ_LATENCY,
            write_latency: WRITE_LATENCY,
            sync_latency: SYNC_LATENCY,
            capacity: None,
        }
    }
}

impl DiskConfig {
    /// Set the read latency.
    pub fn read_latency(mut self, latency: Duration) -> DiskConfig {
        self.read_latency = latency;
        self
    }
    /// Set the write latency.
    pub fn write_latency(mut self, latency: Duration) -> DiskConfig {
        self.write_latency = latency;
        self
    }
    /// Set the sync latency.
    pub fn sync_latency(mut self, latency: Duration) -> DiskConfig {
        self.sync_latency = latency;
        self
    }
    /// Hold at most `bytes`.
    pub fn capacity(mut self, bytes: u64) -> DiskConfig {
        self.capacity = Some(bytes);
        self
    }

    /// The first setting out of range, as an error naming it.
    pub(crate) fn check(&self) -> io::Result<()> {
        for (name, latency) in [
            ("read latency", self.read_latency),
            ("write latency", self.write_latency),
            ("sync latency", self.sync_latency),
        ] {
            if latency > DISK_LATENCY_MAX {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("disk {name} of {latency:?}: at most {DISK_LATENCY_MAX:?}"),
                ));
            }
        }
        Ok(())
    }
}

/// What kind of operation, for its latency and its faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpKind {
    Read,
    Write,
    Sync,
    /// A look at metadata or a directory (a read's latency, no read faults).
    Stat,
    /// A change of names (a write's latency, no write faults).
    Name,
}

/// The faults in force on one disk.
#[derive(Clone, Debug, Default)]
pub(crate) struct Faults {
    /// Reads, writes and syncs still to fail with EIO (injected one by one).
    pub(crate) failing_reads: u32,
    pub(crate) failing_writes: u32,
    pub(crate) failing_syncs: u32,
    /// Reads still to come back with a flipped bit.
    pub(crate) corrupt_reads: u32,
    /// Every operation fails with EIO (a failing disk), until cleared.
    pub(crate) broken: bool,
    /// Writes that grow a file fail with ENOSPC, until cleared.
    pub(crate) full: bool,
    /// Operations take [`SLOW_DISK_FACTOR`] times as long, until cleared.
    pub(crate) slow: bool,
    /// Each read is corrupted with probability 1/4, until cleared.
    pub(crate) corrupting: bool,
}

/// EIO, as the OS reports it.
pub(crate) fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

/// ENOSPC, as the OS reports it (`StorageFull`).
pub(crate) fn enospc() -> io::Error {
    io::Error::from_raw_os_error(28)
}

/// Take one from an injected count: whether the fault fires now.
pub(crate) fn take(count: &mut u32) -> bool {
    let fires = *count > 0;
    *count = count.saturating_sub(1);
    fires
}

impl Faults {
    /// Fail the next operation of `kind` with EIO (a fault point of the engine).
    pub(crate) fn fail_next(&mut self, kind: OpKind) {
        match kind {
            OpKind::Read => self.failing_reads += 1,
            OpKind::Write => self.failing_writes += 1,
            OpKind::Sync => self.failing_syncs += 1,
            OpKind::Stat | OpKind::Name => {}
        }
    }

    /// Whether an operation of `kind` fails with EIO now (a failing disk, or one injected).
    pub(crate) fn fails(&mut self, kind: OpKind) -> bool {
        let injected = match kind {
            OpKind::Read => take(&mut self.failing_reads),
            OpKind::Write => take(&mut self.failing_writes),
            OpKind::Sync => take(&mut self.failing_syncs),
            OpKind::Stat | OpKind::Name => false,
        };
        injected || self.broken
    }
}

/// The latency of an operation of `kind` on a disk configured `config`, before jitter.
pub(crate) fn latency(config: &DiskConfig, faults: &Faults, kind: OpKind) -> Duration {
    let base = match kind {
        OpKind::Read | OpKind::Stat => config.read_latency,
        OpKind::Write | OpKind::Name => config.write_latency,
        OpKind::Sync => config.sync_latency,
    };
    if faults.slow {
        base * SLOW_DISK_FACTOR
    } else {
        base
    }
}
