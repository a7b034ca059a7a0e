//! The YellEchoServer of the asyncio notes, and nc-like clients that check every line comes
//! back upper-cased.
//!
//! ```python
//! class YellEchoServer(asyncio.Protocol):
//!     def connection_made(self, transport):
//!         self.transport = transport
//!         print("Connection received from:", transport.get_extra_info('peername'))
//!
//!     def data_received(self, data):
//!         self.transport.write(data.upper())
//!
//!     def connection_lost(self, exc):
//!         print("Client disconnected")
//! ```
//!
//! The server runs on host `server`, port 1234; clients `nc-1`.. each send a few lines
//! (`nc localhost 1234`, typed) and read the answers.

use std::io;
use std::time::Duration;

use roof::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use roof::net::TcpStream;
use roof::protocol::{create_server, Protocol, Transport};
use roof::EventLoop;

/// The port the server listens on.
pub const PORT: u16 = 1234;
/// How many nc-like clients the scenario starts.
pub const CLIENTS: usize = 3;
/// Lines each client sends.
pub const LINES: usize = 3;

/// asyncio's YellEchoServer: answers every chunk upper-cased.
#[derive(Default)]
pub struct YellEchoServer {
    transport: Option<Transport>,
}

impl Protocol for YellEchoServer {
    fn connection_made(&mut self, transport: Transport) {
        roof::println!(
            "Connection received from: {}",
            transport.get_extra_info("peername").expect("peername")
        );
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(transport) = &self.transport {
            transport.write(&data.to_ascii_uppercase());
        }
    }

    fn connection_lost(&mut self, _error: Option<io::Error>) {
        roof::println!("Client disconnected");
    }
}

/// Serve yell-echo on `0.0.0.0:port` until the server is closed.
pub async fn serve(port: u16) {
    match create_server(YellEchoServer::default, ("0.0.0.0", port)).await {
        Ok(server) => server.wait_closed().await,
        Err(error) => panic!("yell-echo server cannot listen on port {port}: {error}"),
    }
}

/// What a person types into `nc`: a few words drawn from the seed.
fn line(client: usize, index: usize) -> String {
    const WORDS: [&str; 8] = [
        "sihun", "hello,", "python!", "event", "roof", "loop", "asyncio", "echo",
    ];
    let count = 1 + roof::random::below(4) as usize;
    let words: Vec<&str> = (0..count)
        .map(|_| WORDS[roof::random::below(8) as usize])
        .collect();
    format!("{} {client}.{index}", words.join(" "))
}

/// An nc-like client: send `lines` lines, check each answer is the line upper-cased.
pub async fn nc(client: usize, lines: usize, addr: String) -> Result<(), String> {
    let stream = TcpStream::connect(addr.as_str())
        .await
        .map_err(|error| format!("nc-{client}: connect to {addr}: {error}"))?;
    let mut reader = BufReader::new(&stream);
    let mut writer = &stream;
    for index in 0..lines {
        let sent = line(client, index);
        writer
            .write_all(format!("{sent}\n").as_bytes())
            .await
            .map_err(|error| format!("nc-{client}: write: {error}"))?;
        let mut answer = String::new();
        reader
            .read_line(&mut answer)
            .await
            .map_err(|error| format!("nc-{client}: read: {error}"))?;
        let answer = answer.trim_end_matches('\n');
        roof::println!("nc-{client}: {sent} -> {answer}");
        if answer != sent.to_ascii_uppercase() {
            return Err(format!("nc-{client} sent {sent:?} and got back {answer:?}"));
        }
    }
    Ok(())
}

pub fn run(event_loop: &EventLoop) -> Result<(), String> {
    event_loop
        .host("server", || serve(PORT))
        .map_err(|error| error.to_string())?;
    let clients: Vec<_> = (1..=CLIENTS)
        .map(|client| {
            event_loop.client(&format!("nc-{client}"), async move {
                // Clients start a little apart, as people do.
                roof::sleep(Duration::from_millis(roof::random::below(5))).await;
                nc(client, LINES, format!("server:{PORT}")).await
            })
        })
        .collect::<io::Result<_>>()
        .map_err(|error| error.to_string())?;
    let results = event_loop
        .run_until_complete(async move {
            let mut results = Vec::new();
            for client in clients {
                results.push(
                    client
                        .await
                        .map_err(|error| error.to_string())
                        .and_then(|result| result),
                );
            }
            // Let the server see every client go.
            roof::sleep(Duration::from_millis(50)).await;
            results
        })
        .map_err(super::failed)?;
    results.into_iter().collect()
}
