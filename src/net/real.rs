//! The real backend (feature `real-net`): the same program on real sockets and the wall clock.
//!
//! [`EventLoop::real`](crate::EventLoop::real) makes a loop in real mode. Everything else is
//! the API the simulation already has: `spawn`, `sleep`, `timeout`, `call_later`,
//! [`TcpListener`](crate::net::TcpListener), [`TcpStream`](crate::net::TcpStream),
//! [`UdpSocket`](crate::net::UdpSocket), [`create_server`](crate::protocol::create_server),
//! [`create_connection`](crate::protocol::create_connection). In real mode:
//!
//! - time is the wall clock (monotonic, from the loop's creation), and an idle loop sleeps
//!   in [`async_io::block_on`] until a socket is ready, a timer is due, or another thread
//!   wakes one of its tasks;
//! - sockets are [`async_io::Async`] wrappers of `std::net` sockets with `TCP_NODELAY` on
//!   (as asyncio does), names resolve through the operating system, and `abort` resets the
//!   connection (`SO_LINGER` 0);
//! - tasks run in FIFO order (asyncio's), with no step or time limit and no trace;
//! - faults and `buggify!` do nothing: they exist only in simulation.
//!
//! async-io's reactor may wake a task from its own thread. Such a wakeup is posted to the
//! loop's mailbox (a mutex-guarded list, one per real loop) and the loop runs the task on its
//! own thread; a task is never run or dropped anywhere else.
//!
//! ```
//! use roof::io::{AsyncReadExt, AsyncWriteExt};
//! use roof::net::{TcpListener, TcpStream};
//!
//! let lp = roof::EventLoop::real();
//! let echoed = lp
//!     .run_until_complete(async {
//!         let listener = TcpListener::bind("127.0.0.1:0").await?;
//!         let addr = listener.local_addr()?;
//!         roof::spawn(async move {
//!             let (mut stream, _) = listener.accept().await.unwrap();
//!             let mut buf = [0u8; 5];
//!             stream.read_exact(&mut buf).await.unwrap();
//!             stream.write_all(&buf.to_ascii_uppercase()).await.unwrap();
//!         })
//!         .detach();
//!         let mut stream = TcpStream::connect(addr).await?;
//!         stream.write_all(b"hello").await?;
//!         let mut answer = [0u8; 5];
//!         stream.read_exact(&mut answer).await?;
//!         std::io::Result::Ok(answer)
//!     })
//!     .unwrap()
//!     .unwrap();
//! assert_eq!(&echoed, b"HELLO");
//! ```

// The wall clock is this module's whole point (`clippy.toml` bans it everywhere else).
#![allow(clippy::disallowed_methods)]

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant as WallInstant};

use async_io::{Async, Timer};

use async_task::Runnable;

use crate::engine::task::TaskMeta;
use crate::time::Instant;

/// The real-mode state of a kernel: where its clock starts, and whether it is asleep.
pub(crate) struct Real {
    loop_id: u32,
    origin: WallInstant,
    /// The loop is inside `block_on`: a task woken on the loop's thread must wake it.
    waiting: Cell<bool>,
}

