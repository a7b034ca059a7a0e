//! A deterministic select: which of several futures a task polls first, and so which of
//! those ready at once it takes, is the scheduler's choice.
//!
//! `futures::select!` and `tokio::select!` pick their first branch with a generator of their
//! own (thread-local, seeded from the OS or a counter): inside a simulation, the same seed
//! then takes different branches from run to run. [`select`] and [`select_all`] draw the
//! branch from the run's scheduler instead, through the same choice point as task picks:
//! recorded, replayed and shrunk with them; under [`Policy::Fifo`](crate::Policy::Fifo) the
//! first branch is always polled first (a `biased` select).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub use futures_util::future::Either;

use super::Traced;
use crate::kernel;

fn choose_branch(branches: usize) -> usize {
    kernel::try_with(|kernel| kernel.choose_branch(branches)).unwrap_or(0)
}

/// Wait for the first of two futures; the other comes back unfinished, to be awaited later
/// or dropped. When both are ready at once, the scheduler's seeded choice says which is
/// taken (the first, under FIFO).
///
/// ```
/// use std::time::Duration;
/// use roof::Either;
/// let lp = roof::EventLoop::new();
/// let (winner, still_running) = lp.run_until_complete(async {
///     let quick = Box::pin(roof::sleep(Duration::from_millis(1)));
///     let slow = Box::pin(async { roof::sleep(Duration::from_secs(1)).await; "slow" });
///     match roof::select(quick, slow).await {
///         Either::Left(((), slow)) => ("quick", slow.await),
///         Either::Right((slow, _)) => (slow, "none"),
///     }
/// }).unwrap();
/// assert_eq!((winner, still_running), ("quick", "slow"));
/// ```
pub fn select<A, B>(a: A, b: B) -> Select<A, B>
where
    A: Future + Unpin,
    B: Future + Unpin,
{
    Select {
        pair: Some((a, b)),
        traced: Traced::new("select"),
    }
}

/// The future of [`select`].
#[must_use = "a Select does nothing unless awaited"]
#[derive(Debug)]
pub struct Select<A, B> {
    pair: Option<(A, B)>,
    traced: Traced,
}

impl<A: Future + Unpin, B: Future + Unpin> Future for Select<A, B> {
    type Output = Either<(A::Output, B), (B::Output, A)>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some((a, b)) = self.pair.as_mut() else {
            panic!("Select polled after it completed");
        };
        let b_first = choose_branch(2) == 1;
        let mut ready_a = None;
        let mut ready_b = None;
        if b_first {
            if let Poll::Ready(value) = Pin::new(&mut *b).poll(cx) {
                ready_b = Some(value);
            } else if let Poll::Ready(value) = Pin::new(&mut *a).poll(cx) {
                ready_a = Some(value);
            }
        } else if let Poll::Ready(value) = Pin::new(&mut *a).poll(cx) {
            ready_a = Some(value);
        } else if let Poll::Ready(value) = Pin::new(&mut *b).poll(cx) {
            ready_b = Some(value);
        }
        if ready_a.is_none() && ready_b.is_none() {
            return Poll::Pending;
        }
        self.traced.record("select");
        let (a, b) = self.pair.take().expect("the pair is here until completion");
        Poll::Ready(match (ready_a, ready_b) {
            (Some(value), _) => Either::Left((value, b)),
            (None, Some(value)) => Either::Right((value, a)),
            (None, None) => unreachable!("one branch is ready"),
        })
    }
}

/// Wait for the first of many futures: its output, its index, and the others, unfinished.
/// `None` for an empty list. The branch polled first is the scheduler's seeded choice (the
/// first, under FIFO), the rest follow in order, wrapping around.
///
/// ```
/// use std::time::Duration;
/// let lp = roof::EventLoop::new();
/// let (value, index, rest) = lp.run_until_complete(async {
///     let sleeps = [30, 10, 20].map(|ms| Box::pin(async move {
///         roof::sleep(Duration::from_millis(ms)).await;
///         ms
///     }));
///     roof::select_all(sleeps).await.unwrap()
/// }).unwrap();
/// assert_eq!((value, index, rest.len()), (10, 1, 2));
/// ```
pub fn select_all<I>(futures: I) -> SelectAll<I::Item>
where
    I: IntoIterator,
    I::Item: Future + Unpin,
{
    SelectAll {
        futures: Some(futures.into_iter().collect()),
        traced: Traced::new("select"),
    }
}

/// The future of [`select_all`].
#[must_use = "a SelectAll does nothing unless awaited"]
#[derive(Debug)]
pub struct SelectAll<F> {
    futures: Option<Vec<F>>,
    traced: Traced,
}

impl<F: Future + Unpin> Future for SelectAll<F> {
    type Output = Option<(F::Output, usize, Vec<F>)>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(futures) = self.futures.as_mut() else {
            panic!("SelectAll polled after it completed");
        };
        let count = futures.len();
        if count == 0 {
            self.futures = None;
            return Poll::Ready(None);
        }
        let first = choose_branch(count);
        for offset in 0..count {
            let index = (first + offset) % count;
            if let Poll::Ready(value) = Pin::new(&mut futures[index]).poll(cx) {
                self.traced.record("select");
                let mut rest = self.futures.take().expect("the futures are here");
                drop(rest.remove(index));
                return Poll::Ready(Some((value, index, rest)));
            }
        }
        Poll::Pending
    }
}
