//! Real mode's side of the kernel (feature `real-net`): the wall clock, the idle wait in
//! `async_io::block_on`, and the mailbox where other threads leave the tasks they woke.
//!
//! async-io's reactor may wake a task from its own thread. Such a wakeup is posted to the
//! loop's mailbox (a mutex-guarded list, one per real loop) and the loop runs the task on its
//! own thread; a task is never run or dropped anywhere else.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant as WallInstant};

use async_io::Timer;
use async_task::Runnable;

use crate::engine::id::Instant;
use crate::engine::task::{Ready, TaskMeta};

/// The real-mode state of a kernel: where its clock starts, and whether it is asleep.
pub(crate) struct Real {
    loop_tag: u16,
    origin: WallInstant,
    /// The loop is inside `block_on`: a task woken on the loop's thread must wake it.
    waiting: Cell<bool>,
}

/// Where foreign threads leave wakeups for one real loop.
struct Mailbox {
    loop_tag: u16,
    /// The tasks woken, oldest first.
    woken: Vec<Runnable<TaskMeta>>,
    /// The sleeping loop's `block_on` waker.
    waker: Option<Waker>,
}

/// The mailboxes of every real loop in the process (a handful at most: a linear scan).
static MAILBOXES: Mutex<Vec<Mailbox>> = Mutex::new(Vec::new());

fn mailboxes() -> MutexGuard<'static, Vec<Mailbox>> {
    // The lists stay consistent whatever panicked while holding the lock.
    MAILBOXES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A task was woken on a thread that owns no loop of its: post it to its loop's mailbox and
/// wake the loop. A task whose loop has no mailbox (a simulated loop, or a real one already
/// closed) is leaked, never dropped here: its future belongs to its loop's thread.
pub(crate) fn deliver_foreign(runnable: Runnable<TaskMeta>) {
    let loop_tag = runnable.metadata().loop_tag();
    let mut boxes = mailboxes();
    let Some(mailbox) = boxes
        .iter_mut()
        .find(|mailbox| mailbox.loop_tag == loop_tag)
    else {
        drop(boxes);
        std::mem::forget(runnable);
        return;
    };
    mailbox.woken.push(runnable);
    let waker = mailbox.waker.take();
    drop(boxes);
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl Real {
    // A real loop's clock is the wall clock: its origin is now.
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn new(loop_tag: u16) -> Real {
        mailboxes().push(Mailbox {
            loop_tag,
            woken: Vec::new(),
            waker: None,
        });
        Real {
            loop_tag,
            origin: WallInstant::now(),
            waiting: Cell::new(false),
        }
    }

    /// The wall clock as the loop's `Instant`: time since the loop was made.
    // Real mode's one reading of the wall clock.
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn now(&self) -> Instant {
        let nanos = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        Instant::from_nanos(nanos)
    }

    /// Tasks woken on other threads since the last call, oldest first.
    pub(crate) fn take_foreign(&self) -> Vec<Runnable<TaskMeta>> {
        let mut boxes = mailboxes();
        let taken = boxes
            .iter_mut()
            .find(|mailbox| mailbox.loop_tag == self.loop_tag)
            .map(|mailbox| std::mem::take(&mut mailbox.woken))
            .unwrap_or_default();
        drop(boxes);
        taken
    }

    /// A task was queued on the loop's own thread: if the loop sleeps, wake it.
    pub(crate) fn notify(&self) {
        if !self.waiting.get() {
            return;
        }
        let waker = mailboxes()
            .iter_mut()
            .find(|mailbox| mailbox.loop_tag == self.loop_tag)
            .and_then(|mailbox| mailbox.waker.take());
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Sleep until a task is queued (on any thread) or `deadline` passes, driving the
    /// reactor meanwhile: ready sockets wake their tasks from inside this call.
    pub(crate) fn wait(&self, ready: &RefCell<VecDeque<Ready>>, deadline: Option<Instant>) {
        let timer = deadline
            .map(|deadline| Timer::at(self.origin + Duration::from_nanos(deadline.as_nanos())));
        self.waiting.set(true);
        async_io::block_on(Wait {
            real: self,
            ready,
            timer,
        });
        self.waiting.set(false);
    }

    /// The loop is closing: no foreign wakeup may reach it any more. Tasks woken since the
    /// last [`take_foreign`](Real::take_foreign) are run cancelled (on the loop's thread,
    /// after the lock is released), which drops their futures.
    pub(crate) fn unregister(&self) {
        let mut boxes = mailboxes();
        let mailbox = boxes
            .iter()
            .position(|mailbox| mailbox.loop_tag == self.loop_tag)
            .map(|index| boxes.swap_remove(index));
        drop(boxes);
        for runnable in mailbox.into_iter().flat_map(|mailbox| mailbox.woken) {
            runnable.metadata().cancel();
            crate::engine::task::run(runnable);
        }
    }
}

impl Drop for Real {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// The future an idle real loop blocks on.
struct Wait<'a> {
    real: &'a Real,
    ready: &'a RefCell<VecDeque<Ready>>,
    timer: Option<Timer>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.ready.borrow().is_empty() {
            return Poll::Ready(());
        }
        if let Some(timer) = self.timer.as_mut() {
            if Pin::new(timer).poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        let loop_tag = self.real.loop_tag;
        let mut boxes = mailboxes();
        let Some(mailbox) = boxes
            .iter_mut()
            .find(|mailbox| mailbox.loop_tag == loop_tag)
        else {
            return Poll::Ready(());
        };
        if !mailbox.woken.is_empty() {
            return Poll::Ready(());
        }
        mailbox.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}
