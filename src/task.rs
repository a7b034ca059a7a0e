//! Tasks: [`spawn`], [`JoinHandle`], [`yield_now`].
//!
//! A task runs on the host of the task that spawned it, on its loop's thread. Waking a task
//! puts it at the back of the ready queue; the scheduler ([`crate::sched`]) picks which ready
//! task runs next. Dropping a [`JoinHandle`] detaches the task, as asyncio keeps tasks
//! alive; [`JoinHandle::abort`] cancels it.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::engine;
use crate::engine::cancel::CancelState;
use crate::engine::task::{TaskHandle, TaskMeta, FORWARDED, SHIELDED, TAKEN};
use crate::kernel;
use crate::kernel::Spawned;

pub use crate::cancel::{catch_cancelled, Cancelled, CatchCancelled, Raise};
pub use crate::engine::id::TaskId;

/// The error of awaiting a task that did not finish: it was aborted, its host crashed, its
/// loop closed, or it panicked while an exception handler was set (without one, a panic
/// fails a simulated run).
///
/// ```
/// let lp = roof::EventLoop::new();
/// let error: roof::JoinError = lp.run_until_complete(async {
///     let mut handle = roof::spawn(std::future::pending::<()>());
///     handle.abort();
///     let id = handle.id();
///     let error = handle.await.unwrap_err();
///     assert_eq!(error.task(), id);
///     error
/// }).unwrap();
/// assert!(error.is_cancelled());
/// assert_eq!(error.to_string(), "task #2 was cancelled");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinError {
    task: TaskId,
    panicked: bool,
}

impl JoinError {
    /// Whether the task was cancelled (the other way to fail is a panic).
    pub fn is_cancelled(&self) -> bool {
        !self.panicked
    }

    /// Whether the task panicked (under an exception handler, or on a real loop).
    pub fn is_panic(&self) -> bool {
        self.panicked
    }

    /// The task that was cancelled.
    pub fn task(&self) -> TaskId {
        self.task
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.panicked {
            write!(f, "task {} panicked", self.task)
        } else {
            write!(f, "task {} was cancelled", self.task)
        }
    }
}

impl std::error::Error for JoinError {}

/// A handle to a spawned task: await it for the task's result.
///
/// Dropping the handle detaches the task, which keeps running (as in asyncio); [`abort`]
/// cancels it.
///
/// [`abort`]: JoinHandle::abort
///
/// ```
/// let lp = roof::EventLoop::new();
/// let total = lp.run_until_complete(async {
///     let handles: Vec<roof::JoinHandle<u64>> =
///         (1..=3).map(|n| roof::spawn(async move { n * 10 })).collect();
///     let mut total = 0;
///     for handle in handles {
///         total += handle.await.unwrap();
///     }
///     total
/// }).unwrap();
/// assert_eq!(total, 60);
/// ```
#[must_use = "dropping a JoinHandle detaches the task; call .detach() to make that explicit"]
pub struct JoinHandle<T> {
    /// The task, held until the handle is dropped (8 bytes: a million handles held in a
    /// `Vec` are a benchmark's peak memory). The handle's own state (a shield's, a request
    /// passed on, the output taken) lives in the task's header.
    task: TaskHandle<T>,
}

impl<T> JoinHandle<T> {
    /// The handle of a task the kernel just spawned.
    pub(crate) fn spawned((_, task): Spawned<T>) -> JoinHandle<T> {
        JoinHandle { task }
    }

    fn meta(&self) -> &TaskMeta {
        self.task.metadata()
    }

    fn raw_id(&self) -> u64 {
        self.meta().id()
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        TaskId(self.raw_id())
    }

    /// Ask the task to stop, as asyncio's `Task.cancel()` does: the request is delivered at
    /// its next await on a roof primitive, which does not return; the task unwinds to the
    /// nearest [`catch_cancelled`], where it may clean up
    /// (with awaits) and finish, or raise it again. Uncaught, the task ends cancelled. A
    /// task that has not run yet ends before it runs. False if the task has finished already.
    /// See [`roof::task::catch_cancelled`](crate::task::catch_cancelled) for the await points.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = roof::EventLoop::new();
    /// let (error, cancelled) = lp.run_until_complete(async {
    ///     let mut worker = roof::spawn(roof::sleep(Duration::from_secs(10)));
    ///     roof::sleep(Duration::from_millis(1)).await; // the worker sleeps
    ///     assert!(worker.cancel());
    ///     let error = (&mut worker).await.unwrap_err();
    ///     assert!(!worker.cancel(), "it has finished");
    ///     (error, worker.cancelled())
    /// }).unwrap();
    /// assert!(error.is_cancelled() && cancelled);
    /// ```
    pub fn cancel(&self) -> bool {
        if self.is_finished() {
            return false;
        }
        kernel::request_cancel(self.task.metadata());
        true
    }

    /// Whether the task ended cancelled: aborted, a [`cancel`](JoinHandle::cancel) it did
    /// not catch, its host crashed or its loop closed (asyncio's `Task.cancelled()`).
    pub fn cancelled(&self) -> bool {
        self.task.is_finished() && self.meta().ended_cancelled()
    }

