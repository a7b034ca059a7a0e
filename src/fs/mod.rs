//! A file system per host, with the names std and async-fs use: files survive their host's
//! crash and restart, and what was not synced may not.
//!
//! Every call works on the disk of the host the calling task runs on, and takes virtual time
//! ([`READ_LATENCY`], [`WRITE_LATENCY`], [`SYNC_LATENCY`] by default, each with up to half
//! again of seeded jitter; [`LoopHandle::set_disk`](crate::LoopHandle::set_disk) sets a host's
//! latencies and capacity with a [`DiskConfig`]). Paths are absolute from the disk's root (a relative path starts there
//! too); `..` may not climb above it.
//!
//! # What survives a crash
//! - Data written and then synced (`File::sync_all`, `File::sync_data`) survives.
//! - Each write not synced is, by a seeded draw, kept, lost, or *torn* at a sector boundary
//!   ([`SECTOR`], 512 bytes): its bytes kept from its start up to a multiple of 512 inside
//!   it, the rest lost. Writes are kept or lost one by one, so a later write may survive an
//!   earlier one that did not (a disk cache reorders), as the ALICE and CrashMonkey studies
//!   of Linux file systems test applications against.
//! - Creating, renaming and removing files and making directories are durable only once a
//!   directory is synced ([`sync_dir`]), which commits every such change before it (one
//!   journal, as ext4's). At a crash a seeded prefix of the unsynced changes survives; a file
//!   whose name did not survive is gone.
//! - A sync that fails (EIO, injected with [`LoopHandle::fail_syncs`](crate::LoopHandle::fail_syncs))
//!   drops what was not yet durable, as Linux drops the dirty pages of a failed `fsync`:
//!   syncing again does not bring it back.
//!
//! ```
//! use roof::fs;
//! let lp = roof::EventLoop::with_config(roof::Config::new(1).echo(false));
//! let text = lp.run_until_complete(async {
//!     fs::create_dir_all("/data").await?;
//!     let mut file = fs::File::create("/data/log").await?;
//!     file.write_all(b"hello").await?;
//!     file.sync_all().await?;
//!     fs::sync_dir("/data").await?;
//!     fs::read_to_string("/data/log").await
//! }).unwrap().unwrap();
//! assert_eq!(text, "hello");
//! ```

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::engine::disk::{OpKind, Open};
use crate::kernel;

#[cfg(feature = "real-net")]
mod real;
mod sim;

use sim::on_disk;

pub use crate::engine::disk::{
    DiskConfig, DISK_LATENCY_MAX, FILE_SIZE_MAX, READ_LATENCY, SECTOR, SLOW_DISK_FACTOR,
    SYNC_LATENCY, WRITE_LATENCY,
};
/// The longest path, in bytes.
pub const PATH_MAX: usize = 4096;

/// `path` as the disk names it: `/a/b`, or `/` for the root.
fn normal(path: &Path) -> io::Result<String> {
    let invalid = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: {why}", path.display()),
        )
    };
    let text = path.to_str().ok_or_else(|| invalid("not UTF-8"))?;
    if text.is_empty() {
        return Err(invalid("an empty path"));
    }
    if text.len() > PATH_MAX {
        return Err(invalid(&format!("longer than {PATH_MAX} bytes")));
    }
    let mut parts: Vec<&str> = Vec::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => parts.push(part.to_str().expect("checked above")),
            Component::ParentDir => {
                parts
                    .pop()
                    .ok_or_else(|| invalid("climbs above the root"))?;
            }
            Component::Prefix(_) => return Err(invalid("has a drive prefix")),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// How to open a file, as [`std::fs::OpenOptions`].
///
/// ```
/// use roof::fs::OpenOptions;
/// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
/// lp.run_until_complete(async {
///     let mut log = OpenOptions::new().append(true).create(true).open("/log").await.unwrap();
///     log.write_all(b"a").await.unwrap();
///     let again = OpenOptions::new().write(true).create_new(true).open("/log").await;
///     assert_eq!(again.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
/// }).unwrap();
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    how: Open,
}

