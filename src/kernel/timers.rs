//! The kernel's timers: sleeps, `call_later` callbacks (owned by the host that scheduled
//! them), and packet deliveries, all in one timer queue; firing what is due.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::task::Waker;

use super::{Kernel, Spawned};
use crate::engine::hint;
use crate::engine::id::{Instant, TaskId, TimerId};
use crate::engine::task::{TaskHandle, TaskName};
use crate::engine::timer::TimerKey;
use crate::engine::trace::EventKind;

/// A `call_soon`/`call_later` callback.
pub(crate) type Callback = Box<dyn FnOnce()>;

/// A `call_later`/`call_at` callback waiting for its timer. It belongs to the host (and the
/// incarnation of it) that scheduled it: it runs as that host, and a crash of the host
/// cancels it.
pub(super) struct TimedCallback {
    pub(super) callback: Callback,
    pub(super) host: u32,
    pub(super) incarnation: u16,
    pub(super) key: TimerKey,
    /// The timer's handle, if one is still held: told the task that runs the callback, so
    /// that cancelling after the timer fell due still stops it.
    pub(super) handle: Weak<CallbackTimer>,
}

/// What a [`TimerHandle`](crate::TimerHandle) shares with the loop about its callback.
pub(crate) struct CallbackTimer {
    pub(crate) key: TimerKey,
    /// `cancel()` was called (or the host crashed): the callback will not run.
    pub(crate) cancelled: Cell<bool>,
    /// Once the timer fell due: the task that runs the callback.
    pub(crate) task: RefCell<Option<TaskHandle<()>>>,
}

impl CallbackTimer {
    /// Cancel the callback: disarm its timer, or stop the task that was about to run it
    /// (asyncio skips a cancelled handle that is already in its ready queue). Returns
    /// whether this call cancelled it.
    pub(crate) fn cancel(&self, kernel: Option<&Kernel>) -> bool {
        if self.cancelled.replace(true) {
            return false;
        }
        let task = self.task.borrow_mut().take();
        match (task, kernel) {
            (Some(task), _) => super::abort_task(task.metadata()),
            (None, Some(kernel)) => kernel.disarm_timer(self.key),
            (None, None) => {}
        }
        true
    }
}

/// A timer's payload as the timer queue holds it: a struct, not an enum, so that arming a
/// delivery (every packet sent) and firing one move it in registers. As an enum it went
/// through the stack, where a wide load of narrow fresh stores stalled on store forwarding.
/// A callback, rare, waits in the kernel's `timer_callbacks` by the timer's slot.
pub(crate) struct TimerToken {
    /// The packet id, or `WAKE` or `CALLBACK`.
    what: u64,
    /// The task to wake, for `WAKE`.
    waker: Option<Waker>,
}

impl TimerToken {
    const WAKE: u64 = u64::MAX;
    const CALLBACK: u64 = u64::MAX - 1;

    #[inline(always)]
    pub(super) fn deliver(packet: u32) -> TimerToken {
        TimerToken {
            what: u64::from(packet),
            waker: None,
        }
    }

    pub(super) fn wake(waker: Waker) -> TimerToken {
        TimerToken {
            what: TimerToken::WAKE,
            waker: Some(waker),
        }
    }

    const CALLBACK_TOKEN: TimerToken = TimerToken {
        what: TimerToken::CALLBACK,
        waker: None,
    };

    /// The packet this timer delivers, if it is a delivery.
    #[inline(always)]
    pub(super) fn packet(&self) -> Option<u32> {
        (self.what < TimerToken::CALLBACK).then_some(self.what as u32)
    }
}

impl crate::engine::timer::Prefetch for TimerToken {
    /// The timer is among the next to fire: start loading the header of the task it will
    /// wake (a task waker's data word is its task's address), which waking reads first.
    /// Timers fire in deadline order, which is no order of the tasks: without this, waking
    /// was a miss on every timer (timers: 19% of samples in `RawTask::wake`). A hint only.
    fn prefetch(&self) {
        if let Some(waker) = &self.waker {
            hint::prefetch_lines(waker.data().cast(), 2);
        }
    }
}

impl Kernel {
    /// Wake `waker` when the clock reads `deadline` (a sleep). The network's deliveries arm
    /// their timers directly; callbacks go through [`call_at`](Kernel::call_at).
    pub(crate) fn arm_timer(&self, deadline: Instant, waker: Waker) -> TimerKey {
        self.insert_timer(deadline, TimerToken::wake(waker))
    }

    pub(super) fn insert_timer(&self, deadline: Instant, token: TimerToken) -> TimerKey {
        let key = self.timers.borrow_mut().insert(deadline, token);
        if self.trace.enabled() {
            self.record(EventKind::TimerSet {
                timer: TimerId(key.seq),
                deadline_ns: deadline.as_nanos(),
                by: self.exec.current.get(),
            });
        }
        key
    }