    /// Cancel the task: its future is dropped (never polled again) the next time the loop
    /// gets to it, and awaiting this handle then yields a [`JoinError`]. A task that already
    /// finished keeps its result.
    ///
    /// As with asyncio's `Task.cancel()`, the task is not finished at once:
    /// [`is_finished`](JoinHandle::is_finished) turns true, and `.await` resolves, only once
    /// the future has been dropped and its drop guards have run (asyncio: once its `finally`
    /// ran). The task cannot observe this cancellation: [`cancel`](JoinHandle::cancel) is
    /// asyncio's, which the task sees and may catch.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = roof::EventLoop::new();
    /// let result = lp.run_until_complete(async {
    ///     let mut handle = roof::spawn(roof::sleep(Duration::from_secs(10)));
    ///     handle.abort();
    ///     assert!(!handle.is_finished(), "its future is dropped when the loop gets to it");
    ///     (&mut handle).await
    /// }).unwrap();
    /// assert!(result.unwrap_err().is_cancelled());
    /// ```
    pub fn abort(&mut self) {
        if self.task.is_finished() {
            return;
        }
        // Queued one last time, for the loop to drop its future; dropping it wakes whoever
        // awaits this handle.
        kernel::abort_task(self.task.metadata());
    }

    /// Let the task run on with nobody waiting for it.
    pub fn detach(mut self) {
        self.task.let_go();
    }

    /// The task's name: given at spawn or by [`set_name`](JoinHandle::set_name), else
    /// asyncio's `Task-<id>` (asyncio's `Task.get_name`).
    ///
    /// ```
    /// let lp = roof::EventLoop::new();
    /// lp.run_until_complete(async {
    ///     let task = roof::spawn(async {});
    ///     assert_eq!(task.get_name(), format!("Task-{}", task.id().as_u64()));
    ///     task.set_name("worker");
    ///     assert_eq!(task.get_name(), "worker");
    ///     assert!(roof::task::all_tasks().iter().any(|(id, name)| *id == task.id() && name == "worker"));
    /// }).unwrap();
    /// ```
    pub fn get_name(&self) -> String {
        let id = self.raw_id();
        kernel::try_with(|kernel| kernel.exec.tasks.borrow().name(id))
            .unwrap_or_else(|| crate::engine::task::display_name(id, None))
    }

    /// Rename the task (asyncio's `Task.set_name`); nothing once it has finished.
    pub fn set_name(&self, name: impl Into<Cow<'static, str>>) {
        if self.task.is_finished() {
            return;
        }
        let name = crate::engine::task::TaskName::from(name.into());
        let id = self.raw_id();
        kernel::try_with(|kernel| kernel.exec.tasks.borrow_mut().set_name(id, name));
    }

    /// Whether the task has finished: it returned, or it was cancelled and its future has
    /// been dropped.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl<T> JoinHandle<T> {
    /// The awaiter has a cancellation request, and the task has not finished: pass it on to
    /// the task (asyncio cancels the task a cancelled task awaits) and wait on, or, for a
    /// shield, deliver it here.
    fn pass_on_cancel(&mut self) {
        if self.meta().has(SHIELDED) {
            engine::cancel::deliver_cancel();
            return;
        }
        if !self.meta().has(FORWARDED) {
            self.meta().set(FORWARDED);
            kernel::request_cancel(self.task.metadata());
        }
        engine::cancel::set_cancel_state(CancelState::Forwarded);
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.raw_id())
            .finish()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let task = self.id();
        if self.meta().has(TAKEN) {
            return Poll::Ready(Err(JoinError {
                task,
                panicked: false,
            }));
        }
        let output = match Pin::new(&mut self.task).poll(cx) {
            Poll::Pending => {
                if engine::cancel::cancel_requested() {
                    self.pass_on_cancel();
                }
                return Poll::Pending;
            }
            // The future returned: its output. Cancelled or panicked: none.
            Poll::Ready(output) => output,
        };
        let meta = self.meta();
        meta.set(TAKEN);
        let panicked = meta.panicked();
        if output.is_none() && meta.ended_cancelled() && meta.has(FORWARDED) {
            // The awaiter's request ended the task: the awaiter is cancelled too.
            meta.clear(FORWARDED);
            engine::cancel::set_cancel_state(CancelState::Delivered);
            return Poll::Pending;
        }
        Poll::Ready(output.ok_or(JoinError { task, panicked }))
    }
}

/// Spawn a task on the running loop; the tokio name for asyncio's `create_task`.
///
/// Panics outside a running [`EventLoop`](crate::EventLoop).
///
/// ```
/// let lp = roof::EventLoop::new();
/// let sum = lp.run_until_complete(async {
///     let a = roof::spawn(async { 20 });
///     let b = roof::spawn(async { 22 });
///     a.await.unwrap() + b.await.unwrap()
/// }).unwrap();
/// assert_eq!(sum, 42);
/// ```
#[doc(alias = "create_task")]
#[inline(always)]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    JoinHandle::spawned(kernel::running().spawn(future, None))
}

