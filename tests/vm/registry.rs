//! The image crate's registry test support, shared: a real
//! docker-registry on loopback (in the lab too: the harness puts the
//! binary there) and the tests' own pusher.

#[path = "../../image/tests/support/mod.rs"]
pub mod support;

#[allow(dead_code)]
#[path = "../../image/tests/registry/push.rs"]
pub mod push;

#[allow(dead_code)]
#[path = "../../image/tests/registry/server.rs"]
pub mod server;
