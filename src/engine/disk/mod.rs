//! The simulated disks, one per host, as plain data: files and directories as a running
//! program sees them, what of it is durable, and what a crash leaves.
//!
//! # The model
//! A file's content as reads see it is its *data*; what survives a crash for sure is its
//! *durable* content, set to the data by `sync_all`/`sync_data`. Between syncs every write
//! and length change is kept in order as *pending*. At a crash each pending operation is, by
//! a seeded draw of the disk stream: kept, lost, or (a write covering more than one sector)
//! torn, its bytes kept from its start up to a sector boundary ([`SECTOR`], 512 bytes) inside
//! it and lost after. Kept and torn operations apply in order on the durable content; a lost
//! one is simply missing, so later writes may survive an earlier one that did not, as on a
//! disk whose cache reorders writes (the behaviour the ALICE and CrashMonkey studies of Linux
//! file systems test applications against).
//!
//! The names (creating, renaming and removing files, making directories) are a journal:
//! each operation is pending until a directory is synced, which commits every operation
//! before it, as ext4's journal commits a whole transaction. At a crash a seeded prefix of
//! the pending operations survives. A file whose name did not survive is gone, data and all.
//!
//! A failed sync (an injected EIO) drops the file's pending operations: what was not durable
//! is gone, as Linux drops the dirty pages of a failed `fsync` and does not retry them.

use std::collections::BTreeMap;
use std::io;

use std::time::Duration;

use crate::engine::entropy::{LazyRng, Stream};

mod faults;

pub(crate) use faults::Faults;
pub(crate) use faults::OpKind;
use faults::{eio, enospc};
pub use faults::{
    DiskConfig, DISK_LATENCY_MAX, READ_LATENCY, SLOW_DISK_FACTOR, SYNC_LATENCY, WRITE_LATENCY,
};

/// The sector size: a torn write keeps whole sectors from its start.
pub const SECTOR: u64 = 512;

/// The largest a simulated file may grow.
pub const FILE_SIZE_MAX: u64 = 1 << 30;

/// What a name in a directory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    File(u64),
    Dir,
}

/// A write or a length change not yet synced.
#[derive(Clone, Debug)]
enum Op {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Clone, Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Op>,
}

/// A journalled change of names.
#[derive(Clone, Debug)]
enum NameOp {
    Create(String, Entry),
    Rename(String, String),
    Remove(String),
}

#[derive(Clone, Debug, Default)]
struct HostDisk {
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// The names as the running program sees them.
    names: BTreeMap<String, Entry>,
    /// The names as the last directory sync left them.
    durable_names: BTreeMap<String, Entry>,
    journal: Vec<NameOp>,
    /// Its latencies and capacity.
    config: DiskConfig,
    /// The faults in force.
    faults: Faults,
}

/// How a file is opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Open {
    pub(crate) create: bool,
    pub(crate) create_new: bool,
    pub(crate) truncate: bool,
}

/// Every host's disk, and the stream crash outcomes are drawn from.
#[derive(Debug)]
pub(crate) struct Disks {
    disks: Vec<HostDisk>,
    rng: LazyRng,
    /// What a fault did to the last operation (a corrupted read), for its trace line.
    pub(crate) note: Option<String>,
}

fn error(kind: io::ErrorKind, message: String) -> io::Error {
    io::Error::new(kind, message)
}

/// The directory holding `path` ("/" for a top-level name).
fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(at) => &path[..at],
    }
}

impl HostDisk {
    fn new() -> HostDisk {
        let mut disk = HostDisk::default();
        disk.names.insert("/".into(), Entry::Dir);
        disk.durable_names.insert("/".into(), Entry::Dir);
        disk
    }

    fn parent_exists(&self, path: &str) -> io::Result<()> {
        match self.names.get(parent_of(path)) {
            Some(Entry::Dir) => Ok(()),
            Some(Entry::File(_)) => Err(error(
                io::ErrorKind::NotADirectory,
                format!("{}: not a directory", parent_of(path)),
            )),
            None => Err(error(
                io::ErrorKind::NotFound,
                format!("{}: no such directory", parent_of(path)),
            )),
        }
    }

