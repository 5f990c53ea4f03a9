//! Step 08 of the container workshop: ids of the container's own ([`userns`]), and, since root
//! inside is no longer root outside, a terminal of its own ([`console`]).

pub mod console;
pub mod userns;