impl OpenOptions {
    /// Nothing allowed yet.
    pub fn new() -> OpenOptions {
        OpenOptions::default()
    }
    /// Allow reading.
    pub fn read(mut self, read: bool) -> OpenOptions {
        self.read = read;
        self
    }
    /// Allow writing.
    pub fn write(mut self, write: bool) -> OpenOptions {
        self.write = write;
        self
    }
    /// Write at the end, whatever the position.
    pub fn append(mut self, append: bool) -> OpenOptions {
        self.append = append;
        self
    }
    /// Cut the file to nothing when opened.
    pub fn truncate(mut self, truncate: bool) -> OpenOptions {
        self.how.truncate = truncate;
        self
    }
    /// Create the file if it does not exist.
    pub fn create(mut self, create: bool) -> OpenOptions {
        self.how.create = create;
        self
    }
    /// Create the file, failing if it exists.
    pub fn create_new(mut self, create_new: bool) -> OpenOptions {
        self.how.create_new = create_new;
        self
    }

    /// Open the file at `path`.
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let path = normal(path.as_ref())?;
        let options = *self;
        if !options.read && !options.write && !options.append {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "open: ask for read, write or append",
            ));
        }
        let host = kernel::with(|kernel| kernel.exec.current_host.get());
        #[cfg(feature = "real-net")]
        if is_real() {
            let file = real::open(
                &path,
                options.read,
                options.write,
                options.append,
                options.how,
            )
            .await?;
            return Ok(File {
                path,
                host,
                backend: Backend::Real(file),
                position: 0,
                options,
            });
        }
        let traced = path.clone();
        let inode = on_disk(
            OpKind::Name,
            || format!("open {traced}"),
            |disks, host| disks.open(host, &traced, options.how),
        )
        .await?;
        Ok(File {
            path,
            host,
            backend: Backend::Sim(inode),
            position: 0,
            options,
        })
    }
}

/// Whether the running loop is a real one (files on the host's directory).
#[cfg(feature = "real-net")]
fn is_real() -> bool {
    kernel::with(|kernel| kernel.is_real())
}

/// Where an open file lives.
#[derive(Debug)]
enum Backend {
    /// On the simulated disk: its inode.
    Sim(u64),
    /// A real file (a real loop, feature `real-net`).
    #[cfg(feature = "real-net")]
    Real(std::sync::Arc<std::fs::File>),
}

/// An open file on the host's disk.
#[derive(Debug)]
pub struct File {
    path: String,
    host: u32,
    backend: Backend,
    position: u64,
    options: OpenOptions,
}

