//! asyncio's `gather`: members run as tasks, results in argument order; a gather dropped
//! before it finished aborts its members. [`gather!`](crate::gather!) does the same for a
//! tuple of futures of different types.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::cancel::TakenRequest;
use crate::task::{JoinError, JoinHandle};

/// Run `futures` concurrently, each as its own task, and return their results in argument
/// order, whatever the order they finish in (asyncio's `gather`).
///
/// As asyncio's, the tasks are scheduled when `gather` is called (in argument order; outside
/// a running loop, when the returned future is first polled), so a gather of gathers runs
/// the members in the order the inner gathers were made. The first member to fail (aborted,
/// or panicked under an exception handler) fails the gather at once and the others keep
/// running, as asyncio's default; [`gather_results`] waits for all and gives each result.
/// Dropping the gather before it finished (a [`timeout`](crate::timeout) around it, an
/// abort of its task) aborts every member still running, as cancelling asyncio's gather does.
///
/// ```
/// use std::time::Duration;
/// let lp = roof::EventLoop::new();
/// let results = lp.run_until_complete(roof::gather(vec![
///     Box::pin(async { roof::sleep(Duration::from_millis(20)).await; 1 }) as std::pin::Pin<Box<dyn std::future::Future<Output = i32>>>,
///     Box::pin(async { 2 }),
/// ])).unwrap();
/// assert_eq!(results.unwrap(), vec![1, 2]);
/// ```
#[doc(alias = "join_all")]
pub fn gather<F>(futures: Vec<F>) -> Gather<F>
where
    F: Future + 'static,
    F::Output: 'static,
{
    Gather {
        members: Members::new(futures),
    }
}

/// [`gather`] in asyncio's `return_exceptions=True` mode: wait for every member, and give
/// each one's result, a [`JoinError`] for one that failed.
///
/// ```
/// let lp = roof::EventLoop::new();
/// let results = lp.run_until_complete(async {
///     let mut doomed = roof::spawn(std::future::pending::<u8>());
///     doomed.abort();
///     let members: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = u8>>>> = vec![
///         Box::pin(async { 1 }),
///         Box::pin(async move { doomed.await.unwrap_or(0) }),
///     ];
///     roof::gather_results(members).await
/// }).unwrap();
/// assert_eq!(results.into_iter().map(Result::unwrap).collect::<Vec<_>>(), [1, 0]);
/// ```
pub fn gather_results<F>(futures: Vec<F>) -> GatherResults<F>
where
    F: Future + 'static,
    F::Output: 'static,
{
    GatherResults {
        members: Members::new(futures),
    }
}

/// The members of a gather: their futures until spawned, then their tasks and results.
struct Members<F: Future> {
    /// The futures, while no loop was running to spawn them.
    waiting: Vec<F>,
    handles: Vec<Option<JoinHandle<F::Output>>>,
    results: Vec<Option<Result<F::Output, JoinError>>>,
    finished: bool,
    /// The awaiter's cancellation request, taken to cancel the members.
    request: TakenRequest,
}

impl<F: Future + 'static> Members<F>
where
    F::Output: 'static,
{
    fn new(futures: Vec<F>) -> Self {
        let mut members = Members {
            waiting: futures,
            handles: Vec::new(),
            results: Vec::new(),
            finished: false,
            request: TakenRequest::default(),
        };
        if crate::kernel::try_with(|_| ()).is_some() {
            members.spawn();
        }
        members
    }

    fn spawn(&mut self) {
        if self.waiting.is_empty() && !self.handles.is_empty() {
            return;
        }
        for future in std::mem::take(&mut self.waiting) {
            self.handles.push(Some(crate::spawn(future)));
            self.results.push(None);
        }
    }

    /// Poll every member not finished; whether all are, and the first failure seen.
    fn poll_all(&mut self, cx: &mut Context<'_>) -> (bool, Option<JoinError>) {
        self.spawn();
        if self.request.take() {
            for handle in self.handles.iter().flatten() {
                handle.cancel();
            }
        }
        let mut all = true;
        let mut failure = None;
        for (handle, result) in self.handles.iter_mut().zip(self.results.iter_mut()) {
            let Some(task) = handle else { continue };
            match Pin::new(task).poll(cx) {
                Poll::Ready(output) => {
                    if let Err(error) = &output {
                        failure.get_or_insert(error.clone());
                    }
                    *result = Some(output);
                    *handle = None;
                }
                Poll::Pending => all = false,
            }
        }
        (all, failure)
    }

    /// Let the members still running go on (a gather that failed fast, as asyncio's).
    fn detach_rest(&mut self) {
        self.finished = true;
        for handle in self.handles.iter_mut().filter_map(Option::take) {
            handle.detach();
        }
    }
}

impl<F: Future> Drop for Members<F> {
    /// Dropped before it finished: the gather was cancelled, and so is every member.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        for handle in self.handles.iter_mut().filter_map(Option::take) {
            let mut handle = handle;
            handle.abort();
        }
    }
}

// Never pinned through: the member futures wait unpolled in a vector until spawned, moved
// into their tasks whole, and the handles are `Unpin`.
impl<F: Future> Unpin for Members<F> {}

/// The future of [`gather`].
#[must_use = "a gather does nothing unless awaited (its members run anyway)"]
pub struct Gather<F: Future> {
    members: Members<F>,
}

