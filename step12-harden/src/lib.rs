//! Step 12 of the container workshop: the defences Docker puts behind the namespaces
//! ([`harden`]): a cgroup namespace, masked and read-only paths in /proc and /sys, a reduced set
//! of capabilities, no_new_privs and a seccomp filter.

pub mod harden;
