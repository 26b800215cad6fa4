//! Test support (feature `testing`): [`TempPostgres`], a throwaway PostgreSQL server.
//!
//! Used by this crate's tests, and meant for the end-to-end and cluster tests: real
//! PostgreSQL, never a mock.
//!
//! ```no_run
//! # fn run() -> Result<(), hongyan_store::testing::HarnessError> {
//! let pg = hongyan_store::testing::TempPostgres::start()?;
//! let url = pg.create_database("messages")?; // postgres://postgres@127.0.0.1:PORT/messages
//! pg.stop()?; // the database is unreachable now…
//! pg.start_again()?; // …and back, same data, same port
//! # let _ = url;
//! # Ok(())
//! # } // dropped: server stopped, directory removed
//! ```

use std::ffi::OsStr;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Why a [`TempPostgres`] could not be set up or controlled.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// PostgreSQL's server programs are not installed.
    #[error(
        "PostgreSQL server programs (initdb, pg_ctl) not found in $HONGYAN_PG_BIN, on PATH or in \
         /usr/lib/postgresql/*/bin: run scripts/setup, which installs Debian's postgresql package"
    )]
    NotInstalled,
    /// A PostgreSQL program failed; `detail` holds its output and the server log's tail.
    #[error("{command} failed: {detail}")]
    Command {
        /// The program and its arguments.
        command: String,
        /// What it printed, and the end of the server log.
        detail: String,
    },
    /// The temporary directory could not be made or set up.
    #[error("temporary PostgreSQL directory: {0}")]
    Io(#[from] std::io::Error),
}

/// A PostgreSQL server of its own in a temporary directory, on a free loopback port.
///
/// [`start`](Self::start) runs `initdb` (with `--no-sync`: the cluster is thrown away) and
/// `pg_ctl start`, which waits, within a deadline, until the server accepts connections. The
/// server itself keeps `fsync=on`, so durability tests mean something. When the process runs
/// as root the server runs as the `postgres` user (PostgreSQL refuses root). Dropping it stops
/// the server (`pg_ctl stop -m immediate`) and removes the directory, also when a test
/// panicked.
#[derive(Debug)]
pub struct TempPostgres {
    bin: PathBuf,
    port: u16,
    server_user: Option<&'static str>,
    running: Mutex<bool>,
    // Declared last: dropped after the server stopped.
    dir: TempDir,
}

/// How long `pg_ctl` may wait for the server to start or stop.
const PG_CTL_WAIT: Duration = Duration::from_secs(60);
/// How many ports to try when another process takes the free port first.
const PORT_ATTEMPTS: usize = 5;