impl<F: Future> fmt::Debug for Gather<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gather")
            .field(
                "members",
                &self.members.handles.len().max(self.members.waiting.len()),
            )
            .finish()
    }
}

impl<F: Future + 'static> Future for Gather<F>
where
    F::Output: 'static,
{
    type Output = Result<Vec<F::Output>, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let members = &mut self.get_mut().members;
        let (all, failure) = members.poll_all(cx);
        if let Some(failure) = failure {
            members.detach_rest();
            if members.request.raise() {
                return Poll::Pending;
            }
            return Poll::Ready(Err(failure));
        }
        if !all {
            return Poll::Pending;
        }
        members.finished = true;
        if members.request.raise() {
            return Poll::Pending;
        }
        let results = std::mem::take(&mut members.results);
        Poll::Ready(Ok(results
            .into_iter()
            .map(|result| match result {
                Some(Ok(value)) => value,
                _ => unreachable!("gather invariant: every member finished without failing"),
            })
            .collect()))
    }
}

/// The future of [`gather_results`].
#[must_use = "a gather does nothing unless awaited (its members run anyway)"]
pub struct GatherResults<F: Future> {
    members: Members<F>,
}

impl<F: Future> fmt::Debug for GatherResults<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatherResults")
            .field(
                "members",
                &self.members.handles.len().max(self.members.waiting.len()),
            )
            .finish()
    }
}

impl<F: Future + 'static> Future for GatherResults<F>
where
    F::Output: 'static,
{
    type Output = Vec<Result<F::Output, JoinError>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let members = &mut self.get_mut().members;
        let (all, _) = members.poll_all(cx);
        if !all {
            return Poll::Pending;
        }
        members.finished = true;
        if members.request.raise() {
            return Poll::Pending;
        }
        let results = std::mem::take(&mut members.results);
        Poll::Ready(
            results
                .into_iter()
                .map(|result| result.expect("gather invariant: every member finished"))
                .collect(),
        )
    }
}

/// Awaits a tuple of join handles in order; the engine behind [`gather!`](crate::gather!).
#[doc(hidden)]
pub trait JoinTuple {
    /// The tuple of outputs.
    type Output;
    /// Await every handle, in order; dropped before the end, abort those left.
    fn join(self) -> impl Future<Output = Result<Self::Output, JoinError>>;
}

/// Spawns a tuple of futures, in order; the engine behind [`gather!`](crate::gather!).
#[doc(hidden)]
pub trait SpawnTuple {
    /// The tuple of handles.
    type Handles: JoinTuple;
    /// Spawn each, in order.
    fn spawn(self) -> Self::Handles;
}

/// A gather member's handle, aborted if the gather is dropped before it finished.
struct AbortOnDrop<T>(Option<JoinHandle<T>>);

impl<T> AbortOnDrop<T> {
    async fn join(&mut self) -> Result<T, JoinError> {
        let handle = self.0.as_mut().expect("a member is joined once");
        let output = handle.await;
        self.0 = None;
        output
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if let Some(handle) = self.0.as_mut() {
            handle.abort();
        }
    }
}

/// [`gather!`](crate::gather!)'s future: its members are spawned now if a loop is running
/// (asyncio's order), or else when first polled.
#[doc(hidden)]
pub fn gather_tuple<T: SpawnTuple>(
    futures: T,
) -> impl Future<Output = Result<<T::Handles as JoinTuple>::Output, JoinError>> {
    let spawned = if crate::kernel::try_with(|_| ()).is_some() {
        Ok(futures.spawn())
    } else {
        Err(futures)
    };
    async move {
        let handles = match spawned {
            Ok(handles) => handles,
            Err(futures) => futures.spawn(),
        };
        handles.join().await
    }
}

macro_rules! join_tuple {
    ($($name:ident),+) => {
        impl<$($name: 'static),+> JoinTuple for ($(JoinHandle<$name>,)+) {
            type Output = ($($name,)+);
            #[allow(non_snake_case)]
            async fn join(self) -> Result<Self::Output, JoinError> {
                let ($($name,)+) = self;
                let ($(mut $name,)+) = ($(AbortOnDrop(Some($name)),)+);
                Ok(($($name.join().await?,)+))
            }
        }

        impl<$($name: Future + 'static),+> SpawnTuple for ($($name,)+)
        where
            $($name::Output: 'static),+
        {
            type Handles = ($(JoinHandle<$name::Output>,)+);
            #[allow(non_snake_case)]
            fn spawn(self) -> Self::Handles {
                let ($($name,)+) = self;
                ($(crate::spawn($name),)+)
            }
        }
    };
}

join_tuple!(A);
join_tuple!(A, B);
join_tuple!(A, B, C);
join_tuple!(A, B, C, D);
join_tuple!(A, B, C, D, E);
join_tuple!(A, B, C, D, E, F);
join_tuple!(A, B, C, D, E, F, G);
join_tuple!(A, B, C, D, E, F, G, H);
join_tuple!(A, B, C, D, E, F, G, H, I);
join_tuple!(A, B, C, D, E, F, G, H, I, J);
join_tuple!(A, B, C, D, E, F, G, H, I, J, K);
join_tuple!(A, B, C, D, E, F, G, H, I, J, K, L);
