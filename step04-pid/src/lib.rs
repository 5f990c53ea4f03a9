//! Step 04 of the container workshop: the container's first process is PID 1, and with
//! `--init` a minimal init does PID 1's duties for commands that are not a shell ([`init`]).

pub mod init;
