//! Waiting on many tasks: asyncio's `wait` (with `return_when` and a timeout), `as_completed`
//! and `TaskGroup`.
//!
//! A finished task's result can be read only once, by awaiting its handle, so where asyncio
//! returns sets of done tasks these return the results of the done ones, with each one's
//! index in the list given, and the handles of the others.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::task::{JoinError, JoinHandle};

/// When [`wait`] returns (asyncio's `FIRST_COMPLETED`, `FIRST_EXCEPTION`, `ALL_COMPLETED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReturnWhen {
    /// As soon as one task finished.
    FirstCompleted,
    /// As soon as one task panicked (asyncio: raised), or else when all finished. A
    /// cancelled task does not count, as in asyncio.
    FirstException,
    /// When every task finished.
    AllCompleted,
}

/// What [`wait`] found: the results of the tasks that finished, and the tasks still running,
/// each with its index in the list given.
#[derive(Debug)]
#[non_exhaustive]
pub struct Waited<T> {
    /// (index, result) of each finished task, in index order.
    pub done: Vec<(usize, Result<T, JoinError>)>,
    /// (index, handle) of each task still running, in index order.
    pub pending: Vec<(usize, JoinHandle<T>)>,
}

/// Wait for `tasks` until `return_when` says so or `timeout` passes (asyncio's `wait`; the
/// tasks still running are not cancelled, as asyncio leaves them).
///
/// ```
/// use std::time::Duration;
/// use roof::wait::{wait, ReturnWhen};
/// let lp = roof::EventLoop::new();
/// let (done, pending) = lp.run_until_complete(async {
///     let tasks: Vec<_> = [30u64, 10, 20].into_iter().map(|ms| roof::spawn(async move {
///         roof::sleep(Duration::from_millis(ms)).await;
///         ms
///     })).collect();
///     let first = wait(tasks, ReturnWhen::FirstCompleted, None).await;
///     (first.done, first.pending.len())
/// }).unwrap();
/// assert_eq!(done, vec![(1, Ok(10))]);
/// assert_eq!(pending, 2);
/// ```
pub async fn wait<T: 'static>(
    tasks: Vec<JoinHandle<T>>,
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> Waited<T> {
    let mut watch = Watch {
        tasks: tasks.into_iter().map(Some).collect(),
        done: Vec::new(),
        return_when,
    };
    match timeout {
        Some(limit) => {
            let _ = crate::timeout(limit, &mut watch).await;
        }
        None => (&mut watch).await,
    }
    watch.done.sort_by_key(|(index, _)| *index);
    Waited {
        done: watch.done,
        pending: watch
            .tasks
            .into_iter()
            .enumerate()
            .filter_map(|(index, task)| task.map(|task| (index, task)))
            .collect(),
    }
}

/// Polls the tasks of a [`wait`], collecting the finished ones.
struct Watch<T> {
    tasks: Vec<Option<JoinHandle<T>>>,
    done: Vec<(usize, Result<T, JoinError>)>,
    return_when: ReturnWhen,
}

