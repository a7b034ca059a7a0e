//! The real-net backend (feature `real-net`): the network conformance bodies on loopback, the
//! programs of sim/ unchanged on real sockets, wakeups from other threads, `roof serve` and
//! `roof client` as a user runs them, and load and abuse against `roof serve`.
//!
//! Only behaviour is asserted, never timing: waits below are bounds that fail a hung test.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, Command, ExitStatus, Output};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use roof::io::{AsyncReadExt, AsyncWriteExt};
use roof::net::{TcpListener, TcpStream, UdpSocket};
use roof::protocol::{create_connection, create_server, Protocol, Transport};
use roof::EventLoop;

use crate::net::conformance::*;
use crate::sim::{echo_ping_pong, yell_echo};

/// A real loop with an echo server and a server that never reads, on loopback ports the OS
/// picks. Returns the loop and their addresses.
fn real_world() -> (EventLoop, String, String) {
    let event_loop = EventLoop::real();
    assert!(event_loop.is_real());
    let (echo, sink) = event_loop
        .run_until_complete(async {
            let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addrs = (
                echo.local_addr().unwrap().to_string(),
                sink.local_addr().unwrap().to_string(),
            );
            roof::spawn(echo_server(echo)).detach();
            roof::spawn(sink_server(sink)).detach();
            addrs
        })
        .unwrap();
    (event_loop, echo, sink)
}

/// A loopback address where nothing listens (the OS just gave it out, then it was closed).
fn nothing_listening() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

#[test]
fn the_conformance_bodies_pass_on_loopback() {
    let (event_loop, echo, sink) = real_world();
    let nothing = nothing_listening();
    event_loop
        .run_until_complete(async move { refused_connect(&nothing).await })
        .unwrap();
    for len in [1, 1_000, 300_000, 3_000_000] {
        let echo = echo.clone();
        event_loop
            .run_until_complete(async move { echo_intact_and_ordered(&echo, len).await })
            .unwrap();
    }
    let address = echo.clone();
    event_loop
        .run_until_complete(async move { half_close(&address).await })
        .unwrap();
    let address = echo.clone();
    event_loop
        .run_until_complete(async move { streams_against_echo(&address).await })
        .unwrap();
    let address = sink.clone();
    event_loop
        .run_until_complete(async move {
            stream_drain_holds_back(&address, Duration::from_millis(300)).await
        })
        .unwrap();
    event_loop
        .run_until_complete(stream_server_upper_cases_lines("127.0.0.1:0", |addr| {
            addr.to_string()
        }))
        .unwrap();
    event_loop
        .run_until_complete(datagram_endpoints_echo("127.0.0.1:0", |addr| {
            addr.to_string()
        }))
        .unwrap();
    let accepted = event_loop
        .run_until_complete(async move {
            backpressure_bounds_buffered_bytes(&sink, Duration::from_millis(300)).await
        })
        .unwrap();
    // The body itself fails past 64 MiB; the kernel's buffers took something.
    assert!(accepted > 0);
}

#[test]
fn unknown_hosts_taken_ports_and_bad_addresses_are_io_errors() {
    let event_loop = EventLoop::real();
    event_loop
        .run_until_complete(async {
            let first = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let taken = first.local_addr().unwrap();
            let error = TcpListener::bind(taken).await.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::AddrInUse, "{error}");
            assert!(error.to_string().contains(&taken.to_string()), "{error}");
            let error = TcpStream::connect("not an address").await.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
            let error = TcpStream::connect("no-such-host.invalid:80")
                .await
                .unwrap_err();
            assert!(
                error.to_string().contains("no-such-host.invalid"),
                "{error}"
            );
            // Names resolve through the OS, IPv4 first.
            let local = roof::net::lookup("localhost").unwrap();
            assert!(local.is_loopback(), "{local}");
        })
        .unwrap();
}

