//! asyncio's streams: [`open_connection`] and [`start_server`] give a connection as a
//! [`StreamReader`] (`read`, `readline`, `readexactly`, `readuntil`, `at_eof`) and a
//! [`StreamWriter`] (`write`, `drain`, `write_eof`, `close`, `wait_closed`,
//! `get_extra_info`), on the simulated network and on real sockets alike.
//!
//! As in asyncio, [`StreamWriter::write`] does not wait: it queues the bytes, which a task of
//! the loop sends in the background; [`drain`](StreamWriter::drain) is the backpressure, and
//! waits while more than [`HIGH_WATER`] bytes are queued, until at most [`LOW_WATER`] are.
//!
//! ```
//! use roof::streams::{open_connection, start_server, StreamReader, StreamWriter};
//! let lp = roof::EventLoop::new();
//! lp.host("server", || async {
//!     let upper = |mut reader: StreamReader, mut writer: StreamWriter| async move {
//!         while let Ok(line) = reader.readuntil(b"\n").await {
//!             writer.write(&line.to_ascii_uppercase());
//!             writer.drain().await.unwrap();
//!         }
//!         writer.close();
//!     };
//!     let server = start_server(upper, "0.0.0.0:7").await.unwrap();
//!     server.serve_forever().await;
//! }).unwrap();
//! let answer = lp.run_until_complete(async {
//!     let (mut reader, mut writer) = open_connection("server:7").await.unwrap();
//!     writer.write(b"hello\n");
//!     writer.drain().await.unwrap();
//!     let line = reader.readline().await.unwrap();
//!     writer.close();
//!     writer.wait_closed().await;
//!     line
//! }).unwrap();
//! assert_eq!(answer, b"HELLO\n");
//! ```

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};

use crate::net::{TcpListener, TcpStream, ToSocketAddr};
use crate::sync::Event;
use crate::task::JoinHandle;

/// The most a [`StreamReader`] buffers while looking for a separator (asyncio's default
/// `limit`, 64 KiB): past it, [`readuntil`](StreamReader::readuntil) fails with
/// [`ReadError::LimitOverrun`].
pub const LIMIT: usize = 64 * 1024;

/// The most [`StreamReader::readexactly`] buffers: 64 MiB. A length read from the peer
/// (a frame's header) cannot make the reader buffer without bound.
pub const READEXACTLY_MAX: usize = 64 * 1024 * 1024;
/// [`StreamWriter::drain`] waits while more than this many bytes are queued (asyncio's
/// default high-water mark, 64 KiB)...
pub const HIGH_WATER: usize = 64 * 1024;
/// ...until at most this many are (asyncio's default low-water mark, 16 KiB).
pub const LOW_WATER: usize = 16 * 1024;

/// How much a reader asks of the connection at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Connect to `addr` and return the connection as a reader and a writer (asyncio's
/// `open_connection`).
pub async fn open_connection(addr: impl ToSocketAddr) -> io::Result<(StreamReader, StreamWriter)> {
    let stream = TcpStream::connect(addr).await?;
    Ok(pair(stream))
}

/// An event that starts set: a new writer has nothing to send.
fn idle() -> Event {
    let event = Event::new();
    event.set();
    event
}

fn pair(stream: TcpStream) -> (StreamReader, StreamWriter) {
    let stream = Rc::new(stream);
    let reader = StreamReader {
        stream: stream.clone(),
        buffer: VecDeque::new(),
        eof: false,
    };
    let writer = StreamWriter {
        shared: Rc::new(Outgoing {
            stream: RefCell::new(Some(stream)),
            queued: RefCell::new(VecDeque::new()),
            sending: Cell::new(false),
            eof: Cell::new(false),
            closing: Cell::new(false),
            error: RefCell::new(None),
            drained: Event::new(),
            idle: idle(),
            closed: Event::new(),
        }),
    };
    (reader, writer)
}

/// Listen on `addr` and run `callback` as a task for every connection, with its reader and
/// writer (asyncio's `start_server`). The server accepts until closed or dropped.
pub async fn start_server<C, F>(callback: C, addr: impl ToSocketAddr) -> io::Result<StreamServer>
where
    C: Fn(StreamReader, StreamWriter) -> F + 'static,
    F: Future<Output = ()> + 'static,
{
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let accepting = crate::spawn_named("stream-server", async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let (reader, writer) = pair(stream);
                    crate::spawn(callback(reader, writer)).detach();
                }
                // A refused or aborted accept ends nothing: the next one may succeed.
                Err(_) => crate::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    });
    Ok(StreamServer {
        local,
        accepting: Some(accepting),
    })
}

