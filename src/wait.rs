//! Waiting on many tasks: asyncio's `wait` (with `return_when` and a timeout) and
//! `as_completed`.
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