#[test]
fn the_sim_programs_run_unchanged_on_real_sockets() {
    let event_loop = EventLoop::real();
    let addr = event_loop
        .run_until_complete(async {
            let server = create_server(yell_echo::YellEchoServer::default, "127.0.0.1:0")
                .await
                .unwrap();
            let addr = server.local_addr().to_string();
            // The server lives as long as the loop.
            std::mem::forget(server);
            addr
        })
        .unwrap();
    // The nc-like client of the yell-echo scenario.
    let nc_addr = addr.clone();
    event_loop
        .run_until_complete(async move { yell_echo::nc(1, 3, nc_addr).await })
        .unwrap()
        .unwrap();
    // The EchoClientProtocol of echo-ping-pong: run_forever until connection_lost stops it.
    echo_ping_pong::talk(&event_loop, &addr, b"Hello World!", 5, None).unwrap();
    event_loop.close();
}

/// Logs its callbacks; `connection_made` blocks long enough for the server's greeting and
/// FIN to be waiting in the socket before the driver could read.
struct Greeted {
    log: Rc<RefCell<Vec<String>>>,
    event_loop: roof::LoopHandle,
}

impl Protocol for Greeted {
    // Real sockets: another thread and a short wall-clock wait are this test's subject or its bound; nothing is timed.
    #[allow(clippy::disallowed_methods)]
    fn connection_made(&mut self, _transport: Transport) {
        self.log.borrow_mut().push("made".into());
        std::thread::sleep(Duration::from_millis(50));
    }

    fn data_received(&mut self, data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        self.log.borrow_mut().push(format!("data {text}"));
    }

    fn connection_lost(&mut self, _error: Option<std::io::Error>) {
        self.log.borrow_mut().push("lost".into());
        self.event_loop.stop();
    }
}

/// As in asyncio, `create_connection` returns before the first `data_received`, however
/// early the data arrives (the whole exchange used to fit in one poll of the driver, and a
/// `stop` from `connection_lost` then ended `run_until_complete` before it returned).
#[test]
// Real sockets: another thread and a short wall-clock wait are this test's subject or its bound; nothing is timed.
#[allow(clippy::disallowed_methods)]
fn create_connection_returns_before_the_first_data_is_read() {
    use std::io::Write as _;

    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let greeter = std::thread::spawn(move || {
        let (mut stream, _) = server.accept().unwrap();
        stream.write_all(b"greetings").unwrap();
    });
    let event_loop = EventLoop::real();
    let log = Rc::new(RefCell::new(Vec::new()));
    let protocol = Greeted {
        log: log.clone(),
        event_loop: event_loop.handle(),
    };
    let main_log = log.clone();
    event_loop
        .run_until_complete(async move {
            create_connection(protocol, addr).await.unwrap();
            main_log.borrow_mut().push("returned".to_string());
        })
        .unwrap();
    // The connection may be over already: `run_until_complete` runs one batch past its
    // future (asyncio does too), and a `stop` then is spent.
    if !log.borrow().iter().any(|entry| entry == "lost") {
        event_loop.run_forever().unwrap();
    }
    greeter.join().unwrap();
    assert_eq!(
        *log.borrow(),
        ["made", "returned", "data greetings", "lost"]
    );
}

#[test]
fn udp_datagrams_cross_loopback() {
    let event_loop = EventLoop::real();
    event_loop
        .run_until_complete(async {
            let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let b_addr = b.local_addr().unwrap();
            assert_eq!(a.send_to(b"ping", b_addr).await.unwrap(), 4);
            let mut buf = [0u8; 16];
            let (count, from) = b.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..count], b"ping");
            assert_eq!(from, a.local_addr().unwrap());
        })
        .unwrap();
}

#[test]
fn timers_and_callbacks_follow_the_wall_clock() {
    let event_loop = EventLoop::real();
    let fired = Rc::new(Cell::new(false));
    let flag = fired.clone();
    let start = event_loop.time();
    event_loop.call_later(Duration::from_millis(20), move || flag.set(true));
    event_loop
        .run_until_complete(async {
            let before = roof::time::now();
            roof::sleep(Duration::from_millis(30)).await;
            let slept = roof::time::now().saturating_duration_since(before);
            assert!(slept >= Duration::from_millis(30), "slept {slept:?}");
            let never = poll_fn(|_| Poll::<()>::Pending);
            assert!(roof::timeout(Duration::from_millis(10), never)
                .await
                .is_err());
        })
        .unwrap();
    assert!(fired.get(), "call_later's callback ran");
    assert!(event_loop.time() - start >= 0.04);
}

