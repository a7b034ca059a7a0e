//! asyncio's Protocol and Transport: callback order, writing, closing, aborting, servers.

use std::cell::RefCell;
use std::io::ErrorKind;
use std::rc::Rc;
use std::time::Duration;

use roof::io::{AsyncReadExt, AsyncWriteExt};
use roof::net::TcpStream;
use roof::protocol::{create_connection, create_server, ExtraInfo, Protocol, Transport};
use roof::EventLoop;

use crate::quiet;

type Calls = Rc<RefCell<Vec<String>>>;

/// Records every callback; on `close_after` received bytes it closes (or aborts) its transport.
struct Recorder {
    calls: Calls,
    transport: Option<Transport>,
    received: usize,
    close_after: Option<(usize, bool)>,
    keep_open_on_eof: bool,
}

impl Recorder {
    fn new(calls: &Calls) -> Recorder {
        Recorder {
            calls: calls.clone(),
            transport: None,
            received: 0,
            close_after: None,
            keep_open_on_eof: false,
        }
    }
}

impl Protocol for Recorder {
    fn connection_made(&mut self, transport: Transport) {
        self.calls.borrow_mut().push("connection_made".into());
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        self.calls
            .borrow_mut()
            .push(format!("data_received {}", data.len()));
        self.received += data.len();
        if let (Some((limit, abort)), Some(transport)) = (self.close_after, &self.transport) {
            if self.received >= limit {
                if abort {
                    transport.abort();
                } else {
                    transport.close();
                }
                assert!(transport.is_closing());
            }
        }
    }

    fn eof_received(&mut self) -> bool {
        self.calls.borrow_mut().push("eof_received".into());
        if self.keep_open_on_eof {
            if let Some(transport) = &self.transport {
                transport.write(b"bye");
                transport.close();
            }
        }
        self.keep_open_on_eof
    }

    fn connection_lost(&mut self, error: Option<std::io::Error>) {
        let what = error.map_or("None".to_string(), |error| format!("{:?}", error.kind()));
        self.calls
            .borrow_mut()
            .push(format!("connection_lost {what}"));
    }
}

/// Collapse runs of `data_received` into one entry with the total.
fn summary(calls: &Calls) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut total = 0usize;
    for call in calls.borrow().iter() {
        if let Some(count) = call.strip_prefix("data_received ") {
            total += count.parse::<usize>().unwrap();
            continue;
        }
        if total > 0 {
            out.push(format!("data {total}"));
            total = 0;
        }
        out.push(call.clone());
    }
    if total > 0 {
        out.push(format!("data {total}"));
    }
    out
}

fn serve_recorder(event_loop: &EventLoop, calls: &Calls, configure: fn(&mut Recorder)) {
    let calls = calls.clone();
    event_loop
        .host("server", move || {
            let calls = calls.clone();
            async move {
                let server = create_server(
                    move || {
                        let mut recorder = Recorder::new(&calls);
                        configure(&mut recorder);
                        recorder
                    },
                    "0.0.0.0:4000",
                )
                .await
                .unwrap();
                server.wait_closed().await;
            }
        })
        .unwrap();
}

#[test]
fn callbacks_come_in_asyncio_order_for_a_clean_close() {
    for seed in 0..30 {
        let calls = Calls::default();
        let event_loop = EventLoop::with_config(quiet(seed));
        serve_recorder(&event_loop, &calls, |_| {});
        event_loop
            .run_until_complete(async {
                roof::sleep(Duration::from_millis(1)).await;
                let mut stream = TcpStream::connect("server:4000").await.unwrap();
                stream.write_all(&[1u8; 3000]).await.unwrap();
                stream.shutdown(std::net::Shutdown::Write).unwrap();
                let mut rest = Vec::new();
                stream.read_to_end(&mut rest).await.unwrap();
                roof::sleep(Duration::from_millis(10)).await;
            })
            .unwrap();
        assert_eq!(
            summary(&calls),
            [
                "connection_made",
                "data 3000",
                "eof_received",
                "connection_lost None"
            ],
            "seed {seed}"
        );
    }
}

#[test]
fn a_reset_gives_connection_lost_with_the_error() {
    let calls = Calls::default();
    let event_loop = EventLoop::with_config(quiet(5));
    serve_recorder(&event_loop, &calls, |_| {});
    event_loop
        .run_until_complete(async {
            roof::sleep(Duration::from_millis(1)).await;
            let mut stream = TcpStream::connect("server:4000").await.unwrap();
            stream.write_all(b"abc").await.unwrap();
            roof::sleep(Duration::from_millis(10)).await;
            stream.abort();
            roof::sleep(Duration::from_millis(10)).await;
        })
        .unwrap();
    assert_eq!(
        summary(&calls),
        [
            "connection_made",
            "data 3",
            "connection_lost ConnectionReset"
        ]
    );
}

#[test]
fn eof_received_true_keeps_the_transport_open_for_writing() {
    let calls = Calls::default();
    let event_loop = EventLoop::with_config(quiet(6));
    serve_recorder(&event_loop, &calls, |recorder| {
        recorder.keep_open_on_eof = true
    });
    let reply = event_loop
        .run_until_complete(async {
            roof::sleep(Duration::from_millis(1)).await;
            let mut stream = TcpStream::connect("server:4000").await.unwrap();
            stream.shutdown(std::net::Shutdown::Write).unwrap();
            let mut reply = Vec::new();
            stream.read_to_end(&mut reply).await.unwrap();
            roof::sleep(Duration::from_millis(10)).await;
            reply
        })
        .unwrap();
    assert_eq!(reply, b"bye");
    assert_eq!(
        summary(&calls),
        ["connection_made", "eof_received", "connection_lost None"]
    );
}