    fn file(&self, path: &str) -> io::Result<u64> {
        match self.names.get(path) {
            Some(Entry::File(inode)) => Ok(*inode),
            Some(Entry::Dir) => Err(error(
                io::ErrorKind::IsADirectory,
                format!("{path}: is a directory"),
            )),
            None => Err(error(
                io::ErrorKind::NotFound,
                format!("{path}: no such file"),
            )),
        }
    }

    fn inode(&mut self, inode: u64) -> io::Result<&mut Inode> {
        self.inodes.get_mut(&inode).ok_or_else(|| {
            error(
                io::ErrorKind::NotFound,
                "the file is gone (its host crashed)".into(),
            )
        })
    }

    /// Apply `op` to `names`.
    fn apply(names: &mut BTreeMap<String, Entry>, op: &NameOp) {
        match op {
            NameOp::Create(path, entry) => {
                names.insert(path.clone(), *entry);
            }
            NameOp::Rename(from, to) => {
                if let Some(entry) = names.remove(from) {
                    names.insert(to.clone(), entry);
                }
            }
            NameOp::Remove(path) => {
                names.remove(path);
            }
        }
    }

    fn journal(&mut self, op: NameOp) {
        HostDisk::apply(&mut self.names, &op);
        self.journal.push(op);
    }
}

impl Disks {
    pub(crate) fn new(seed: u64) -> Disks {
        Disks {
            disks: Vec::new(),
            rng: LazyRng::new(seed, Stream::Disk),
            note: None,
        }
    }

    fn disk(&mut self, host: u32) -> &mut HostDisk {
        let index = host as usize;
        if self.disks.len() <= index {
            self.disks.resize_with(index + 1, HostDisk::new);
        }
        &mut self.disks[index]
    }

    /// A draw from the disk stream below `bound` (at least 1).
    pub(crate) fn draw(&mut self, bound: u64) -> u64 {
        self.rng.get().below(bound.max(1))
    }

    /// How long an operation of `kind` on `host`'s disk takes: its latency (slowed in a
    /// slow episode) and up to half again of jitter.
    pub(crate) fn latency(&mut self, host: u32, kind: OpKind, slowed: bool) -> Duration {
        let disk = self.disk(host);
        let mut base = faults::latency(&disk.config, &disk.faults, kind);
        if slowed {
            base *= SLOW_DISK_FACTOR;
        }
        base + Duration::from_nanos(self.draw(base.as_nanos() as u64 / 2 + 1))
    }

    /// `host`'s disk configuration.
    pub(crate) fn config(&mut self, host: u32) -> DiskConfig {
        self.disk(host).config
    }

    /// Configure `host`'s disk.
    pub(crate) fn configure(&mut self, host: u32, config: DiskConfig) -> io::Result<()> {
        config.check()?;
        self.disk(host).config = config;
        Ok(())
    }

    /// The faults in force on `host`'s disk, to change.
    pub(crate) fn faults(&mut self, host: u32) -> &mut Faults {
        &mut self.disk(host).faults
    }

    /// Fail with EIO if `host`'s disk is failing as a whole (a change of names).
    fn check_broken(&mut self, host: u32) -> io::Result<()> {
        if self.disk(host).faults.broken {
            return Err(eio());
        }
        Ok(())
    }

    /// Fail with ENOSPC if growing `host`'s files by `growth` bytes overfills its disk.
    fn check_room(&mut self, host: u32, growth: u64) -> io::Result<()> {
        let disk = self.disk(host);
        if growth == 0 {
            return Ok(());
        }
        if disk.faults.full {
            return Err(enospc());
        }
        if let Some(capacity) = disk.config.capacity {
            let used: u64 = disk
                .inodes
                .values()
                .map(|file| file.data.len() as u64)
                .sum();
            if used.saturating_add(growth) > capacity {
                return Err(enospc());
            }
        }
        Ok(())
    }

