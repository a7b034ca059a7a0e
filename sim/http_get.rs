//! The aiohttp example of the notes: eight concurrent GETs, gathered.
//!
//! ```python
//! async def get(url):
//!     async with aiohttp.ClientSession() as session:
//!         async with session.get(url) as response:
//!             return response
//!
//! coroutines = [get("http://example.com") for _ in range(8)]
//! results = loop.run_until_complete(asyncio.gather(*coroutines))
//! print("Results: %s" % results)
//! ```
//!
//! A small HTTP/1.1 server runs on host `example.com` and takes 50 ms to answer. The GETs
//! overlap, so the whole run takes about one request's time, not eight.

use std::time::Duration;

use roof::io::{AsyncReadExt, AsyncWriteExt};
use roof::net::{TcpListener, TcpStream};
use roof::EventLoop;

/// Concurrent GETs.
pub const REQUESTS: usize = 8;
/// How long the server works on a request.
pub const SERVICE_TIME: Duration = Duration::from_millis(50);

const BODY: &str = "<!doctype html><title>Example Domain</title>";

/// Serve `GET /` with a small page on port 80, one task per connection.
pub async fn serve() {
    let listener = TcpListener::bind("0.0.0.0:80")
        .await
        .expect("port 80 is free on example.com");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        roof::spawn_named("http-connection", async move {
            let mut stream = stream;
            let mut request = Vec::new();
            let mut chunk = [0u8; 512];
            while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(count) => request.extend_from_slice(&chunk[..count]),
                }
            }
            let text = String::from_utf8_lossy(&request);
            let status = if text.starts_with("GET / HTTP/1.1\r\n") { "200 OK" } else { "400 Bad Request" };
            roof::sleep(SERVICE_TIME).await;
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
                BODY.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        })
        .detach();
    }
}

/// A response as the example prints it.
#[derive(Debug, PartialEq)]
pub struct Response {
    /// The status line's code and reason, e.g. `200 OK`.
    pub status: String,
    /// The body's length in bytes.
    pub length: usize,
}

/// GET `url` (`http://host[:port]/path`) over a fresh connection.
pub async fn get(url: &str) -> Result<Response, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http URL: {url}"))?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let mut stream = TcpStream::connect(addr.as_str())
        .await
        .map_err(|error| format!("GET {url}: {error}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|error| error.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|error| error.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("a response without headers")?;
    let status = head
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("HTTP/1.1 "))
        .ok_or("a response without a status line")?;
    Ok(Response {
        status: status.to_string(),
        length: body.len(),
    })
}

pub fn run(event_loop: &EventLoop) -> Result<(), String> {
    event_loop
        .host("example.com", serve)
        .map_err(|error| error.to_string())?;
    let started = event_loop.now();
    let gets: Vec<_> = (0..REQUESTS)
        .map(|_| Box::pin(get("http://example.com")))
        .collect();
    let results = event_loop
        .run_until_complete(roof::gather(gets))
        .map_err(super::failed)?
        .map_err(|error| error.to_string())?;
    let shown: Vec<String> = results
        .iter()
        .map(|result| match result {
            Ok(response) => format!("<Response [{}] {} bytes>", response.status, response.length),
            Err(error) => format!("<Error {error}>"),
        })
        .collect();
    roof::println!("Results: [{}]", shown.join(", "));
    let elapsed = event_loop.now() - started;
    for result in results {
        let response = result?;
        if response.status != "200 OK" || response.length != BODY.len() {
            return Err(format!("unexpected response {response:?}"));
        }
    }
    // Overlapping: about one request's time (service time plus a few round trips), not eight.
    if elapsed >= SERVICE_TIME * 2 {
        return Err(format!(
            "{REQUESTS} GETs took {elapsed:?}: they did not overlap"
        ));
    }
    Ok(())
}
