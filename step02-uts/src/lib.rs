//! Step 02 of the container workshop: a hostname of the container's own ([`uts`]).

pub mod uts;
