//! Content-addressed blob storage and upload sessions on the local filesystem.
//!
//! Layout: `<root>/blobs/<alg>/<first two hex>/<hex>` and `<root>/uploads/<uuid>`.
//! A blob becomes a file under `blobs/` only through [`BlobStore::publish`],
//! which takes a [`VerifiedBlob`]: bytes whose digest this process computed
//! and compared, already fsynced. The caller publishes inside the database
//! transaction that makes the blob visible, so the row is committed after
//! the rename (DESIGN invariants 1 and 2).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use portcullis_oci::{Algorithm, Digest, DigestHasher};
use thiserror::Error;
use uuid::Uuid;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("upload session not found")]
    UploadUnknown,
    #[error("chunk starts at {requested} but the upload holds {current} bytes")]
    RangeMismatch { requested: u64, current: u64 },
    #[error("digest mismatch: the client said {expected}, the bytes received hash to {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("request body failed: {0}")]
    Body(String),
    #[error("storage I/O: {0}")]
    Io(#[from] io::Error),
}

/// Bytes to coalesce before handing a write to the blocking writer: large
/// enough to amortise the syscall and thread hop, small enough that many
/// parallel uploads stay within a few MiB each.
const WRITE_CHUNK: usize = 256 * 1024;
/// Writes queued per upload before the network side waits for the disk.
const WRITE_QUEUE: usize = 8;
const READ_CHUNK: usize = 1024 * 1024;
/// Read-ahead for downloads: chunk size and how many wait in the queue.
const SEND_CHUNK: usize = 512 * 1024;
const SEND_QUEUE: usize = 4;

/// Hash of an upload's bytes so far, kept so a finished upload need not be
/// read again. A cache only: when missing (restart, another replica) the
/// file is re-hashed.
struct HashState {
    offset: u64,
    hasher: DigestHasher,
}

/// An upload whose bytes hash to `digest` and are on disk, fsynced. It
/// holds the session's lock until it is published or dropped, so nothing
/// can append to the file in between.
#[derive(Debug)]
pub struct VerifiedBlob {
    pub digest: Digest,
    pub size: u64,
    temp: PathBuf,
    _session: SessionLock,
}

type SessionLocks = Arc<Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>>;

/// Exclusive use of one upload session. The map entry goes when the last
/// holder or waiter is done, so idle sessions cost nothing.
#[derive(Debug)]
struct SessionLock {
    id: Uuid,
    locks: SessionLocks,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        self.guard.take();
        let mut locks = self.locks.lock().unwrap();
        // Only the map's own reference left: no holder, no waiter.
        if locks.get(&self.id).is_some_and(|l| Arc::strong_count(l) == 1) {
            locks.remove(&self.id);
        }
    }
}

pub struct BlobStore {
    root: PathBuf,
    hashes: Mutex<HashMap<Uuid, HashState>>,
    sessions: SessionLocks,
}

impl BlobStore {
    pub fn open(root: &Path) -> io::Result<BlobStore> {
        std::fs::create_dir_all(root.join("blobs"))?;
        std::fs::create_dir_all(root.join("uploads"))?;
        Ok(BlobStore {
            root: root.to_path_buf(),
            hashes: Mutex::new(HashMap::new()),
            sessions: SessionLocks::default(),
        })
    }

