//! A server-side TLS connection that holds no buffer while it is idle.
//!
//! rustls's buffered connection (what `tokio-rustls` wraps) keeps a 4 KiB read buffer for as
//! long as the connection lives, plus its own queues; a hundred thousand idle chat connections
//! would spend most of their memory on it. [`TlsStream`] drives rustls's *unbuffered* API
//! instead, where the buffers are the caller's, and keeps one only while bytes are in it:
//!
//! - it waits for the socket to become readable holding nothing, reads a chunk, lets rustls
//!   decrypt every complete record in it, and drops the chunk once no partial record is left;
//! - decrypted bytes wait in a buffer only until they are read;
//! - encrypted bytes wait in a buffer only until the socket takes them.
//!
//! What an idle connection holds is then rustls's state alone (keys, the key schedule, a few
//! small queues: about 3.3 KB with TLS 1.3), in one allocation with this stream's own fields.
//! docs/PERFORMANCE.md ("TLS") has the measurements.
//!
//! It is an ordinary [`AsyncRead`] + [`AsyncWrite`] stream (hyper serves HTTPS and WSS on it),
//! whose [`readable`](TlsStream::readable) waits, as [`TcpStream::readable`] does, without a
//! buffer (the TCP gateway's pipe waits that way). Written bytes are encrypted at once and
//! leave on the next write or flush; [`poll_shutdown`](AsyncWrite::poll_shutdown) sends
//! `close_notify` before the TCP FIN. A peer that closes without `close_notify` ends the stream
//! like a plain EOF: the protocols spoken inside (length-prefixed frames, HTTP) delimit their
//! own messages, so a truncation cannot pass for a complete one.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use futures_util::FutureExt;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::{ProtocolVersion, ServerConfig, SupportedCipherSuite};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::accept::Readable;

/// Bytes asked of the socket per read: a few records' worth.
const READ_CHUNK: usize = 4096;
/// The most unprocessed TLS bytes held: one record of the largest size a peer may send
/// (16 KiB of data plus 2 KiB of expansion) and a read beyond it. rustls refuses longer
/// records, and joins a handshake message over several records only during the handshake,
/// whose messages from a client are small; the bound is a second line behind those.
const MAX_INCOMING: usize = 64 * 1024 + 18 * 1024;
/// The most plaintext encrypted per write call, so that what waits for the socket stays
/// bounded (callers write again with the rest).
const MAX_WRITE: usize = 64 * 1024;
/// Room a record's header, content type and authentication tag add to its data, generously.
const RECORD_OVERHEAD: usize = 64;
/// The data one TLS record carries at most.
const MAX_RECORD_DATA: usize = 16 * 1024;

/// A TLS connection over a TCP stream, server side, after its handshake (see the module doc).
pub struct TlsStream {
    tcp: TcpStream,
    /// Boxed: rustls's connection is a kilobyte, and a session's future holds this stream for
    /// its whole life.
    tls: Box<Tls>,
}

/// The TLS state and the buffers, in one allocation.
struct Tls {
    conn: UnbufferedServerConnection,
    /// TLS bytes read and not yet processed: empty (and unallocated) between records.
    incoming: BytesMut,
    /// Data decrypted and not yet read.
    plaintext: BytesMut,
    /// TLS bytes produced and not yet written.
    outgoing: BytesMut,
    /// The peer sent `close_notify`, or closed the connection: nothing more will be read.
    read_closed: bool,
    /// This side's `close_notify` has been produced: nothing more may be written.
    write_closed: bool,
    /// rustls failed (it queued an alert, taken into `outgoing`): the connection is over, and
    /// rustls is not asked again.
    failed: bool,
}

/// How far rustls got with the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// It needs more bytes from the peer to finish the handshake.
    NeedsInput,
    /// The connection can carry data (during a TLS 1.3 handshake this comes before the
    /// client's Finished: check `is_handshaking`).
    Traffic,
    /// Both sides sent `close_notify`.
    Closed,
}

/// What to do once the connection can carry data.
#[derive(Clone, Copy)]
enum Then<'a> {
    /// Nothing: only process what arrived.
    Nothing,
    /// Encrypt this.
    Encrypt(&'a [u8]),
    /// Produce `close_notify`.
    CloseNotify,
}

