//! The client side: [`create_connection`], which hands the transport back once the
//! connection is made.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::transport::drive;
use super::{Protocol, Transport};
use crate::net::{TcpStream, ToSocketAddr};

/// Connect to `addr` and drive the connection with `protocol` (asyncio's
/// `loop.create_connection`); returns the transport once connected.
///
/// ```
/// use roof::protocol::{create_connection, Protocol};
/// use std::{cell::RefCell, rc::Rc};
/// struct Collect(Rc<RefCell<Vec<u8>>>);
/// impl Protocol for Collect {
///     fn data_received(&mut self, data: &[u8]) { self.0.borrow_mut().extend_from_slice(data) }
/// }
/// let lp = roof::EventLoop::new();
/// lp.host("server", || async {
///     let listener = roof::net::TcpListener::bind("0.0.0.0:7").await.unwrap();
///     let (mut stream, _) = listener.accept().await.unwrap();
///     roof::io::AsyncWriteExt::write_all(&mut stream, b"welcome").await.unwrap();
/// }).unwrap();
/// let received = Rc::new(RefCell::new(Vec::new()));
/// lp.run_until_complete(create_connection(Collect(received.clone()), "server:7")).unwrap().unwrap();
/// lp.run_until_complete(roof::sleep(std::time::Duration::from_secs(1))).unwrap();
/// assert_eq!(*received.borrow(), b"welcome");
/// ```
pub async fn create_connection<P: Protocol>(
    protocol: P,
    addr: impl ToSocketAddr,
) -> io::Result<Transport> {
    let stream = TcpStream::connect(addr).await?;
    let slot: TransportSlot = Rc::new(RefCell::new((None, None)));
    let receiver = TransportReceiver { slot: slot.clone() };
    crate::spawn_named("connection", drive_reporting(stream, protocol, slot)).detach();
    receiver.await
}

/// A one-shot slot for the transport, filled when `connection_made` is about to run.
pub(super) type TransportSlot = Rc<RefCell<(Option<io::Result<Transport>>, Option<Waker>)>>;

pub(super) struct TransportReceiver {
    pub(super) slot: TransportSlot,
}

impl std::future::Future for TransportReceiver {
    type Output = io::Result<Transport>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.slot.borrow_mut();
        match slot.0.take() {
            Some(result) => Poll::Ready(result),
            None => {
                slot.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Wraps a protocol to hand its transport to the caller of `create_connection` first.
pub(super) struct Reporting<P> {
    pub(super) inner: P,
    pub(super) slot: Option<TransportSlot>,
}

impl<P: Protocol> Protocol for Reporting<P> {
    fn connection_made(&mut self, transport: Transport) {
        if let Some(slot) = self.slot.take() {
            let waker = {
                let mut slot = slot.borrow_mut();
                slot.0 = Some(Ok(transport.clone()));
                slot.1.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
        self.inner.connection_made(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        self.inner.data_received(data);
    }

    fn eof_received(&mut self) -> bool {
        self.inner.eof_received()
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.inner.connection_lost(error);
    }
}

pub(super) async fn drive_reporting<P: Protocol>(
    stream: TcpStream,
    protocol: P,
    slot: TransportSlot,
) {
    let failed = slot.clone();
    drive(
        stream,
        None,
        Reporting {
            inner: protocol,
            slot: Some(slot),
        },
    )
    .await;
    // If the transport could not even be made, the caller hears why.
    let waker = {
        let mut slot = failed.borrow_mut();
        if slot.0.is_none() && slot.1.is_some() {
            slot.0 = Some(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection closed at once",
            )));
        }
        slot.1.take()
    };
    if let Some(waker) = waker {
        waker.wake();
    }
}