/// The server of [`start_server`]: it accepts until [`close`](StreamServer::close)d or dropped.
///
/// ```
/// let lp = roof::EventLoop::new();
/// lp.run_until_complete(async {
///     let server = roof::streams::start_server(|_, _| async {}, "0.0.0.0:80").await.unwrap();
///     assert_eq!(server.local_addr().port(), 80);
///     server.close();
/// }).unwrap();
/// ```
pub struct StreamServer {
    local: SocketAddr,
    accepting: Option<JoinHandle<()>>,
}

impl fmt::Debug for StreamServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamServer")
            .field("local", &self.local)
            .finish()
    }
}

impl StreamServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Accept until the task is cancelled (asyncio's `serve_forever`).
    pub async fn serve_forever(mut self) {
        if let Some(accepting) = self.accepting.as_mut() {
            let _ = accepting.await;
        }
    }

    /// Stop accepting; connections being served go on.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(mut accepting) = self.accepting.take() {
            accepting.abort();
        }
    }
}

impl Drop for StreamServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Why a read of a [`StreamReader`] failed.
///
/// ```
/// let error = roof::streams::ReadError::IncompleteRead { partial: b"ab".to_vec(), expected: Some(4) };
/// assert_eq!(error.to_string(), "2 bytes read on a total of 4 expected bytes");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// The stream ended first: what was read (asyncio's `IncompleteReadError`), and how many
    /// bytes were expected (`None`: a separator was).
    IncompleteRead {
        /// The bytes read before the end.
        partial: Vec<u8>,
        /// The bytes asked for, if a count was.
        expected: Option<usize>,
    },
    /// No separator within [`LIMIT`] bytes (asyncio's `LimitOverrunError`); the bytes stay
    /// buffered.
    LimitOverrun {
        /// How many bytes are buffered.
        consumed: usize,
    },
    /// The connection failed.
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::IncompleteRead {
                partial,
                expected: Some(expected),
            } => write!(
                f,
                "{} bytes read on a total of {expected} expected bytes",
                partial.len()
            ),
            ReadError::IncompleteRead {
                partial,
                expected: None,
            } => write!(
                f,
                "{} bytes read on a total of undefined expected bytes",
                partial.len()
            ),
            ReadError::LimitOverrun { consumed } => write!(
                f,
                "separator is not found, and chunk exceed the limit ({consumed} bytes buffered)"
            ),
            ReadError::Io(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<io::Error> for ReadError {
    fn from(error: io::Error) -> ReadError {
        ReadError::Io(error)
    }
}

/// The reading side of a connection (asyncio's `StreamReader`).
///
/// ```
/// use roof::streams::{open_connection, ReadError};
/// let lp = roof::EventLoop::new();
/// lp.host("server", || async {
///     let server = roof::streams::start_server(|_, mut writer| async move {
///         writer.write(b"abc");
///         writer.close(); // then EOF
///     }, "0.0.0.0:7").await.unwrap();
///     server.serve_forever().await;
/// }).unwrap();
/// lp.run_until_complete(async {
///     let (mut reader, _writer) = open_connection("server:7").await.unwrap();
///     match reader.readexactly(5).await {
///         Err(ReadError::IncompleteRead { partial, expected }) => {
///             assert_eq!((partial, expected), (b"abc".to_vec(), Some(5)));
///         }
///         other => panic!("{other:?}"),
///     }
///     assert!(reader.at_eof());
/// }).unwrap();
/// ```
pub struct StreamReader {
    stream: Rc<TcpStream>,
    buffer: VecDeque<u8>,
    eof: bool,
}

impl fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReader")
            .field("buffered", &self.buffer.len())
            .field("eof", &self.eof)
            .finish()
    }
}

