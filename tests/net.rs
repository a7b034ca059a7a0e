//! The network: a conformance suite of behaviour bodies, and the simulation-only behaviours
//! (faults, statistics of lossy links, determinism).
//!
//! The bodies in `conformance` use only the backend-neutral API (`roof::net`) and take the
//! addresses to use as arguments, so the same bodies can run against real loopback sockets
//! (the `real-net` backend); the `sim` module runs them on the simulated fabric, over seeds.

use std::cell::{Cell, RefCell};
use std::io::ErrorKind;
use std::rc::Rc;
use std::time::Duration;

use roof::io::{AsyncReadExt, AsyncWriteExt};
use roof::net::{LinkConfig, TcpListener, TcpStream, UdpSocket};
use roof::{EventLoop, TraceMode};

use crate::quiet;

/// Behaviour bodies shared by every backend.
pub mod conformance {
    use super::*;

    /// A pattern that shows any reordering, loss or duplication of bytes.
    pub fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|index| (index * 7 + index / 251) as u8)
            .collect()
    }

    /// An echo server: every connection gets back what it sends, until EOF.
    pub async fn echo_server(listener: TcpListener) {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            roof::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(count) => {
                            if stream.write_all(&buf[..count]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            })
            .detach();
        }
    }

    /// asyncio's streams against the echo server: lines, exact reads, separators, a large
    /// payload written under `drain`'s backpressure, EOF after `write_eof`, and an incomplete
    /// read at the end.
    pub async fn streams_against_echo(echo: &str) {
        use roof::streams::{open_connection, ReadError};
        let (mut reader, mut writer) = open_connection(echo).await.unwrap();
        assert!(writer.get_extra_info("peername").is_some());
        assert!(writer.get_extra_info("no such thing").is_none());
        writer.write(b"first line\nsecond");
        writer.write(b" line\nabc|def|");
        writer.drain().await.unwrap();
        assert_eq!(reader.readline().await.unwrap(), b"first line\n");
        assert_eq!(reader.readexactly(6).await.unwrap(), b"second");
        let too_much = roof::streams::READEXACTLY_MAX + 1;
        match reader.readexactly(too_much).await {
            Err(ReadError::Io(error)) => {
                assert_eq!(error.kind(), ErrorKind::InvalidInput);
                assert!(error.to_string().contains("over the limit"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(reader.readuntil(b"\n").await.unwrap(), b" line\n");
        assert_eq!(reader.readuntil(b"|").await.unwrap(), b"abc|");
        // Written by another task while this one reads: the echo server's replies must be
        // read for it to go on reading.
        let big = pattern(300_000);
        let expected = big.clone();
        let writing = roof::spawn(async move {
            for chunk in big.chunks(7_000) {
                writer.write(chunk);
                writer.drain().await.unwrap();
            }
            writer.write_eof();
            writer
        });
        assert_eq!(reader.readexactly(4).await.unwrap(), b"def|");
        let rest = reader.read_to_eof().await.unwrap();
        assert!(
            rest == expected,
            "the echoed payload differs ({} bytes)",
            rest.len()
        );
        let mut writer = writing.await.unwrap();
        assert!(reader.at_eof());
        match reader.readexactly(1).await {
            Err(ReadError::IncompleteRead {
                partial,
                expected: Some(1),
            }) => assert!(partial.is_empty()),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            reader.readline().await.unwrap(),
            b"",
            "readline at EOF is empty"
        );
        writer.close();
        writer.wait_closed().await;
    }

    /// A stream writer facing a peer that never reads: `drain` holds it back (within
    /// `patience`) before 64 MiB were queued.
    pub async fn stream_drain_holds_back(sink: &str, patience: Duration) {
        let (_reader, mut writer) = roof::streams::open_connection(sink).await.unwrap();
        let chunk = vec![7u8; 16 * 1024];
        for _ in 0..(64 * 1024 * 1024 / chunk.len()) {
            writer.write(&chunk);
            if roof::timeout(patience, writer.drain()).await.is_err() {
                return;
            }
        }
        panic!("64 MiB queued for a peer that never reads, drain never waited");
    }

    /// A `start_server` on `bind` that upper-cases each line until EOF, reached at the
    /// address `connect` makes of its local address: two clients at once.
    pub async fn stream_server_upper_cases_lines(
        bind: &str,
        connect: impl Fn(std::net::SocketAddr) -> String,
    ) {
        use roof::streams::{open_connection, start_server, StreamReader, StreamWriter};
        let upper = |mut reader: StreamReader, mut writer: StreamWriter| async move {
            loop {
                let line = reader.readline().await.unwrap();
                if line.is_empty() {
                    break;
                }
                writer.write(&line.to_ascii_uppercase());
                writer.drain().await.unwrap();
            }
        };
        let server = start_server(upper, bind).await.unwrap();
        let address = connect(server.local_addr());
        let clients: Vec<_> = ["one", "two"]
            .into_iter()
            .map(|name| {
                let address = address.clone();
                roof::spawn(async move {
                    let (mut reader, mut writer) = open_connection(address.as_str()).await.unwrap();
                    for round in 0..3 {
                        writer.write(format!("{name} {round}\n").as_bytes());
                        let answer = reader.readline().await.unwrap();
                        assert_eq!(
                            answer,
                            format!("{} {round}\n", name.to_uppercase()).as_bytes()
                        );
                    }
                    writer.write_eof();
                    assert!(reader.read_to_eof().await.unwrap().is_empty());
                })
            })
            .collect();
        for client in clients {
            client.await.unwrap();
        }
        server.close();
    }

    /// A datagram endpoint on `bind` that upper-cases what it receives back to the sender,
    /// reached at the address `connect` makes of its local address by a client endpoint
    /// with a remote address; then the transports' errors and close.
    pub async fn datagram_endpoints_echo(
        bind: &str,
        connect: impl Fn(std::net::SocketAddr) -> String,
    ) {
        use roof::net::ToSocketAddr;
        use roof::protocol::{
            create_datagram_endpoint, DatagramProtocol, DatagramTransport, ExtraInfo, DATAGRAM_MAX,
        };
        use std::net::SocketAddr;
        struct Upper(Option<DatagramTransport>);
        impl DatagramProtocol for Upper {
            fn connection_made(&mut self, transport: DatagramTransport) {
                self.0 = Some(transport);
            }
            fn datagram_received(&mut self, data: &[u8], addr: SocketAddr) {
                let transport = self.0.as_ref().unwrap();
                transport
                    .sendto(&data.to_ascii_uppercase(), Some(addr))
                    .unwrap();
            }
        }
        type Heard = Rc<RefCell<Vec<String>>>;
        struct Client(Heard);
        impl DatagramProtocol for Client {
            fn datagram_received(&mut self, data: &[u8], _: SocketAddr) {
                self.0
                    .borrow_mut()
                    .push(String::from_utf8(data.to_vec()).unwrap());
            }
            fn connection_lost(&mut self, error: Option<std::io::Error>) {
                assert!(error.is_none());
                self.0.borrow_mut().push("lost".into());
            }
        }
        let server = create_datagram_endpoint(Upper(None), bind, None)
            .await
            .unwrap();
        let Some(ExtraInfo::Addr(local)) = server.get_extra_info("sockname") else {
            panic!("a datagram endpoint knows its address")
        };
        assert_eq!(server.get_extra_info("peername"), None);
        let remote = connect(local).as_str().to_socket_addr().unwrap();
        let heard: Heard = Rc::default();
        let client = create_datagram_endpoint(Client(heard.clone()), "0.0.0.0:0", Some(remote))
            .await
            .unwrap();
        assert_eq!(
            client.get_extra_info("peername"),
            Some(ExtraInfo::Addr(remote))
        );
        for n in 0..5 {
            client.sendto(format!("ping {n}").as_bytes(), None).unwrap();
        }
        let mut waited = 0;
        while heard.borrow().len() < 5 && waited < 200 {
            roof::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        let mut replies = heard.borrow().clone();
        replies.sort();
        assert_eq!(replies, ["PING 0", "PING 1", "PING 2", "PING 3", "PING 4"]);

        let kind = |result: std::io::Result<()>| result.unwrap_err().kind();
        assert_eq!(
            kind(server.sendto(b"where to?", None)),
            ErrorKind::InvalidInput
        );
        let elsewhere = SocketAddr::from(([10, 9, 9, 9], 1));
        assert_eq!(
            kind(client.sendto(b"elsewhere", Some(elsewhere))),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(client.sendto(&vec![0; DATAGRAM_MAX + 1], None)),
            ErrorKind::InvalidInput
        );
        client.close();
        assert!(client.is_closing());
        assert_eq!(kind(client.sendto(b"late", None)), ErrorKind::NotConnected);
        roof::sleep(Duration::from_millis(50)).await;
        assert_eq!(heard.borrow().last().map(String::as_str), Some("lost"));
        server.close();
    }

    /// A server that accepts and never reads.
    pub async fn sink_server(listener: TcpListener) {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    }

    /// Connecting where nothing listens fails with `ConnectionRefused`.
    pub async fn refused_connect(nothing_there: &str) {
        let error = TcpStream::connect(nothing_there).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ConnectionRefused, "{error}");
    }

    /// Bytes come back intact and in order, whatever the segmentation, in writes of varied
    /// sizes read in reads of other sizes.
    pub async fn echo_intact_and_ordered(echo: &str, len: usize) {
        let stream = TcpStream::connect(echo).await.unwrap();
        let sent = pattern(len);
        let (mut reader, mut writer) = roof::io::split(stream);
        let expected = sent.clone();
        let writing = roof::spawn(async move {
            let mut offset = 0;
            let mut chunk = 1;
            while offset < sent.len() {
                let end = (offset + chunk).min(sent.len());
                writer.write_all(&sent[offset..end]).await.unwrap();
                offset = end;
                chunk = chunk * 3 % 9000 + 1;
            }
            writer
        });
        let mut received = vec![0u8; len];
        let mut offset = 0;
        let mut size = 5;
        while offset < len {
            let end = (offset + size).min(len);
            let count = reader.read(&mut received[offset..end]).await.unwrap();
            assert!(count > 0, "EOF after {offset} of {len} bytes");
            offset += count;
            size = size * 5 % 7000 + 1;
        }
        assert!(
            received == expected,
            "the echoed bytes differ from the sent ones"
        );
        drop(writing.await.unwrap());
    }

    /// Shutting down the write half: the peer reads EOF after the data, and can still answer.
    pub async fn half_close(echo: &str) {
        let mut stream = TcpStream::connect(echo).await.unwrap();
        stream.write_all(b"last words").await.unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let error = stream.write_all(b"more").await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::BrokenPipe, "{error}");
        let mut echoed = Vec::new();
        stream.read_to_end(&mut echoed).await.unwrap();
        assert_eq!(echoed, b"last words");
    }

    /// A writer facing a peer that never reads is held back: the bytes accepted stay bounded.
    /// Returns how many bytes the writes accepted before blocking for `patience`.
    pub async fn backpressure_bounds_buffered_bytes(sink: &str, patience: Duration) -> usize {
        let mut stream = TcpStream::connect(sink).await.unwrap();
        let chunk = vec![7u8; 16 * 1024];
        let mut accepted = 0;
        for _ in 0..(64 * 1024 * 1024 / chunk.len()) {
            match roof::timeout(patience, stream.write(&chunk)).await {
                Ok(written) => accepted += written.unwrap(),
                Err(_) => return accepted,
            }
        }
        panic!("64 MiB accepted by a peer that never reads");
    }
}

/// A loop with an echo server on `echo:7` and, with `sink`, a server that never reads on
/// `sink:9`.
fn echo_world(seed: u64, sink: bool) -> EventLoop {
    use conformance::{echo_server, sink_server};
    let event_loop = EventLoop::with_config(quiet(seed));
    event_loop
        .host("echo", || async {
            echo_server(TcpListener::bind("0.0.0.0:7").await.unwrap()).await
        })
        .unwrap();
    if sink {
        event_loop
            .host("sink", || async {
                sink_server(TcpListener::bind("0.0.0.0:9").await.unwrap()).await
            })
            .unwrap();
    }
    event_loop
}

/// The conformance bodies and the simulation-only behaviours, on the simulated fabric.
mod sim {
    use super::conformance::*;
    use super::*;

    /// A connect given up on before its SYN-ACK came back answers that SYN-ACK with a RST,
    /// as a real stack does: the server's accepted end sees a reset, never a connection
    /// that stays open with nobody on the other side.
    #[test]
    fn a_connect_given_up_on_resets_the_connection_the_server_accepted() {
        let event_loop = EventLoop::with_config(quiet(1));
        let seen: Rc<RefCell<Option<ErrorKind>>> = Rc::default();
        let server_seen = seen.clone();
        event_loop
            .host("slow", move || {
                let seen = server_seen.clone();
                async move {
                    let listener = TcpListener::bind("0.0.0.0:7").await.unwrap();
                    let (mut stream, _) = listener.accept().await.unwrap();
                    let mut buf = [0u8; 8];
                    let read = roof::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
                    *seen.borrow_mut() = Some(match read {
                        Ok(Ok(_)) => ErrorKind::Other,
                        Ok(Err(error)) => error.kind(),
                        Err(_) => ErrorKind::TimedOut,
                    });
                }
            })
            .unwrap();
        event_loop
            .set_link(
                "main",
                "slow",
                LinkConfig::default()
                    .latency(Duration::from_millis(10))
                    .jitter(Duration::ZERO),
            )
            .unwrap();
        event_loop
            .run_until_complete(async {
                let attempt =
                    roof::timeout(Duration::from_millis(15), TcpStream::connect("slow:7"));
                assert!(
                    attempt.await.is_err(),
                    "given up before the SYN-ACK is back"
                );
                roof::sleep(Duration::from_secs(1)).await;
            })
            .unwrap();
        assert_eq!(*seen.borrow(), Some(ErrorKind::ConnectionReset));
    }

    fn world(seed: u64) -> EventLoop {
        super::echo_world(seed, true)
    }

    #[test]
    fn refused_connect_on_the_simulated_fabric() {
        for seed in 0..20 {
            let event_loop = world(seed);
            event_loop
                .run_until_complete(refused_connect("echo:8"))
                .unwrap();
        }
    }

    #[test]
    fn echo_is_intact_and_ordered_under_segmentation() {
        for seed in 0..40 {
            let event_loop = world(seed);
            let len = 1 + (seed as usize * 37_813) % 200_000;
            event_loop
                .run_until_complete(async move { echo_intact_and_ordered("echo:7", len).await })
                .unwrap();
        }
    }

    #[test]
    fn streams_on_the_simulated_fabric() {
        for seed in 0..30 {
            world(seed)
                .run_until_complete(streams_against_echo("echo:7"))
                .unwrap();
            world(seed)
                .run_until_complete(stream_drain_holds_back("sink:9", Duration::from_secs(5)))
                .unwrap();
            world(seed)
                .run_until_complete(stream_server_upper_cases_lines("0.0.0.0:4000", |addr| {
                    format!("main:{}", addr.port())
                }))
                .unwrap();
        }
    }

    #[test]
    fn datagram_endpoints_on_the_simulated_fabric() {
        for seed in 0..30 {
            world(seed)
                .run_until_complete(datagram_endpoints_echo("0.0.0.0:5300", |addr| {
                    format!("main:{}", addr.port())
                }))
                .unwrap();
        }
    }

    #[test]
    fn half_close_on_the_simulated_fabric() {
        for seed in 0..20 {
            world(seed)
                .run_until_complete(half_close("echo:7"))
                .unwrap();
        }
    }

    #[test]
    fn backpressure_holds_the_writer_to_the_receive_window() {
        let event_loop = world(1);
        let accepted = event_loop
            .run_until_complete(backpressure_bounds_buffered_bytes(
                "sink:9",
                Duration::from_secs(1),
            ))
            .unwrap();
        assert!(accepted > 0);
        assert!(
            accepted <= 64 * 1024,
            "{accepted} bytes accepted past a 64 KiB window"
        );
    }

    #[test]
    fn host_names_resolve_and_stay_unique_past_a_few_dozen_hosts() {
        // A few hosts are found by a scan, many through a map: both sides must agree.
        let event_loop = EventLoop::with_config(quiet(0));
        for count in 1..=40 {
            let name = format!("host-{count}");
            event_loop.host(&name, || async {}).unwrap();
            for earlier in 1..=count {
                let id = event_loop.host_id(&format!("host-{earlier}")).unwrap();
                assert_eq!(
                    event_loop.host_addr(&format!("host-{earlier}")).unwrap(),
                    std::net::IpAddr::from([10, 0, 0, earlier as u8 + 1]),
                    "{id:?}"
                );
            }
            assert!(event_loop.host(&name, || async {}).is_err(), "{name} twice");
            assert!(event_loop.host_id("host-0").is_err());
        }
        assert_eq!(event_loop.hosts().len(), 41);
    }

    #[test]
    fn unknown_host_and_taken_port_are_clear_io_errors() {
        let event_loop = world(0);
        event_loop
            .run_until_complete(async {
                let error = TcpStream::connect("nowhere:80").await.unwrap_err();
                assert_eq!(error.kind(), ErrorKind::NotFound);
                assert!(error.to_string().contains("nowhere"), "{error}");
                let error = TcpStream::connect("not an address").await.unwrap_err();
                assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
                let first = TcpListener::bind("0.0.0.0:5000").await.unwrap();
                let error = TcpListener::bind("0.0.0.0:5000").await.unwrap_err();
                assert_eq!(error.kind(), ErrorKind::AddrInUse);
                let error = TcpListener::bind("10.0.0.2:5001").await.unwrap_err();
                assert_eq!(error.kind(), ErrorKind::AddrNotAvailable, "{error}");
                drop(first);
                TcpListener::bind("0.0.0.0:5000").await.unwrap();
                let any = TcpListener::bind("0.0.0.0:0").await.unwrap();
                assert!(any.local_addr().unwrap().port() >= 49_152);
            })
            .unwrap();
        assert!(
            event_loop.host("echo", || async {}).is_err(),
            "a host name is unique"
        );
    }

    #[test]
    fn a_crashed_peer_resets_the_connection_and_restart_brings_the_server_back() {
        for seed in 0..10 {
            let event_loop = world(seed);
            let handle = event_loop.handle();
            event_loop
                .run_until_complete(async move {
                    let mut stream = TcpStream::connect("echo:7").await.unwrap();
                    stream.write_all(b"hello").await.unwrap();
                    let mut buf = [0u8; 5];
                    stream.read_exact(&mut buf).await.unwrap();
                    handle.crash("echo").unwrap();
                    let error = stream.read(&mut buf).await.unwrap_err();
                    assert_eq!(
                        error.kind(),
                        ErrorKind::ConnectionReset,
                        "seed {seed}: {error}"
                    );
                    let error = TcpStream::connect("echo:7").await.unwrap_err();
                    assert_eq!(error.kind(), ErrorKind::ConnectionRefused, "seed {seed}");
                    handle.restart("echo").unwrap();
                    roof::sleep(Duration::from_millis(1)).await;
                    let mut again = TcpStream::connect("echo:7").await.unwrap();
                    again.write_all(b"again").await.unwrap();
                    again.read_exact(&mut buf).await.unwrap();
                    assert_eq!(&buf, b"again");
                })
                .unwrap();
        }
    }

    #[test]
    fn partition_then_timeout_then_heal_then_progress() {
        for seed in 0..10 {
            let event_loop = world(seed);
            let handle = event_loop.handle();
            event_loop
                .run_until_complete(async move {
                    let mut stream = TcpStream::connect("echo:7").await.unwrap();
                    handle.partition("main", "echo").unwrap();
                    stream.write_all(b"ping").await.unwrap();
                    let mut buf = [0u8; 4];
                    let cut =
                        roof::timeout(Duration::from_secs(5), stream.read_exact(&mut buf)).await;
                    assert!(cut.is_err(), "seed {seed}: a reply crossed a partition");
                    handle.heal("main", "echo").unwrap();
                    roof::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
                        .await
                        .expect("progress after healing")
                        .unwrap();
                    assert_eq!(&buf, b"ping");
                })
                .unwrap();
        }
    }

    #[test]
    fn a_one_way_partition_cuts_one_direction_and_clog_holds_everything() {
        let event_loop = world(4);
        let handle = event_loop.handle();
        event_loop
            .run_until_complete(async move {
                let mut stream = TcpStream::connect("echo:7").await.unwrap();
                // The echo server hears us, but its answers are cut.
                handle.partition_oneway("echo", "main").unwrap();
                stream.write_all(b"one").await.unwrap();
                let mut buf = [0u8; 3];
                assert!(
                    roof::timeout(Duration::from_secs(1), stream.read_exact(&mut buf))
                        .await
                        .is_err()
                );
                handle.heal_all();
                stream.read_exact(&mut buf).await.unwrap();
                handle.clog("echo").unwrap();
                stream.write_all(b"two").await.unwrap();
                assert!(
                    roof::timeout(Duration::from_secs(1), stream.read_exact(&mut buf))
                        .await
                        .is_err()
                );
                handle.unclog("echo").unwrap();
                stream.read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"two");
            })
            .unwrap();
    }

    #[test]
    fn faults_show_in_the_trace_and_bad_host_names_are_errors() {
        let event_loop = EventLoop::with_config(quiet(0).trace(TraceMode::Record));
        event_loop.host("a", || async {}).unwrap();
        event_loop.partition("main", "a").unwrap();
        event_loop.heal("main", "a").unwrap();
        event_loop.crash("a").unwrap();
        assert!(
            event_loop.crash("a").is_err(),
            "crashing a host that is down"
        );
        event_loop.restart("a").unwrap();
        assert_eq!(
            event_loop.partition("main", "b").unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert!(event_loop.host("", || async {}).is_err());
        assert!(event_loop.host("10.0.0.9", || async {}).is_err());
        event_loop.run_until_complete(async {}).unwrap();
        let text = event_loop.report().trace.unwrap().render();
        for fault in [
            "fault partition main -> a",
            "fault partition a -> main",
            "fault heal main <-> a",
            "fault crash a",
            "fault restart a",
        ] {
            assert!(text.contains(fault), "{fault} missing from\n{text}");
        }
        assert!(text.contains("spawn #2 \"a\" on a"), "{text}");
    }

    #[test]
    fn tasks_belong_to_their_host_and_die_with_it() {
        let ran_after_crash = Rc::new(Cell::new(false));
        let flag = ran_after_crash.clone();
        let event_loop = EventLoop::with_config(quiet(2));
        event_loop
            .host("worker", move || {
                let flag = flag.clone();
                async move {
                    assert_eq!(roof::net::current_host_name(), "worker");
                    let child = roof::spawn(async { roof::net::current_host_name() });
                    assert_eq!(child.await.unwrap(), "worker");
                    roof::sleep(Duration::from_secs(10)).await;
                    flag.set(true);
                }
            })
            .unwrap();
        let handle = event_loop.handle();
        event_loop
            .run_until_complete(async move {
                roof::sleep(Duration::from_secs(1)).await;
                handle.crash("worker").unwrap();
                roof::sleep(Duration::from_secs(20)).await;
            })
            .unwrap();
        assert!(!ran_after_crash.get(), "a task of a crashed host ran on");
    }

    /// A `call_later` callback scheduled by a host runs as that host: a panic in it names the
    /// host (it was reported as host `main`).
    #[test]
    fn a_callback_runs_as_the_host_that_scheduled_it() {
        let event_loop = EventLoop::with_config(quiet(0));
        event_loop
            .host("server", || async {
                let handle = roof::get_running_loop();
                let _soon = handle.call_soon(|| {
                    assert_eq!(roof::net::current_host_name(), "server", "call_soon");
                    roof::spawn(async {
                        assert_eq!(roof::net::current_host_name(), "server", "spawned");
                    })
                    .detach();
                });
                handle.call_later(Duration::from_millis(5), || {
                    assert_eq!(roof::net::current_host_name(), "server");
                    panic!("the durability check failed");
                });
            })
            .unwrap();
        let failure = event_loop
            .run_until_complete(roof::sleep(Duration::from_secs(1)))
            .unwrap_err();
        match failure {
            roof::Failure::Panic {
                host,
                name,
                message,
                ..
            } => {
                assert_eq!(host, "server");
                assert_eq!(name, "callback");
                assert_eq!(message, "the durability check failed");
            }
            other => panic!("expected the callback's panic, got {other}"),
        }
    }

    /// A crash cancels the host's pending callbacks and what they would spawn: none of them
    /// runs after the crash, nor in the restarted incarnation (a crashed server's pending
    /// `call_later` used to fire and write its buffer).
    #[test]
    fn a_crash_cancels_the_hosts_callbacks_and_what_they_spawned() {
        let fired: Rc<RefCell<Vec<String>>> = Rc::default();
        let log = fired.clone();
        let incarnation = Rc::new(Cell::new(0));
        let event_loop = EventLoop::with_config(quiet(4).trace(TraceMode::Record));
        event_loop
            .host("server", move || {
                let (log, incarnation) = (log.clone(), incarnation.clone());
                incarnation.set(incarnation.get() + 1);
                let life = incarnation.get();
                async move {
                    let handle = roof::get_running_loop();
                    // A late flush, a soon one, and a callback that spawns a task.
                    let late = log.clone();
                    handle.call_later(Duration::from_secs(3), move || {
                        late.borrow_mut().push(format!("flush of life {life}"))
                    });
                    let soon = log.clone();
                    handle.call_later(Duration::from_millis(10), move || {
                        let soon = soon.clone();
                        roof::spawn(async move {
                            roof::sleep(Duration::from_secs(2)).await;
                            soon.borrow_mut().push(format!("spawned of life {life}"));
                        })
                        .detach();
                    });
                    let at = log.clone();
                    handle.call_at(handle.now() + Duration::from_secs(4), move || {
                        at.borrow_mut().push(format!("call_at of life {life}"))
                    });
                }
            })
            .unwrap();
        let handle = event_loop.handle();
        event_loop
            .run_until_complete(async move {
                roof::sleep(Duration::from_secs(1)).await;
                handle.crash("server").unwrap();
                roof::sleep(Duration::from_secs(1)).await;
                handle.restart("server").unwrap();
                roof::sleep(Duration::from_secs(10)).await;
            })
            .unwrap();
        assert_eq!(
            *fired.borrow(),
            ["spawned of life 2", "flush of life 2", "call_at of life 2"],
            "only the restarted incarnation's callbacks ran"
        );
        let trace = event_loop.report().trace.unwrap().render();
        assert!(
            trace.contains("timer-cancel"),
            "the crash cancels the pending timers in the trace:\n{trace}"
        );
    }

    /// Send `count` datagrams from a client host to a server host over `link`; returns how
    /// many arrived (duplicates included) and how many distinct ones.
    fn udp_run(seed: u64, count: u32, link: LinkConfig) -> (u32, u32) {
        let event_loop = EventLoop::with_config(quiet(seed));
        let received = Rc::new(Cell::new((0u32, 0u32)));
        let seen = received.clone();
        let server = event_loop
            .client("receiver", async move {
                let socket = UdpSocket::bind("0.0.0.0:53").await.unwrap();
                let mut distinct = std::collections::BTreeSet::new();
                let mut buf = [0u8; 8];
                loop {
                    let (len, _) = socket.recv_from(&mut buf).await.unwrap();
                    distinct.insert(u32::from_le_bytes(buf[..len].try_into().unwrap()));
                    seen.set((seen.get().0 + 1, distinct.len() as u32));
                }
            })
            .unwrap();
        event_loop
            .client("sender", async move {
                roof::sleep(Duration::from_millis(1)).await;
                let socket = UdpSocket::bind("0.0.0.0:0").await.unwrap();
                for index in 0..count {
                    socket
                        .send_to(&index.to_le_bytes(), "receiver:53")
                        .await
                        .unwrap();
                }
            })
            .unwrap()
            .detach();
        event_loop.set_link("sender", "receiver", link).unwrap();
        event_loop
            .run_until_complete(roof::sleep(Duration::from_secs(1)))
            .unwrap();
        drop(server);
        received.get()
    }

    #[test]
    fn udp_loss_and_duplication_rates_are_within_statistical_bounds() {
        let (mut delivered, mut distinct, mut sent) = (0u64, 0u64, 0u64);
        for seed in 0..100 {
            let (arrived, unique) =
                udp_run(seed, 100, LinkConfig::default().loss(0.2).duplicate(0.1));
            delivered += u64::from(arrived);
            distinct += u64::from(unique);
            sent += 100;
        }
        // Lost: 20% expected; over 10,000 datagrams the standard deviation is 0.4 points.
        let kept = distinct as f64 / sent as f64;
        assert!((0.78..0.82).contains(&kept), "kept {kept}");
        // Duplicated: 10% of the kept ones come twice.
        let duplicates = (delivered - distinct) as f64 / distinct as f64;
        assert!(
            (0.085..0.115).contains(&duplicates),
            "duplicated {duplicates}"
        );
    }

    #[test]
    fn udp_reordering_happens_and_a_clean_link_delivers_everything_once() {
        let (arrived, unique) = udp_run(7, 500, LinkConfig::default().jitter(Duration::ZERO));
        assert_eq!((arrived, unique), (500, 500));
        let order = Rc::new(std::cell::RefCell::new(Vec::new()));
        let seen = order.clone();
        let event_loop = EventLoop::with_config(quiet(8));
        event_loop.set_default_link(LinkConfig::default().reorder(0.3));
        event_loop.host("server", || async {}).unwrap();
        event_loop
            .client("receiver", async move {
                let socket = UdpSocket::bind("0.0.0.0:53").await.unwrap();
                let mut buf = [0u8; 4];
                loop {
                    socket.recv_from(&mut buf).await.unwrap();
                    seen.borrow_mut().push(u32::from_le_bytes(buf));
                }
            })
            .unwrap()
            .detach();
        event_loop
            .run_until_complete(async {
                roof::sleep(Duration::from_millis(1)).await;
                let socket = UdpSocket::bind("0.0.0.0:0").await.unwrap();
                for index in 0u32..200 {
                    socket
                        .send_to(&index.to_le_bytes(), "receiver:53")
                        .await
                        .unwrap();
                    roof::sleep(Duration::from_micros(100)).await;
                }
                roof::sleep(Duration::from_secs(1)).await;
            })
            .unwrap();
        let order = order.borrow();
        assert_eq!(order.len(), 200);
        assert!(
            order.windows(2).any(|pair| pair[0] > pair[1]),
            "no datagram was reordered"
        );
    }

    #[test]
    fn network_runs_are_deterministic() {
        for seed in 0..50 {
            let run = || {
                let event_loop = world(seed);
                event_loop
                    .run_until_complete(
                        async move { echo_intact_and_ordered("echo:7", 5_000).await },
                    )
                    .unwrap();
                event_loop.report().trace_hash
            };
            assert_eq!(run(), run(), "seed {seed}");
        }
    }
}

/// Regressions.
mod regressions {
    use super::conformance::*;
    use super::*;

    fn echo_only(seed: u64) -> EventLoop {
        super::echo_world(seed, false)
    }

    /// A crashed server's listener, dropped after its restarted self bound the same port, must
    /// not unbind the new listener (handles carry an identity, not just an address).
    #[test]
    fn a_stale_listener_does_not_unbind_its_restarted_successor() {
        for seed in 0..40 {
            let event_loop = echo_only(seed);
            let handle = event_loop.handle();
            event_loop
                .run_until_complete(async move {
                    roof::sleep(Duration::from_millis(1)).await;
                    handle.crash("echo").unwrap();
                    handle.restart("echo").unwrap();
                    roof::sleep(Duration::from_millis(1)).await;
                    echo_intact_and_ordered("echo:7", 100).await;
                })
                .unwrap();
        }
    }

    /// A stream of a crashed host, dropped after its connection's slot was reused, must not
    /// close the new connection.
    #[test]
    fn a_stale_stream_does_not_close_a_connection_that_reused_its_slot() {
        for seed in 0..40 {
            let event_loop = echo_only(seed);
            event_loop
                .host("flaky", || async {
                    let mut stream = TcpStream::connect("echo:7").await.unwrap();
                    let _ = stream.write_all(b"x").await;
                    std::future::pending::<()>().await;
                })
                .unwrap();
            let handle = event_loop.handle();
            event_loop
                .run_until_complete(async move {
                    roof::sleep(Duration::from_millis(10)).await;
                    handle.crash("flaky").unwrap();
                    for _ in 0..3 {
                        echo_intact_and_ordered("echo:7", 1_000).await;
                    }
                })
                .unwrap();
        }
    }
}