#[test]
fn close_flushes_and_abort_resets() {
    // Either way the closing side's own protocol hears a clean `connection_lost(None)`.
    for abort in [false, true] {
        let calls = Calls::default();
        let event_loop = EventLoop::with_config(quiet(7));
        let client_calls = calls.clone();
        event_loop
            .host("server", || async {
                let server = create_server(|| Echo(None), "0.0.0.0:4000").await.unwrap();
                server.wait_closed().await;
            })
            .unwrap();
        let outcome = event_loop
            .run_until_complete(async move {
                roof::sleep(Duration::from_millis(1)).await;
                let mut recorder = Recorder::new(&client_calls);
                recorder.close_after = Some((10, abort));
                let transport = create_connection(recorder, "server:4000").await.unwrap();
                assert_eq!(
                    transport.get_extra_info("peername"),
                    Some(ExtraInfo::Addr(transport.peername()))
                );
                assert_eq!(transport.peername().port(), 4000);
                assert!(transport.get_extra_info("cipher").is_none());
                transport.write(&[9u8; 10]);
                roof::sleep(Duration::from_millis(50)).await;
                transport.is_closing()
            })
            .unwrap();
        assert!(outcome);
        let calls = summary(&calls);
        assert_eq!(calls[0], "connection_made");
        assert_eq!(calls[1], "data 10");
        assert_eq!(
            calls.last().unwrap(),
            "connection_lost None",
            "abort: {abort}"
        );
    }
}

/// Echoes what it receives.
struct Echo(Option<Transport>);

impl Protocol for Echo {
    fn connection_made(&mut self, transport: Transport) {
        self.0 = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        self.0.as_ref().unwrap().write(data);
    }
}

#[test]
fn transport_write_buffers_past_the_window_and_delivers_everything() {
    let event_loop = EventLoop::with_config(quiet(8));
    event_loop
        .host("server", || async {
            struct Big;
            impl Protocol for Big {
                fn connection_made(&mut self, transport: Transport) {
                    // Far more than the 64 KiB window: write never blocks, it buffers.
                    transport.write(&vec![5u8; 1_000_000]);
                    assert!(transport.get_write_buffer_size() > 0);
                    transport.close();
                }
            }
            let server = create_server(|| Big, "0.0.0.0:4000").await.unwrap();
            server.wait_closed().await;
        })
        .unwrap();
    let received = event_loop
        .run_until_complete(async {
            roof::sleep(Duration::from_millis(1)).await;
            let mut stream = TcpStream::connect("server:4000").await.unwrap();
            let mut all = Vec::new();
            stream.read_to_end(&mut all).await.unwrap();
            all
        })
        .unwrap();
    assert_eq!(received.len(), 1_000_000);
    assert!(received.iter().all(|&byte| byte == 5));
}

#[test]
fn a_closed_server_stops_accepting_and_wait_closed_waits_for_its_connections() {
    let event_loop = EventLoop::with_config(quiet(9));
    let result = event_loop
        .run_until_complete(async {
            let server = create_server(|| Echo(None), "0.0.0.0:4000").await.unwrap();
            assert!(server.is_serving());
            let mut stream = TcpStream::connect("127.0.0.1:4000").await.unwrap();
            server.close();
            assert!(!server.is_serving());
            let error = TcpStream::connect("127.0.0.1:4000").await.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
            let waiting = roof::spawn(server.wait_closed());
            // The accepted connection still works, and keeps wait_closed waiting.
            stream.write_all(b"still here").await.unwrap();
            let mut buf = [0u8; 10];
            stream.read_exact(&mut buf).await.unwrap();
            roof::sleep(Duration::from_millis(10)).await;
            assert!(!waiting.is_finished());
            drop(stream);
            waiting.await.unwrap();
            &buf == b"still here"
        })
        .unwrap();
    assert!(result);
}

#[test]
fn create_connection_to_nothing_is_refused() {
    let event_loop = EventLoop::with_config(quiet(0));
    let error = event_loop
        .run_until_complete(async {
            create_connection(Echo(None), "127.0.0.1:9")
                .await
                .unwrap_err()
        })
        .unwrap();
    assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
}

/// A write to a transport that is closing is dropped, as asyncio drops it, but visibly: each
/// one is in the trace, and from the fifth on each also logs asyncio's warning (CPython does
/// the same with its `LOG_THRESHOLD_FOR_CONNLOST_WRITES`).
#[test]
fn writes_after_close_are_dropped_visibly() {
    struct ClosesThenWrites;
    impl Protocol for ClosesThenWrites {
        fn connection_made(&mut self, transport: Transport) {
            transport.write(b"last words");
            transport.close();
            for _ in 0..7 {
                transport.write(b"lost");
            }
        }
    }
    let event_loop = EventLoop::with_config(quiet(0).trace(roof::TraceMode::Record));
    let received = event_loop
        .run_until_complete(async {
            let server = create_server(|| ClosesThenWrites, "127.0.0.1:7000")
                .await
                .unwrap();
            let mut stream = TcpStream::connect("127.0.0.1:7000").await.unwrap();
            let mut received = Vec::new();
            stream.read_to_end(&mut received).await.unwrap();
            server.close();
            received
        })
        .unwrap();
    assert_eq!(
        received, b"last words",
        "what was written before close() is sent"
    );
    let trace = event_loop.report().trace.unwrap().render();
    let dropped = trace.matches("write of 4 bytes dropped").count();
    let warnings = trace.matches("warning #").count();
    assert_eq!((dropped, warnings), (7, 3), "{trace}");
    assert!(trace.contains("socket.send() raised exception."), "{trace}");
    assert_eq!(roof::protocol::DROPPED_WRITES_QUIET, 4);
}