impl StreamReader {
    /// Read more from the connection into the buffer; false at EOF.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let mut chunk = [0u8; READ_CHUNK];
        let count = (&*self.stream).read(&mut chunk).await?;
        if count == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.buffer.extend(&chunk[..count]);
        Ok(true)
    }

    fn take(&mut self, count: usize) -> Vec<u8> {
        self.buffer.drain(..count.min(self.buffer.len())).collect()
    }

    /// Up to `n` bytes: what is buffered, or else one read's worth; empty at EOF (asyncio's
    /// `read(n)`).
    pub async fn read(&mut self, n: usize) -> io::Result<Vec<u8>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        if self.buffer.is_empty() {
            self.fill().await?;
        }
        Ok(self.take(n))
    }

    /// Everything until EOF (asyncio's `read()`).
    pub async fn read_to_eof(&mut self) -> io::Result<Vec<u8>> {
        while self.fill().await? {}
        Ok(self.take(self.buffer.len()))
    }

    /// Exactly `n` bytes, or [`ReadError::IncompleteRead`] with what there was at EOF; an
    /// `InvalidInput` error, reading nothing, for `n` over [`READEXACTLY_MAX`].
    pub async fn readexactly(&mut self, n: usize) -> Result<Vec<u8>, ReadError> {
        if n > READEXACTLY_MAX {
            return Err(ReadError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("readexactly({n}) is over the limit of {READEXACTLY_MAX} bytes"),
            )));
        }
        while self.buffer.len() < n {
            if !self.fill().await? {
                return Err(ReadError::IncompleteRead {
                    partial: self.take(self.buffer.len()),
                    expected: Some(n),
                });
            }
        }
        Ok(self.take(n))
    }

    /// Up to and including `separator`; [`ReadError::IncompleteRead`] at EOF without it,
    /// [`ReadError::LimitOverrun`] past [`LIMIT`] bytes without it.
    pub async fn readuntil(&mut self, separator: &[u8]) -> Result<Vec<u8>, ReadError> {
        let mut searched: usize = 0;
        loop {
            if !separator.is_empty() && self.buffer.len() >= separator.len() {
                let contiguous = self.buffer.make_contiguous();
                let from = searched.saturating_sub(separator.len() - 1);
                if let Some(at) = contiguous[from..]
                    .windows(separator.len())
                    .position(|window| window == separator)
                {
                    return Ok(self.take(from + at + separator.len()));
                }
                searched = contiguous.len();
            }
            if self.buffer.len() > LIMIT {
                return Err(ReadError::LimitOverrun {
                    consumed: self.buffer.len(),
                });
            }
            if !self.fill().await? {
                return Err(ReadError::IncompleteRead {
                    partial: self.take(self.buffer.len()),
                    expected: None,
                });
            }
        }
    }

    /// One line, with its `\n`; at EOF, what is left (empty when nothing is), as asyncio's
    /// `readline` returns it.
    pub async fn readline(&mut self) -> Result<Vec<u8>, ReadError> {
        match self.readuntil(b"\n").await {
            Err(ReadError::IncompleteRead { partial, .. }) => Ok(partial),
            other => other,
        }
    }

    /// Whether the buffer is empty and the connection has ended.
    pub fn at_eof(&self) -> bool {
        self.eof && self.buffer.is_empty()
    }
}

/// What a writer shares with the task that sends its bytes.
struct Outgoing {
    stream: RefCell<Option<Rc<TcpStream>>>,
    queued: RefCell<VecDeque<u8>>,
    /// A sender task is running.
    sending: Cell<bool>,
    /// `write_eof` was called: shut the write half down once everything is sent.
    eof: Cell<bool>,
    /// `close` was called: close the connection once everything is sent.
    closing: Cell<bool>,
    /// The connection failed while sending.
    error: RefCell<Option<io::ErrorKind>>,
    /// Set while at most `LOW_WATER` bytes are queued.
    drained: Event,
    /// Set while no sender task runs (everything queued was sent, or sending failed).
    idle: Event,
    /// Set once the connection is closed.
    closed: Event,
}

impl Outgoing {
    /// Send what is queued until nothing is, then act on `write_eof` and `close`.
    async fn send(self: Rc<Self>) {
        loop {
            let chunk: Vec<u8> = {
                let mut queued = self.queued.borrow_mut();
                let count = queued.len().min(READ_CHUNK);
                queued.drain(..count).collect()
            };
            if chunk.is_empty() {
                break;
            }
            let stream = self.stream.borrow().clone();
            let Some(stream) = stream else { break };
            if let Err(error) = (&*stream).write_all(&chunk).await {
                *self.error.borrow_mut() = Some(error.kind());
                self.queued.borrow_mut().clear();
                break;
            }
            if self.queued.borrow().len() <= LOW_WATER {
                self.drained.set();
            }
        }
        self.drained.set();
        self.sending.set(false);
        self.idle.set();
        self.finish();
    }

    /// With nothing left to send: shut the write half down, or close.
    fn finish(&self) {
        if self.sending.get() || !self.queued.borrow().is_empty() {
            return;
        }
        if self.eof.get() {
            if let Some(stream) = self.stream.borrow().as_ref() {
                let _ = stream.shutdown(Shutdown::Write);
            }
        }
        if self.closing.get() {
            // The reader may still hold the stream: shut it down both ways, and let go.
            if let Some(stream) = self.stream.borrow_mut().take() {
                let _ = stream.shutdown(Shutdown::Both);
            }
            self.closed.set();
        }
    }
}

