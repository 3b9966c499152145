//! The Looker API gateway: the agent serves the Looker API and forwards calls to the profile's Looker.
pub mod forward;
pub mod replay;
pub mod tcp_peer;
