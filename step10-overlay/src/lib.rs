//! Step 10 of the container workshop: a root filesystem made of an image's read-only layers and a
//! writable layer of the container's own ([`overlay`]), and the images they come from
//! ([`image`]).

pub mod image;
pub mod overlay;