impl TempPostgres {
    /// Creates a cluster in a new temporary directory and starts its server.
    ///
    /// # Errors
    /// [`HarnessError::NotInstalled`] when PostgreSQL is missing; otherwise the step that
    /// failed, with its output.
    pub fn start() -> Result<Self, HarnessError> {
        let bin = find_bin().ok_or(HarnessError::NotInstalled)?;
        let dir = tempfile::Builder::new()
            .prefix("hongyan-postgres-")
            .tempdir()?;
        let server_user = is_root().then_some("postgres");
        std::fs::create_dir(dir.path().join("socket"))?;
        let mut pg = TempPostgres {
            bin,
            port: 0,
            server_user,
            running: Mutex::new(false),
            dir,
        };
        if let Some(user) = server_user {
            pg.run("chown", ["-R", user, &pg.dir.path().display().to_string()])?;
        }
        pg.run_server_program(
            "initdb",
            [
                "-D",
                &pg.data_dir(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            pg.port = free_port()?;
            match pg.start_again() {
                Ok(()) => return Ok(pg),
                Err(error)
                    if attempt < PORT_ATTEMPTS && pg.log_tail().contains("could not bind") =>
                {
                    tracing::debug!(%error, "port taken, trying another");
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` on this server, as the `postgres` superuser (trust auth).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates `database` and returns its URL.
    ///
    /// # Errors
    /// [`HarnessError::Command`] when `createdb` fails (the server is stopped, the name is
    /// taken).
    pub fn create_database(&self, database: &str) -> Result<String, HarnessError> {
        let port = self.port.to_string();
        self.run(
            self.bin.join("createdb"),
            ["-h", "127.0.0.1", "-p", &port, "-U", "postgres", database],
        )?;
        Ok(self.url(database))
    }

    /// Stops the server at once, as a crash would (`-m immediate`), keeping its data: clients
    /// see the database go away. Does nothing when it is stopped.
    ///
    /// # Errors
    /// [`HarnessError::Command`] when `pg_ctl stop` fails.
    pub fn stop(&self) -> Result<(), HarnessError> {
        let mut running = self.lock_running();
        if !*running {
            return Ok(());
        }
        let wait = PG_CTL_WAIT.as_secs().to_string();
        self.run_server_program(
            "pg_ctl",
            [
                "stop",
                "-D",
                &self.data_dir(),
                "-m",
                "immediate",
                "-w",
                "-t",
                &wait,
                "-s",
            ],
        )?;
        *running = false;
        Ok(())
    }

    /// Starts the server again on the same data and port, and returns once it accepts
    /// connections. Does nothing when it is running.
    ///
    /// # Errors
    /// [`HarnessError::Command`] when the server does not come up within a minute.
    pub fn start_again(&self) -> Result<(), HarnessError> {
        let mut running = self.lock_running();
        if *running {
            return Ok(());
        }
        let started = Instant::now();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200",
            self.port,
            self.dir.path().join("socket").display()
        );
        let wait = PG_CTL_WAIT.as_secs().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        self.run_server_program(
            "pg_ctl",
            [
                "start",
                "-D",
                &self.data_dir(),
                "-l",
                &log,
                "-w",
                "-t",
                &wait,
                "-s",
                "-o",
                &options,
            ],
        )?;
        *running = true;
        tracing::debug!(port = self.port, elapsed = ?started.elapsed(), "temporary postgres up");
        Ok(())
    }

    /// The end of the server's log, to explain a failure.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, bool> {
        // The flag is written last in each method, so a panic cannot leave it wrong.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one of PostgreSQL's server programs, as the server's user.
    fn run_server_program<'a>(
        &self,
        program: &str,
        args: impl IntoIterator<Item = &'a str>,
    ) -> Result<Output, HarnessError> {
        let program = self.bin.join(program).display().to_string();
        let args: Vec<&str> = args.into_iter().collect();
        match self.server_user {
            Some(user) => {
                let mut all = vec!["-u", user, "--", &program];
                all.extend(args);
                self.run("runuser", all)
            }
            None => self.run(program, args),
        }
    }

    fn run<'a>(
        &self,
        program: impl AsRef<OsStr>,
        args: impl IntoIterator<Item = &'a str>,
    ) -> Result<Output, HarnessError> {
        let mut command = Command::new(&program);
        command
            .args(args)
            // The server's user may not be allowed into the caller's directory.
            .current_dir(self.dir.path())
            .env("PGCONNECT_TIMEOUT", "10");
        let described = format!("{command:?}");
        let output = command.output().map_err(|e| HarnessError::Command {
            command: described.clone(),
            detail: e.to_string(),
        })?;
        if output.status.success() {
            return Ok(output);
        }
        Err(HarnessError::Command {
            command: described,
            detail: format!(
                "{}\n{}{}\n--- server log ---\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                self.log_tail()
            ),
        })
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        // The pid file, not the flag, says whether a server may be running: a start that timed
        // out may still have left one behind.
        let pid_file = self.dir.path().join("data").join("postmaster.pid");
        if !pid_file.exists() {
            return;
        }
        *self.lock_running() = true;
        if let Err(error) = self.stop() {
            // Last resort, so no server outlives the test: kill the postmaster by its pid.
            tracing::warn!(%error, "pg_ctl stop failed; killing the server");
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|text| text.lines().next().map(str::to_owned))
            {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
        }
    }
}

/// Where `initdb` and `pg_ctl` live: `$HONGYAN_PG_BIN`, then the directory `pg_ctl` on PATH
/// really lives in (Debian links some programs into PATH, never `initdb`), then the newest
/// `/usr/lib/postgresql/*/bin`.
fn find_bin() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("HONGYAN_PG_BIN").map(PathBuf::from) {
        return has_both(&dir).then_some(dir);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .filter_map(|dir| std::fs::canonicalize(dir.join("pg_ctl")).ok())
        .filter_map(|pg_ctl| pg_ctl.parent().map(Path::to_path_buf))
        .find(|dir| has_both(dir));
    if on_path.is_some() {
        return on_path;
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_both(dir))
        .collect();
    debian.sort();
    debian.pop().map(|(_, dir)| dir)
}

/// A port nothing listens on right now (another process may still take it first: `start`
/// then tries another).
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_postgresql_points_at_scripts_setup() {
        assert!(
            HarnessError::NotInstalled
                .to_string()
                .contains("scripts/setup")
        );
    }
}