impl TlsStream {
    /// Runs the server side of the handshake on `tcp` with `config`. Not bounded in time: the
    /// caller bounds it (see [`TlsAcceptor`](super::TlsAcceptor)).
    pub(crate) async fn accept(config: Arc<ServerConfig>, tcp: TcpStream) -> io::Result<Self> {
        let conn = UnbufferedServerConnection::new(config).map_err(invalid_data)?;
        let mut stream = Self {
            tcp,
            tls: Box::new(Tls {
                conn,
                incoming: BytesMut::new(),
                plaintext: BytesMut::new(),
                outgoing: BytesMut::new(),
                read_closed: false,
                write_closed: false,
                failed: false,
            }),
        };
        loop {
            let progress = match stream.tls.drive(Then::Nothing) {
                Ok(progress) => progress,
                Err(error) => {
                    // Tell the client why (a TLS alert), as far as the socket takes it at once.
                    let _ = std::future::poll_fn(|cx| stream.poll_send(cx)).now_or_never();
                    return Err(error);
                }
            };
            std::future::poll_fn(|cx| stream.poll_send(cx)).await?;
            match progress {
                Progress::Traffic if !stream.tls.conn.is_handshaking() => return Ok(stream),
                Progress::Traffic | Progress::NeedsInput => {
                    if std::future::poll_fn(|cx| stream.poll_fill(cx)).await? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                Progress::Closed => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
    }

    /// Waits until a read would make progress (data or the end of the stream), holding no
    /// buffer. Cancel-safe.
    pub async fn readable(&self) -> io::Result<()> {
        let tls = &self.tls;
        if !tls.plaintext.is_empty() || tls.read_closed || tls.failed {
            return Ok(());
        }
        self.tcp.readable().await
    }

    /// The TLS version negotiated.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.tls.conn.protocol_version()
    }

    /// The cipher suite negotiated.
    pub fn cipher_suite(&self) -> Option<SupportedCipherSuite> {
        self.tls.conn.negotiated_cipher_suite()
    }

    /// The application protocol negotiated with ALPN, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.tls.conn.alpn_protocol()
    }

    /// The TCP stream underneath.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Bytes of buffer this stream holds besides rustls's own state.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        let tls = &self.tls;
        tls.incoming.capacity() + tls.plaintext.capacity() + tls.outgoing.capacity()
    }

    /// Reads what the socket has into `incoming`: `Ok(0)` at the end of the stream (recorded
    /// in `read_closed`; an error if it cuts a record short). Waits for readability without a
    /// buffer, and lets go of an empty one if the socket had nothing after all.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.tls.incoming.len() >= MAX_INCOMING {
            return Poll::Ready(Err(invalid_data("TLS record too long")));
        }
        ready!(self.tcp.poll_read_ready(cx))?;
        let incoming = &mut self.tls.incoming;
        if incoming.capacity() - incoming.len() < READ_CHUNK / 4 {
            incoming.reserve(READ_CHUNK);
        }
        // A read into spare capacity, without initialising it first; one that does not fill
        // the buffer tells tokio the socket is drained, which saves a read that would only
        // return `EAGAIN`. Polled once, so it consumes nothing if it is not ready.
        let read = pin!(self.tcp.read_buf(incoming)).poll(cx);
        match read {
            Poll::Ready(Ok(0)) => {
                self.tls.read_closed = true;
                if self.tls.incoming.is_empty() {
                    Poll::Ready(Ok(0))
                } else {
                    Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()))
                }
            }
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => {
                if self.tls.incoming.is_empty() {
                    self.tls.incoming = BytesMut::new();
                }
                Poll::Pending
            }
        }
    }

    /// Writes `outgoing` until the socket has taken all of it, then lets go of the buffer.
    /// Cancel-safe: each write is accounted for as it completes.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outgoing = &mut self.tls.outgoing;
        while !outgoing.is_empty() {
            let written = ready!(Pin::new(&mut self.tcp).poll_write(cx, outgoing))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            outgoing.advance(written);
        }
        if outgoing.capacity() > 0 {
            *outgoing = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl Tls {
    /// Lets rustls process what arrived until it needs more bytes or the connection can carry
    /// data, then does `then`. Decrypted data goes to `plaintext`, everything rustls wants
    /// sent to `outgoing` (after a failure: its alert).
    fn drive(&mut self, then: Then<'_>) -> io::Result<Progress> {
        if self.failed {
            return Err(failed());
        }
        self.drive_rustls(then).map_err(|error| {
            self.failed = true;
            self.encode_alert();
            invalid_data(error)
        })
    }

    fn drive_rustls(&mut self, then: Then<'_>) -> Result<Progress, rustls::Error> {
        loop {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut self.incoming);
            let progress = match state? {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        let record = record?;
                        discard += record.discard;
                        self.plaintext.extend_from_slice(record.payload);
                    }
                    None
                }
                ConnectionState::EncodeTlsData(mut data) => {
                    append(&mut self.outgoing, 1024, |buf| {
                        data.encode(buf).map_err(encode_size)
                    })
                    .map_err(|()| rustls::Error::General("cannot encode a TLS record".into()))?;
                    None
                }
                // What was encoded stays in `outgoing` until the socket takes it.
                ConnectionState::TransmitTlsData(transmit) => {
                    transmit.done();
                    None
                }
                ConnectionState::BlockedHandshake => Some(Progress::NeedsInput),
                ConnectionState::WriteTraffic(mut traffic) => {
                    match then {
                        Then::Nothing => {}
                        Then::Encrypt(data) => {
                            let records = data.len().div_ceil(MAX_RECORD_DATA).max(1);
                            let guess = data.len() + records * RECORD_OVERHEAD;
                            append(&mut self.outgoing, guess, |buf| {
                                traffic.encrypt(data, buf).map_err(required_size)
                            })
                            .map_err(|()| rustls::Error::EncryptError)?;
                        }
                        Then::CloseNotify => {
                            append(&mut self.outgoing, RECORD_OVERHEAD, |buf| {
                                traffic.queue_close_notify(buf).map_err(required_size)
                            })
                            .map_err(|()| rustls::Error::EncryptError)?;
                            self.write_closed = true;
                        }
                    }
                    Some(Progress::Traffic)
                }
                ConnectionState::PeerClosed => {
                    self.read_closed = true;
                    None
                }
                ConnectionState::Closed => {
                    self.read_closed = true;
                    Some(Progress::Closed)
                }
                // Early data (the only other state) is never enabled.
                _ => return Err(rustls::Error::General("unexpected TLS state".into())),
            };
            self.incoming.advance(discard);
            if let Some(progress) = progress {
                if self.incoming.is_empty() && self.incoming.capacity() > 0 {
                    self.incoming = BytesMut::new();
                }
                return Ok(progress);
            }
        }
    }

    /// After rustls failed, encodes the alert it queued for the peer. Only while it has
    /// something queued: a call with nothing queued would process the bad input again.
    fn encode_alert(&mut self) {
        while self.conn.wants_write() {
            let UnbufferedStatus { state, .. } = self.conn.process_tls_records(&mut self.incoming);
            let Ok(ConnectionState::EncodeTlsData(mut data)) = state else {
                return;
            };
            let encoded = append(&mut self.outgoing, 64, |buf| {
                data.encode(buf).map_err(encode_size)
            });
            if encoded.is_err() {
                return;
            }
        }
    }
}