    /// Run `callback` when the clock reads `deadline`, as the host of the running task (or
    /// `main`, outside a task): asyncio's `call_at`.
    pub(crate) fn call_at(&self, deadline: Instant, callback: Callback) -> Rc<CallbackTimer> {
        let key = self.insert_timer(deadline, TimerToken::CALLBACK_TOKEN);
        let host = self.exec.current_host.get();
        let timer = Rc::new(CallbackTimer {
            key,
            cancelled: Cell::new(false),
            task: RefCell::new(None),
        });
        let entry = TimedCallback {
            callback,
            host,
            incarnation: self.hosts.borrow()[host as usize].incarnation,
            key,
            handle: Rc::downgrade(&timer),
        };
        let mut callbacks = self.timer_callbacks.borrow_mut();
        let slot = key.slot() as usize;
        if callbacks.len() <= slot {
            callbacks.resize_with(slot + 1, || None);
        }
        callbacks[slot] = Some(entry);
        timer
    }

    /// Take the callback of the timer `key` named (it fired or was cancelled), if it has one.
    pub(super) fn take_callback(&self, key: TimerKey) -> Option<TimedCallback> {
        self.timer_callbacks
            .borrow_mut()
            .get_mut(key.slot() as usize)
            .and_then(Option::take)
    }

    /// Disarm the timer `key` names, if it is still armed (a sleep that woke asks too).
    #[inline]
    pub(crate) fn disarm_timer(&self, key: TimerKey) {
        let mut timers = self.timers.borrow_mut();
        if !timers.cancel(key) {
            return;
        }
        drop(timers);
        self.disarmed(key);
    }

    /// The timer `key` was disarmed: drop its payload and callback, trace it.
    #[inline(never)]
    fn disarmed(&self, key: TimerKey) {
        let garbage = self.timers.borrow_mut().take_garbage();
        let callback = self.take_callback(key);
        if self.trace.enabled() {
            self.record(EventKind::TimerCancel {
                timer: TimerId(key.seq),
            });
        }
        drop(garbage);
        drop(callback);
    }

    /// Keep the waker of a pending sleep current (a task may be polled with a new waker);
    /// returns the key that now names the timer.
    pub(crate) fn refresh_timer_waker(
        &self,
        key: TimerKey,
        deadline: Instant,
        waker: &Waker,
    ) -> TimerKey {
        let mut timers = self.timers.borrow_mut();
        let renewed = timers.replace(key, deadline, TimerToken::wake(waker.clone()));
        let garbage = timers.take_garbage();
        drop(timers);
        drop(garbage);
        renewed.unwrap_or(key)
    }

    /// Queue `callback` to run as its own small task on `host` (asyncio's `Handle`).
    pub(crate) fn spawn_callback(
        &self,
        host: u32,
        callback: Callback,
        timer: Option<u64>,
    ) -> Spawned<()> {
        let spawned = self.spawn_on(
            host,
            async move { callback() },
            Some(TaskName::Static("callback")),
        );
        if self.trace.enabled() {
            self.record(EventKind::Callback {
                task: TaskId(spawned.0),
                timer: timer.map(TimerId),
            });
        }
        spawned
    }

    pub(super) fn fire_due(&self) {
        let now = self.now();
        loop {
            // One timer at a time, acted on with no borrow held: waking may re-enter.
            let (due, garbage, ahead) = {
                let mut timers = self.timers.borrow_mut();
                let due = timers.pop_due(now);
                // Deliveries come in long runs (every connection's packet of a round): start
                // loading what the ones a few places ahead will touch, in three stages.
                let packet = |ahead| timers.soon_ahead(ahead).and_then(TimerToken::packet);
                let ahead = [
                    packet(PREFETCH_AHEAD[0]),
                    packet(PREFETCH_AHEAD[1]),
                    packet(PREFETCH_AHEAD[2]),
                ];
                (due, timers.take_garbage(), ahead)
            };
            drop(garbage);
            if ahead.iter().any(Option::is_some) {
                self.net.borrow().prefetch_deliveries(ahead);
            }
            let Some((key, token)) = due else { return };
            if let Some(packet) = token.packet() {
                // A packet's delivery is traced by the network itself, not as a timer.
                self.net_call(|net, now| net.deliver(packet, now));
                continue;
            }
            // Taken at once: the slot is free for the next timer armed.
            let callback = match token.what {
                TimerToken::CALLBACK => self.take_callback(key),
                _ => None,
            };
            if self.trace.enabled() {
                self.record(EventKind::TimerFire {
                    timer: TimerId(key.seq),
                });
            }
            if let Some(waker) = token.waker {
                waker.wake();
            } else if let Some(entry) = callback {
                self.run_timed_callback(entry);
            }
        }
    }

    /// A callback's timer fell due: queue its task on the host that scheduled it, unless
    /// that incarnation of the host is gone (a crash disarms its timers, so this is a guard).
    pub(super) fn run_timed_callback(&self, entry: TimedCallback) {
        let TimedCallback {
            callback,
            host,
            incarnation,
            key,
            handle,
        } = entry;
        if self.hosts.borrow()[host as usize].incarnation != incarnation {
            return;
        }
        let (_, task) = self.spawn_callback(host, callback, Some(key.seq));
        match handle.upgrade() {
            Some(handle) => *handle.task.borrow_mut() = Some(task),
            None => task.detach(),
        }
    }
}

/// How far ahead in the timer list deliveries are prefetched: the packet, then its
/// connection, then its reader's task.
pub(super) const PREFETCH_AHEAD: [usize; 3] = [24, 12, 4];
