//! The web dashboard's parts that know nothing of HTTP: the page's files, embedded in the
//! binary ([`assets`]), and the sign-in sessions the API accepts beside the bearer token
//! ([`session`]). The routes that serve them, the cookie, the CSRF check and the server-sent
//! events are `api::dashboard` (only `api` knows HTTP); the contract is docs/api.md, Dashboard.

pub mod assets;
pub mod session;

pub use assets::Asset;
pub use session::{Session, Sessions};