/// A future completed by another thread: its waker is woken there.
struct FromAnotherThread {
    done: Arc<AtomicBool>,
    waker: Arc<Mutex<Option<Waker>>>,
}

impl Future for FromAnotherThread {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.done.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[test]
// Real sockets: another thread and a short wall-clock wait are this test's subject or its bound; nothing is timed.
#[allow(clippy::disallowed_methods)]
fn a_task_woken_on_another_thread_runs_on_its_loop() {
    let event_loop = EventLoop::real();
    let loop_thread = std::thread::current().id();
    for round in 0..20 {
        let done = Arc::new(AtomicBool::new(false));
        let waker: Arc<Mutex<Option<Waker>>> = Arc::default();
        let (thread_done, thread_waker) = (done.clone(), waker.clone());
        let other = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(round % 3));
            thread_done.store(true, Ordering::SeqCst);
            if let Some(waker) = thread_waker.lock().unwrap().take() {
                waker.wake();
            }
        });
        let ran_on = event_loop
            .run_until_complete(async move {
                FromAnotherThread { done, waker }.await;
                std::thread::current().id()
            })
            .unwrap();
        assert_eq!(ran_on, loop_thread, "round {round}");
        other.join().unwrap();
    }
}

// ----- roof serve and roof client, as a user runs them ------------------------------------

/// `roof serve` in a child process, its output in a file (so a busy server never blocks on
/// a full pipe).
struct Served {
    child: Child,
    output: PathBuf,
    addr: SocketAddr,
}

impl Served {
    fn start(name: &str) -> Served {
        Served::start_limited(name, None)
    }

    /// `roof serve` with at most `descriptors` open files (`ulimit -n`), its stderr in
    /// `serve-<name>.err`.
    // Real sockets: another thread and a short wall-clock wait are this test's subject or its bound; nothing is timed.
    #[allow(clippy::disallowed_methods)]
    fn start_limited(name: &str, descriptors: Option<u32>) -> Served {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let output = dir.join(format!("serve-{name}.out"));
        let file = std::fs::File::create(&output).unwrap();
        let errors = std::fs::File::create(dir.join(format!("serve-{name}.err"))).unwrap();
        let roof = env!("CARGO_BIN_EXE_roof");
        let mut command = match descriptors {
            Some(limit) => {
                let mut command = Command::new("sh");
                command.args([
                    "-c",
                    &format!("ulimit -n {limit} && exec \"$0\" serve --addr 127.0.0.1:0"),
                    roof,
                ]);
                command
            }
            None => {
                let mut command = Command::new(roof);
                command.args(["serve", "--addr", "127.0.0.1:0"]);
                command
            }
        };
        let child = command.stdout(file).stderr(errors).spawn().unwrap();
        let mut served = Served {
            child,
            output,
            addr: "0.0.0.0:0".parse().unwrap(),
        };
        for _ in 0..1000 {
            let text = served.text();
            if let Some(line) = text.lines().next() {
                let addr = line
                    .strip_prefix("Serving on ")
                    .and_then(|rest| rest.split(' ').next())
                    .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
                served.addr = addr.parse().unwrap();
                return served;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("roof serve never said where it serves");
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    fn errors(&self) -> String {
        std::fs::read_to_string(self.output.with_extension("err")).unwrap_or_default()
    }

    /// The server's peak resident memory in KiB (Linux's VmHWM).
    fn peak_memory_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Ctrl-C, then wait for the server to close.
    // Real sockets: another thread and a short wall-clock wait are this test's subject or its bound; nothing is timed.
    #[allow(clippy::disallowed_methods)]
    fn interrupt(&mut self) -> (ExitStatus, String) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
        for _ in 0..1000 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.text());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "roof serve did not close within 10 s of Ctrl-C:\n{}",
            self.text()
        );
    }
}

