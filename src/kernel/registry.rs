//! Where the kernels of a thread are found: the thread-local list of live kernels and the
//! running one (for the free functions: `spawn`, `sleep`, `now`, ...), and the hooks a task
//! cell calls to reach its loop (schedule, end, abort).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::AtomicU32;

use async_task::Runnable;

use super::Kernel;
use crate::engine::report::Failure;
use crate::engine::task::{Hooks, TaskEnd, TaskMeta};

thread_local! {
    /// Every live kernel of this thread (usually one).
    pub(super) static KERNELS: RefCell<Vec<Rc<Kernel>>> = const { RefCell::new(Vec::new()) };
    /// The kernel whose loop is running on this thread.
    pub(super) static RUNNING: RefCell<Option<Rc<Kernel>>> = const { RefCell::new(None) };
}

/// Loop ids, unique in the process (a toolkit primitive is numbered anew in each loop's
/// run); never visible in traces. Tasks carry the shorter `LoopTag` instead.
pub(super) static NEXT_LOOP_ID: AtomicU32 = AtomicU32::new(1);

/// Run `f` with the running kernel. Panics outside a running loop, naming the rule.
pub(crate) fn with<R>(f: impl FnOnce(&Rc<Kernel>) -> R) -> R {
    try_with(f).expect("roof: this must be called from inside a running EventLoop (run_until_complete or run_forever)")
}

/// The running kernel. Panics outside a running loop, naming the rule.
///
/// For `spawn`: a future passed through [`with`]'s closures was copied at each level, and a
/// task's future can be large (a server task's buffer).
#[inline(always)]
pub(crate) fn running() -> Rc<Kernel> {
    with(Rc::clone)
}

/// Run `f` with the running kernel, if there is one.
///
/// `f` runs while the running-loop slot is borrowed (no reference count is touched on this
/// hot path), so it must not start or end a run; `Running::enter` reports that as misuse.
pub(crate) fn try_with<R>(f: impl FnOnce(&Rc<Kernel>) -> R) -> Option<R> {
    RUNNING
        .try_with(|running| running.borrow().as_ref().map(f))
        .ok()
        .flatten()
}

/// Whether a loop is running on this thread (a panic now is a simulated task's, or the engine's).
pub fn is_running_here() -> bool {
    RUNNING
        .try_with(|running| {
            running
                .try_borrow()
                .map(|running| running.is_some())
                .unwrap_or(true)
        })
        .unwrap_or(false)
}

/// Run `f` with the running kernel, or else the newest open one of this thread (asyncio's
/// "current event loop" for code that runs between `run_*` calls).
pub(crate) fn with_current<R>(f: impl FnOnce(&Rc<Kernel>) -> R) -> Option<R> {
    let kernel = RUNNING
        .try_with(|running| running.borrow().clone())
        .ok()
        .flatten()
        .or_else(|| {
            KERNELS
                .try_with(|kernels| {
                    kernels
                        .borrow()
                        .iter()
                        .rev()
                        .find(|kernel| !kernel.is_closed())
                        .cloned()
                })
                .ok()
                .flatten()
        })?;
    Some(f(&kernel))
}

/// The kernel of this thread whose loop has the tag `loop_tag`.
pub(super) fn find(loop_tag: u16) -> Option<Rc<Kernel>> {
    KERNELS
        .try_with(|kernels| {
            kernels
                .borrow()
                .iter()
                .find(|kernel| kernel.exec.loop_tag.get() == loop_tag)
                .cloned()
        })
        .ok()
        .flatten()
}

/// A task was woken (on any thread): queue it on its loop.
///
/// The running loop is the usual owner; then another loop of this thread. No loop of this
/// thread owning the task means the waker was used on a foreign thread: a real loop's task
/// woken by async-io's reactor goes to that loop's mailbox. Otherwise the runnable is leaked,
/// never dropped here: dropping it would drop a future on a thread that is not its loop's.
/// (A closed loop's tasks are all finished, and a finished task is never scheduled, so that
/// takes a waker sent to another thread by the program itself.)
pub(super) fn schedule(runnable: Runnable<TaskMeta>) {
    let loop_tag = runnable.metadata().loop_tag();
    let mut runnable = Some(runnable);
    with_loop(loop_tag, |kernel| {
        if let Some(runnable) = runnable.take() {
            kernel.schedule(runnable);
        }
    });
    if let Some(runnable) = runnable {
        #[cfg(feature = "real-net")]
        crate::kernel::real::deliver_foreign(runnable);
        #[cfg(not(feature = "real-net"))]
        std::mem::forget(runnable);
    }
}

/// Abort a task: mark it cancelled and wake it, for the loop to drop its future. Nothing if
/// it is gone or cancelled already.
pub(crate) fn abort_task(meta: &TaskMeta) {
    let waker = with_loop(meta.loop_tag(), |kernel| {
        kernel.exec.tasks.borrow().cancel_one(meta)
    })
    .flatten();
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// Request a cancellation the task can observe (asyncio's `Task.cancel()`) and wake it, for
/// the request to reach its next await on a roof primitive. Nothing if it is gone or
/// cancelled already.
pub(crate) fn request_cancel(meta: &TaskMeta) {
    let waker = with_loop(meta.loop_tag(), |kernel| {
        let waker = kernel.exec.tasks.borrow().request_cancel_one(meta)?;
        if kernel.trace.enabled() {
            kernel.record(crate::engine::trace::EventKind::CancelRequest {
                task: crate::engine::id::TaskId(meta.id()),
                by: kernel.exec.current.get(),
            });
        }
        Some(waker)
    })
    .flatten();
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// What the kernel does with its tasks (see [`Hooks`]).
pub(crate) struct KernelHooks;

impl Hooks for KernelHooks {
    fn schedule(runnable: Runnable<TaskMeta>) {
        schedule(runnable);
    }

    /// A task ended (its guard reports it before the future is dropped): forget it.
    fn ended(meta: &TaskMeta, end: TaskEnd) {
        with_loop(meta.loop_tag(), |kernel| kernel.task_ended(meta, end));
    }
}

/// Run `f` with the kernel of the loop tagged `loop_tag` (the running one, without touching
/// a reference count, in the common case).
pub(super) fn with_loop<R>(loop_tag: u16, f: impl FnOnce(&Kernel) -> R) -> Option<R> {
    let mut f = Some(f);
    let running = RUNNING
        .try_with(|running| {
            let running = running.borrow();
            let kernel = running
                .as_deref()
                .filter(|kernel| kernel.exec.loop_tag.get() == loop_tag)?;
            f.take().map(|f| f(kernel))
        })
        .ok()
        .flatten();
    match (running, f) {
        (Some(result), _) => Some(result),
        (None, Some(f)) => find(loop_tag).map(|kernel| f(&kernel)),
        (None, None) => None,
    }
}

/// Marks a kernel as the running one for as long as it lives.
pub(super) struct Running;

impl Running {
    pub(super) fn enter(kernel: &Rc<Kernel>) -> Result<Running, Failure> {
        RUNNING.with(|running| {
            let Ok(mut running) = running.try_borrow_mut() else {
                return Err(Failure::Misuse {
                    message: "an event loop cannot be started or closed from inside the engine"
                        .into(),
                });
            };
            if running.is_some() {
                return Err(Failure::Misuse {
                    message: "another event loop is already running on this thread".into(),
                });
            }
            *running = Some(kernel.clone());
            Ok(Running)
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let previous = RUNNING
            .try_with(|running| running.borrow_mut().take())
            .ok()
            .flatten();
        drop(previous);
    }
}

/// The text of a panic's payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(a panic payload that is not a string)".to_string()
    }
}