impl File {
    /// Create (or truncate) the file at `path`, for writing.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// Open the file at `path` for reading.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    fn check(&self, write: bool) -> io::Result<()> {
        let allowed = if write {
            self.options.write || self.options.append
        } else {
            self.options.read
        };
        let here = kernel::with(|kernel| kernel.exec.current_host.get());
        if here != self.host {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{}: a file is used on the host that opened it", self.path),
            ));
        }
        if allowed {
            Ok(())
        } else {
            let what = if write { "writing" } else { "reading" };
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{}: not opened for {what}", self.path),
            ))
        }
    }

    /// Read from the position; 0 at the end.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let count = self.read_at(buf, self.position).await?;
        self.position += count as u64;
        Ok(count)
    }

    /// Read at `offset`, leaving the position alone (`FileExt::read_at`).
    pub async fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.check(false)?;
        let inode = match &self.backend {
            Backend::Sim(inode) => *inode,
            #[cfg(feature = "real-net")]
            Backend::Real(file) => return real::read_at(file, buf, offset).await,
        };
        let (path, len) = (&self.path, buf.len());
        on_disk(
            OpKind::Read,
            || format!("read {path} {offset}+{len}"),
            |disks, host| disks.read_at(host, inode, offset, buf),
        )
        .await
    }

    /// Read everything from the position to the end into `buf`.
    pub async fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let len = self.metadata().await?.len();
        let start = buf.len();
        buf.resize(start + len.saturating_sub(self.position) as usize, 0);
        let count = self.read(&mut buf[start..]).await?;
        buf.truncate(start + count);
        Ok(count)
    }

    /// Write at the position (at the end when appending).
    pub async fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.options.append {
            self.position = self.metadata().await?.len();
        }
        let count = self.write_at(buf, self.position).await?;
        self.position += count as u64;
        Ok(count)
    }

    /// Write all of `buf` at the position.
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write(buf).await.map(drop)
    }

    /// Write at `offset`, leaving the position alone (`FileExt::write_at`).
    pub async fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.check(true)?;
        let inode = match &self.backend {
            Backend::Sim(inode) => *inode,
            #[cfg(feature = "real-net")]
            Backend::Real(file) => return real::write_at(file, buf, offset).await,
        };
        let (path, len) = (&self.path, buf.len());
        on_disk(
            OpKind::Write,
            || format!("write {path} {offset}+{len}"),
            |disks, host| disks.write_at(host, inode, offset, buf),
        )
        .await
    }

    /// Move the position, as [`std::io::Seek`].
    pub async fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let target = match to {
            io::SeekFrom::Start(at) => Some(at),
            io::SeekFrom::End(delta) => self.metadata().await?.len().checked_add_signed(delta),
            io::SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )
        })?;
        Ok(self.position)
    }

    /// Make the file's data durable: it survives a crash from now on.
    pub async fn sync_all(&self) -> io::Result<()> {
        let inode = match &self.backend {
            Backend::Sim(inode) => *inode,
            #[cfg(feature = "real-net")]
            Backend::Real(file) => return real::sync(file, true).await,
        };
        let path = &self.path;
        on_disk(
            OpKind::Sync,
            || format!("sync {path}"),
            |disks, host| disks.sync(host, inode),
        )
        .await
    }

    /// [`sync_all`](File::sync_all): the simulation keeps no metadata apart from the data
    /// (on a real loop, `fdatasync`).
    pub async fn sync_data(&self) -> io::Result<()> {
        #[cfg(feature = "real-net")]
        if let Backend::Real(file) = &self.backend {
            return real::sync(file, false).await;
        }
        self.sync_all().await
    }

    /// Cut or extend (with zeros) the file to `len` bytes.
    pub async fn set_len(&self, len: u64) -> io::Result<()> {
        self.check(true)?;
        let inode = match &self.backend {
            Backend::Sim(inode) => *inode,
            #[cfg(feature = "real-net")]
            Backend::Real(file) => return real::set_len(file, len).await,
        };
        let path = &self.path;
        on_disk(
            OpKind::Write,
            || format!("set-len {path} {len}"),
            |disks, host| disks.set_len(host, inode, len),
        )
        .await
    }

    /// The file's length, as its metadata.
    pub async fn metadata(&self) -> io::Result<Metadata> {
        let inode = match &self.backend {
            Backend::Sim(inode) => *inode,
            #[cfg(feature = "real-net")]
            Backend::Real(file) => return real::file_metadata(file).await,
        };
        on_disk(OpKind::Stat, String::new, |disks, host| {
            disks.len(host, inode)
        })
        .await
        .map(|len| Metadata { len, dir: false })
    }
}

impl crate::LoopHandle {
    /// Where `host`'s files live on a real loop (feature `real-net`): `roof::fs` paths are
    /// taken from this directory (`/data/log` is `<dir>/data/log`), never from the current
    /// directory. A real loop's file calls fail with `InvalidInput` until it is set. A
    /// simulation keeps its files on the simulated disk and ignores it.
    ///
    /// ```
    /// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
    /// lp.set_disk_dir("main", std::env::temp_dir().join("roof-doc")).unwrap();
    /// assert!(lp.set_disk_dir("nowhere", "/tmp").is_err(), "an unknown host");
    /// ```
    pub fn set_disk_dir(&self, host: &str, dir: impl Into<PathBuf>) -> io::Result<()> {
        let index = self.host_index(host)?;
        self.kernel.hosts.borrow_mut()[index as usize].disk_dir = Some(dir.into());
        Ok(())
    }
}