/// Spawn a named task on the running loop; the name shows in traces and reports.
///
/// ```
/// let lp = roof::EventLoop::with_config(roof::Config::new(0).trace(roof::TraceMode::Record));
/// lp.run_until_complete(async { roof::spawn_named("worker", async {}).await.unwrap() }).unwrap();
/// assert!(lp.report().trace.unwrap().render().contains("spawn #2 \"worker\""));
/// ```
pub fn spawn_named<F>(name: impl Into<Cow<'static, str>>, future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let name = name.into();
    let name = Some(crate::engine::task::TaskName::from(name));
    JoinHandle::spawned(kernel::running().spawn(future, name))
}

/// Run `future` as its own task, protected from the cancellation of whoever awaits it
/// (asyncio's `shield`): dropping the returned handle (a [`timeout`](crate::timeout) that
/// gave up, an abort of the awaiting task) leaves the task running, and a cancellation
/// request of the awaiting task ([`JoinHandle::cancel`]) is delivered to the awaiter at this
/// handle, not passed on to the task.
///
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
/// let lp = roof::EventLoop::new();
/// let saved = lp.run_until_complete(async {
///     let saved = Rc::new(Cell::new(false));
///     let flag = saved.clone();
///     let save = roof::task::shield(async move {
///         roof::sleep(Duration::from_secs(2)).await;
///         flag.set(true);
///     });
///     assert!(roof::timeout(Duration::from_secs(1), save).await.is_err());
///     roof::sleep(Duration::from_secs(2)).await;
///     saved.get()
/// }).unwrap();
/// assert!(saved, "the shielded task finished after its awaiter gave up");
/// ```
pub fn shield<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let handle = spawn(future);
    handle.meta().set(SHIELDED);
    handle
}

/// The live tasks of the running loop, by id, with their names (asyncio's `all_tasks`);
/// empty outside a loop.
///
/// ```
/// let lp = roof::EventLoop::new();
/// let tasks = lp.run_until_complete(async {
///     let _worker = roof::spawn_named("worker", roof::sleep(std::time::Duration::from_secs(1)));
///     roof::task::all_tasks()
/// }).unwrap();
/// let names: Vec<&str> = tasks.iter().map(|(_, name)| name.as_str()).collect();
/// assert_eq!(names, ["main", "worker"]);
/// assert!(roof::task::all_tasks().is_empty());
/// ```
pub fn all_tasks() -> Vec<(TaskId, String)> {
    kernel::try_with(|kernel| kernel.exec.tasks.borrow().list()).unwrap_or_default()
}

/// The name of the task being polled, if any.
///
/// ```
/// let lp = roof::EventLoop::new();
/// let name = lp.run_until_complete(async {
///     roof::spawn_named("worker", async { roof::task::current_task_name() }).await.unwrap()
/// }).unwrap();
/// assert_eq!(name.as_deref(), Some("worker"));
/// ```
pub fn current_task_name() -> Option<String> {
    kernel::try_with(|kernel| {
        let id = kernel.exec.current.get()?;
        Some(kernel.exec.tasks.borrow().name(id.0))
    })
    .flatten()
}

/// The id of the task being polled, if any.
///
/// ```
/// assert_eq!(roof::current_task(), None, "no task runs outside a loop");
/// let lp = roof::EventLoop::new();
/// let (main, child, child_id) = lp.run_until_complete(async {
///     let child = roof::spawn(async { roof::current_task() });
///     let id = child.id();
///     (roof::current_task(), child.await.unwrap(), id)
/// }).unwrap();
/// assert_eq!(main.unwrap().as_u64(), 1, "main is task #1");
/// assert_eq!(child, Some(child_id));
/// ```
pub fn current_task() -> Option<TaskId> {
    kernel::try_with(|kernel| kernel.exec.current.get()).flatten()
}

/// Give the other ready tasks a turn: this task goes to the back of the ready queue.
///
/// ```
/// let lp = roof::EventLoop::with_config(roof::Config::new(0).policy(roof::Policy::Fifo));
/// let order = lp.run_until_complete(async {
///     let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
///     let other = { let log = log.clone(); roof::spawn(async move { log.borrow_mut().push("other") }) };
///     roof::yield_now().await;
///     log.borrow_mut().push("main");
///     other.await.unwrap();
///     log.take()
/// }).unwrap();
/// assert_eq!(order, ["other", "main"]);
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future returned by [`yield_now`].
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// let lp = roof::EventLoop::with_config(roof::Config::new(0).policy(roof::Policy::Fifo));
/// let spins = lp.run_until_complete(async {
///     let done = Rc::new(Cell::new(false));
///     let flag = done.clone();
///     roof::spawn(async move { flag.set(true) }).detach();
///     let mut spins = 0;
///     while !done.get() {
///         let turn: roof::task::YieldNow = roof::yield_now();
///         turn.await; // the other task runs meanwhile
///         spins += 1;
///     }
///     spins
/// }).unwrap();
/// assert_eq!(spins, 1);
/// ```
#[must_use = "yield_now does nothing unless awaited"]
#[derive(Debug)]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if crate::engine::cancel::deliver_cancel() {
            return Poll::Pending;
        }
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
