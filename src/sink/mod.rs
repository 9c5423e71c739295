//! The paste service side of the daemon, whatever the service: the request
//! ([`request`]), a body and URL shaped by configuration ([`template`]),
//! what an answer means ([`verdict`]), when to send at all ([`circuit`]) and
//! how many at once ([`concurrency`]). The publisher actor only sends and
//! acts on verdicts.

pub mod circuit;
pub mod concurrency;
pub mod request;
pub mod template;
pub mod verdict;
