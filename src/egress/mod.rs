//! The egress network mode: a guest that reaches only what an allow-list
//! names, with the host kernel as the wall (docs/egress.md).
//!
//! - [`policy`]: the allow-list and the decision it makes for a
//!   destination;
//! - [`sniff`]: where a connection says it goes, from its first bytes;
//! - [`events`]: the record of each attempt;
//! - [`proxy`]: the HTTP(S) proxy that applies the list;
//! - [`dns`]: the guest's DNS server (allowed names only, fake addresses);
//! - [`netns`]: the runner's network namespace, whose only way out is
//!   the listeners it makes for the egress process;
//! - [`handover`]: those listeners passed over a socket pair;
//! - [`factory`]: sockets the runner makes inside later, on request;
//! - [`transparent`]: listeners on the fake addresses, for programs that
//!   ignore the proxy;
//! - [`published`]: published ports carried in through the wall;
//! - [`service`]: the egress process the runner forks, serving them;
//! - [`fence`]: the egress process's own Landlock ruleset.

pub mod dns;
pub mod events;
pub mod factory;
pub mod fence;
pub mod handover;
pub mod netns;
pub mod policy;
pub mod proxy;
pub mod published;
pub mod rule;
pub mod service;
pub mod sniff;
pub mod transparent;

pub use events::{EgressEvent, Via};
pub use policy::{Decision, Denial, Destination, Policy, Reserved, Rule, RuleError};
pub use proxy::{EgressProxy, Resolver};
pub use service::{EgressSetup, WallError};
