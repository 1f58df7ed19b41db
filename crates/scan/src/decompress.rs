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
    let mut buffered = BufReader::with_capacity(256 * 1024, raw);
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
