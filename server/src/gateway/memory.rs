//! An in-memory pipe: the core's protocol rules without sockets, in unit tests and in the
//! deterministic simulation.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::pipe::{Pipe, PipeError, PipeProperties};

/// A pipe that keeps what the core writes for the test to read, and gives the session loop
/// what the test queued. Every operation completes at once: it never waits.
#[derive(Debug)]
pub struct MemoryPipe {
    properties: PipeProperties,
    inbound: VecDeque<Bytes>,
    /// Bodies sent; the first `flushed` of them were flushed.
    written: Vec<Bytes>,
    flushed: usize,
    closed: bool,
    fail_writes: bool,
}

impl MemoryPipe {
    /// An empty pipe with `properties`, e.g. [`PipeProperties::of`] a transport.
    pub fn new(properties: PipeProperties) -> Self {
        Self {
            properties,
            inbound: VecDeque::new(),
            written: Vec::new(),
            flushed: 0,
            closed: false,
            fail_writes: false,
        }
    }

    /// Queues a body for [`recv`](Pipe::recv).
    pub fn push_inbound(&mut self, body: impl Into<Bytes>) {
        self.inbound.push_back(body.into());
    }

    /// Takes every body written so far, flushed or not.
    pub fn take_written(&mut self) -> Vec<Bytes> {
        self.flushed = 0;
        std::mem::take(&mut self.written)
    }

    /// Whether everything written so far was flushed.
    pub fn is_flushed(&self) -> bool {
        self.flushed == self.written.len()
    }

    /// What [`close`](Pipe::close) does, without giving the pipe up (a caller that keeps the
    /// pipe to read what was written): flushes and marks it closed, so later writes fail.
    pub fn close_in_place(&mut self) {
        self.flushed = self.written.len();
        self.closed = true;
    }

    /// Makes every later write fail, as a socket whose peer vanished does.
    pub fn fail_writes(&mut self) {
        self.fail_writes = true;
    }
}

impl Pipe for MemoryPipe {
    fn properties(&self) -> PipeProperties {
        self.properties
    }

    /// The next queued body; `None` once the queue is empty, as if the peer had left.
    async fn recv(&mut self) -> Option<Result<Bytes, PipeError>> {
        self.inbound.pop_front().map(Ok)
    }

    async fn send(&mut self, body: Bytes) -> Result<(), PipeError> {
        if self.fail_writes || self.closed {
            return Err(PipeError::Closed);
        }
        self.written.push(body);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), PipeError> {
        if self.fail_writes || self.closed {
            return Err(PipeError::Closed);
        }
        self.flushed = self.written.len();
        Ok(())
    }

    async fn close(mut self, _error: Option<PipeError>) {
        self.close_in_place();
    }
}