impl Drop for Served {
    /// A failed test must not leave its server behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn roof(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roof"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn roof_client_talks_to_roof_serve_and_ctrl_c_closes_it() {
    let mut served = Served::start("client");
    let addr = served.addr.to_string();
    let output = roof(&[
        "client",
        "--addr",
        &addr,
        "--message",
        "hi there",
        "--count",
        "3",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "exchange 1: HI THERE",
            "exchange 2: HI THERE",
            "exchange 3: HI THERE"
        ]
    );
    let (status, text) = served.interrupt();
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(
        text.contains("Connection received from: ('127.0.0.1', "),
        "{text}"
    );
    assert!(text.contains("Client disconnected"), "{text}");
    assert!(
        text.ends_with("Closing the server\nServer closed\n"),
        "{text}"
    );
}

#[test]
fn roof_serve_and_client_reject_bad_input_with_exit_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let nothing = nothing_listening();
    for (args, code, needle) in [
        (vec!["serve", "--addr", &taken], 2, "Address already in use"),
        (
            vec!["serve", "--addr", "nonsense"],
            2,
            "invalid --addr 'nonsense'",
        ),
        (vec!["serve", "--addr", "127.0.0.1:99999"], 2, "not a port"),
        (
            vec!["client", "--addr", "127.0.0.1"],
            2,
            "expected host:port",
        ),
        (
            vec!["client", "--count", "0"],
            2,
            "invalid value '0' for '--count",
        ),
        (vec!["client", "--message", ""], 2, "for '--message"),
        (vec!["client", "--timeout", "0s"], 2, "for '--timeout"),
        (vec!["client", "--addr", &nothing], 1, "cannot connect to"),
    ] {
        let output = roof(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        // clap's own errors carry their usage lines; the others are one line.
        if !stderr.contains("For more information") {
            assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        }
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

// ----- load and abuse -------------------------------------------------------------------

/// What the load run saw, for the report line.
#[derive(Default)]
struct Tally {
    round_trips: Cell<u64>,
    bytes_echoed: Cell<u64>,
    held_at_once: Cell<usize>,
}

impl Tally {
    fn echoed(&self, bytes: usize) {
        self.bytes_echoed
            .set(self.bytes_echoed.get() + bytes as u64);
    }
}

/// Wait until `count` reaches `target` (a barrier for tasks of one real loop).
async fn all_reach(count: &Cell<usize>, target: usize) {
    while count.get() < target {
        roof::sleep(Duration::from_millis(1)).await;
    }
}

const CLIENTS: usize = 1_000;
const ROUNDS: usize = 10;
const BIG: usize = 10 * 1024 * 1024;

/// A client of the load run: connect, wait until every client holds a connection, do
/// `ROUNDS` round trips of 16 bytes, wait again (so the server holds them all at once), close.
async fn steady_client(
    addr: SocketAddr,
    client: usize,
    tally: Rc<Tally>,
    gate: Rc<[Cell<usize>; 2]>,
) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    gate[0].set(gate[0].get() + 1);
    all_reach(&gate[0], CLIENTS).await;
    let mut answer = [0u8; 16];
    for round in 0..ROUNDS {
        let sent = format!("client {client:04} r{round:02}!");
        stream.write_all(sent.as_bytes()).await.unwrap();
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(
            answer,
            sent.to_ascii_uppercase().as_bytes(),
            "client {client}"
        );
        tally.round_trips.set(tally.round_trips.get() + 1);
        tally.echoed(answer.len());
    }
    gate[1].set(gate[1].get() + 1);
    tally
        .held_at_once
        .set(tally.held_at_once.get().max(gate[1].get()));
    all_reach(&gate[1], CLIENTS).await;
}

/// Connect, write part of a large message, then vanish: reset or plain close, mid-write.
async fn abrupt_client(addr: SocketAddr, index: usize) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let junk = vec![b'x'; 4096 + index * 997];
    let _ = stream.write_all(&junk).await;
    if index % 2 == 0 {
        stream.abort();
    } else {
        drop(stream);
    }
}

