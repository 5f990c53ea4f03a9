//! Step 07 of the container workshop: limits on what the container may use ([`cgroup`]).

pub mod cgroup;
