//! API key rotation (`lookerctl credential rotate`): a new API3 key for the
//! credential's own Looker user, proved to log in and stored before the config
//! names it, and the old key deleted at Looker only after that.
//!
//! ## Steps
//!
//! 1. Log in with the current key (the secret from the store), `GET /user`,
//!    `GET /users/{id}/credentials_api3` to find the current key's id.
//! 2. Write the rotation record, step `creating` (old client_id and key id, the
//!    `purpose` tag the new key will carry).
//! 3. `POST /users/{id}/credentials_api3 {"purpose": TAG}`: the only answer that holds
//!    the new secret.
//! 4. Record step `created` (new client_id and key id), store the new secret under the
//!    new client_id (next to the old one: the store keys secrets by client_id).
//! 5. Log in with the new key (and log that token out): it works.
//! 6. Edit the config (locked read-modify-write) to name the new client_id; record
//!    step `switched`.
//! 7. `DELETE /users/{id}/credentials_api3/{old key id}`, delete the old secret, log
//!    out the token of step 1, remove the record.
//!
//! ## The record and recovery
//!
//! The record is a small JSON file, `$XDG_STATE_HOME/looker-agent/rotations/PROFILE/CREDENTIAL.json`
//! (0600; ids and a tag, never a secret), written atomically before each step that
//! changes Looker or the config. A rotation holds `CREDENTIAL.lock` next to it for its
//! whole run, so two never interleave. The next rotation of the credential reads it
//! first; what it does depends on the record and on what the config names, since a
//! crash may fall between a change and the record's next write:
//!
//! | record | config names | recovery |
//! | --- | --- | --- |
//! | any step, with a new key | the new client_id | finish: delete the old key (already gone is fine), the old secret, the record |
//! | `creating` | the old client_id | the create may have happened unanswered: delete every key of the user carrying the record's tag, remove the record, rotate afresh |
//! | `created` | the old client_id | the new secret stored and logging in: go on from step 6; else delete the new key and its secret, remove the record, rotate afresh |
//! | any | neither | stop and say so: someone else changed the credential |
//!
//! So at any moment the config names a key that exists and whose secret is stored,
//! and every key the rotation created is either the one the config names or one the
//! record lets the next run find and delete. Keys are recognised by their tag, never
//! by being merely unknown, so a key someone else made meanwhile is left alone.
//!
//! A failure Looker answered (a refusal, a 5xx) is cleaned up at once where it can be;
//! where it cannot (Looker down), the record stays for the next run. The tokens a
//! killed run held cannot be logged out by the next (they were in its memory only):
//! they expire by themselves (an hour at Looker).

use crate::config::{Config, ConfigError};
use crate::config_edit::{ConfigEditor, EditError};
use crate::files::{atomic::AtomicFile, lock, private_dir};
use crate::looker::{LookerApi, LookerError};
use crate::secret::Secret;
use crate::store::{SecretKey, SharedStore, StoreError};
use std::path::{Path, PathBuf};

/// The step a rotation had reached when its record was last written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// About to ask Looker for a new key (it may exist, unanswered).
    Creating,
    /// Looker created the new key (ids known); the config still names the old one.
    Created,
    /// The config names the new key; the old one is still to be deleted.
    Switched,
}

/// What a rotation in progress left on disk (no secret in it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The step reached.
    pub step: Step,
    /// The Looker user whose keys these are.
    pub user_id: String,
    /// The key being replaced.
    pub old_client_id: String,
    /// Its credentials_api3 id.
    pub old_key_id: String,
    /// The `purpose` the new key is created with, to recognise it.
    pub tag: String,
    /// The new key's client_id, once Looker answered.
    #[serde(default)]
    pub new_client_id: Option<String>,
    /// The new key's credentials_api3 id, once Looker answered.
    #[serde(default)]
    pub new_key_id: Option<String>,
    /// Unix time the rotation started.
    pub started_at_unix: i64,
}

