//! The seam to Looker: how the broker gets the API client for a profile
//! ([`UpstreamFactory`]); the daemon uses [`RealUpstream`], tests their own fakes.

use crate::config::Profile;
use crate::looker::client::LookerClient;
use crate::looker::{LookerApi, LookerError};
use std::sync::Arc;

/// Makes the Looker API client for a profile; tests substitute their own.
pub trait UpstreamFactory: Send + Sync + 'static {
    /// The API for `profile`, or why its settings cannot work.
    fn api_for(&self, profile: &Profile) -> Result<Arc<dyn LookerApi>, LookerError>;
}

/// The real thing: [`LookerClient`] over reqwest.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealUpstream;

impl UpstreamFactory for RealUpstream {
    fn api_for(&self, profile: &Profile) -> Result<Arc<dyn LookerApi>, LookerError> {
        if !profile.verify_tls {
            tracing::warn!(base_url = %profile.base_url,
                "TLS verification is OFF for this profile (verify_tls = false): anyone on the path can read its tokens");
        }
        Ok(Arc::new(LookerClient::new(profile)?))
    }
}