/// The writing side of a connection (asyncio's `StreamWriter`).
///
/// ```
/// use roof::streams::{open_connection, start_server};
/// let lp = roof::EventLoop::new();
/// lp.host("server", || async {
///     let server = start_server(|mut reader, _| async move {
///         let all = reader.read_to_eof().await.unwrap();
///         roof::println!("server got {} bytes", all.len());
///     }, "0.0.0.0:7").await.unwrap();
///     server.serve_forever().await;
/// }).unwrap();
/// lp.run_until_complete(async {
///     let (_reader, mut writer) = open_connection("server:7").await.unwrap();
///     assert!(writer.get_extra_info("peername").is_some());
///     for _ in 0..100 {
///         writer.write(&[7u8; 4096]); // queued at once...
///         writer.drain().await.unwrap(); // ...held back while more than 64 KiB wait
///     }
///     writer.write_eof();
///     writer.wait_sent().await;
///     roof::sleep(std::time::Duration::from_millis(50)).await;
/// }).unwrap();
/// assert!(lp.report().output.contains("server got 409600 bytes"));
/// ```
pub struct StreamWriter {
    shared: Rc<Outgoing>,
}

impl fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamWriter")
            .field("queued", &self.shared.queued.borrow().len())
            .finish()
    }
}

impl StreamWriter {
    /// Queue `data` to be sent (at once, without waiting; a task of the loop sends it).
    /// Dropped, as asyncio drops it, once the writer is closing or its connection failed.
    pub fn write(&mut self, data: &[u8]) {
        let shared = &self.shared;
        if data.is_empty() || shared.closing.get() || shared.eof.get() {
            return;
        }
        if shared.error.borrow().is_some() || shared.stream.borrow().is_none() {
            return;
        }
        shared.queued.borrow_mut().extend(data);
        if shared.queued.borrow().len() > HIGH_WATER {
            shared.drained.clear();
        }
        if !shared.sending.replace(true) {
            shared.idle.clear();
            crate::spawn(shared.clone().send()).detach();
        }
    }

    /// Wait while more than [`HIGH_WATER`] bytes are queued, until at most [`LOW_WATER`]
    /// are; the connection's error, if sending failed.
    pub async fn drain(&mut self) -> io::Result<()> {
        if self.shared.queued.borrow().len() > HIGH_WATER {
            self.shared.drained.wait().await;
        }
        match *self.shared.error.borrow() {
            Some(kind) => Err(io::Error::new(kind, "the connection failed while sending")),
            None => Ok(()),
        }
    }

    /// Wait until every queued byte was sent (or sending failed).
    pub async fn wait_sent(&mut self) {
        self.shared.idle.wait().await;
    }

    /// Shut the write half down once the queued bytes are sent: the peer reads EOF, and can
    /// still answer.
    pub fn write_eof(&mut self) {
        self.shared.eof.set(true);
        self.shared.finish();
    }

    /// Close the connection once the queued bytes are sent: the write half is shut down (the
    /// peer reads EOF) and the writer lets go of the connection, which closes once the
    /// reader lets go too. Dropping the writer does the same.
    pub fn close(&mut self) {
        self.shared.closing.set(true);
        self.shared.finish();
    }

    /// Whether [`close`](StreamWriter::close) was called.
    pub fn is_closing(&self) -> bool {
        self.shared.closing.get()
    }

    /// Wait until the connection is closed (after [`close`](StreamWriter::close)).
    pub async fn wait_closed(&mut self) {
        if self.shared.closing.get() {
            self.shared.closed.wait().await;
        }
    }

    /// The connection's `"peername"` or `"sockname"` (asyncio's `get_extra_info`); `None`
    /// for another name, or once closed.
    pub fn get_extra_info(&self, name: &str) -> Option<SocketAddr> {
        let stream = self.shared.stream.borrow();
        let stream = stream.as_ref()?;
        match name {
            "peername" => stream.peer_addr().ok(),
            "sockname" => stream.local_addr().ok(),
            _ => None,
        }
    }
}

impl Drop for StreamWriter {
    /// A writer dropped without `close` closes as [`close`](StreamWriter::close) does: what is
    /// queued is still sent, then the write half is shut down; the reader reads on.
    fn drop(&mut self) {
        self.close();
    }
}
