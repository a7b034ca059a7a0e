//! A key-value store on a write-ahead log, with a planted bug: it acknowledges a `SET` as
//! soon as the record is written, and syncs the log only every few records. Nothing shows it
//! until the store's host crashes with acknowledged records not yet durable: a crash plan
//! (`roof sweep wal-kv --faults 2s`) finds it, no schedule does. The fixed store syncs each
//! record before it answers.
//!
//! The log is `/db/wal`, one `key value` line per record. On start the store replays it
//! (skipping what a crash left torn or missing), then serves `SET key value` (`OK`) and
//! `GET key` (the value or `NIL`) over TCP. A store that stops on an error (a failing disk)
//! panics, and is restarted as a supervisor would (`restart_on_panic`). The client, on `main`, sets keys one by one,
//! retrying through crashes and resets, then reads every acknowledged key back.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use roof::fs::{self, File, OpenOptions};
use roof::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use roof::net::{TcpListener, TcpStream};
use roof::EventLoop;

/// The port the store listens on.
pub const PORT: u16 = 7070;
/// Keys the client sets and reads back.
pub const KEYS: usize = 20;
/// The buggy store syncs its log once every this many records.
pub const SYNC_EVERY: usize = 8;
/// How long the client waits for one answer before it reconnects.
const ANSWER_WAIT: Duration = Duration::from_millis(300);
/// How long the store's supervisor waits before it starts a store that stopped.
const RESTART_DELAY: Duration = Duration::from_millis(100);
/// Attempts the client makes per command before it gives up (a store that never comes back).
const ATTEMPTS_MAX: usize = 200;

/// Replay the log: every whole `key value` line (a crash may leave a hole of zeros where a
/// lost write was, or a torn last line).
fn replay(bytes: &[u8]) -> BTreeMap<String, String> {
    let mut store = BTreeMap::new();
    let whole = match bytes.iter().rposition(|&byte| byte == b'\n') {
        Some(end) => &bytes[..=end],
        None => &[][..],
    };
    for line in whole.split(|&byte| byte == b'\n') {
        let line: Vec<u8> = line.iter().copied().filter(|&byte| byte != 0).collect();
        let text = String::from_utf8_lossy(&line);
        if let Some((key, value)) = text.split_once(' ') {
            store.insert(key.to_string(), value.to_string());
        }
    }
    store
}

/// The store's life: recover from the log, then serve one connection at a time.
async fn store(sync_each: bool) -> io::Result<()> {
    fs::create_dir_all("/db").await?;
    let mut data = match fs::read("/db/wal").await {
        Ok(bytes) => replay(&bytes),
        Err(error) if error.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
        Err(error) => return Err(error),
    };
    let mut wal = OpenOptions::new()
        .append(true)
        .create(true)
        .open("/db/wal")
        .await?;
    fs::sync_dir("/db").await?;
    let listener = TcpListener::bind(("0.0.0.0", PORT)).await?;
    let mut unsynced = 0;
    while let Ok((stream, _)) = listener.accept().await {
        // A connection that breaks ends; the store takes the next.
        let _ = serve(stream, &mut data, &mut wal, sync_each, &mut unsynced).await;
    }
    Ok(())
}

async fn serve(
    stream: TcpStream,
    data: &mut BTreeMap<String, String>,
    wal: &mut File,
    sync_each: bool,
    unsynced: &mut usize,
) -> io::Result<()> {
    let mut reader = BufReader::new(&stream);
    let mut writer = &stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["SET", key, value] => {
                wal.write_all(format!("{key} {value}\n").as_bytes()).await?;
                *unsynced += 1;
                // The planted bug: the answer goes out before the record is durable.
                if sync_each || *unsynced == SYNC_EVERY {
                    wal.sync_all().await?;
                    *unsynced = 0;
                }
                data.insert(key.to_string(), value.to_string());
                "OK".to_string()
            }
            ["GET", key] => data.get(*key).cloned().unwrap_or_else(|| "NIL".into()),
            _ => "ERR".to_string(),
        };
        writer.write_all(format!("{answer}\n").as_bytes()).await?;
    }
}

/// Send `command` until some connection answers it; the answer.
async fn ask(connection: &mut Option<TcpStream>, command: &str) -> Result<String, String> {
    for _ in 0..ATTEMPTS_MAX {
        if connection.is_none() {
            match roof::timeout(ANSWER_WAIT, TcpStream::connect(("db", PORT))).await {
                Ok(Ok(stream)) => *connection = Some(stream),
                _ => {
                    roof::sleep(ANSWER_WAIT).await;
                    continue;
                }
            }
        }
        let stream = connection.as_ref().expect("connected above");
        let exchange = async {
            let mut writer = stream;
            writer.write_all(format!("{command}\n").as_bytes()).await?;
            let mut answer = String::new();
            match BufReader::new(stream).read_line(&mut answer).await? {
                0 => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                _ => Ok(answer.trim_end().to_string()),
            }
        };
        match roof::timeout(ANSWER_WAIT, exchange).await {
            Ok(Ok(answer)) => return Ok(answer),
            _ => *connection = None,
        }
    }
    Err(format!(
        "{command:?}: no answer after {ATTEMPTS_MAX} attempts"
    ))
}

/// The client: set every key, then read back each one the store acknowledged.
async fn client() -> Result<(), String> {
    let mut connection = None;
    let mut acknowledged = Vec::new();
    for key in 0..KEYS {
        let answer = ask(&mut connection, &format!("SET key{key} value{key}")).await?;
        if answer == "OK" {
            acknowledged.push(key);
        }
        roof::sleep(Duration::from_millis(50)).await;
    }
    // Let the faults end before reading back.
    roof::sleep(Duration::from_secs(3)).await;
    for key in acknowledged {
        let answer = ask(&mut connection, &format!("GET key{key}")).await?;
        if answer != format!("value{key}") {
            return Err(format!(
                "SET key{key} was acknowledged, then GET key{key} answered {answer:?}: an acknowledged write was lost"
            ));
        }
    }
    Ok(())
}

fn run_with(event_loop: &EventLoop, sync_each: bool) -> Result<(), String> {
    event_loop
        .host("db", move || async move {
            if let Err(error) = store(sync_each).await {
                // The process exits, and its supervisor starts it again a little later (a
                // failing disk at start-up, say).
                roof::sleep(RESTART_DELAY).await;
                panic!("store stopped: {error}");
            }
        })
        .map_err(|error| error.to_string())?;
    event_loop
        .restart_on_panic("db", true)
        .map_err(|error| error.to_string())?;
    event_loop
        .run_until_complete(client())
        .map_err(super::failed)?
}

/// The store with its planted bug: answers before the record is synced.
pub fn run(event_loop: &EventLoop) -> Result<(), String> {
    run_with(event_loop, false)
}

/// The store fixed: each record synced before its answer.
pub fn run_fixed(event_loop: &EventLoop) -> Result<(), String> {
    run_with(event_loop, true)
}
