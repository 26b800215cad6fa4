//! The soak (`hongyan_tests::soak`): a real server process, real clients on every transport
//! behind fault proxies, churn and duplicate logins, the server killed with SIGKILL and
//! restarted on its SQLite store; then the audit of every message and of
//! the server's memory and open files. Runs without libtest (`harness = false`): it is one
//! long test with a report of its own.
//!
//! `cargo test` runs the short form (300 clients, 60 s, a SIGKILL every 25 s; about 75 s).
//! The long form, with a JSON report (docs/RELIABILITY.md):
//!
//! ```sh
//! cargo test --release -p hongyan-tests --test soak -- \
//!     --seconds 1800 --clients 3000 --interval-ms 5000 --json target/soak.json
//! ```
//!
//! Every option of `SoakOptions` is a flag (`--churn-per-s 2`, `--drop 0.05`,
//! `--restart-every-s 0` for no crashes, …).
//!
//! The same binary is the server: started again with `--serve-child serve …`, it runs the
//! `hongyan` command's code, so the server under soak is a process of its own.

use std::process::ExitCode;

use clap::Parser;
use hongyan_tests::soak::server::SERVE_CHILD;
use hongyan_tests::soak::{SoakOptions, run};

/// As the `hongyan` binary allocates, so the server child's memory is the real server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The libtest flags `cargo test` may pass, which take no value and mean nothing here.
const LIBTEST_FLAGS: &[&str] = &["--nocapture", "--show-output", "--exact", "-q", "--quiet"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(SERVE_CHILD) {
        hongyan_cli::init_logging();
        let command = std::iter::once("hongyan".to_owned()).chain(args.into_iter().skip(1));
        return match hongyan_cli::Cli::parse_from(command).run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hongyan serve: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if args.iter().any(|a| a == "--list") {
        #[allow(
            clippy::print_stdout,
            reason = "libtest's listing format, read by tools"
        )]
        {
            println!("soak: test");
        }
        return ExitCode::SUCCESS;
    }
    // As libtest: a name filter that does not match, or a run of ignored tests only, runs
    // nothing.
    let filters: Vec<&String> = positional(&args);
    if args.iter().any(|a| a == "--ignored") || filters.iter().any(|f| !"soak".contains(f.as_str()))
    {
        return ExitCode::SUCCESS;
    }
    let options = match SoakOptions::parse(&args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let report = runtime.block_on(run(&options));
    eprintln!("{}", report.summary());
    let json = serde_json::to_string(&report).expect("the report serializes");
    if let Some(path) = value_of(&args, "--json") {
        std::fs::write(path, &json).expect("write the JSON report");
    }
    let violations = report.violations();
    if violations.is_empty() {
        eprintln!("soak: every promise kept");
        ExitCode::SUCCESS
    } else {
        for v in &violations {
            eprintln!("soak: VIOLATED: {v}");
        }
        eprintln!("soak: the server's log is {}", report.server.log);
        ExitCode::FAILURE
    }
}

/// The arguments that are neither flags nor a flag's value.
fn positional(args: &[String]) -> Vec<&String> {
    let mut out = Vec::new();
    let mut skip = false;
    for arg in args {
        if skip {
            skip = false;
        } else if arg.starts_with('-') {
            // A flag of ours, or libtest's `--test-threads 1` style: the next one is its value.
            skip = !arg.contains('=') && !LIBTEST_FLAGS.contains(&arg.as_str());
        } else {
            out.push(arg);
        }
    }
    out
}

fn value_of<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).map(String::as_str)
}
