//! Egress policy: which destinations a sandbox's network may reach.
//!
//! The first parts of the egress network mode (issue 12): the allow-list
//! and the decision it makes for a connection ([`policy`]), and where a
//! connection says it goes, from its first bytes ([`sniff`]), and the
//! record of each attempt ([`events`]), and the host-side proxy that
//! applies the list to a guest's HTTP(S) connections ([`proxy`]). The mode
//! itself (the runner in a network namespace of its own, and a host-side
//! proxy that applies the list and records each attempt) builds on it.

pub mod events;
pub mod policy;
pub mod proxy;
pub mod sniff;

pub use events::{EgressEvent, Via};
pub use policy::{Decision, Denial, Destination, Policy, Reserved, Rule, RuleError};
pub use proxy::{EgressProxy, Resolver};
