//! The real backend of `roof::fs` (feature `real-net`, on a real loop): the same calls on
//! real files under the directory the program gave the host
//! ([`LoopHandle::set_disk_dir`](crate::LoopHandle::set_disk_dir)), each run on `blocking`'s
//! thread pool (the pool async-fs is built on) so the loop never waits on the disk.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Metadata, FILE_SIZE_MAX};
use crate::engine::disk::Open;
use crate::kernel;

/// The real path of `path` (normalised, from the disk's root) on the calling host.
fn locate(path: &str) -> io::Result<PathBuf> {
    let (root, host) = kernel::with(|kernel| {
        let host = kernel.exec.current_host.get();
        let root = kernel.hosts.borrow()[host as usize].disk_dir.clone();
        (root, kernel.net.borrow().host_name(host).to_string())
    });
    let root = root.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "host {host:?} has no directory for its files on a real loop: give it one with set_disk_dir first"
            ),
        )
    })?;
    Ok(root.join(path.trim_start_matches('/')))
}

/// Run `op` on the blocking pool.
async fn off_loop<T: Send + 'static>(
    op: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    blocking::unblock(op).await
}

fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!("a file holds at most {FILE_SIZE_MAX} bytes here, as in the simulation"),
    )
}

pub(super) async fn open(
    path: &str,
    read: bool,
    write: bool,
    append: bool,
    how: Open,
) -> io::Result<Arc<std::fs::File>> {
    let full = locate(path)?;
    off_loop(move || {
        std::fs::OpenOptions::new()
            .read(read)
            .write(write)
            .append(append)
            .create(how.create)
            .create_new(how.create_new)
            .truncate(how.truncate)
            .open(full)
            .map(Arc::new)
    })
    .await
}

pub(super) async fn read_at(
    file: &Arc<std::fs::File>,
    buf: &mut [u8],
    offset: u64,
) -> io::Result<usize> {
    let (file, len) = (file.clone(), buf.len());
    let (count, bytes) = off_loop(move || {
        let mut bytes = vec![0; len];
        let count = file.read_at(&mut bytes, offset)?;
        Ok((count, bytes))
    })
    .await?;
    buf[..count].copy_from_slice(&bytes[..count]);
    Ok(count)
}

pub(super) async fn write_at(
    file: &Arc<std::fs::File>,
    buf: &[u8],
    offset: u64,
) -> io::Result<usize> {
    if offset.saturating_add(buf.len() as u64) > FILE_SIZE_MAX {
        return Err(too_large());
    }
    let (file, bytes) = (file.clone(), buf.to_vec());
    off_loop(move || file.write_all_at(&bytes, offset).map(|()| bytes.len())).await
}

pub(super) async fn sync(file: &Arc<std::fs::File>, all: bool) -> io::Result<()> {
    let file = file.clone();
    off_loop(move || {
        if all {
            file.sync_all()
        } else {
            file.sync_data()
        }
    })
    .await
}

pub(super) async fn set_len(file: &Arc<std::fs::File>, len: u64) -> io::Result<()> {
    if len > FILE_SIZE_MAX {
        return Err(too_large());
    }
    let file = file.clone();
    off_loop(move || file.set_len(len)).await
}

pub(super) async fn file_metadata(file: &Arc<std::fs::File>) -> io::Result<Metadata> {
    let file = file.clone();
    off_loop(move || file.metadata().map(|meta| of(&meta))).await
}

fn of(meta: &std::fs::Metadata) -> Metadata {
    Metadata {
        len: if meta.is_dir() { 0 } else { meta.len() },
        dir: meta.is_dir(),
    }
}

pub(super) async fn metadata(path: &str) -> io::Result<Metadata> {
    let full = locate(path)?;
    off_loop(move || std::fs::metadata(full).map(|meta| of(&meta))).await
}

pub(super) async fn rename(from: &str, to: &str) -> io::Result<()> {
    let (from, to) = (locate(from)?, locate(to)?);
    off_loop(move || std::fs::rename(from, to)).await
}

pub(super) async fn remove_file(path: &str) -> io::Result<()> {
    let full = locate(path)?;
    off_loop(move || std::fs::remove_file(full)).await
}

pub(super) async fn create_dir_all(path: &str) -> io::Result<()> {
    let full = locate(path)?;
    off_loop(move || std::fs::create_dir_all(full)).await
}

/// The entries of the directory `path`, as the simulation names them (`/dir/name`), sorted.
pub(super) async fn read_dir(path: &str) -> io::Result<Vec<PathBuf>> {
    let full = locate(path)?;
    let base = if path == "/" {
        String::new()
    } else {
        path.to_string()
    };
    off_loop(move || {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(full)? {
            let name = entry?.file_name();
            let name = name.to_str().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "a file name that is not UTF-8")
            })?;
            names.push(PathBuf::from(format!("{base}/{name}")));
        }
        names.sort();
        Ok(names)
    })
    .await
}

/// `fsync` on the directory itself: its entries' creations, renames and removals are durable.
pub(super) async fn sync_dir(path: &str) -> io::Result<()> {
    let full = locate(path)?;
    off_loop(move || std::fs::File::open(full)?.sync_all()).await
}
