//! [`Body`]: a queued message's body as delivery reads it, in memory or a piece at a time from
//! its place in the journal.
//!
//! A delivery that held its whole message would hold, at 100 deliveries under way, 100
//! messages: megabytes that wait on the next server reading its socket. A large body is read
//! instead in [`PIECE`]-sized pieces as it goes out, as Postfix's smtp client reads its queue
//! file, so a delivery holds one piece whatever the message's size.
//!
//! A body that arrived in this process a moment ago goes out on a plain connection straight
//! from the page cache (`sendfile`), with no copy through the client's buffer. Otherwise (TLS,
//! a body to dot-stuff, one older or recovered after a restart) the pieces are read on the
//! worker when the page cache has them (`RWF_NOWAIT`), as it almost always does for mail
//! written a moment ago; otherwise, and where the kernel cannot tell, on a blocking thread.

use std::fmt;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::error::QueueError;
use super::index::BodyRef;
use crate::smtp::client::{PieceReader, Pieces, Shape};

/// The size of the pieces a large body is read in; a body no larger is read whole.
pub const PIECE: usize = 32 * 1024;

/// A queued message's body: cheap to clone, read whole with [`load`](Body::load) or a piece
/// at a time by the SMTP client ([`Pieces`]).
///
/// # Examples
///
/// ```
/// # smol::block_on(async {
/// use std::sync::Arc;
/// use mq_core::queue::Body;
///
/// let body = Body::from(Arc::<[u8]>::from(&b"Subject: hi\r\n\r\nhello\r\n"[..]));
/// assert_eq!(body.len(), 22);
/// assert!(body.shape().await.unwrap().as_is);
/// assert_eq!(&*body.load().await.unwrap(), b"Subject: hi\r\n\r\nhello\r\n");
/// # })
/// ```
#[derive(Clone)]
pub struct Body(Inner);

#[derive(Clone)]
enum Inner {
    Memory(Arc<[u8]>),
    Journal(BodyRef),
}

impl From<Arc<[u8]>> for Body {
    fn from(body: Arc<[u8]>) -> Body {
        Body(Inner::Memory(body))
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = match &self.0 {
            Inner::Memory(_) => "memory",
            Inner::Journal(_) => "journal",
        };
        f.debug_struct("Body")
            .field("len", &self.len())
            .field("in", &place)
            .finish()
    }
}

impl Body {
    /// The body at `place` in the journal, read when asked for.
    pub(crate) fn journal(place: BodyRef) -> Body {
        Body(Inner::Journal(place))
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        match &self.0 {
            Inner::Memory(body) => body.len() as u64,
            Inner::Journal(place) => place.len(),
        }
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body, when it is held in memory.
    pub fn in_memory(&self) -> Option<&Arc<[u8]>> {
        match &self.0 {
            Inner::Memory(body) => Some(body),
            Inner::Journal(_) => None,
        }
    }

    /// The whole body, read now if it is not in memory.
    ///
    /// # Errors
    ///
    /// [`QueueError::Io`] when the journal cannot be read.
    pub async fn load(&self) -> Result<Arc<[u8]>, QueueError> {
        match &self.0 {
            Inner::Memory(body) => Ok(Arc::clone(body)),
            Inner::Journal(place) => {
                let place = place.clone();
                smol::unblock(move || place.read_shared()).await
            }
        }
    }

    /// What the SMTP client must know before it sends the body: its 8-bit bytes, and whether
    /// it goes out as it is (see [`Shape`]). A body in the journal was scanned as it arrived;
    /// after a restart it is read through for it, a piece at a time.
    ///
    /// # Errors
    ///
    /// [`QueueError::Io`] when the journal cannot be read.
    pub async fn shape(&self) -> Result<Shape, QueueError> {
        let place = match &self.0 {
            Inner::Memory(body) => return Ok(Shape::of(body)),
            Inner::Journal(place) => match place.shape() {
                Some(shape) => return Ok(shape),
                None => place,
            },
        };
        let mut scan = Shape::scan();
        let mut pieces = PieceReader::new(self);
        while let Some(piece) = pieces.next().await.map_err(|e| place.error(e))? {
            scan.feed(piece);
        }
        Ok(scan.finish())
    }
}

impl Pieces for Body {
    fn len(&self) -> u64 {
        Body::len(self)
    }

    /// A body in the journal that arrived in this process less than a minute ago. An older one
    /// may have left the page cache, and `sendfile` would then wait on the disk on the
    /// worker's thread, where pieces are read only when cached.
    fn in_file(&self) -> Option<(&std::fs::File, u64)> {
        match &self.0 {
            Inner::Journal(place) if place.recent() => Some((place.file(), place.offset())),
            _ => None,
        }
    }

    fn piece(&self, offset: u64, buffer: Vec<u8>) -> BoxFuture<'_, io::Result<Vec<u8>>> {
        Box::pin(async move {
            match &self.0 {
                Inner::Memory(body) => {
                    let mut buffer = buffer;
                    let start = usize::try_from(offset)
                        .unwrap_or(usize::MAX)
                        .min(body.len());
                    let end = start.saturating_add(PIECE).min(body.len());
                    buffer.clear();
                    buffer.extend_from_slice(&body[start..end]);
                    Ok(buffer)
                }
                Inner::Journal(place) => read_piece(place, offset, buffer).await,
            }
        })
    }
}

/// Reads the piece of `place` at `offset` (at most [`PIECE`] bytes, fewer only at the end)
/// into `buffer`: on this thread if the page cache holds it, else on a blocking thread.
async fn read_piece(place: &BodyRef, offset: u64, mut buffer: Vec<u8>) -> io::Result<Vec<u8>> {
    let want = usize::try_from(place.len().saturating_sub(offset))
        .unwrap_or(usize::MAX)
        .min(PIECE);
    // Only the bytes past what the buffer held are zeroed: the read overwrites all `want`.
    buffer.resize(want, 0);
    let at = place.offset() + offset;
    let cached = rustix::io::preadv2(
        place.file(),
        &mut [io::IoSliceMut::new(&mut buffer)],
        at,
        rustix::io::ReadWriteFlags::NOWAIT,
    );
    match cached {
        Ok(read) if read == want => return Ok(buffer),
        // Not all of it cached, or the file system cannot tell: read it where blocking is
        // harmless.
        _ => {}
    }
    let file = Arc::clone(place.file());
    smol::unblock(move || {
        file.read_exact_at(&mut buffer, at)?;
        Ok(buffer)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::smtp::client::Shape;

    #[test]
    fn a_body_in_memory_is_given_in_pieces_of_the_piece_size() {
        smol::block_on(async {
            let bytes: Vec<u8> = (0..PIECE * 2 + 10).map(|i| b'a' + (i % 26) as u8).collect();
            let body = Body::from(Arc::<[u8]>::from(bytes.clone()));
            let mut read = Vec::new();
            let mut buffer = Vec::new();
            while (read.len() as u64) < Pieces::len(&body) {
                buffer = body.piece(read.len() as u64, buffer).await.unwrap();
                assert!(!buffer.is_empty() && buffer.len() <= PIECE);
                read.extend_from_slice(&buffer);
            }
            assert_eq!(read, bytes);
            assert_eq!(body.shape().await.unwrap(), Shape::of(&bytes));
        });
    }
}
