//! Step 05 of the container workshop: a mount namespace with a /proc of its own ([`mount`]).

pub mod mount;
