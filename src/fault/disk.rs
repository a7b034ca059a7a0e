//! Disk faults on a host, by hand: failing reads, writes and syncs, a full disk, a slow
//! episode, corrupted reads; and a host's disk configuration. Each call is in the trace.

use std::io;

use crate::engine::disk::DiskConfig;
use crate::event_loop::LoopHandle;

/// A switchable disk fault: on until switched off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiskFault {
    /// Every operation fails with EIO (a failing disk); a sync that fails drops what was
    /// not yet durable.
    Failing,
    /// Every write that grows a file fails with ENOSPC (`StorageFull`).
    Full,
    /// Every operation takes [`SLOW_DISK_FACTOR`](crate::fs::SLOW_DISK_FACTOR) times as long.
    Slow,
    /// A read comes back with one bit flipped with probability 1/4 (opt-in: only a program
    /// that checksums what it reads can tell).
    Corrupting,
}

impl LoopHandle {
    /// Make the next `count` syncs on `host`'s disk fail with EIO (`File::sync_all`,
    /// `sync_data`, `fs::sync_dir`): each drops the file's writes not yet durable, as Linux
    /// does.
    ///
    /// ```
    /// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
    /// lp.run_until_complete(async {
    ///     roof::get_running_loop().fail_syncs("main", 1).unwrap();
    ///     let mut file = roof::fs::File::create("/f").await.unwrap();
    ///     file.write_all(b"lost").await.unwrap();
    ///     assert_eq!(file.sync_all().await.unwrap_err().raw_os_error(), Some(5));
    ///     assert_eq!(roof::fs::read("/f").await.unwrap(), b"", "the unsynced write is gone");
    /// }).unwrap();
    /// ```
    pub fn fail_syncs(&self, host: &str, count: u32) -> io::Result<()> {
        self.disk_count(host, "syncs fail", count, |faults| {
            &mut faults.failing_syncs
        })
    }

    /// Make the next `count` reads on `host`'s disk fail with EIO.
    ///
    /// ```
    /// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
    /// lp.run_until_complete(async {
    ///     roof::fs::write("/f", b"data").await.unwrap();
    ///     roof::get_running_loop().fail_reads("main", 1).unwrap();
    ///     assert_eq!(roof::fs::read("/f").await.unwrap_err().raw_os_error(), Some(5));
    ///     assert_eq!(roof::fs::read("/f").await.unwrap(), b"data", "only the one");
    /// }).unwrap();
    /// ```
    pub fn fail_reads(&self, host: &str, count: u32) -> io::Result<()> {
        self.disk_count(host, "reads fail", count, |faults| {
            &mut faults.failing_reads
        })
    }

    /// Make the next `count` writes (and length changes) on `host`'s disk fail with EIO;
    /// a failed write changes nothing.
    pub fn fail_writes(&self, host: &str, count: u32) -> io::Result<()> {
        self.disk_count(host, "writes fail", count, |faults| {
            &mut faults.failing_writes
        })
    }

    /// Make the next `count` reads on `host`'s disk that return data come back with one
    /// bit flipped (the disk keeps the right data: a read again may be right).
    ///
    /// ```
    /// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
    /// lp.run_until_complete(async {
    ///     roof::fs::write("/f", [0u8; 16]).await.unwrap();
    ///     roof::get_running_loop().corrupt_reads("main", 1).unwrap();
    ///     let bad = roof::fs::read("/f").await.unwrap();
    ///     assert_eq!(bad.iter().map(|b| b.count_ones()).sum::<u32>(), 1, "one bit flipped");
    ///     assert_eq!(roof::fs::read("/f").await.unwrap(), [0u8; 16]);
    /// }).unwrap();
    /// ```
    pub fn corrupt_reads(&self, host: &str, count: u32) -> io::Result<()> {
        self.disk_count(host, "reads are corrupted", count, |faults| {
            &mut faults.corrupt_reads
        })
    }

    /// Switch a disk fault on `host` on or off.
    ///
    /// ```
    /// use roof::fault::DiskFault;
    /// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
    /// lp.run_until_complete(async {
    ///     let lp = roof::get_running_loop();
    ///     lp.set_disk_fault("main", DiskFault::Full, true).unwrap();
    ///     let full = roof::fs::write("/f", b"x").await.unwrap_err();
    ///     assert_eq!(full.kind(), std::io::ErrorKind::StorageFull);
    ///     lp.set_disk_fault("main", DiskFault::Full, false).unwrap();
    ///     roof::fs::write("/f", b"x").await.unwrap();
    /// }).unwrap();
    /// ```
    pub fn set_disk_fault(&self, host: &str, fault: DiskFault, on: bool) -> io::Result<()> {
        let index = self.host_index(host)?;
        let word = if on { "on" } else { "off" };
        self.kernel
            .record_fault(|| format!("disk {host}: {fault:?} {word}"));
        let mut disks = self.kernel.disks.borrow_mut();
        let faults = disks.faults(index);
        match fault {
            DiskFault::Failing => faults.broken = on,
            DiskFault::Full => faults.full = on,
            DiskFault::Slow => faults.slow = on,
            DiskFault::Corrupting => faults.corrupting = on,
        }
        Ok(())
    }

    /// Configure `host`'s disk: latencies and capacity. A latency over
    /// [`DISK_LATENCY_MAX`](crate::fs::DISK_LATENCY_MAX) is an `InvalidInput` error.
    pub fn set_disk(&self, host: &str, config: DiskConfig) -> io::Result<()> {
        let index = self.host_index(host)?;
        self.kernel.disks.borrow_mut().configure(index, config)
    }

    /// How `host`'s disk is configured.
    pub fn disk(&self, host: &str) -> io::Result<DiskConfig> {
        let index = self.host_index(host)?;
        Ok(self.kernel.disks.borrow_mut().config(index))
    }

    fn disk_count(
        &self,
        host: &str,
        what: &str,
        count: u32,
        field: impl FnOnce(&mut crate::engine::disk::Faults) -> &mut u32,
    ) -> io::Result<()> {
        let index = self.host_index(host)?;
        self.kernel
            .record_fault(|| format!("disk {host}: the next {count} {what}"));
        *field(self.kernel.disks.borrow_mut().faults(index)) = count;
        Ok(())
    }
}
