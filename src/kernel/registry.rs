//! Where the kernels of a thread are found: the thread-local list of live kernels and the
//! running one (for the free functions: `spawn`, `sleep`, `now`, ...), and the hooks a task
//! cell calls to reach its loop (schedule, end, abort).

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::AtomicU32;

use async_task::Runnable;

use super::Kernel;
use crate::engine::report::Failure;
use crate::engine::task::{Hooks, TaskEnd, TaskMeta};

thread_local! {
    /// Every live kernel of this thread (usually one).
    pub(super) static KERNELS: RefCell<Vec<Rc<Kernel>>> = const { RefCell::new(Vec::new()) };
    /// The kernel whose loop is running on this thread: the address of the `Rc` its run
    /// borrows, or null. A plain word with no destructor, so reading it is one load (a
    /// `RefCell<Option<Rc<Kernel>>>` cost a liveness check of the thread-local, a borrow and
    /// its release on every await). Set and cleared by [`Running`] only.
    static RUNNING_RC: Cell<*const Rc<Kernel>> = const { Cell::new(std::ptr::null()) };
}

/// The running kernel, from [`RUNNING_RC`].
#[inline(always)]
fn running_rc<'a>() -> Option<&'a Rc<Kernel>> {
    let kernel = RUNNING_RC.get();
    // SAFETY: a non-null `RUNNING_RC` is the address `Running::enter` took from the
    // `&'a Rc<Kernel>` a loop's run borrows for as long as its `Running<'a>` lives, and
    // `Running`'s drop sets it back to null: while it is set, the `Rc` is alive and not
    // moved. Every caller is code running on this thread during that run, deeper on the
    // stack than the run's frame (the loop polls its tasks; a waker of another thread never
    // reads this thread's locals), so the reference it gets ends before the run returns.
    // No second run can replace it meanwhile: `Running::enter` refuses while one is set.
    // Only shared references are ever made from it.
    (!kernel.is_null()).then(|| unsafe { &*kernel })
}

/// Loop ids, unique in the process (a toolkit primitive is numbered anew in each loop's
/// run); never visible in traces. Tasks carry the shorter `LoopTag` instead.
pub(super) static NEXT_LOOP_ID: AtomicU32 = AtomicU32::new(1);

/// Run `f` with the running kernel. Panics outside a running loop, naming the rule.
#[inline(always)]
pub(crate) fn with<R>(f: impl FnOnce(&Rc<Kernel>) -> R) -> R {
    match running_rc() {
        Some(kernel) => f(kernel),
        None => not_running(),
    }
}

/// The panic of [`with`] outside a running loop.
#[cold]
#[inline(never)]
fn not_running() -> ! {
    panic!("roof: this must be called from inside a running EventLoop (run_until_complete or run_forever)")
}

/// The running kernel. Panics outside a running loop, naming the rule.
///
/// For `spawn`: a future passed through [`with`]'s closures was copied at each level, and a
/// task's future can be large (a server task's buffer).
#[inline(always)]
pub(crate) fn running() -> Rc<Kernel> {
    with(Rc::clone)
}

/// Run `f` with the running kernel, if there is one (no reference count is touched on this
/// hot path).
#[inline]
pub(crate) fn try_with<R>(f: impl FnOnce(&Rc<Kernel>) -> R) -> Option<R> {
    running_rc().map(f)
}

/// Whether a loop is running on this thread (a panic now is a simulated task's, or the engine's).
pub fn is_running_here() -> bool {
    running_rc().is_some()
}

/// Run `f` with the running kernel, or else the newest open one of this thread (asyncio's
/// "current event loop" for code that runs between `run_*` calls).
pub(crate) fn with_current<R>(f: impl FnOnce(&Rc<Kernel>) -> R) -> Option<R> {
    if let Some(kernel) = running_rc() {
        return Some(f(kernel));
    }
    let kernel = KERNELS
        .try_with(|kernels| {
            kernels
                .borrow()
                .iter()
                .rev()
                .find(|kernel| !kernel.is_closed())
                .cloned()
        })
        .ok()
        .flatten()?;
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
#[inline]
pub(super) fn with_loop<R>(loop_tag: u16, f: impl FnOnce(&Kernel) -> R) -> Option<R> {
    match running_rc() {
        Some(kernel) if kernel.exec.loop_tag.get() == loop_tag => Some(f(kernel)),
        _ => find(loop_tag).map(|kernel| f(&kernel)),
    }
}

/// Marks a kernel as the running one for as long as it lives (the run borrows the kernel's
/// `Rc` for `'a`, which the hot path's [`RUNNING_RC`] points at).
pub(super) struct Running<'a>(PhantomData<&'a Rc<Kernel>>);

impl<'a> Running<'a> {
    pub(super) fn enter(kernel: &'a Rc<Kernel>) -> Result<Running<'a>, Failure> {
        if !RUNNING_RC.get().is_null() {
            return Err(Failure::Misuse {
                message: "another event loop is already running on this thread".into(),
            });
        }
        RUNNING_RC.set(std::ptr::from_ref(kernel));
        Ok(Running(PhantomData))
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        RUNNING_RC.set(std::ptr::null());
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
