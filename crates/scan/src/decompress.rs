//! Opening a stream a stranger sent, compressed or not: gzip and zstd are
//! recognised by their magic bytes (never by a media type or file name),
//! and the decompressed bytes are counted so a bomb stops after `limit`
//! bytes of work, not after it fills memory or disk.

use std::io::{self, BufRead, BufReader, Read};

/// The error a bounded stream fails with past its limit.
#[derive(Debug)]
pub struct LimitExceeded {
    pub limit: u64,
}

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "expands past the limit of {} bytes (a compression bomb, or raise the limit)",
            self.limit
        )
    }
}

impl std::error::Error for LimitExceeded {}

/// Whether an I/O error is a [`LimitExceeded`].
pub fn is_limit(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<LimitExceeded>())
}

struct Bounded<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::other(LimitExceeded { limit: self.limit }));
        }
        Ok(n)
    }
}

/// The decompressed content of `raw` (gzip, zstd or as is), failing with
/// [`LimitExceeded`] once more than `limit` bytes come out.
pub fn open<'a, R: Read + 'a>(raw: R, limit: u64) -> io::Result<impl Read + 'a> {
    open_buffered(BufReader::with_capacity(256 * 1024, raw), limit)
}

/// [`open`] over a stream that buffers already (a [`ChunkReader`]).
pub fn open_buffered<'a, B: BufRead + 'a>(mut buffered: B, limit: u64) -> io::Result<impl Read + 'a> {
    let magic = buffered.fill_buf()?;
    let stream: Box<dyn Read + 'a> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?)
    } else {
        Box::new(buffered)
    };
    Ok(Bounded {
        inner: stream,
        read: 0,
        limit,
    })
}

/// Bytes handed from the decompressing thread to the walking one at a time.
const CHUNK_BYTES: usize = 256 << 10;
/// Chunks in existence at once (filled, in flight or being read): the
/// most a [`pipe`] holds is `CHUNKS * CHUNK_BYTES` (1.5 MiB).
const CHUNKS: usize = 6;

/// A bounded pipe of decompressed chunks between two threads: one
/// [`ChunkWriter::pump`]s a stream in, the other reads the [`ChunkReader`].
/// Buffers go back to the writer once read, so a layer of any size costs
/// the same few chunks.
pub fn pipe() -> (ChunkWriter, ChunkReader) {
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel(CHUNKS);
    let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel(CHUNKS);
    (
        ChunkWriter {
            full: full_tx,
            empty: empty_rx,
            made: 0,
        },
        ChunkReader {
            full: full_rx,
            empty: empty_tx,
            current: Vec::new(),
            at: 0,
            ended: false,
        },
    )
}

pub struct ChunkWriter {
    full: std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
    empty: std::sync::mpsc::Receiver<Vec<u8>>,
    made: usize,
}

impl ChunkWriter {
    /// Copies `stream` into the pipe until it ends, fails (the reader gets
    /// the error, unchanged) or the reader is gone (it read what it needed).
    /// The stream's first failure, for the reader to read.
    pub fn fail(self, e: io::Error) {
        let _ = self.full.send(Err(e));
    }

    pub fn pump(mut self, mut stream: impl Read) {
        loop {
            let Some(mut chunk) = self.buffer() else { return };
            let (n, failed) = fill(&mut stream, &mut chunk);
            chunk.truncate(n);
            // The bytes before an error first, as a reader of the stream
            // itself would have had them.
            if n > 0 && self.full.send(Ok(chunk)).is_err() {
                return;
            }
            match failed {
                Some(e) => {
                    let _ = self.full.send(Err(e));
                    return;
                }
                None if n < CHUNK_BYTES => return,
                None => {}
            }
        }
    }

    /// A spent buffer back from the reader, or a new one while fewer than
    /// [`CHUNKS`] exist; `None` once the reader is gone.
    fn buffer(&mut self) -> Option<Vec<u8>> {
        let mut chunk = match self.empty.try_recv() {
            Ok(b) => b,
            Err(std::sync::mpsc::TryRecvError::Empty) if self.made < CHUNKS => {
                self.made += 1;
                Vec::with_capacity(CHUNK_BYTES)
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => self.empty.recv().ok()?,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return None,
        };
        chunk.resize(CHUNK_BYTES, 0);
        Some(chunk)
    }
}

/// Reads until `chunk` is full, the stream ends or fails: the bytes read,
/// and the error if it failed.
fn fill(stream: &mut impl Read, chunk: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut n = 0;
    while n < chunk.len() {
        match stream.read(&mut chunk[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}

pub struct ChunkReader {
    full: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    empty: std::sync::mpsc::SyncSender<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
    ended: bool,
}

impl ChunkReader {
    /// Makes the current chunk one with bytes left, unless the stream ended.
    fn next_chunk(&mut self) -> io::Result<()> {
        while self.at == self.current.len() && !self.ended {
            let spent = std::mem::take(&mut self.current);
            if spent.capacity() > 0 {
                // Never blocks: at most CHUNKS buffers exist.
                let _ = self.empty.try_send(spent);
            }
            self.at = 0;
            match self.full.recv() {
                Ok(Ok(chunk)) => self.current = chunk,
                Ok(Err(e)) => {
                    self.ended = true;
                    return Err(e);
                }
                // The writer is done (or gone, unwinding): the stream ends here.
                Err(_) => self.ended = true,
            }
        }
        Ok(())
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let available = self.fill_buf()?;
        let n = buf.len().min(available.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.next_chunk()?;
        Ok(&self.current[self.at..])
    }

    fn consume(&mut self, n: usize) {
        self.at = (self.at + n).min(self.current.len());
    }
}