/// Where foreign threads leave wakeups for one real loop.
struct Mailbox {
    loop_id: u32,
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
    let loop_id = runnable.metadata().loop_id;
    let mut boxes = mailboxes();
    let Some(mailbox) = boxes.iter_mut().find(|mailbox| mailbox.loop_id == loop_id) else {
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
    pub(crate) fn new(loop_id: u32) -> Real {
        mailboxes().push(Mailbox {
            loop_id,
            woken: Vec::new(),
            waker: None,
        });
        Real {
            loop_id,
            origin: WallInstant::now(),
            waiting: Cell::new(false),
        }
    }

    /// The wall clock as the loop's `Instant`: time since the loop was made.
    pub(crate) fn now(&self) -> Instant {
        let nanos = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        Instant::from_nanos(nanos)
    }

    /// Tasks woken on other threads since the last call, oldest first.
    pub(crate) fn take_foreign(&self) -> Vec<Runnable<TaskMeta>> {
        let mut boxes = mailboxes();
        let taken = boxes
            .iter_mut()
            .find(|mailbox| mailbox.loop_id == self.loop_id)
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
            .find(|mailbox| mailbox.loop_id == self.loop_id)
            .and_then(|mailbox| mailbox.waker.take());
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Sleep until a task is queued (on any thread) or `deadline` passes, driving the
    /// reactor meanwhile: ready sockets wake their tasks from inside this call.
    pub(crate) fn wait(
        &self,
        ready: &RefCell<VecDeque<Runnable<TaskMeta>>>,
        deadline: Option<Instant>,
    ) {
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
            .position(|mailbox| mailbox.loop_id == self.loop_id)
            .map(|index| boxes.swap_remove(index));
        drop(boxes);
        for runnable in mailbox.into_iter().flat_map(|mailbox| mailbox.woken) {
            runnable.metadata().cancel();
            runnable.run();
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
    ready: &'a RefCell<VecDeque<Runnable<TaskMeta>>>,
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
        let loop_id = self.real.loop_id;
        let mut boxes = mailboxes();
        let Some(mailbox) = boxes.iter_mut().find(|mailbox| mailbox.loop_id == loop_id) else {
            return Poll::Ready(());
        };
        if !mailbox.woken.is_empty() {
            return Poll::Ready(());
        }
        mailbox.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

// ----- sockets ---------------------------------------------------------------------------

/// Resolve a host name through the operating system, preferring IPv4 (as `nc localhost`
/// and a server bound to 127.0.0.1 would agree).
pub(crate) fn lookup(host: &str) -> io::Result<IpAddr> {
    let addrs: Vec<SocketAddr> = (host, 0)
        .to_socket_addrs()
        .map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("cannot resolve host {host:?}: {error}"),
            )
        })?
        .collect();
    addrs
        .iter()
        .find(|addr| addr.is_ipv4())
        .or_else(|| addrs.first())
        .map(SocketAddr::ip)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("host {host:?} has no address"),
            )
        })
}

pub(crate) fn bind_tcp(addr: SocketAddr) -> io::Result<Async<std::net::TcpListener>> {
    Async::<std::net::TcpListener>::bind(addr)
        .map_err(|error| io::Error::new(error.kind(), format!("cannot listen on {addr}: {error}")))
}

pub(crate) async fn accept(
    listener: &Async<std::net::TcpListener>,
) -> io::Result<(Async<std::net::TcpStream>, SocketAddr)> {
    let (stream, peer) = listener.accept().await?;
    stream.get_ref().set_nodelay(true)?;
    Ok((stream, peer))
}

pub(crate) async fn connect(addr: SocketAddr) -> io::Result<Async<std::net::TcpStream>> {
    let stream = Async::<std::net::TcpStream>::connect(addr).await?;
    stream.get_ref().set_nodelay(true)?;
    Ok(stream)
}

/// Make the socket's close send a RST instead of a FIN.
pub(crate) fn reset(stream: &Async<std::net::TcpStream>) {
    // This fails only on a socket that is already gone, which is what a reset wants.
    let _ = rustix::net::sockopt::set_socket_linger(stream.get_ref(), Some(Duration::ZERO));
}

pub(crate) fn bind_udp(addr: SocketAddr) -> io::Result<Async<std::net::UdpSocket>> {
    Async::<std::net::UdpSocket>::bind(addr)
        .map_err(|error| io::Error::new(error.kind(), format!("cannot bind {addr}: {error}")))
}

/// Wait for Ctrl-C (SIGINT) or SIGTERM, the way a server learns it should close.
///
/// Only in real mode: inside a simulation it is an error, since no signal can reach one.
///
/// ```no_run
/// # let lp = roof::EventLoop::real();
/// lp.run_until_complete(async {
///     roof::net::real::ctrl_c().await.unwrap();
///     roof::println!("bye");
/// })
/// .unwrap();
/// ```
pub async fn ctrl_c() -> io::Result<()> {
    use async_signal::{Signal, Signals};
    use futures_lite::StreamExt;

    if !crate::runtime::with(|kernel| kernel.is_real()) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "ctrl_c waits for a real signal: use it on a real loop (EventLoop::real)",
        ));
    }
    let mut signals = Signals::new([Signal::Int, Signal::Term])?;
    match signals.next().await {
        Some(result) => result.map(|_| ()),
        None => Err(io::Error::other("the signal stream ended")),
    }
}