/// What [`metadata`] says about a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    len: u64,
    dir: bool,
}

impl Metadata {
    /// A file's length in bytes (0 for a directory).
    pub fn len(&self) -> u64 {
        self.len
    }
    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.dir
    }
    /// Whether it is a file.
    pub fn is_file(&self) -> bool {
        !self.dir
    }
}

/// The whole file at `path`.
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let mut file = File::open(path).await?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).await?;
    Ok(bytes)
}

/// The whole file at `path`, as UTF-8.
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    String::from_utf8(read(path).await?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the file is not UTF-8"))
}

/// Create or replace the file at `path` with `bytes` (not synced).
pub async fn write(path: impl AsRef<Path>, bytes: impl AsRef<[u8]>) -> io::Result<()> {
    File::create(path).await?.write_all(bytes.as_ref()).await
}

/// What `path` is.
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    let path = normal(path.as_ref())?;
    #[cfg(feature = "real-net")]
    if is_real() {
        return real::metadata(&path).await;
    }
    on_disk(OpKind::Stat, String::new, |disks, host| {
        disks.stat(host, &path)
    })
    .await
    .map(|(dir, len)| Metadata { len, dir })
}

/// Rename the file `from` to `to`, replacing a file there (durable once the directory is
/// synced).
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let (from, to) = (normal(from.as_ref())?, normal(to.as_ref())?);
    #[cfg(feature = "real-net")]
    if is_real() {
        return real::rename(&from, &to).await;
    }
    on_disk(
        OpKind::Name,
        || format!("rename {from} {to}"),
        |disks, host| disks.rename(host, &from, &to),
    )
    .await
}

/// Remove the file at `path` (durable once the directory is synced).
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    let path = normal(path.as_ref())?;
    #[cfg(feature = "real-net")]
    if is_real() {
        return real::remove_file(&path).await;
    }
    on_disk(
        OpKind::Name,
        || format!("remove {path}"),
        |disks, host| disks.remove_file(host, &path),
    )
    .await
}

/// Make the directory `path` and its missing parents.
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = normal(path.as_ref())?;
    #[cfg(feature = "real-net")]
    if is_real() {
        return real::create_dir_all(&path).await;
    }
    on_disk(
        OpKind::Name,
        || format!("mkdir {path}"),
        |disks, host| disks.create_dir_all(host, &path),
    )
    .await
}

/// The paths directly inside the directory `path`, sorted.
pub async fn read_dir(path: impl AsRef<Path>) -> io::Result<Vec<PathBuf>> {
    let path = normal(path.as_ref())?;
    #[cfg(feature = "real-net")]
    if is_real() {
        return real::read_dir(&path).await;
    }
    on_disk(OpKind::Stat, String::new, |disks, host| {
        disks.read_dir(host, &path)
    })
    .await
    .map(|names| names.into_iter().map(PathBuf::from).collect())
}

/// Sync the directory `path` (`fsync` on a directory): every create, rename and remove so
/// far becomes durable.
pub async fn sync_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = normal(path.as_ref())?;
    #[cfg(feature = "real-net")]
    if is_real() {
        return real::sync_dir(&path).await;
    }
    on_disk(
        OpKind::Sync,
        || format!("sync-dir {path}"),
        |disks, host| disks.sync_dir(host, &path),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_from_the_root() {
        assert_eq!(normal(Path::new("/a/./b/../c")).unwrap(), "/a/c");
        assert_eq!(normal(Path::new("data/log")).unwrap(), "/data/log");
        assert_eq!(normal(Path::new("/")).unwrap(), "/");
        assert!(normal(Path::new("/..")).is_err());
        assert!(normal(Path::new("")).is_err());
        assert!(normal(Path::new(&"a".repeat(PATH_MAX + 1))).is_err());
    }
}