/// 10 MB sent and read back concurrently, intact and upper-cased.
async fn big_client(addr: SocketAddr, tally: Rc<Tally>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let payload: Vec<u8> = (0..BIG).map(|index| b'a' + (index % 26) as u8).collect();
    let expected = payload.to_ascii_uppercase();
    let (mut reader, mut writer) = roof::io::split(stream);
    let writing = roof::spawn(async move {
        for chunk in payload.chunks(256 * 1024) {
            writer.write_all(chunk).await.unwrap();
        }
        writer
    });
    let mut received = vec![0u8; BIG];
    reader.read_exact(&mut received).await.unwrap();
    assert!(received == expected, "the 10 MB echo differs");
    tally.echoed(BIG);
    drop(writing.await.unwrap());
}

/// Every byte value, and invalid UTF-8: back exactly as `bytes.upper()` would give it.
async fn binary_client(addr: SocketAddr, tally: Rc<Tally>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut sent: Vec<u8> = (0..=255u8).cycle().take(64 * 1024).collect();
    sent.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28, 0x00, b'\r', b'\n', 0xed, 0xa0, 0x80]);
    let (mut reader, mut writer) = roof::io::split(&mut stream);
    let expected = sent.to_ascii_uppercase();
    let mut received = vec![0u8; sent.len()];
    let (written, read) =
        futures_lite::future::zip(writer.write_all(&sent), reader.read_exact(&mut received)).await;
    written.unwrap();
    read.unwrap();
    assert!(received == expected, "binary input came back altered");
    tally.echoed(received.len());
}

/// Sends and never reads: the server must stop reading from it (its memory stays bounded)
/// while everyone else is served. Returns the bytes its writes got rid of before blocking.
async fn hog_client(addr: SocketAddr, until: Rc<Cell<bool>>) -> usize {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let chunk = vec![b'h'; 64 * 1024];
    let mut accepted = 0;
    loop {
        match roof::timeout(Duration::from_millis(500), stream.write(&chunk)).await {
            Ok(written) => accepted += written.unwrap(),
            Err(_) => break,
        }
        assert!(
            accepted < 256 * 1024 * 1024,
            "the server kept reading: {accepted} bytes"
        );
    }
    // Hold the connection, unread, until the others are done.
    while !until.get() {
        roof::sleep(Duration::from_millis(5)).await;
    }
    accepted
}

#[test]
fn roof_serve_keeps_serving_under_load_and_abuse() {
    let mut served = Served::start("load");
    let addr = served.addr;
    let event_loop = EventLoop::real();
    let tally = Rc::new(Tally::default());
    let gate: Rc<[Cell<usize>; 2]> = Rc::new([Cell::new(0), Cell::new(0)]);
    let finished = Rc::new(Cell::new(false));
    let (run_tally, done) = (tally.clone(), finished.clone());
    let hog = event_loop
        .run_until_complete(async move {
            let hog = roof::spawn(hog_client(addr, done.clone()));
            let mut others = Vec::new();
            for index in 0..50 {
                others.push(roof::spawn(abrupt_client(addr, index)));
            }
            others.push(roof::spawn(big_client(addr, run_tally.clone())));
            others.push(roof::spawn(binary_client(addr, run_tally.clone())));
            for client in 0..CLIENTS {
                others.push(roof::spawn(steady_client(
                    addr,
                    client,
                    run_tally.clone(),
                    gate.clone(),
                )));
            }
            for task in others {
                task.await.unwrap();
            }
            done.set(true);
            hog.await.unwrap()
        })
        .unwrap();
    let peak_kib = served.peak_memory_kib();
    // A new client after all that is served as the first one was.
    let after = roof(&["client", "--addr", &addr.to_string(), "--count", "2"]);
    assert_eq!(after.status.code(), Some(0));
    event_loop.close();
    let (status, text) = served.interrupt();
    assert_eq!(status.code(), Some(0), "{text}");

    assert_eq!(tally.round_trips.get(), (CLIENTS * ROUNDS) as u64);
    assert_eq!(
        tally.held_at_once.get(),
        CLIENTS,
        "every client held its connection at once"
    );
    let connections = text.matches("Connection received from:").count();
    let disconnects = text.matches("Client disconnected").count();
    // 1,000 steady, 50 abrupt, big, binary, hog, and the client after.
    assert_eq!(
        connections,
        CLIENTS + 50 + 4,
        "{}",
        &text[..text.len().min(2000)]
    );
    assert_eq!(disconnects, connections);
    // The hog got no further than the kernel's socket buffers and the transport's 64 KiB.
    assert!(hog < 64 * 1024 * 1024, "hog wrote {hog} bytes");
    if let Some(peak_kib) = peak_kib {
        assert!(peak_kib < 256 * 1024, "roof serve peaked at {peak_kib} KiB");
    }
    eprintln!(
        "load: {CLIENTS} connections held at once, {} round trips, {} bytes echoed intact, \
         hog accepted {hog} bytes before blocking, roof serve peak memory {} KiB",
        tally.round_trips.get(),
        tally.bytes_echoed.get(),
        peak_kib.map_or("unknown".to_string(), |kib| kib.to_string()),
    );
}