/// The size an encoding asked for, if that is why it failed.
fn encode_size(error: EncodeError) -> Option<usize> {
    match error {
        EncodeError::InsufficientSize(size) => Some(size.required_size),
        _ => None,
    }
}

/// The size an encryption asked for, if that is why it failed.
fn required_size(error: EncryptError) -> Option<usize> {
    match error {
        EncryptError::InsufficientSize(size) => Some(size.required_size),
        _ => None,
    }
}

/// Appends to `out` what `write` puts into a buffer of `guess` bytes, growing the buffer as
/// far as `write` asks (`Err(Some(size))`); `Err(())` if `write` fails otherwise.
fn append(
    out: &mut BytesMut,
    mut guess: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>,
) -> Result<(), ()> {
    let start = out.len();
    loop {
        out.resize(start + guess, 0);
        match write(&mut out[start..]) {
            Ok(written) => {
                out.truncate(start + written);
                return Ok(());
            }
            Err(Some(required)) if required > guess => guess = required,
            Err(_) => {
                out.truncate(start);
                return Err(());
            }
        }
    }
}

/// What every use of a connection that failed earlier gets.
fn failed() -> io::Error {
    invalid_data("the TLS connection failed earlier")
}

fn invalid_data(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            let plaintext = &mut this.tls.plaintext;
            if !plaintext.is_empty() {
                let n = plaintext.len().min(buf.remaining());
                buf.put_slice(&plaintext[..n]);
                plaintext.advance(n);
                if plaintext.is_empty() {
                    *plaintext = BytesMut::new();
                }
                return Poll::Ready(Ok(()));
            }
            if this.tls.read_closed {
                return Poll::Ready(Ok(()));
            }
            if this.tls.failed {
                return Poll::Ready(Err(failed()));
            }
            if ready!(this.poll_fill(cx))? == 0 {
                return Poll::Ready(Ok(()));
            }
            if let Err(error) = this.tls.drive(Then::Nothing) {
                // The alert leaves if the socket takes it now.
                let _ = this.poll_send(cx);
                return Poll::Ready(Err(error));
            }
            // rustls may have something to say of its own (a key update's answer); it leaves
            // now if the socket takes it, else with the next write.
            if !this.tls.outgoing.is_empty()
                && let Poll::Ready(Err(error)) = this.poll_send(cx)
            {
                return Poll::Ready(Err(error));
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // What was encrypted before leaves first: that is the backpressure.
        ready!(this.poll_send(cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.tls.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let data = &data[..data.len().min(MAX_WRITE)];
        let progress = this.tls.drive(Then::Encrypt(data))?;
        if progress != Progress::Traffic {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        // Start sending now; what the socket does not take leaves on the next write or flush.
        if let Poll::Ready(Err(error)) = this.poll_send(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // After a failure the alert is this side's last word.
        if !this.tls.write_closed && !this.tls.failed {
            this.tls.drive(Then::CloseNotify)?;
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

impl Readable for TlsStream {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        TlsStream::readable(self)
    }
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("tcp", &self.tcp)
            .field("version", &self.protocol_version())
            .finish_non_exhaustive()
    }
}
