//! Tokens beyond a credential set's shared one, for the Looker API gateway:
//!
//! - a **sudo** token (`POST /login/{user_id}` with the shared token) per credential
//!   set and Looker user, cached and shared by every session acting as that user;
//! - a **dev-workspace** token per gateway session: at Looker the workspace belongs to
//!   the token, so moving the shared token to dev would move every client with it.
//!   It is a login of its own (or a sudo of its own) switched to `dev`, and it is
//!   revoked when its session ends ([`Broker::end_owner`]).
//!
//! Each variant has one login in flight at a time (a tokio mutex held across the
//! login), its token journaled like every other, and revoked at shutdown with them.

use super::slot::CredSlot;
use super::{Broker, BrokerError, IssuedToken, LiveToken};
use crate::looker::{LookerApi, LookerError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Which token beyond the shared one a gateway session needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Variant {
    /// Act as this Looker user (sudo), or as the credentials' own user.
    pub user_id: Option<Arc<str>>,
    /// A token of its own in the dev workspace, owned by this gateway session.
    pub dev_owner: Option<u64>,
}

impl Variant {
    /// True for the shared token itself (no sudo, production).
    pub fn is_shared(&self) -> bool {
        self.user_id.is_none() && self.dev_owner.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    profile: Arc<str>,
    credential: Arc<str>,
    client_id: String,
    variant: Variant,
}

/// One variant's token and its single flight.
struct VariantSlot {
    slot: Arc<CredSlot>,
    /// Held across a login: waiters queue behind it and then find its token.
    flight: tokio::sync::Mutex<()>,
    /// The token (a std mutex: shutdown takes it without waiting on a login).
    token: Mutex<Option<Arc<LiveToken>>>,
}

impl VariantSlot {
    fn token(&self) -> MutexGuard<'_, Option<Arc<LiveToken>>> {
        self.token.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Every variant token of a broker.
#[derive(Default)]
pub(super) struct Variants {
    map: Mutex<HashMap<Key, Arc<VariantSlot>>>,
}

impl Variants {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Arc<VariantSlot>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the variants `gone` picks and takes their tokens, for revocation.
    fn take_where(
        &self,
        gone: impl Fn(&Key, &VariantSlot) -> bool,
    ) -> Vec<(Arc<dyn LookerApi>, Arc<LiveToken>)> {
        let removed: Vec<_> = {
            let mut map = self.lock();
            let keys: Vec<_> = map.iter().filter(|(k, v)| gone(k, v)).map(|(k, _)| k.clone()).collect();
            keys.into_iter().filter_map(|k| map.remove(&k)).collect()
        };
        removed.iter().filter_map(|v| Some((v.slot.api().ok()?, v.token().take()?))).collect()
    }

    /// Forgets the variants of credential sets that `kept` does not hold (removed or
    /// changed by a reload) and takes their tokens, for revocation: a sudo token lives
    /// as long as its set and would otherwise stay live at Looker until shutdown.
    pub(super) fn take_gone(&self, kept: &[Arc<CredSlot>]) -> Vec<(Arc<dyn LookerApi>, Arc<LiveToken>)> {
        self.take_where(|_, v| !kept.iter().any(|k| Arc::ptr_eq(k, &v.slot)))
    }

    /// Takes every variant token (for revocation at shutdown), leaving the slots empty.
    pub(super) fn take_all(&self) -> Vec<(Arc<dyn LookerApi>, Arc<LiveToken>)> {
        let slots: Vec<_> = self.lock().values().cloned().collect();
        slots.iter().filter_map(|v| Some((v.slot.api().ok()?, v.token().take()?))).collect()
    }
}

impl Broker {
    /// A token of `variant` from credential set `credential` of `profile` (both names
    /// as resolved: no defaults here), with at least `min_ttl` left. The shared
    /// variant is the set's ordinary token.
    pub async fn variant_token(
        &self,
        profile: &str,
        credential: &str,
        variant: &Variant,
        min_ttl: Duration,
    ) -> Result<IssuedToken, BrokerError> {
        if variant.is_shared() {
            return self.token(Some(profile), Some(credential), min_ttl).await;
        }
        if self.is_closed() {
            return Err(BrokerError::ShuttingDown);
        }
        let snap = self.snapshot();
        let (pname, p) = self.resolve(&snap, Some(profile))?;
        let slot = p.creds.iter().find(|s| *s.name == *credential).cloned().ok_or_else(|| {
            BrokerError::UnknownCredential { profile: pname.to_string(), credential: credential.to_string() }
        })?;
        let key = Key {
            profile: slot.profile.clone(),
            credential: slot.name.clone(),
            client_id: slot.client_id.clone(),
            variant: variant.clone(),
        };
        let vslot = self
            .inner
            .variants
            .lock()
            .entry(key)
            .or_insert_with(|| {
                Arc::new(VariantSlot {
                    slot: slot.clone(),
                    flight: tokio::sync::Mutex::new(()),
                    token: Mutex::new(None),
                })
            })
            .clone();
        let issue = |token: Arc<LiveToken>| IssuedToken {
            token,
            profile: slot.profile.clone(),
            credential: slot.name.clone(),
            base_url: p.base_url.clone(),
            issued: self.now(),
        };
        let fresh = |v: &VariantSlot| {
            let now = self.now();
            v.token().as_ref().filter(|t| t.remaining(now) >= min_ttl).cloned()
        };
        if let Some(t) = fresh(&vslot) {
            return Ok(issue(t));
        }
        let _flight = vslot.flight.lock().await;
        // Whoever held the flight before may have just brought one.
        if let Some(t) = fresh(&vslot) {
            return Ok(issue(t));
        }
        let token = self.obtain(&slot, variant).await?;
        if token.remaining(self.now()) < min_ttl {
            return Err(BrokerError::BadRequest(format!(
                "min_ttl {}s is longer than a token of profile {pname:?} can live",
                min_ttl.as_secs()
            )));
        }
        token.mark_handed_out();
        let old = vslot.token().replace(token.clone());
        if let (Some(old), Ok(api)) = (old, slot.api()) {
            self.revoke_in_background(self.now(), vec![(api, old)]);
        }
        if !self.serves(&slot) {
            // A reload replaced or removed the set while this login ran: its sweep of
            // the set's variants has passed, so this token would live on unrevoked.
            // (The reload's sweep may already have dropped `vslot` from the map, before
            // this token was in it: it is taken from `vslot` itself.)
            self.inner.variants.lock().retain(|_, v| !Arc::ptr_eq(v, &vslot));
            if let (Some(t), Ok(api)) = (vslot.token().take(), slot.api()) {
                self.revoke_in_background(self.now(), vec![(api, t)]);
            }
            return Err(BrokerError::Unavailable {
                profile: pname.to_string(),
                reason: format!("credential set {:?} changed while logging in; try again", &*slot.name),
            });
        }
        if self.is_closed() {
            // Shutdown began while this login ran: revoke_all may already have passed.
            if let (Some(t), Ok(api)) = (vslot.token().take(), slot.api()) {
                self.revoke_in_background(self.now(), vec![(api, t)]);
            }
            return Err(BrokerError::ShuttingDown);
        }
        Ok(issue(token))
    }

    /// True while the current config still holds `slot` (not replaced by a reload).
    fn serves(&self, slot: &Arc<CredSlot>) -> bool {
        self.snapshot().profiles.values().any(|p| p.creds.iter().any(|s| Arc::ptr_eq(s, slot)))
    }

    /// Logs in for a variant: sudo from the shared token and/or a login of its own,
    /// then the move to the dev workspace.
    async fn obtain(&self, slot: &Arc<CredSlot>, variant: &Variant) -> Result<Arc<LiveToken>, BrokerError> {
        let api = slot.api().map_err(|e| BrokerError::Unavailable {
            profile: slot.profile.to_string(),
            reason: e.to_string(),
        })?;
        let unavailable = |e: LookerError| BrokerError::Unavailable {
            profile: slot.profile.to_string(),
            reason: e.to_string(),
        };
        let refused = |e: LookerError| match e {
            LookerError::Rejected { status, message } => BrokerError::Refused { status, message },
            e => unavailable(e),
        };
        let token = match &variant.user_id {
            Some(user) => {
                let base = self.token(Some(&slot.profile), Some(&slot.name), Duration::from_secs(30)).await?;
                let _counted = super::tasks::Counted::new(&slot.shared().logins);
                let sent = self.now();
                let answer = api.login_user(&base.token.token, user).await.map_err(refused)?;
                slot.adopt(answer, sent).await
            }
            None => slot.login_unshared().await?,
        };
        if variant.dev_owner.is_some() {
            if let Err(e) = api.set_workspace(&token.token, "dev").await {
                self.revoke_in_background(self.now(), vec![(api.clone(), token)]);
                return Err(refused(e));
            }
        }
        tracing::info!(profile = %slot.profile, credential = %slot.name,
            sudo = variant.user_id.is_some(), dev = variant.dev_owner.is_some(),
            "logged in to Looker for a gateway session");
        Ok(token)
    }

    /// A gateway client saw a variant's token rejected (HTTP 401): drop it so the
    /// next request logs in anew, and revoke it. Unknown tokens are ignored.
    pub fn invalidate_variant(&self, variant: &Variant, access_token: &str) {
        let slots: Vec<_> = self
            .inner
            .variants
            .lock()
            .iter()
            .filter(|(k, _)| k.variant == *variant)
            .map(|(_, v)| v.clone())
            .collect();
        for v in slots {
            let mut t = v.token();
            if t.as_ref().is_some_and(|t| t.token.expose() == access_token) {
                if let (Some(old), Ok(api)) = (t.take(), v.slot.api()) {
                    self.revoke_in_background(self.now(), vec![(api, old)]);
                }
            }
        }
    }

    /// A gateway session ended: revoke the tokens only it used (its dev workspace).
    pub fn end_owner(&self, owner: u64) {
        let work = self.inner.variants.take_where(|k, _| k.variant.dev_owner == Some(owner));
        if !work.is_empty() {
            self.revoke_in_background(self.now(), work);
        }
    }
}
