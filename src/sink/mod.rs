//! The paste service side of the daemon, whatever the service: the request
//! ([`request`]), a body and URL shaped by configuration ([`template`]), and
//! what an answer means ([`verdict`]). The publisher actor only sends and
//! acts on verdicts.

pub mod request;
pub mod template;
pub mod verdict;
