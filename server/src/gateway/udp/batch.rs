//! Many datagrams per system call: `recvmmsg` and `sendmmsg` on Linux (through `nix`, whose
//! safe wrappers keep `unsafe` out of this crate), one `recv_from` or `send_to` each elsewhere.
//!
//! Every datagram is its own trip through the kernel's network stack either way; batching
//! saves the system call around it, the wakeup of the receiving task, and the readiness
//! bookkeeping (docs/PERFORMANCE.md, "UDP").

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use tokio::net::UdpSocket;

/// Datagrams read per system call, at most.
pub(super) const RECV_BATCH: usize = 32;

/// A batch of datagrams read from the socket: each one's sender, its length (that of the
/// whole datagram, even when it was larger than its buffer) and its bytes.
pub(super) struct Received {
    buffers: Vec<Box<[u8]>>,
    /// `(sender, whole length)` of each datagram read, in order.
    meta: Vec<(SocketAddr, usize)>,
}

impl Received {
    /// Room for [`RECV_BATCH`] datagrams of up to `max_len` bytes each; a larger one is read
    /// only far enough to learn its length.
    pub(super) fn new(max_len: usize) -> Self {
        Self {
            buffers: (0..RECV_BATCH)
                .map(|_| vec![0; max_len].into_boxed_slice())
                .collect(),
            meta: Vec::with_capacity(RECV_BATCH),
        }
    }

    /// Waits until at least one datagram was read, then holds every datagram already there
    /// (up to [`RECV_BATCH`]). Cancel-safe: waiting reads nothing.
    pub(super) async fn recv(&mut self, socket: &UdpSocket) -> io::Result<()> {
        self.meta.clear();
        loop {
            socket.readable().await?;
            match socket.try_io(tokio::io::Interest::READABLE, || self.read_now(socket)) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The datagrams read: sender, whole length, and the bytes held (all of them unless the
    /// datagram was larger than its buffer).
    pub(super) fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, usize, &[u8])> {
        self.meta
            .iter()
            .zip(&self.buffers)
            .map(|(&(peer, len), buffer)| (peer, len, &buffer[..len.min(buffer.len())]))
    }

    #[cfg(target_os = "linux")]
    fn read_now(&mut self, socket: &UdpSocket) -> io::Result<()> {
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd;

        use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};

        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(self.buffers.len(), None);
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buffers
            .iter_mut()
            .map(|buffer| [IoSliceMut::new(buffer)])
            .collect();
        // MSG_TRUNC: each message's length is the whole datagram's, so an oversized one is
        // recognised rather than read as the packet its first bytes might be.
        let received = recvmmsg(
            socket.as_raw_fd(),
            &mut headers,
            slices.iter_mut(),
            MsgFlags::MSG_TRUNC,
            None,
        )?;
        for message in received {
            if let Some(peer) = message.address.as_ref().and_then(socket_addr) {
                self.meta.push((peer, message.bytes));
            }
        }
        if self.meta.is_empty() {
            // Only datagrams without a usable sender address: nothing to hand over.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn read_now(&mut self, socket: &UdpSocket) -> io::Result<()> {
        let buffer = &mut self.buffers[0];
        // Without MSG_TRUNC a datagram that filled the buffer may have been cut short: the
        // buffer is one byte larger than the limit, so such a datagram is over it anyway.
        let (len, peer) = socket.try_recv_from(buffer)?;
        self.meta.push((peer, len));
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn socket_addr(address: &nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        Some(SocketAddr::V4((*v4).into()))
    } else {
        address
            .as_sockaddr_in6()
            .map(|v6| SocketAddr::V6((*v6).into()))
    }
}

/// Sends `bodies` to `peer`, as many per system call as the kernel takes, waiting while the
/// socket's send buffer is full.
pub(super) async fn send_all(
    socket: &UdpSocket,
    peer: SocketAddr,
    bodies: &[Bytes],
) -> io::Result<()> {
    let mut sent = 0;
    while sent < bodies.len() {
        socket.writable().await?;
        match socket.try_io(tokio::io::Interest::WRITABLE, || {
            send_now(socket, peer, &bodies[sent..])
        }) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends what the kernel takes at once of `bodies`; how many it took.
#[cfg(target_os = "linux")]
fn send_now(socket: &UdpSocket, peer: SocketAddr, bodies: &[Bytes]) -> io::Result<usize> {
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};

    if let [body] = bodies {
        // One datagram: no batch to build.
        return socket.try_send_to(body, peer).map(|_| 1);
    }
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(bodies.len(), None);
    let slices: Vec<[IoSlice<'_>; 1]> = bodies.iter().map(|b| [IoSlice::new(b)]).collect();
    let addresses = vec![Some(SockaddrStorage::from(peer)); bodies.len()];
    let sent = sendmmsg(
        socket.as_raw_fd(),
        &mut headers,
        &slices,
        &addresses,
        [],
        MsgFlags::empty(),
    )?;
    Ok(sent.count())
}

#[cfg(not(target_os = "linux"))]
fn send_now(socket: &UdpSocket, peer: SocketAddr, bodies: &[Bytes]) -> io::Result<usize> {
    socket.try_send_to(&bodies[0], peer).map(|_| 1)
}