    /// Open (or create) the file at `path`; its inode.
    pub(crate) fn open(&mut self, host: u32, path: &str, how: Open) -> io::Result<u64> {
        self.check_broken(host)?;
        let disk = self.disk(host);
        match disk.names.get(path).copied() {
            Some(Entry::Dir) => Err(error(
                io::ErrorKind::IsADirectory,
                format!("{path}: is a directory"),
            )),
            Some(Entry::File(_)) if how.create_new => Err(error(
                io::ErrorKind::AlreadyExists,
                format!("{path}: already exists"),
            )),
            Some(Entry::File(inode)) => {
                if how.truncate {
                    self.set_len(host, inode, 0)?;
                }
                Ok(inode)
            }
            None if how.create || how.create_new => {
                disk.parent_exists(path)?;
                disk.next_inode += 1;
                let inode = disk.next_inode;
                disk.inodes.insert(inode, Inode::default());
                disk.journal(NameOp::Create(path.to_string(), Entry::File(inode)));
                Ok(inode)
            }
            None => Err(error(
                io::ErrorKind::NotFound,
                format!("{path}: no such file"),
            )),
        }
    }

    pub(crate) fn read_at(
        &mut self,
        host: u32,
        inode: u64,
        offset: u64,
        buf: &mut [u8],
    ) -> io::Result<usize> {
        let disk = self.disk(host);
        if disk.faults.fails(OpKind::Read) {
            return Err(eio());
        }
        let data = &disk.inode(inode)?.data;
        let start = (offset.min(data.len() as u64)) as usize;
        let count = buf.len().min(data.len() - start);
        buf[..count].copy_from_slice(&data[start..start + count]);
        let faults = &mut self.disk(host).faults;
        let corrupt =
            faults::take(&mut faults.corrupt_reads) || (faults.corrupting && self.draw(4) == 0);
        if corrupt && count > 0 {
            // One bit flipped in what the read returns; the disk itself keeps the data.
            let at = self.draw(count as u64) as usize;
            let bit = self.draw(8) as u8;
            buf[at] ^= 1 << bit;
            self.note = Some(format!("corrupted: byte {} bit {bit}", offset + at as u64));
        }
        Ok(count)
    }

    pub(crate) fn write_at(
        &mut self,
        host: u32,
        inode: u64,
        offset: u64,
        bytes: &[u8],
    ) -> io::Result<usize> {
        let end = offset.saturating_add(bytes.len() as u64);
        if end > FILE_SIZE_MAX {
            return Err(error(
                io::ErrorKind::FileTooLarge,
                format!("a simulated file holds at most {FILE_SIZE_MAX} bytes"),
            ));
        }
        if self.disk(host).faults.fails(OpKind::Write) {
            return Err(eio());
        }
        let len = self.disk(host).inode(inode)?.data.len() as u64;
        self.check_room(host, end.saturating_sub(len))?;
        let file = self.disk(host).inode(inode)?;
        if file.data.len() < end as usize {
            file.data.resize(end as usize, 0);
        }
        file.data[offset as usize..end as usize].copy_from_slice(bytes);
        file.pending.push(Op::Write {
            offset,
            bytes: bytes.to_vec(),
        });
        Ok(bytes.len())
    }

    pub(crate) fn len(&mut self, host: u32, inode: u64) -> io::Result<u64> {
        Ok(self.disk(host).inode(inode)?.data.len() as u64)
    }

    pub(crate) fn set_len(&mut self, host: u32, inode: u64, len: u64) -> io::Result<()> {
        if len > FILE_SIZE_MAX {
            return Err(error(
                io::ErrorKind::FileTooLarge,
                format!("a simulated file holds at most {FILE_SIZE_MAX} bytes"),
            ));
        }
        if self.disk(host).faults.fails(OpKind::Write) {
            return Err(eio());
        }
        let old = self.disk(host).inode(inode)?.data.len() as u64;
        self.check_room(host, len.saturating_sub(old))?;
        let file = self.disk(host).inode(inode)?;
        file.data.resize(len as usize, 0);
        file.pending.push(Op::SetLen(len));
        Ok(())
    }

