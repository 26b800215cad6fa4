//! Log lines that clients can cause without end (one per refused connection, per refused
//! login, per lost message) are rate-limited here, so a flood costs a few lines, not gigabytes
//! of log: the first [`BURST`] occurrences in each [`WINDOW`] are logged as usual, the rest are
//! only counted, and the count is logged as one summary line once the window is over
//! ("login refused: 5234 more in the last 10 s").
//!
//! Each kind of line has one `static` [`LogLimit`] next to the code that logs it:
//!
//! ```text
//! static REFUSED: LogLimit = LogLimit::info("tcp connection refused at the connection limit");
//! if REFUSED.allow() {
//!     tracing::info!(%peer, "tcp connection refused at the connection limit");
//! }
//! ```
//!
//! Summaries are logged by the next occurrence after the window, or by [`flush`], which the
//! server's retransmission task calls every 250 ms, so the tail of a flood is reported too.
//! How often a line may be logged is an observation, not a protocol rule, so this reads the
//! system clock rather than the core's.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long one window lasts.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);
/// Occurrences logged in full per window; the rest are counted.
pub(crate) const BURST: u32 = 5;

/// The level a summary is logged at: the level of the lines it stands for.
#[derive(Debug, Clone, Copy)]
enum Level {
    Info,
    Warn,
}

/// One kind of log line, rate-limited (see the module documentation).
#[derive(Debug)]
pub(crate) struct LogLimit {
    what: &'static str,
    level: Level,
    window: Mutex<Window>,
    /// Whether this limit is in [`PENDING`], so its summary is flushed on time.
    pending: AtomicBool,
}

#[derive(Debug)]
struct Window {
    started: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

/// Limits with occurrences counted but not yet summarised.
static PENDING: Mutex<Vec<&'static LogLimit>> = Mutex::new(Vec::new());

impl LogLimit {
    /// A limit for lines logged at INFO; `what` names them in the summary.
    pub(crate) const fn info(what: &'static str) -> Self {
        Self::new(what, Level::Info)
    }

    /// A limit for lines logged at WARN; `what` names them in the summary.
    pub(crate) const fn warn(what: &'static str) -> Self {
        Self::new(what, Level::Warn)
    }

    const fn new(what: &'static str, level: Level) -> Self {
        Self {
            what,
            level,
            window: Mutex::new(Window {
                started: None,
                logged: 0,
                suppressed: 0,
            }),
            pending: AtomicBool::new(false),
        }
    }

    /// Whether this occurrence may be logged in full; if not, it is counted for the summary.
    pub(crate) fn allow(&'static self) -> bool {
        let (allowed, register) = self.allow_at(Instant::now());
        if register {
            lock(&PENDING).push(self);
        }
        allowed
    }

    /// Whether this occurrence at `now` may be logged, and whether the limit must be added
    /// to [`PENDING`] (decided under the window's lock, as [`flush_at`](Self::flush_at)
    /// takes it out, so a count is never left behind).
    fn allow_at(&self, now: Instant) -> (bool, bool) {
        let mut window = lock(&self.window);
        if window
            .started
            .is_none_or(|started| now.saturating_duration_since(started) >= WINDOW)
        {
            self.summarise(&mut window);
            window.started = Some(now);
        }
        if window.logged < BURST {
            window.logged += 1;
            (true, false)
        } else {
            window.suppressed += 1;
            (false, !self.pending.swap(true, Ordering::AcqRel))
        }
    }

    /// Logs the summary of a window that is over at `now`; true if nothing is left to report.
    fn flush_at(&self, now: Instant) -> bool {
        let mut window = lock(&self.window);
        if window
            .started
            .is_some_and(|started| now.saturating_duration_since(started) >= WINDOW)
        {
            self.summarise(&mut window);
            window.started = None;
        }
        let done = window.suppressed == 0;
        if done {
            self.pending.store(false, Ordering::Release);
        }
        done
    }

    /// Logs how many occurrences the window counted without logging them, and starts afresh.
    fn summarise(&self, window: &mut Window) {
        let suppressed = std::mem::take(&mut window.suppressed);
        window.logged = 0;
        if suppressed == 0 {
            return;
        }
        let (what, secs) = (self.what, WINDOW.as_secs());
        match self.level {
            Level::Info => {
                tracing::info!(suppressed, "{what}: {suppressed} more in the last {secs} s");
            }
            Level::Warn => {
                tracing::warn!(suppressed, "{what}: {suppressed} more in the last {secs} s");
            }
        }
    }
}

/// Logs the summaries of windows that are over; the server's retransmission task calls it
/// every 250 ms.
pub(crate) fn flush() {
    let now = Instant::now();
    lock(&PENDING).retain(|limit| !limit.flush_at(now));
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .expect("log limit locks are never held across a panic-prone section")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_logged_then_counted_until_the_window_ends() {
        let limit = LogLimit::warn("test lines");
        let t0 = Instant::now();
        let allowed = (0..100).filter(|_| limit.allow_at(t0).0).count();
        assert_eq!(allowed, BURST as usize);
        assert_eq!(lock(&limit.window).suppressed, 100 - u64::from(BURST));
        assert!(!limit.flush_at(t0 + WINDOW / 2), "the window is not over");
        assert!(limit.flush_at(t0 + WINDOW), "summarised once it is over");
        assert_eq!(lock(&limit.window).suppressed, 0);
        assert!(limit.allow_at(t0 + WINDOW).0, "a new window logs again");
    }

    #[test]
    fn a_limit_is_queued_for_flushing_once_until_it_has_nothing_left() {
        let limit = LogLimit::warn("test lines");
        let t0 = Instant::now();
        for _ in 0..BURST {
            assert_eq!(limit.allow_at(t0), (true, false));
        }
        assert_eq!(limit.allow_at(t0), (false, true), "the first one counted");
        assert_eq!(limit.allow_at(t0), (false, false), "already queued");
        assert!(limit.flush_at(t0 + WINDOW));
        for _ in 0..BURST {
            limit.allow_at(t0 + WINDOW);
        }
        assert_eq!(limit.allow_at(t0 + WINDOW), (false, true), "queued again");
    }

    #[test]
    fn the_next_occurrence_after_a_window_summarises_it() {
        let limit = LogLimit::info("test lines");
        let t0 = Instant::now();
        for _ in 0..=BURST {
            limit.allow_at(t0);
        }
        assert_eq!(lock(&limit.window).suppressed, 1);
        assert!(limit.allow_at(t0 + WINDOW).0);
        assert_eq!(lock(&limit.window).suppressed, 0);
    }
}