impl<T> Future for &mut Watch<T> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let watch = &mut **self;
        for (index, slot) in watch.tasks.iter_mut().enumerate() {
            let Some(task) = slot else { continue };
            if let Poll::Ready(result) = Pin::new(task).poll(cx) {
                watch.done.push((index, result));
                *slot = None;
            }
        }
        let all = watch.tasks.iter().all(Option::is_none);
        let enough = match watch.return_when {
            ReturnWhen::FirstCompleted => !watch.done.is_empty(),
            ReturnWhen::FirstException => watch
                .done
                .iter()
                .any(|(_, result)| matches!(result, Err(error) if error.is_panic())),
            ReturnWhen::AllCompleted => false,
        };
        if all || enough {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// The results of `tasks` in the order they finish (asyncio's `as_completed`), with each
/// one's index in the list given.
///
/// ```
/// use std::time::Duration;
/// let lp = roof::EventLoop::new();
/// let order = lp.run_until_complete(async {
///     let tasks: Vec<_> = [30u64, 10, 20].into_iter().map(|ms| roof::spawn(async move {
///         roof::sleep(Duration::from_millis(ms)).await;
///         ms
///     })).collect();
///     let mut completed = roof::wait::as_completed(tasks);
///     let mut order = Vec::new();
///     while let Some((index, result)) = completed.next().await {
///         order.push((index, result.unwrap()));
///     }
///     order
/// }).unwrap();
/// assert_eq!(order, [(1, 10), (2, 20), (0, 30)]);
/// ```
pub fn as_completed<T>(tasks: Vec<JoinHandle<T>>) -> AsCompleted<T> {
    AsCompleted {
        tasks: tasks.into_iter().map(Some).collect(),
    }
}

/// The stream of [`as_completed`]: also a `futures` `Stream`.
#[derive(Debug)]
pub struct AsCompleted<T> {
    tasks: Vec<Option<JoinHandle<T>>>,
}

impl<T> AsCompleted<T> {
    /// The next task to finish: its index and result; `None` once all have.
    pub async fn next(&mut self) -> Option<(usize, Result<T, JoinError>)> {
        std::future::poll_fn(|cx| self.poll_next_task(cx)).await
    }

    fn poll_next_task(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(usize, Result<T, JoinError>)>> {
        let mut any = false;
        for (index, slot) in self.tasks.iter_mut().enumerate() {
            let Some(task) = slot else { continue };
            any = true;
            if let Poll::Ready(result) = Pin::new(task).poll(cx) {
                *slot = None;
                return Poll::Ready(Some((index, result)));
            }
        }
        if any {
            Poll::Pending
        } else {
            Poll::Ready(None)
        }
    }
}

impl<T> futures_util::stream::Stream for AsCompleted<T> {
    type Item = (usize, Result<T, JoinError>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_task(cx)
    }
}

/// Tasks that succeed or fail together (asyncio 3.11's `TaskGroup`): [`wait`](TaskGroup::wait)
/// waits for every member; the first to fail (return `Err`, or panic under an exception
/// handler) aborts the others, and `wait` returns its error once they have ended. Members
/// may add members (share the group in an `Rc`). A group dropped with members still running
/// aborts them, as leaving asyncio's `async with` by cancellation does.
///
/// ```
/// use std::time::Duration;
/// let lp = roof::EventLoop::new();
/// let (ok, failed) = lp.run_until_complete(async {
///     let group = roof::wait::TaskGroup::new();
///     group.spawn(async { roof::sleep(Duration::from_millis(2)).await; Ok::<_, String>(1) });
///     group.spawn(async { Ok(2) });
///     let ok = group.wait().await;
///     let group = roof::wait::TaskGroup::new();
///     group.spawn(async { Err::<u8, _>("no".to_string()) });
///     group.spawn(async { roof::sleep(Duration::from_secs(60)).await; Ok(3) }); // aborted
///     let failed = group.wait().await;
///     (ok, failed)
/// }).unwrap();
/// assert_eq!(ok, Ok(vec![1, 2]));
/// assert_eq!(failed, Err(roof::wait::GroupError::Failed("no".to_string())));
/// ```
pub struct TaskGroup<T, E> {
    /// The members still running (`None` once finished), in spawn order.
    members: std::cell::RefCell<Vec<Member<T, E>>>,
    results: std::cell::RefCell<Vec<Option<T>>>,
    /// The waiter's cancellation request, taken to cancel the members.
    request: std::cell::RefCell<crate::cancel::TakenRequest>,
}

/// A member's handle while it runs.
type Member<T, E> = Option<JoinHandle<Result<T, E>>>;

impl<T, E> std::fmt::Debug for TaskGroup<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskGroup")
            .field("members", &self.members.borrow().len())
            .finish()
    }
}