    /// Make the file's data durable (or, under an injected fault, fail with EIO and drop
    /// what was pending).
    pub(crate) fn sync(&mut self, host: u32, inode: u64) -> io::Result<()> {
        let disk = self.disk(host);
        let failing = disk.faults.fails(OpKind::Sync);
        let file = disk.inode(inode)?;
        if failing {
            file.data = file.durable.clone();
            file.pending.clear();
            return Err(eio());
        }
        // What became durable is what was pending, applied in order: a sync costs what
        // changed since the last, not the whole file.
        for op in std::mem::take(&mut file.pending) {
            match op {
                Op::Write { offset, bytes } => {
                    let end = offset as usize + bytes.len();
                    if file.durable.len() < end {
                        file.durable.resize(end, 0);
                    }
                    file.durable[offset as usize..end].copy_from_slice(&bytes);
                }
                Op::SetLen(len) => file.durable.resize(len as usize, 0),
            }
        }
        debug_assert_eq!(file.durable, file.data, "synced content is the data");
        Ok(())
    }

    pub(crate) fn rename(&mut self, host: u32, from: &str, to: &str) -> io::Result<()> {
        self.check_broken(host)?;
        let disk = self.disk(host);
        disk.file(from)?;
        disk.parent_exists(to)?;
        if disk.names.get(to) == Some(&Entry::Dir) {
            return Err(error(
                io::ErrorKind::IsADirectory,
                format!("{to}: is a directory"),
            ));
        }
        disk.journal(NameOp::Rename(from.to_string(), to.to_string()));
        disk.collect();
        Ok(())
    }

    pub(crate) fn remove_file(&mut self, host: u32, path: &str) -> io::Result<()> {
        self.check_broken(host)?;
        let disk = self.disk(host);
        disk.file(path)?;
        disk.journal(NameOp::Remove(path.to_string()));
        Ok(())
    }

    pub(crate) fn create_dir_all(&mut self, host: u32, path: &str) -> io::Result<()> {
        self.check_broken(host)?;
        let disk = self.disk(host);
        let mut at = String::new();
        for part in path.split('/').filter(|part| !part.is_empty()) {
            at.push('/');
            at.push_str(part);
            match disk.names.get(&at) {
                Some(Entry::Dir) => {}
                Some(Entry::File(_)) => {
                    return Err(error(
                        io::ErrorKind::NotADirectory,
                        format!("{at}: is a file"),
                    ))
                }
                None => disk.journal(NameOp::Create(at.clone(), Entry::Dir)),
            }
        }
        Ok(())
    }

    /// The names directly inside the directory `path`, sorted.
    pub(crate) fn read_dir(&mut self, host: u32, path: &str) -> io::Result<Vec<String>> {
        let disk = self.disk(host);
        match disk.names.get(path) {
            Some(Entry::Dir) => {}
            Some(Entry::File(_)) => {
                return Err(error(
                    io::ErrorKind::NotADirectory,
                    format!("{path}: not a directory"),
                ))
            }
            None => {
                return Err(error(
                    io::ErrorKind::NotFound,
                    format!("{path}: no such directory"),
                ))
            }
        }
        Ok(disk
            .names
            .keys()
            .filter(|name| name.as_str() != "/" && parent_of(name) == path)
            .cloned()
            .collect())
    }

    /// Whether `path` is a directory, and a file's length.
    pub(crate) fn stat(&mut self, host: u32, path: &str) -> io::Result<(bool, u64)> {
        let disk = self.disk(host);
        match disk.names.get(path).copied() {
            Some(Entry::Dir) => Ok((true, 0)),
            Some(Entry::File(inode)) => Ok((false, disk.inode(inode)?.data.len() as u64)),
            None => Err(error(
                io::ErrorKind::NotFound,
                format!("{path}: no such file or directory"),
            )),
        }
    }