/// Why a rotation stopped. Every message says what happened to the credential.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The config cannot be read or saved.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The profile or credential does not exist, or the edit was refused.
    #[error(transparent)]
    Edit(#[from] EditError),
    /// The credential's secret comes from a command: nowhere to store a new one.
    #[error("{profile}/{credential} takes its secret from a command (`source`); rotate the key where that secret lives, then update it there")]
    SourceCredential {
        /// Profile.
        profile: String,
        /// Credential set.
        credential: String,
    },
    /// The credential is an OAuth grant: it has no API key to rotate.
    #[error("{profile}/{credential} is an OAuth grant from `lookerctl login`, not an API key: there is no key to rotate (sign in again with `lookerctl login {profile} --name {credential}` to get a new grant)")]
    OAuthCredential {
        /// Profile.
        profile: String,
        /// Credential set.
        credential: String,
    },
    /// Looker refused to manage the user's keys (403).
    #[error("Looker refused to {action} user {user_id} (HTTP {status}): self-service API keys are off and this user is not an admin; ask an admin, or rotate in Looker's admin panel. Nothing was changed")]
    Refused {
        /// `create an API key for`, `list the API keys of`.
        action: &'static str,
        /// The user.
        user_id: String,
        /// Looker's status.
        status: u16,
    },
    /// A Looker call failed; `state` says where that leaves the credential.
    #[error("{what}: {source}; {state}")]
    Looker {
        /// The call.
        what: String,
        /// Looker's error.
        source: LookerError,
        /// What it means for the credential and what to do.
        state: String,
    },
    /// The secret store failed; `state` as for [`RotateError::Looker`].
    #[error("secret store: {source}; {state}")]
    Store {
        /// The store's error.
        source: StoreError,
        /// What it means for the credential.
        state: String,
    },
    /// The rotation record cannot be read or written.
    #[error("rotation record {path}: {source}")]
    Record {
        /// The record or its lock.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another rotation of this credential runs.
    #[error("another rotation of {profile}/{credential} is running (it holds {lock}); let it finish")]
    Busy {
        /// Profile.
        profile: String,
        /// Credential set.
        credential: String,
        /// Its lock file.
        lock: PathBuf,
    },
    /// The world does not match the record or the config.
    #[error("{0}")]
    Conflict(String),
    /// The config no longer names the key the caller meant to rotate: someone else
    /// rotated it meanwhile (see [`Rotator::rotate_key`]). Nothing was changed.
    #[error("{profile}/{credential} was rotated meanwhile: the config names {current}, not {expected}; nothing was changed")]
    Superseded {
        /// Profile.
        profile: String,
        /// Credential set.
        credential: String,
        /// The key the caller meant.
        expected: String,
        /// The key the config names now.
        current: String,
    },
}

impl RotateError {
    /// The Looker error behind it, if any (for the exit status).
    pub fn looker(&self) -> Option<&LookerError> {
        match self {
            RotateError::Looker { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What a finished rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// The credential set rotated.
    pub credential: String,
    /// The Looker user whose key it is.
    pub user_id: String,
    /// The key replaced (deleted at Looker).
    pub old_client_id: String,
    /// The key the config names now.
    pub new_client_id: String,
    /// True when this run finished a rotation an earlier run left half done.
    pub resumed: bool,
    /// Things that did not work but leave the credential working.
    pub warnings: Vec<String>,
}

/// Where the rotation records of a profile's credential live.
pub struct RecordFiles {
    record: PathBuf,
    lock: PathBuf,
}

impl RecordFiles {
    /// The files under `state_dir` (`$XDG_STATE_HOME/looker-agent`).
    pub fn new(state_dir: &Path, profile: &str, credential: &str) -> RecordFiles {
        let dir = state_dir.join("rotations").join(profile);
        RecordFiles {
            record: dir.join(format!("{credential}.json")),
            lock: dir.join(format!("{credential}.lock")),
        }
    }

    /// The record's path.
    pub fn record_path(&self) -> &Path {
        &self.record
    }

    fn err(&self, source: std::io::Error) -> RotateError {
        RotateError::Record { path: self.record.clone(), source }
    }

    /// The record left by an earlier run, if any.
    pub fn read(&self) -> Result<Option<Record>, RotateError> {
        match std::fs::read(&self.record) {
            Ok(body) => serde_json::from_slice(&body).map(Some).map_err(|e| {
                self.err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("unreadable: {e}")))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    fn write(&self, record: &Record) -> Result<(), RotateError> {
        let dir = self.record.parent().unwrap_or(Path::new("."));
        let body =
            serde_json::to_vec_pretty(record).map_err(|e| self.err(std::io::Error::other(e.to_string())))?;
        let mut tmp = AtomicFile::in_folder(dir, ".rotation-", ".tmp").map_err(|e| self.err(e))?;
        tmp.write_synced(&body).map_err(|e| self.err(e))?;
        tmp.commit(&self.record).map_err(|e| self.err(e))
    }

    fn remove(&self) -> Result<(), RotateError> {
        match std::fs::remove_file(&self.record) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    fn lock(&self, profile: &str, credential: &str) -> Result<std::fs::File, RotateError> {
        let dir = self.lock.parent().unwrap_or(Path::new("."));
        private_dir::create_all(dir).map_err(|e| self.err(e))?;
        let file = lock::open_or_create(&self.lock).map_err(|e| self.err(e))?;
        match lock::try_exclusive(&file) {
            Ok(true) => Ok(file),
            Ok(false) => Err(RotateError::Busy {
                profile: profile.into(),
                credential: credential.into(),
                lock: self.lock.clone(),
            }),
            Err(e) => Err(self.err(e)),
        }
    }
}

/// One rotation's surroundings.
pub struct Rotator<'a> {
    /// The config file.
    pub config_path: &'a Path,
    /// `$XDG_STATE_HOME/looker-agent` (where records live).
    pub state_dir: &'a Path,
    /// The secret store.
    pub store: &'a SharedStore,
    /// The profile's Looker.
    pub api: &'a dyn LookerApi,
}

const UNCHANGED: &str = "nothing was changed: the credential still uses its current key";

fn looker(what: impl Into<String>, source: LookerError, state: impl Into<String>) -> RotateError {
    RotateError::Looker { what: what.into(), source, state: state.into() }
}

fn random_tag() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    format!("looker-agent rotation {}", Alphanumeric.sample_string(&mut rand::rng(), 12))
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The credential named (or the profile's first) and its client_id in the config.
fn configured(cfg: &Config, profile: &str, name: Option<&str>) -> Result<(String, String), RotateError> {
    let p = cfg.profiles.get(profile).ok_or_else(|| EditError::UnknownProfile { profile: profile.into() })?;
    let c = match name {
        Some(n) => p
            .credential(n)
            .ok_or_else(|| EditError::UnknownCredential { profile: profile.into(), credential: n.into() })?,
        None => p.credentials.first().ok_or_else(|| EditError::UnknownCredential {
            profile: profile.into(),
            credential: "(none: the profile has no credential set)".into(),
        })?,
    };
    if c.kind == crate::config::CredentialKind::Oauth {
        return Err(RotateError::OAuthCredential { profile: profile.into(), credential: c.name.clone() });
    }
    if c.secret_source().is_some() {
        return Err(RotateError::SourceCredential { profile: profile.into(), credential: c.name.clone() });
    }
    Ok((c.name.clone(), c.client_id.clone()))
}

impl Rotator<'_> {
    /// Rotates the key of `profile`'s credential `name` (default: the first),
    /// finishing or cleaning up what an interrupted earlier run left first.
    pub async fn rotate(&self, profile: &str, name: Option<&str>) -> Result<Rotated, RotateError> {
        self.rotate_key(profile, name, None).await
    }

    /// [`Rotator::rotate`], but a new key is made only while the config still names
    /// `expected` (when given), checked under the rotation lock: a caller that decided
    /// from what it saw earlier (the agent's key upkeep) never rotates a key another
    /// run has just put in place ([`RotateError::Superseded`]).
    pub async fn rotate_key(
        &self,
        profile: &str,
        name: Option<&str>,
        expected: Option<&str>,
    ) -> Result<Rotated, RotateError> {
        let cfg = Config::load(self.config_path)?;
        let (cname, _) = configured(&cfg, profile, name)?;
        let files = RecordFiles::new(self.state_dir, profile, &cname);
        let _held = files.lock(profile, &cname)?;
        let key = SecretKey::new(profile, cname.as_str());
        if let Some(record) = files.read()? {
            if let Some(done) = self.recover(&files, &key, record).await? {
                return Ok(done);
            }
        }
        if let Some(expected) = expected {
            // Read again under the lock: the config loaded above may predate the end
            // of another run that held it.
            let current = self.current_client_id(&key)?;
            if current != expected {
                return Err(RotateError::Superseded {
                    profile: profile.into(),
                    credential: cname,
                    expected: expected.into(),
                    current,
                });
            }
        }
        self.fresh(&files, &key).await
    }

    /// The client_id the config names for `key` now.
    fn current_client_id(&self, key: &SecretKey) -> Result<String, RotateError> {
        let cfg = Config::load(self.config_path)?;
        Ok(configured(&cfg, &key.profile, Some(&key.credential))?.1)
    }

    async fn login(&self, key: &SecretKey, client_id: &str, state: &str) -> Result<Secret, RotateError> {
        let secret = self
            .store
            .get(key, client_id)
            .await
            .map_err(|source| RotateError::Store { source, state: state.into() })?;
        let token = self
            .api
            .login(client_id, &secret)
            .await
            .map_err(|e| looker(format!("cannot log in with the key {client_id}"), e, state))?;
        Ok(token.access_token)
    }

    async fn logout(&self, token: &Secret, warnings: &mut Vec<String>) {
        if let Err(e) = self.api.logout(token).await {
            warnings.push(format!("could not log out a token of the rotation ({e}); it expires by itself"));
        }
    }

    /// Finishes or undoes what `record` describes; `Some` when that finished a rotation.
    async fn recover(
        &self,
        files: &RecordFiles,
        key: &SecretKey,
        mut record: Record,
    ) -> Result<Option<Rotated>, RotateError> {
        let current = self.current_client_id(key)?;
        let again = format!(
            "the rotation record {} stays: run `lookerctl credential rotate {} {}` again",
            files.record_path().display(),
            key.profile,
            key.credential
        );
        tracing::info!(profile = %key.profile, credential = %key.credential, step = ?record.step, "resuming an interrupted key rotation");
        if record.new_client_id.as_deref() == Some(current.as_str()) {
            let token = self.login(key, &current, &again).await?;
            record.step = Step::Switched;
            return self.finish(files, key, record, token, None, true).await.map(Some);
        }
        if current != record.old_client_id {
            return Err(RotateError::Conflict(format!(
                "{}/{} names client_id {current}, neither the old ({}) nor the new key of the interrupted \
                 rotation in {}; check the keys of user {} in Looker's admin panel, then delete that file",
                key.profile,
                key.credential,
                record.old_client_id,
                files.record_path().display(),
                record.user_id
            )));
        }
        let old_token = self.login(key, &current, &again).await?;
        let mut warnings = Vec::new();
        if let (Step::Created | Step::Switched, Some(new_id), Some(new_key_id)) =
            (record.step, record.new_client_id.clone(), record.new_key_id.clone())
        {
            // The new key exists; usable if its secret was stored and it logs in.
            if let Ok(secret) = self.store.get(key, &new_id).await {
                match self.api.login(&new_id, &secret).await {
                    Ok(t) => {
                        self.logout(&t.access_token, &mut warnings).await;
                        let done = self.switch(files, key, record, old_token, warnings).await?;
                        return Ok(Some(Rotated { resumed: true, ..done }));
                    }
                    Err(LookerError::Rejected { .. }) => {}
                    Err(e) => {
                        return Err(looker(format!("cannot log in with the new key {new_id}"), e, again))
                    }
                }
            }
            self.delete_key(&old_token, &record.user_id, &new_key_id, &again).await?;
            self.drop_secret(key, &new_id, &mut warnings).await;
        } else {
            self.delete_tagged(&old_token, &record, &again).await?;
        }
        files.remove()?;
        self.logout(&old_token, &mut warnings).await;
        Ok(None)
    }

    async fn delete_key(
        &self,
        token: &Secret,
        user: &str,
        key_id: &str,
        state: &str,
    ) -> Result<(), RotateError> {
        self.api
            .delete_api3_key(token, user, key_id)
            .await
            .map(|_| ())
            .map_err(|e| looker(format!("cannot delete the API key {key_id} of user {user}"), e, state))
    }

    /// Deletes every key of the record's user carrying its tag (but the old key).
    async fn delete_tagged(&self, token: &Secret, record: &Record, state: &str) -> Result<(), RotateError> {
        let keys =
            self.api.api3_keys(token, &record.user_id).await.map_err(|e| {
                looker(format!("cannot list the API keys of user {}", record.user_id), e, state)
            })?;
        for k in
            keys.iter().filter(|k| k.purpose.as_deref() == Some(&record.tag) && k.id != record.old_key_id)
        {
            self.delete_key(token, &record.user_id, &k.id, state).await?;
        }
        Ok(())
    }

    async fn drop_secret(&self, key: &SecretKey, client_id: &str, warnings: &mut Vec<String>) {
        if let Err(e) = self.store.delete_client_id(key, client_id).await {
            warnings.push(format!(
                "the secret stored for client_id {client_id} could not be deleted ({e}); it is never used"
            ));
        }
    }

    /// Steps 1 to 7 from the start.
    async fn fresh(&self, files: &RecordFiles, key: &SecretKey) -> Result<Rotated, RotateError> {
        let old_id = self.current_client_id(key)?;
        let old_token = self.login(key, &old_id, UNCHANGED).await?;
        let mut warnings = Vec::new();
        let result = self.fresh_with(files, key, &old_id, &old_token, &mut warnings).await;
        match result {
            Ok(record) => self.switch(files, key, record, old_token, warnings).await,
            Err(e) => {
                self.logout(&old_token, &mut warnings).await;
                Err(e)
            }
        }
    }

    /// Steps 1 to 5: the new key created, stored and proved; its record returned.
    async fn fresh_with(
        &self,
        files: &RecordFiles,
        key: &SecretKey,
        old_id: &str,
        old_token: &Secret,
        warnings: &mut Vec<String>,
    ) -> Result<Record, RotateError> {
        let user =
            self.api.user(old_token).await.map_err(|e| looker("cannot read the key's user", e, UNCHANGED))?;
        let refused = |e: LookerError, action: &'static str, what: String| match e {
            LookerError::Rejected { status: 403, .. } => {
                RotateError::Refused { action, user_id: user.id.clone(), status: 403 }
            }
            e => looker(what, e, UNCHANGED),
        };
        let keys = self.api.api3_keys(old_token, &user.id).await.map_err(|e| {
            refused(e, "list the API keys of", format!("cannot list the API keys of user {}", user.id))
        })?;
        let old_key = keys.iter().find(|k| k.client_id == old_id).ok_or_else(|| {
            RotateError::Conflict(format!(
                "the key {old_id} is not among the API keys of user {} it logs in as; {UNCHANGED}",
                user.id
            ))
        })?;
        let mut record = Record {
            step: Step::Creating,
            user_id: user.id.clone(),
            old_client_id: old_id.to_string(),
            old_key_id: old_key.id.clone(),
            tag: random_tag(),
            new_client_id: None,
            new_key_id: None,
            started_at_unix: now_unix(),
        };
        files.write(&record)?;
        let created = match self.api.create_api3_key(old_token, &user.id, &record.tag).await {
            Ok(c) => c,
            Err(e @ LookerError::Rejected { .. }) => {
                files.remove()?;
                return Err(refused(
                    e,
                    "create an API key for",
                    "Looker refused to create the new key".into(),
                ));
            }
            Err(e) => {
                // The key may exist, its answer lost: find it by its tag.
                let state = match self.delete_tagged(old_token, &record, UNCHANGED).await.and_then(|_| files.remove()) {
                    Ok(()) => UNCHANGED.to_string(),
                    Err(_) => format!(
                        "the credential still uses its current key; a key Looker may have created is deleted by \
                         the next `lookerctl credential rotate {} {}`",
                        key.profile, key.credential
                    ),
                };
                return Err(looker("cannot create the new key", e, state));
            }
        };
        let new_id = created.key.client_id.clone();
        record.step = Step::Created;
        record.new_client_id = Some(new_id.clone());
        record.new_key_id = Some(created.key.id.clone());
        let new_key_id = created.key.id.clone();
        let undo = |why| self.undo(files, old_token, &user.id, &new_key_id, why);
        if let Err(e) = files.write(&record) {
            return Err(undo(e).await);
        }
        if let Err(source) = self.store.set(key, &new_id, &created.client_secret).await {
            return Err(undo(RotateError::Store { source, state: UNCHANGED.into() }).await);
        }
        match self.api.login(&new_id, &created.client_secret).await {
            Ok(t) => self.logout(&t.access_token, warnings).await,
            Err(e) => {
                self.drop_secret(key, &new_id, warnings).await;
                return Err(undo(looker(format!("the new key {new_id} does not log in"), e, UNCHANGED)).await);
            }
        }
        Ok(record)
    }

    /// Deletes the new key again after `why` stopped the rotation before the config
    /// named it; when that fails too, the record stays for the next run.
    async fn undo(
        &self,
        files: &RecordFiles,
        token: &Secret,
        user: &str,
        new_key_id: &str,
        why: RotateError,
    ) -> RotateError {
        match self.delete_key(token, user, new_key_id, UNCHANGED).await {
            Ok(()) => match files.remove() {
                Ok(()) => why,
                Err(e) => RotateError::Conflict(format!("{why}; and {e}")),
            },
            Err(e) => RotateError::Conflict(format!(
                "{why}; and the new key could not be deleted again ({e}): the next `lookerctl credential \
                 rotate` deletes it; the credential still uses its current key"
            )),
        }
    }

    /// Step 6 and on: the config switched to the proved new key, then [`Self::finish`].
    async fn switch(
        &self,
        files: &RecordFiles,
        key: &SecretKey,
        record: Record,
        old_token: Secret,
        warnings: Vec<String>,
    ) -> Result<Rotated, RotateError> {
        let new_id = record.new_client_id.clone().unwrap_or_default();
        // The edit may wait for another edit's lock (up to LOCK_WAIT): off the async
        // threads, since the agent runs rotations too (daemon/key_upkeep.rs).
        let edit = {
            let (path, key, old_id, new_id) =
                (self.config_path.to_path_buf(), key.clone(), record.old_client_id.clone(), new_id.clone());
            move || -> Result<(), RotateError> {
                let mut ed = ConfigEditor::open(&path)?;
                let (_, current) = configured(&ed.config()?, &key.profile, Some(&key.credential))?;
                if current != old_id {
                    return Err(RotateError::Conflict(format!(
                        "{}/{} was changed to client_id {current} during the rotation",
                        key.profile, key.credential
                    )));
                }
                ed.add_credential(&key.profile, &key.credential, &new_id)?;
                ed.save()?;
                Ok(())
            }
        };
        let saved = tokio::task::spawn_blocking(edit)
            .await
            .unwrap_or_else(|e| Err(RotateError::Conflict(format!("the config edit did not finish: {e}"))));
        if let Err(e) = saved {
            // A failed save may still have renamed the file into place: the config says.
            if self.current_client_id(key).ok().as_deref() != Some(new_id.as_str()) {
                let _ = self.api.logout(&old_token).await;
                return Err(RotateError::Conflict(format!(
                    "{e}; the credential still uses its current key; the new key {new_id} is stored and the \
                     next `lookerctl credential rotate {} {}` finishes the rotation",
                    key.profile, key.credential
                )));
            }
        }
        let mut record = record;
        record.step = Step::Switched;
        let mut warnings = warnings;
        if let Err(e) = files.write(&record) {
            warnings.push(format!("{e} (the rotation finishes anyway)"));
        }
        self.finish(files, key, record, old_token, Some(warnings), false).await
    }

    /// Step 7: the old key and secret deleted, the record removed.
    async fn finish(
        &self,
        files: &RecordFiles,
        key: &SecretKey,
        record: Record,
        token: Secret,
        warnings: Option<Vec<String>>,
        resumed: bool,
    ) -> Result<Rotated, RotateError> {
        let mut warnings = warnings.unwrap_or_default();
        let new_id = record.new_client_id.clone().unwrap_or_default();
        let state = format!(
            "the credential uses the new key {new_id} already; the old key {} still exists at Looker: \
             run `lookerctl credential rotate {} {}` again to delete it",
            record.old_client_id, key.profile, key.credential
        );
        let deleted = self.delete_key(&token, &record.user_id, &record.old_key_id, &state).await;
        if let Err(e) = deleted {
            self.logout(&token, &mut warnings).await;
            return Err(e);
        }
        self.drop_secret(key, &record.old_client_id, &mut warnings).await;
        self.logout(&token, &mut warnings).await;
        files.remove()?;
        Ok(Rotated {
            credential: key.credential.clone(),
            user_id: record.user_id,
            old_client_id: record.old_client_id,
            new_client_id: new_id,
            resumed,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_carry_no_secret_fields() {
        let dir = tempfile::tempdir().unwrap();
        let files = RecordFiles::new(dir.path(), "prod", "reporting");
        let _lock = files.lock("prod", "reporting").unwrap();
        assert!(matches!(files.lock("prod", "reporting"), Err(RotateError::Busy { .. })));
        assert_eq!(files.read().unwrap(), None);
        let record = Record {
            step: Step::Created,
            user_id: "7".into(),
            old_client_id: "old".into(),
            old_key_id: "1".into(),
            tag: random_tag(),
            new_client_id: Some("new".into()),
            new_key_id: Some("2".into()),
            started_at_unix: 5,
        };
        files.write(&record).unwrap();
        assert_eq!(files.read().unwrap(), Some(record));
        let text = std::fs::read_to_string(files.record_path()).unwrap();
        assert!(text.contains("\"created\"") && !text.contains("secret"), "{text}");
        files.remove().unwrap();
        assert_eq!(files.read().unwrap(), None);
    }
}
