//! CPU time and resident memory from `/proc`, for the server and for the generator itself.

/// Linux reports `utime`/`stime` in clock ticks of `USER_HZ`, which is 100 on every
/// architecture Linux supports for userspace.
const TICKS_PER_SECOND: f64 = 100.0;

/// Whose CPU time to read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cpu {
    /// A whole process (`/proc/<pid>/stat`).
    Process(u32),
    /// This process's threads whose name is one of `names` (`matching`), or none of them.
    Threads {
        names: &'static [&'static str],
        matching: bool,
    },
}

impl Cpu {
    /// User plus system CPU seconds used so far.
    pub(crate) fn seconds(&self) -> Option<f64> {
        match *self {
            Self::Process(pid) => stat_ticks(&format!("/proc/{pid}/stat")).map(to_seconds),
            Self::Threads { names, matching } => {
                let mut ticks = 0;
                for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
                    let dir = entry.path();
                    let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
                    if names.contains(&comm.trim_end()) == matching {
                        ticks += stat_ticks(&dir.join("stat").to_string_lossy()).unwrap_or(0);
                    }
                }
                Some(to_seconds(ticks))
            }
        }
    }
}

#[allow(clippy::cast_precision_loss)]
fn to_seconds(ticks: u64) -> f64 {
    ticks as f64 / TICKS_PER_SECOND
}

/// `utime + stime` from a `stat` file. The command name (field 2) may contain spaces, so
/// fields are counted from its closing parenthesis.
fn stat_ticks(path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` of a process, in bytes.
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Raises this process's soft limit on open files to its hard limit; returns the new soft
/// limit.
pub(crate) fn raise_file_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_and_memory_are_readable() {
        assert!(Cpu::Process(std::process::id()).seconds().is_some());
        assert!(rss_bytes(std::process::id()).is_some_and(|b| b > 0));
        let all = Cpu::Threads {
            names: &["no-such-thread"],
            matching: false,
        };
        assert!(all.seconds().is_some());
    }

    #[test]
    fn threads_are_counted_by_any_of_their_names() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::{Duration, Instant};

        let stop = Arc::new(AtomicBool::new(false));
        let burn = |name: &str| {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || {
                    // Busy until read: a thread that ended is no longer in /proc.
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
                .expect("a thread can be spawned")
        };
        let threads = [burn("probe-a"), burn("probe-b")];
        let both = Cpu::Threads {
            names: &["probe-a", "probe-b"],
            matching: true,
        };
        let one = Cpu::Threads {
            names: &["probe-a"],
            matching: true,
        };
        let read = |cpu: &Cpu| cpu.seconds().expect("own threads are readable");
        let deadline = Instant::now() + Duration::from_secs(30);
        // A tick is 10 ms: each thread has shown a few once this holds.
        let shown = || read(&one) >= 0.03 && read(&both) - read(&one) >= 0.03;
        let mut seen = shown();
        while !seen && Instant::now() < deadline {
            std::thread::yield_now();
            seen = shown();
        }
        stop.store(true, Ordering::Relaxed);
        for thread in threads {
            thread.join().expect("the thread ends");
        }
        assert!(
            seen,
            "both threads' CPU is counted, and only one's without the other"
        );
    }
}