    /// Sync the directory `path`: every change of names so far becomes durable.
    pub(crate) fn sync_dir(&mut self, host: u32, path: &str) -> io::Result<()> {
        if self.disk(host).faults.fails(OpKind::Sync) {
            // The journal stays pending: a later sync of the directory may still commit it.
            return Err(eio());
        }
        let disk = self.disk(host);
        if disk.names.get(path) != Some(&Entry::Dir) {
            return Err(error(
                io::ErrorKind::NotFound,
                format!("{path}: no such directory"),
            ));
        }
        for op in std::mem::take(&mut disk.journal) {
            HostDisk::apply(&mut disk.durable_names, &op);
        }
        disk.collect();
        Ok(())
    }

    /// `host` crashed: draw what of its pending writes and names survives. One line per
    /// drawn outcome, for the trace.
    pub(crate) fn crash(&mut self, host: u32) -> Vec<String> {
        let mut lines = Vec::new();
        let journal_len = self.disk(host).journal.len() as u64;
        let kept_names = self.draw(journal_len + 1) as usize;
        let disk = self.disk(host);
        let journal = std::mem::take(&mut disk.journal);
        for op in &journal[..kept_names] {
            HostDisk::apply(&mut disk.durable_names, op);
        }
        if !journal.is_empty() {
            lines.push(format!(
                "names: {kept_names} of {} unsynced changes kept",
                journal.len()
            ));
        }
        disk.names = disk.durable_names.clone();
        let inodes: Vec<u64> = disk.inodes.keys().copied().collect();
        for inode in inodes {
            let pending = std::mem::take(
                &mut self
                    .disk(host)
                    .inodes
                    .get_mut(&inode)
                    .expect("listed")
                    .pending,
            );
            let mut content = self.disk(host).inodes[&inode].durable.clone();
            for (index, op) in pending.iter().enumerate() {
                let outcome = match op {
                    Op::SetLen(len) => match self.draw(2) {
                        0 => {
                            content.resize(*len as usize, 0);
                            "kept".to_string()
                        }
                        _ => "lost".to_string(),
                    },
                    Op::Write { offset, bytes } => {
                        let end = offset + bytes.len() as u64;
                        // Sector boundaries strictly inside the write, where it can tear.
                        let first = (offset / SECTOR + 1) * SECTOR;
                        let boundaries = if first < end {
                            (end - 1 - first) / SECTOR + 1
                        } else {
                            0
                        };
                        // Kept half the time; else lost, or torn when it can tear.
                        let kept = match (self.draw(4), boundaries) {
                            (0 | 1, _) => Some(end),
                            (2, 1..) => Some(first + self.draw(boundaries) * SECTOR),
                            _ => None,
                        };
                        match kept {
                            Some(upto) => {
                                let upto = upto.min(end);
                                if content.len() < upto as usize {
                                    content.resize(upto as usize, 0);
                                }
                                let count = (upto - offset) as usize;
                                content[*offset as usize..upto as usize]
                                    .copy_from_slice(&bytes[..count]);
                                if upto == end {
                                    "kept".to_string()
                                } else {
                                    format!("torn at {upto}")
                                }
                            }
                            None => "lost".to_string(),
                        }
                    }
                };
                lines.push(format!("inode {inode} op {index}: {outcome}"));
            }
            let file = self.disk(host).inodes.get_mut(&inode).expect("listed");
            file.durable = content.clone();
            file.data = content;
        }
        self.disk(host).collect();
        lines
    }
}

impl HostDisk {
    /// Drop the inodes no name reaches, now or durably.
    fn collect(&mut self) {
        let named: std::collections::BTreeSet<u64> = self
            .names
            .values()
            .chain(self.durable_names.values())
            .filter_map(|entry| match entry {
                Entry::File(inode) => Some(*inode),
                Entry::Dir => None,
            })
            .collect();
        self.inodes.retain(|inode, _| named.contains(inode));
    }
}