impl<T: 'static, E: 'static> Default for TaskGroup<T, E> {
    fn default() -> Self {
        TaskGroup::new()
    }
}

/// Why a [`TaskGroup`] failed: its first failing member's error.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupError<E> {
    /// A member returned this error.
    Failed(E),
    /// A member panicked (under an exception handler) or was aborted from outside.
    Task(JoinError),
}

impl<E: std::fmt::Display> std::fmt::Display for GroupError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupError::Failed(error) => write!(f, "a task of the group failed: {error}"),
            GroupError::Task(error) => write!(f, "a task of the group ended: {error}"),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for GroupError<E> {}

impl<T: 'static, E: 'static> TaskGroup<T, E> {
    /// An empty group.
    pub fn new() -> Self {
        TaskGroup {
            members: std::cell::RefCell::new(Vec::new()),
            results: std::cell::RefCell::new(Vec::new()),
            request: std::cell::RefCell::default(),
        }
    }

    /// Run `future` as a member (asyncio's `create_task` on the group).
    pub fn spawn<F>(&self, future: F)
    where
        F: Future<Output = Result<T, E>> + 'static,
    {
        self.members.borrow_mut().push(Some(crate::spawn(future)));
        self.results.borrow_mut().push(None);
    }

    /// Wait for every member: their results in the order they were spawned, or the first
    /// failure, once the others have been aborted and have ended.
    ///
    /// A cancellation request of the waiting task ([`JoinHandle::cancel`]) is passed on to
    /// every member; once all have ended, the waiter is cancelled, as asyncio's task group
    /// does (even if the members caught theirs).
    pub async fn wait(&self) -> Result<Vec<T>, GroupError<E>> {
        let failure = std::future::poll_fn(|cx| self.poll_members(cx)).await;
        if self.request.borrow().taken() {
            return crate::cancel::Cancelled.raise().await;
        }
        if let Some(failure) = failure {
            let rest: Vec<JoinHandle<Result<T, E>>> = self
                .members
                .borrow_mut()
                .iter_mut()
                .filter_map(Option::take)
                .collect();
            for mut member in rest {
                member.abort();
                let _ = member.await;
            }
            return Err(failure);
        }
        Ok(self
            .results
            .borrow_mut()
            .drain(..)
            .map(|result| result.expect("group invariant: every member succeeded"))
            .collect())
    }

    /// Poll the members not finished: the first failure, or `None` once all succeeded.
    fn poll_members(&self, cx: &mut Context<'_>) -> Poll<Option<GroupError<E>>> {
        if self.request.borrow_mut().take() {
            for member in self.members.borrow().iter().flatten() {
                member.cancel();
            }
        }
        let draining = self.request.borrow().taken();
        let mut index = 0;
        loop {
            // Members may spawn members while polled: look the list up afresh each time.
            let member = self
                .members
                .borrow_mut()
                .get_mut(index)
                .and_then(Option::take);
            let Some(mut member) = member else {
                if index >= self.members.borrow().len() {
                    break;
                }
                index += 1;
                continue;
            };
            match Pin::new(&mut member).poll(cx) {
                Poll::Ready(Ok(Ok(value))) => self.results.borrow_mut()[index] = Some(value),
                // Cancelled: every member ends, however it ends, before the waiter is.
                Poll::Ready(_) if draining => {}
                Poll::Ready(Ok(Err(error))) => return Poll::Ready(Some(GroupError::Failed(error))),
                Poll::Ready(Err(error)) => return Poll::Ready(Some(GroupError::Task(error))),
                Poll::Pending => self.members.borrow_mut()[index] = Some(member),
            }
            index += 1;
        }
        let all = self.members.borrow().iter().all(Option::is_none);
        if all {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

impl<T, E> Drop for TaskGroup<T, E> {
    fn drop(&mut self) {
        for member in self.members.get_mut().iter_mut().filter_map(Option::take) {
            let mut member = member;
            member.abort();
        }
    }
}
