//! Step 11 of the container workshop: a second process in a running container's namespaces
//! ([`enter`]), found by the name the container publishes in its state directory
//! ([`published`]).

pub mod enter;
pub mod published;