    /// Waits for exclusive use of upload session `id`.
    async fn lock_session(&self, id: Uuid) -> SessionLock {
        let lock = self.sessions.lock().unwrap().entry(id).or_default().clone();
        let guard = lock.lock_owned().await;
        SessionLock {
            id,
            locks: self.sessions.clone(),
            guard: Some(guard),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }

    fn upload_path(&self, id: Uuid) -> PathBuf {
        self.root.join("uploads").join(id.to_string())
    }

    /// Opens a stored blob for reading; `None` when no file holds it.
    pub async fn open_blob(&self, digest: &Digest) -> io::Result<Option<(tokio::fs::File, u64)>> {
        match tokio::fs::File::open(self.blob_path(digest)).await {
            Ok(f) => {
                let len = f.metadata().await?.len();
                Ok(Some((f, len)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether a blob file exists, and its size.
    pub async fn blob_size(&self, digest: &Digest) -> io::Result<Option<u64>> {
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens an upload session; its bytes are hashed with `algorithm` as they arrive.
    pub async fn start_upload(&self, algorithm: Algorithm) -> io::Result<Uuid> {
        let id = Uuid::new_v4();
        tokio::fs::File::create(self.upload_path(id)).await?;
        self.hashes.lock().unwrap().insert(
            id,
            HashState {
                offset: 0,
                hasher: algorithm.hasher(),
            },
        );
        Ok(id)
    }

    /// Bytes received so far.
    pub async fn upload_size(&self, id: Uuid) -> Result<u64, StoreError> {
        match tokio::fs::metadata(self.upload_path(id)).await {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::UploadUnknown),
            Err(e) => Err(e.into()),
        }
    }

    fn take_hash(&self, id: Uuid, offset: u64) -> Option<DigestHasher> {
        let state = self.hashes.lock().unwrap().remove(&id)?;
        (state.offset == offset).then_some(state.hasher)
    }

    /// Appends a request body to an upload, hashing while it streams.
    ///
    /// `start` is the first byte's offset from `Content-Range`; it must equal
    /// the bytes held, as the spec requires chunks in order. Returns the new
    /// size and the bytes this call wrote. Memory stays at about `WRITE_CHUNK * WRITE_QUEUE` whatever the body's length.
    /// Concurrent calls on one session run one after the other.
    pub async fn append<S, E>(&self, id: Uuid, start: Option<u64>, mut body: S) -> Result<(u64, u64), StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let session = self.lock_session(id).await;
        let path = self.upload_path(id);
        let file = match std::fs::OpenOptions::new().append(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::UploadUnknown),
            Err(e) => return Err(e.into()),
        };
        let current = file.metadata()?.len();
        if let Some(requested) = start {
            if requested != current {
                return Err(StoreError::RangeMismatch { requested, current });
            }
        }
        let hasher = self.take_hash(id, current);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(WRITE_QUEUE);
        // The lock goes with the writer: if this request is dropped mid-body,
        // the session stays locked until the writer has closed the file.
        let writer = tokio::task::spawn_blocking(move || -> io::Result<(Option<DigestHasher>, u64)> {
            let _session = session;
            let mut file = file;
            let mut hasher = hasher;
            let mut written = 0u64;
            while let Some(chunk) = rx.blocking_recv() {
                if let Some(h) = hasher.as_mut() {
                    h.update(&chunk);
                }
                file.write_all(&chunk)?;
                written += chunk.len() as u64;
            }
            Ok((hasher, written))
        });
        let mut buf = BytesMut::with_capacity(WRITE_CHUNK);
        let mut body_error = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => {
                    buf.extend_from_slice(&c);
                    if buf.len() >= WRITE_CHUNK && tx.send(buf.split().freeze()).await.is_err() {
                        break; // the writer failed; its error is reported below
                    }
                }
                Err(e) => {
                    body_error = Some(e.to_string());
                    break;
                }
            }
        }
        if !buf.is_empty() {
            let _ = tx.send(buf.freeze()).await;
        }
        drop(tx);
        let (hasher, written) = writer.await.map_err(io::Error::other)??;
        let offset = current + written;
        if let Some(hasher) = hasher {
            self.hashes.lock().unwrap().insert(id, HashState { offset, hasher });
        }
        match body_error {
            // What arrived is kept: a client may ask for the upload's range and resume.
            Some(e) => Err(StoreError::Body(e)),
            None => Ok((offset, written)),
        }
    }

    /// Checks the upload's bytes against `expected` and makes them durable.
    /// On a mismatch the upload is discarded: nothing is stored.
    pub async fn verify_upload(&self, id: Uuid, expected: &Digest) -> Result<VerifiedBlob, StoreError> {
        let session = self.lock_session(id).await;
        let path = self.upload_path(id);
        let size = self.upload_size(id).await?;
        let cached = self
            .take_hash(id, size)
            .filter(|h| h.algorithm() == expected.algorithm());
        let algorithm = expected.algorithm();
        let p = path.clone();
        let actual = tokio::task::spawn_blocking(move || -> io::Result<Digest> {
            let mut file = std::fs::OpenOptions::new().read(true).write(true).open(&p)?;
            let digest = match cached {
                Some(h) => h.finish(),
                None => hash_reader(&mut file, algorithm)?,
            };
            // A fresh mtime keeps the orphan sweep off a file published just now,
            // however long ago its bytes were written.
            file.set_modified(SystemTime::now())?;
            file.sync_all()?;
            Ok(digest)
        })
        .await
        .map_err(io::Error::other)??;
        if &actual != expected {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        Ok(VerifiedBlob {
            digest: actual,
            size,
            temp: path,
            _session: session,
        })
    }

    /// Moves a verified upload into place and syncs the directory, so the
    /// name survives a crash. A blob already stored under the digest is kept
    /// as it is (only its mtime is renewed, which keeps the orphan sweep off
    /// it while the caller's row commits): the upload never replaces it.
    pub async fn publish(&self, blob: VerifiedBlob) -> io::Result<()> {
        let target = self.blob_path(&blob.digest);
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let dir = target.parent().expect("blob paths have a parent");
            std::fs::create_dir_all(dir)?;
            // A hard link, unlike a rename, fails when the target exists.
            match std::fs::hard_link(&blob.temp, &target) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    std::fs::File::open(&target)?.set_modified(SystemTime::now())?;
                }
                Err(e) => return Err(e),
            }
            std::fs::remove_file(&blob.temp)?;
            std::fs::File::open(dir)?.sync_all()?;
            drop(blob);
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Opens an upload's bytes so far for reading (a pull-through cache
    /// streams a blob to its clients from the upload while it arrives).
    pub async fn open_upload(&self, id: Uuid) -> io::Result<tokio::fs::File> {
        tokio::fs::File::open(self.upload_path(id)).await
    }

    pub async fn cancel_upload(&self, id: Uuid) -> Result<(), StoreError> {
        let _session = self.lock_session(id).await;
        self.hashes.lock().unwrap().remove(&id);
        match tokio::fs::remove_file(self.upload_path(id)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::UploadUnknown),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn remove_blob(&self, digest: &Digest) -> io::Result<()> {
        match tokio::fs::remove_file(self.blob_path(digest)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every blob file with its modification time, for the orphan sweep.
    pub fn list_blobs(&self) -> io::Result<Vec<(Digest, SystemTime)>> {
        let mut out = Vec::new();
        for alg in std::fs::read_dir(self.root.join("blobs"))? {
            let alg = alg?;
            for prefix in std::fs::read_dir(alg.path())? {
                for entry in std::fs::read_dir(prefix?.path())? {
                    let entry = entry?;
                    let name = format!(
                        "{}:{}",
                        alg.file_name().to_string_lossy(),
                        entry.file_name().to_string_lossy()
                    );
                    if let (Ok(d), Some(m)) = (name.parse::<Digest>(), modified(&entry)?) {
                        out.push((d, m));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Upload files with their modification time, for expiring abandoned uploads.
    pub fn list_uploads(&self) -> io::Result<Vec<(Uuid, SystemTime)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.root.join("uploads"))? {
            let entry = entry?;
            if let (Ok(id), Some(m)) = (entry.file_name().to_string_lossy().parse::<Uuid>(), modified(&entry)?) {
                out.push((id, m));
            }
        }
        Ok(out)
    }
}

/// An entry's modification time; `None` when it vanished since the listing
/// (an upload published or a blob collected meanwhile).
fn modified(entry: &std::fs::DirEntry) -> io::Result<Option<SystemTime>> {
    match entry.metadata().and_then(|m| m.modified()) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Streams `len` bytes of `file` from `start`, read ahead on a blocking
/// thread with `pread`: one copy per byte and no thread hop per chunk, and
/// at most `SEND_CHUNK * SEND_QUEUE` bytes held per download.
pub fn stream_file(
    file: std::fs::File,
    start: u64,
    len: u64,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(SEND_QUEUE);
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let end = start + len;
        let mut offset = start;
        while offset < end {
            let mut buf = vec![0u8; (end - offset).min(SEND_CHUNK as u64) as usize];
            let item = match file.read_at(&mut buf, offset) {
                Ok(0) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "blob shorter than recorded",
                )),
                Ok(n) => {
                    buf.truncate(n);
                    offset += n as u64;
                    Ok(Bytes::from(buf))
                }
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                break; // client gone, or error delivered
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

fn hash_reader(r: &mut impl Read, algorithm: Algorithm) -> io::Result<Digest> {
    let mut h = algorithm.hasher();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, io::Error>> + Unpin {
        futures_util::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn chunked_upload_verifies_and_publishes() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let id = store.start_upload(Algorithm::Sha256).await.unwrap();
        assert_eq!(store.append(id, Some(0), body(&[b"hello "])).await.unwrap(), (6, 6));
        let err = store.append(id, Some(3), body(&[b"x"])).await.unwrap_err();
        assert!(matches!(
            err,
            StoreError::RangeMismatch {
                requested: 3,
                current: 6
            }
        ));
        assert_eq!(store.append(id, None, body(&[b"wor", b"ld"])).await.unwrap(), (11, 5));
        let d = Digest::sha256_of(b"hello world");
        assert_eq!(store.blob_size(&d).await.unwrap(), None);
        let v = store.verify_upload(id, &d).await.unwrap();
        assert_eq!(store.blob_size(&d).await.unwrap(), None, "not visible before publish");
        store.publish(v).await.unwrap();
        assert_eq!(std::fs::read(store.blob_path(&d)).unwrap(), b"hello world");
        assert!(store.list_uploads().unwrap().is_empty());
        assert_eq!(store.list_blobs().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn mismatch_stores_nothing_and_sha512_rehashes() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let id = store.start_upload(Algorithm::Sha256).await.unwrap();
        store.append(id, None, body(&[b"abc"])).await.unwrap();
        let wrong = Digest::sha256_of(b"abd");
        assert!(matches!(
            store.verify_upload(id, &wrong).await,
            Err(StoreError::DigestMismatch { .. })
        ));
        assert!(matches!(store.upload_size(id).await, Err(StoreError::UploadUnknown)));
        assert_eq!(store.blob_size(&wrong).await.unwrap(), None);

        let id = store.start_upload(Algorithm::Sha256).await.unwrap();
        store.append(id, None, body(&[b"abc"])).await.unwrap();
        let d512 = Digest::of(Algorithm::Sha512, b"abc");
        let v = store.verify_upload(id, &d512).await.unwrap();
        store.publish(v).await.unwrap();
        assert_eq!(store.blob_size(&d512).await.unwrap(), Some(3));
    }

    #[tokio::test]
    async fn failed_body_keeps_received_bytes_for_resume() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let id = store.start_upload(Algorithm::Sha256).await.unwrap();
        let broken = futures_util::stream::iter(vec![Ok(Bytes::from_static(b"abc")), Err(io::Error::other("reset"))]);
        assert!(matches!(store.append(id, None, broken).await, Err(StoreError::Body(_))));
        assert_eq!(store.upload_size(id).await.unwrap(), 3);
        store.append(id, Some(3), body(&[b"def"])).await.unwrap();
        // Hash cache dropped on restart: a fresh store re-hashes the file.
        let reopened = BlobStore::open(dir.path()).unwrap();
        let v = reopened.verify_upload(id, &Digest::sha256_of(b"abcdef")).await.unwrap();
        assert_eq!(v.size, 6);
    }

    /// The attack from the security review: a session holding the bytes of
    /// a stored blob D is closed with an empty PUT while a second PATCH on
    /// it holds its body. The close waits for the held write, so it hashes
    /// what was really written (and fails); D is never touched.
    #[tokio::test]
    async fn held_write_cannot_reach_a_published_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(BlobStore::open(dir.path()).unwrap());
        let layer: &'static [u8] = b"a well-known base layer";
        let d = Digest::sha256_of(layer);
        // D is stored by someone else.
        let other = store.start_upload(Algorithm::Sha256).await.unwrap();
        store.append(other, None, body(&[layer])).await.unwrap();
        let v = store.verify_upload(other, &d).await.unwrap();
        store.publish(v).await.unwrap();
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        let stored_inode = inode(&store.blob_path(&d));

        let id = store.start_upload(Algorithm::Sha256).await.unwrap();
        store.append(id, None, body(&[layer])).await.unwrap();
        let (held_tx, held_rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(1);
        let held_body = futures_util::stream::unfold(held_rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
        let s = store.clone();
        let patch = tokio::spawn(async move { s.append(id, None, Box::pin(held_body)).await });
        held_tx.send(Ok(Bytes::from_static(b"first"))).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let s = store.clone();
        let d2 = d.clone();
        let close = tokio::spawn(async move {
            let v = s.verify_upload(id, &d2).await?;
            s.publish(v).await?;
            Ok::<_, StoreError>(())
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!close.is_finished(), "the close waits for the write in progress");
        held_tx.send(Ok(Bytes::from_static(b" and the rest"))).await.unwrap();
        drop(held_tx);
        patch.await.unwrap().unwrap();
        assert!(matches!(close.await.unwrap(), Err(StoreError::DigestMismatch { .. })));
        assert_eq!(std::fs::read(store.blob_path(&d)).unwrap(), layer);
        assert_eq!(inode(&store.blob_path(&d)), stored_inode);
    }

    /// Publishing bytes whose digest is already stored keeps the stored file.
    #[tokio::test]
    async fn publish_keeps_an_existing_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let d = Digest::sha256_of(b"same bytes");
        let mut inodes = Vec::new();
        for _ in 0..2 {
            let id = store.start_upload(Algorithm::Sha256).await.unwrap();
            store.append(id, None, body(&[b"same bytes"])).await.unwrap();
            let v = store.verify_upload(id, &d).await.unwrap();
            store.publish(v).await.unwrap();
            let m = std::fs::metadata(store.blob_path(&d)).unwrap();
            inodes.push(std::os::unix::fs::MetadataExt::ino(&m));
            assert_eq!(
                std::os::unix::fs::MetadataExt::nlink(&m),
                1,
                "the upload's name is gone"
            );
        }
        assert_eq!(inodes[0], inodes[1]);
        assert!(store.list_uploads().unwrap().is_empty());
        assert!(store.sessions.lock().unwrap().is_empty(), "no lock left behind");
    }
}