/// With `ulimit -n 64` and 80 connections, `accept` fails with EMFILE: the server logs it and
/// retries with a short backoff instead of ending its accept loop (the port used to close for
/// good while the process stayed up), so once the connections go, a new client is served.
#[test]
// Real sockets: another thread and a short wall-clock wait are this test's subject or its bound; nothing is timed.
#[allow(clippy::disallowed_methods)]
fn roof_serve_survives_running_out_of_descriptors() {
    let mut served = Served::start_limited("descriptors", Some(64));
    let addr = served.addr;
    let hogs: Vec<std::net::TcpStream> = (0..80)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let mut logged = false;
    for _ in 0..500 {
        if served.errors().contains("accept") {
            logged = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(logged, "the server says accept failed: {}", served.errors());
    drop(hogs);
    let output = roof(&[
        "client",
        "--addr",
        &addr.to_string(),
        "--message",
        "still there?",
        "--count",
        "2",
        "--timeout",
        "10s",
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "a new client is served once descriptors are free: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let errors = served.errors();
    assert!(errors.contains("Too many open files"), "{errors}");
    assert!(!errors.contains("panicked"), "{errors}");
    let (status, text) = served.interrupt();
    assert_eq!(status.code(), Some(0), "{text}");
}

/// `roof client` against a server that accepts and never answers exits 1 with a message
/// once its timeout has passed, instead of hanging.
#[test]
// Real sockets: another thread and a short wall-clock wait are this test's subject or its bound; nothing is timed.
#[allow(clippy::disallowed_methods)]
fn roof_client_gives_up_on_a_silent_server() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let holder = std::thread::spawn(move || {
        let held = listener.accept();
        std::thread::sleep(Duration::from_secs(3));
        drop(held);
    });
    let output = roof(&["client", "--addr", &addr, "--timeout", "300ms"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "no answer from {addr} within 300ms: 0 of 5 exchanges done"
        )),
        "{stderr}"
    );
    holder.join().unwrap();
}

/// A connection handler that panics on a real loop is logged with its connection, and the
/// server goes on serving the others (asyncio's exception handler does this; in a simulation
/// the run fails on it, as every panic fails a run).
#[test]
fn a_panicking_connection_handler_does_not_stop_a_real_server() {
    struct Touchy {
        transport: Option<Transport>,
    }
    impl Protocol for Touchy {
        fn connection_made(&mut self, transport: Transport) {
            self.transport = Some(transport);
        }
        fn data_received(&mut self, data: &[u8]) {
            assert!(data != b"boom", "the handler choked on {data:?}");
            self.transport
                .as_ref()
                .unwrap()
                .write(&data.to_ascii_uppercase());
        }
    }
    let event_loop = EventLoop::real();
    let answers = event_loop
        .run_until_complete(async {
            let server = create_server(|| Touchy { transport: None }, "127.0.0.1:0")
                .await
                .unwrap();
            let addr = server.local_addr();
            let mut victim = TcpStream::connect(addr).await.unwrap();
            victim.write_all(b"boom").await.unwrap();
            let mut rest = Vec::new();
            let lost = victim.read_to_end(&mut rest).await;
            let mut survivor = TcpStream::connect(addr).await.unwrap();
            survivor.write_all(b"fine").await.unwrap();
            let mut answer = [0u8; 4];
            survivor.read_exact(&mut answer).await.unwrap();
            server.close();
            (lost.map(|_| rest), answer)
        })
        .unwrap();
    assert!(
        matches!(&answers.0, Ok(rest) if rest.is_empty()) || answers.0.is_err(),
        "the panicking connection is dropped: {:?}",
        answers.0
    );
    assert_eq!(&answers.1, b"FINE");
    // In a simulation the same panic fails the run.
    let simulated = EventLoop::with_config(crate::quiet(0));
    let failure = simulated
        .run_until_complete(async {
            let _server = create_server(|| Touchy { transport: None }, "127.0.0.1:9")
                .await
                .unwrap();
            let mut victim = TcpStream::connect("127.0.0.1:9").await.unwrap();
            victim.write_all(b"boom").await.unwrap();
            roof::sleep(Duration::from_secs(1)).await;
        })
        .unwrap_err();
    assert_eq!(failure.kind(), "panic", "{failure}");
}

/// On a real loop, by default, a panicking task is reported (on stderr) and the loop goes on,
/// as asyncio's default exception handler logs and carries on.
#[test]
fn a_panicking_task_on_a_real_loop_is_reported_and_the_loop_goes_on() {
    let event_loop = EventLoop::real();
    let after = event_loop
        .run_until_complete(async {
            let doomed = roof::spawn(async { panic!("a real task broke") });
            assert!(doomed.await.is_err());
            roof::sleep(Duration::from_millis(1)).await;
            "went on"
        })
        .unwrap();
    assert_eq!(after, "went on");
}

/// On a real loop a cancel request reaches a task blocked on a real socket (an accept, a
/// read), which catches it and finishes.
#[test]
fn a_cancel_request_reaches_a_task_blocked_on_a_real_socket() {
    use roof::task::catch_cancelled;
    let event_loop = EventLoop::real();
    let outcome = event_loop
        .run_until_complete(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let acceptor = roof::spawn(async move {
                let accepted = catch_cancelled(listener.accept()).await;
                accepted.is_err()
            });
            roof::sleep(std::time::Duration::from_millis(20)).await;
            assert!(acceptor.cancel());
            let accept_cancelled = acceptor.await.unwrap();

            let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let server_addr = server.local_addr().unwrap();
            let reader = roof::spawn(async move {
                let (stream, _) = server.accept().await.unwrap();
                let mut buf = [0u8; 8];
                let read =
                    catch_cancelled(roof::io::AsyncReadExt::read(&mut &stream, &mut buf)).await;
                read.is_err()
            });
            let _client = TcpStream::connect(server_addr).await.unwrap();
            roof::sleep(std::time::Duration::from_millis(20)).await;
            reader.cancel();
            let read_cancelled = reader.await.unwrap();
            (accept_cancelled, read_cancelled)
        })
        .unwrap();
    assert_eq!(outcome, (true, true));
}

/// A fresh directory for one test's files, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(name: &str) -> ScratchDir {
        let dir = std::env::temp_dir().join(format!("roof-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        ScratchDir(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_file_conformance_bodies_pass_on_real_files_under_the_hosts_directory() {
    for (name, body) in crate::fs::conformance::BODIES {
        let scratch = ScratchDir::new(&format!("fs-{}", name.replace(' ', "-")));
        let event_loop = EventLoop::real();
        event_loop.set_disk_dir("main", &scratch.0).unwrap();
        event_loop
            .run_until_complete(body())
            .unwrap_or_else(|failure| panic!("{name}: {failure}"));
    }
    // The files are real, where the program put them.
    let scratch = ScratchDir::new("fs-where");
    let event_loop = EventLoop::real();
    event_loop.set_disk_dir("main", &scratch.0).unwrap();
    event_loop
        .run_until_complete(async {
            roof::fs::create_dir_all("/data").await.unwrap();
            roof::fs::write("/data/log", b"on disk").await.unwrap();
        })
        .unwrap();
    assert_eq!(
        std::fs::read(scratch.0.join("data/log")).unwrap(),
        b"on disk"
    );
}

#[test]
fn a_real_loop_without_a_directory_for_its_files_says_so() {
    let event_loop = EventLoop::real();
    let error = event_loop
        .run_until_complete(roof::fs::write("/f", b"x"))
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert!(error.to_string().contains("set_disk_dir"), "{error}");
}
