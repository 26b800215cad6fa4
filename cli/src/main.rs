//! The `hongyan` command (see the `hongyan_cli` crate).

use clap::Parser;

/// mimalloc instead of glibc's malloc: glibc grows a thread's heap one page per `mprotect`
/// call, which cost the server ~14% of its CPU during a login storm, and its small
/// allocations on the message path are slower.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    hongyan_cli::init_logging();
    hongyan_cli::Cli::parse().run()
}
