//! Removes what runtimes killed with SIGKILL left on the host: their state directories (with,
//! from step 10 on, the container's writable layer in them), cgroups and address leases. Never
//! touches what a running runtime still uses. (Every runtime also does this when it starts; this
//! is for looking at a machine without starting a container.)
//!
//! `scripts/cleanup` runs it.

use std::process::ExitCode;

use step01_clone::{cli, error};
use step06_rootfs::state;
use step07_cgroup::cgroup::{self, Layout};
use step09_net::net;

fn main() -> ExitCode {
    error::main(|| {
        cli::require_root()?;
        let mut removed = state::reclaim_stale();
        removed.extend(cgroup::reclaim_stale(&Layout::detect()?));
        removed.extend(net::reclaim_stale_leases());
        for path in &removed {
            println!("removed {}", path.display());
        }
        println!("{} left-overs of dead runtimes removed", removed.len());
        Ok(0)
    })
}
