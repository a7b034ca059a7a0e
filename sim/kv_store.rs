//! A key-value server with a planted bug: its protocol assumes each `data_received` chunk
//! holds whole lines. It works whenever the network delivers a command in one piece, and
//! breaks when a write is cut inside a line, which only some seeds do.
//!
//! Commands are lines: `SET key value` answers `OK`, `GET key` answers the value (or `NIL`);
//! anything else answers `ERR`.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use roof::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use roof::net::{LinkConfig, TcpStream};
use roof::protocol::{create_server, Protocol, Transport};
use roof::EventLoop;

/// The port the store listens on.
pub const PORT: u16 = 6379;
/// Keys the client sets and reads back.
pub const KEYS: usize = 3;
/// How often a write is cut into pieces on this scenario's links: rare, as on a real network.
pub const SPLIT: f64 = 0.02;

/// The store's protocol. With `whole_lines_assumed` it has the planted bug; without it,
/// it buffers until a newline, as it should.
pub struct KvProtocol {
    transport: Option<Transport>,
    store: BTreeMap<String, String>,
    pending: Vec<u8>,
    whole_lines_assumed: bool,
}

impl KvProtocol {
    /// A protocol with (`true`) or without (`false`) the planted bug.
    pub fn new(whole_lines_assumed: bool) -> KvProtocol {
        KvProtocol {
            transport: None,
            store: BTreeMap::new(),
            pending: Vec::new(),
            whole_lines_assumed,
        }
    }

    fn execute(&mut self, line: &[u8]) -> String {
        let line = String::from_utf8_lossy(line);
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["SET", key, value] => {
                self.store.insert(key.to_string(), value.to_string());
                "OK".to_string()
            }
            ["GET", key] => self
                .store
                .get(*key)
                .cloned()
                .unwrap_or_else(|| "NIL".to_string()),
            _ => format!("ERR unknown command {line:?}"),
        }
    }
}

impl Protocol for KvProtocol {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        let lines: Vec<Vec<u8>> = if self.whole_lines_assumed {
            // THE PLANTED BUG: a chunk is taken to be whole lines, so a command cut in two
            // by the network becomes two bad commands.
            data.split(|&byte| byte == b'\n')
                .filter(|line| !line.is_empty())
                .map(<[u8]>::to_vec)
                .collect()
        } else {
            self.pending.extend_from_slice(data);
            let mut lines = Vec::new();
            while let Some(end) = self.pending.iter().position(|&byte| byte == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                lines.push(line[..line.len() - 1].to_vec());
            }
            lines
        };
        for line in lines {
            let reply = self.execute(&line);
            if let Some(transport) = &self.transport {
                transport.write(format!("{reply}\n").as_bytes());
            }
        }
    }

    fn connection_lost(&mut self, _error: Option<io::Error>) {}
}

/// Serve the store on `PORT`, with or without the planted bug.
pub async fn serve(whole_lines_assumed: bool) {
    match create_server(
        move || KvProtocol::new(whole_lines_assumed),
        ("0.0.0.0", PORT),
    )
    .await
    {
        Ok(server) => server.wait_closed().await,
        Err(error) => panic!("kv store cannot listen: {error}"),
    }
}

/// Set `KEYS` keys, read them back, and check every answer.
pub async fn client() -> Result<(), String> {
    let stream = TcpStream::connect(("store", PORT))
        .await
        .map_err(|error| error.to_string())?;
    let mut reader = BufReader::new(&stream);
    let mut writer = &stream;
    let mut ask = async |command: String, expected: String| -> Result<(), String> {
        writer
            .write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(|error| error.to_string())?;
        let mut answer = String::new();
        reader
            .read_line(&mut answer)
            .await
            .map_err(|error| error.to_string())?;
        let answer = answer.trim_end().to_string();
        roof::println!("{command} -> {answer}");
        if answer == expected {
            Ok(())
        } else {
            Err(format!(
                "{command:?} answered {answer:?}, expected {expected:?}"
            ))
        }
    };
    for key in 0..KEYS {
        ask(format!("SET key{key} value{key}"), "OK".to_string()).await?;
    }
    for key in 0..KEYS {
        ask(format!("GET key{key}"), format!("value{key}")).await?;
    }
    Ok(())
}

/// The scenario, with the server's protocol as given.
pub fn run_with(event_loop: &EventLoop, whole_lines_assumed: bool) -> Result<(), String> {
    event_loop.set_default_link(LinkConfig::default().split(SPLIT));
    event_loop
        .host("store", move || serve(whole_lines_assumed))
        .map_err(|error| error.to_string())?;
    let result = event_loop
        .run_until_complete(async {
            roof::sleep(Duration::from_millis(1)).await;
            client().await
        })
        .map_err(super::failed)?;
    result
}

pub fn run(event_loop: &EventLoop) -> Result<(), String> {
    run_with(event_loop, true)
}
