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

use crate::engine::entropy::{LazyRng, Stream};

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
    /// Syncs still to fail with EIO (an injected fault).
    failing_syncs: u32,
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

    /// Open (or create) the file at `path`; its inode.
    pub(crate) fn open(&mut self, host: u32, path: &str, how: Open) -> io::Result<u64> {
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
        let data = &self.disk(host).inode(inode)?.data;
        let start = (offset.min(data.len() as u64)) as usize;
        let count = buf.len().min(data.len() - start);
        buf[..count].copy_from_slice(&data[start..start + count]);
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
        let file = self.disk(host).inode(inode)?;
        file.data.resize(len as usize, 0);
        file.pending.push(Op::SetLen(len));
        Ok(())
    }

    /// Make the file's data durable (or, under an injected fault, fail with EIO and drop
    /// what was pending).
    pub(crate) fn sync(&mut self, host: u32, inode: u64) -> io::Result<()> {
        let disk = self.disk(host);
        let failing = disk.failing_syncs > 0;
        disk.failing_syncs = disk.failing_syncs.saturating_sub(1);
        let file = disk.inode(inode)?;
        if failing {
            file.data = file.durable.clone();
            file.pending.clear();
            return Err(io::Error::from_raw_os_error(5));
        }
        file.durable = file.data.clone();
        file.pending.clear();
        Ok(())
    }

    /// Make the next `count` syncs on `host` fail with EIO.
    pub(crate) fn fail_syncs(&mut self, host: u32, count: u32) {
        self.disk(host).failing_syncs = count;
    }

    pub(crate) fn rename(&mut self, host: u32, from: &str, to: &str) -> io::Result<()> {
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
        let disk = self.disk(host);
        disk.file(path)?;
        disk.journal(NameOp::Remove(path.to_string()));
        Ok(())
    }

    pub(crate) fn create_dir_all(&mut self, host: u32, path: &str) -> io::Result<()> {
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
