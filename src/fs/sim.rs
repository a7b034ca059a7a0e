//! The simulated backend of `roof::fs`: every call waits out its latency on the virtual
//! clock, then runs on the calling host's disk in the engine, traced.

use std::io;

use crate::engine::disk::{Disks, OpKind};
use crate::kernel;

/// Wait out an operation's latency, then run it on the calling task's host's disk.
pub(super) async fn on_disk<T>(
    kind: OpKind,
    trace: impl FnOnce() -> String,
    op: impl FnOnce(&mut Disks, u32) -> io::Result<T>,
) -> io::Result<T> {
    let (host, latency) = kernel::with(|kernel| {
        let host = kernel.exec.current_host.get();
        let (fails, slowed) = engine_faults(kernel, host, kind);
        let mut disks = kernel.disks.borrow_mut();
        if fails {
            disks.faults(host).fail_next(kind);
        }
        (host, disks.latency(host, kind, slowed))
    });
    crate::time::sleep(latency).await;
    kernel::with(|kernel| {
        let mut disks = kernel.disks.borrow_mut();
        let result = op(&mut disks, host);
        let note = disks.note.take();
        drop(disks);
        kernel.record_disk(|| {
            let line = match &result {
                Ok(_) => trace(),
                Err(error) => format!("{} failed: {error}", trace()),
            };
            match note {
                Some(note) => format!("{line} ({note})"),
                None => line,
            }
        });
        result
    })
}

/// The engine's own disk fault points (`Config::buggify`): whether this operation fails with
/// EIO, and whether it runs slow.
fn engine_faults(kernel: &kernel::Kernel, host: u32, kind: OpKind) -> (bool, bool) {
    if !kernel.config.buggify {
        return (false, false);
    }
    let name = || kernel.net.borrow().host_name(host).to_string();
    let fails =
        !matches!(kind, OpKind::Stat | OpKind::Name) && kernel.engine_buggify("roof::fs: EIO", 32);
    if fails {
        kernel.inject(format!(
            "disk {}: a {kind:?} fails with EIO (buggify)",
            name()
        ));
    }
    let slowed = kernel.engine_buggify("roof::fs: slow", 16);
    if slowed {
        kernel.inject(format!("disk {}: a {kind:?} runs slow (buggify)", name()));
    }
    (fails, slowed)
}
