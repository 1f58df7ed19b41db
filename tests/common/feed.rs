//! A publication server on 127.0.0.1 under the test's exact control, for
//! the database updater: ETag and Last-Modified validators, conditional
//! requests (304), ranges with If-Range (206, 416), and a connection
//! closed after K bytes of a body. Every request is recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone)]
struct Published {
    bytes: Vec<u8>,
    etag: String,
    last_modified: String,
}

/// One request the feed answered: its path, headers (lower-case names) and status.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub status: u16,
}

#[derive(Default)]
struct State {
    files: HashMap<String, Published>,
    seen: Vec<Seen>,
    /// The next body sent stops after this many bytes, and the connection closes.
    cut_after: Option<usize>,
    versions: u32,
}

#[derive(Clone)]
pub struct Feed {
    pub base: String,
    state: Arc<Mutex<State>>,
}

impl Feed {
    pub async fn start() -> Feed {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(answer(conn, shared.clone()));
            }
        });
        Feed { base, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Publishes `bytes` at `path`: a new version, with a new ETag and date.
    pub fn publish(&self, path: &str, bytes: &[u8]) {
        let mut st = self.state.lock().unwrap();
        st.versions += 1;
        let digest = portcullis_oci::Digest::sha256_of(bytes);
        let published = Published {
            bytes: bytes.to_vec(),
            etag: format!("\"{}\"", &digest.hex()[..16]),
            last_modified: format!(
                "Mon, 01 Jan 2024 00:{:02}:{:02} GMT",
                st.versions / 60,
                st.versions % 60
            ),
        };
        st.files.insert(path.to_string(), published);
    }

    pub fn etag(&self, path: &str) -> String {
        self.state.lock().unwrap().files[path].etag.clone()
    }

    /// The next body (of a 200 or 206) stops after `k` bytes.
    pub fn cut_next_after(&self, k: usize) {
        self.state.lock().unwrap().cut_after = Some(k);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn forget_seen(&self) {
        self.state.lock().unwrap().seen.clear();
    }
}

/// Reads one request's head (bounded), answers it, and closes.
async fn answer(mut conn: TcpStream, state: Arc<Mutex<State>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 << 10 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut lines = text.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("/")
        .to_string();
    let headers: HashMap<String, String> = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let (status, extra, body, cut) = {
        let mut st = state.lock().unwrap();
        let decided = decide(st.files.get(&path), &headers);
        let cut = if matches!(decided.0, 200 | 206) {
            st.cut_after.take()
        } else {
            None
        };
        st.seen.push(Seen {
            path,
            headers,
            status: decided.0,
        });
        (decided.0, decided.1, decided.2, cut)
    };
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        404 => "Not Found",
        _ => "Range Not Satisfiable",
    };
    let mut response = format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\n");
    for (k, v) in &extra {
        response.push_str(&format!("{k}: {v}\r\n"));
    }
    if status != 304 {
        response.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    response.push_str("\r\n");
    let _ = conn.write_all(response.as_bytes()).await;
    let sent = cut.map_or(body.len(), |k| k.min(body.len()));
    let _ = conn.write_all(&body[..sent]).await;
    let _ = conn.flush().await;
    let _ = conn.shutdown().await;
}

/// (status, headers, body) for a request, as an HTTP/1.1 origin would.
fn decide(file: Option<&Published>, headers: &HashMap<String, String>) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let Some(f) = file else {
        return (404, vec![], b"not found".to_vec());
    };
    let validators = vec![
        ("ETag".to_string(), f.etag.clone()),
        ("Last-Modified".to_string(), f.last_modified.clone()),
    ];
    let not_modified = match (headers.get("if-none-match"), headers.get("if-modified-since")) {
        (Some(tag), _) => tag == &f.etag,
        (None, Some(date)) => date == &f.last_modified,
        _ => false,
    };
    if not_modified {
        return (304, validators, vec![]);
    }
    let range_applies = headers
        .get("if-range")
        .is_none_or(|v| v == &f.etag || v == &f.last_modified);
    let start = headers
        .get("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    match start {
        Some(n) if range_applies && n >= f.bytes.len() => {
            let mut h = validators;
            h.push(("Content-Range".into(), format!("bytes */{}", f.bytes.len())));
            (416, h, vec![])
        }
        Some(n) if range_applies => {
            let mut h = validators;
            h.push((
                "Content-Range".into(),
                format!("bytes {n}-{}/{}", f.bytes.len() - 1, f.bytes.len()),
            ));
            (206, h, f.bytes[n..].to_vec())
        }
        _ => (200, validators, f.bytes.clone()),
    }
}
