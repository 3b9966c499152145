//! `lookerctl import`: a profile and a credential set from the Looker SDKs' own
//! settings, a looker.ini ([`crate::looker_ini`]) or the `LOOKERSDK_*` variables.
//!
//! Sources, the first that applies: the LOOKER_INI named on the command line;
//! the `LOOKERSDK_*` variables when `LOOKERSDK_BASE_URL` or `LOOKERSDK_CLIENT_ID`
//! is set; `./looker.ini`. The two kinds are never mixed. With `--netrc [PATH]`, a
//! netrc file's `machine` entry instead ([`netrc`], default `~/.netrc`).
//!
//! Order of work, so that a failure leaves nothing half done: read and check the
//! source, plan the config edit in memory, read the secret (from the source, else
//! stdin or a prompt), then, holding the config's lock, plan again on the config as
//! it is now, store the secret and save the config (both change or neither, see
//! [`store_then_save`]), tell a running agent, and only then, with
//! `--remove-secret`, rewrite the looker.ini without its client_secret.

use super::args::{Cli, ImportArgs};
use super::context::{config_path, open_store};
use super::exit::{self, CliError};
use super::manage::{poke, read_secret, store_then_save};
use super::output;
use super::token::shell_word;
use crate::config::normalize_base_url;
use crate::config_edit::{ConfigEditor, CredentialChange, ProfileSettings};
use crate::files::atomic::AtomicFile;
use crate::looker_ini::{self, IniError};
use crate::secret::Secret;
use crate::store::SecretKey;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The prefix of the SDKs' environment variables.
pub(crate) const ENV_PREFIX: &str = "LOOKERSDK_";

/// Profile name for settings from the environment when `--profile` names none.
pub(crate) const ENV_PROFILE_NAME: &str = "looker";

/// A looker.ini larger than this is not a looker.ini.
const MAX_INI_BYTES: u64 = 1 << 20;

const SECRET_KEY: &str = "client_secret";

mod netrc;

/// Where the settings were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// A looker.ini.
    File(PathBuf),
    /// The `LOOKERSDK_*` environment variables.
    Env,
    /// A netrc file.
    Netrc(PathBuf),
}

/// What kind of file a [`FileOrigin`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    /// A looker.ini: `section` is its `[section]`.
    Ini,
    /// A netrc file: `section` is the machine.
    Netrc,
}

/// The file a looker.ini import came from, for `--remove-secret` and the messages.
struct FileOrigin {
    kind: FileKind,
    path: PathBuf,
    /// The file as read: it holds the secret, so it is zeroed when dropped.
    text: zeroize::Zeroizing<String>,
    section: String,
    /// The section holding the client_secret line (the section itself, or `DEFAULT`).
    secret_section: Option<String>,
    secret_line: Option<usize>,
}

/// What a source says. Its `Debug` never shows the secret ([`Secret`] is redacted).
struct Found {
    settings: ProfileSettings,
    client_id: String,
    secret: Option<Secret>,
    default_name: String,
    file: Option<FileOrigin>,
}

/// An SDK setting from the environment, cleaned as the Python SDK does: empty,
/// `""` and `''` count as unset; quotes at either end are removed.
fn env_setting(key: &str) -> Option<String> {
    let v = std::env::var(format!("{ENV_PREFIX}{key}")).ok()?;
    if v.is_empty() || v == "\"\"" || v == "''" {
        return None;
    }
    Some(if v.starts_with(['"', '\'']) || v.ends_with(['"', '\'']) {
        v.trim_matches(['"', '\'']).to_string()
    } else {
        v
    })
}

/// A word for the command line printed as a hint: as it is when that is safe,
/// else quoted; a NUL (which no shell word holds) shows as `\0` for the reader.
fn hint_word(s: &str) -> String {
    shell_word(s).map_or_else(|| format!("{s:?}"), std::borrow::Cow::into_owned)
}

/// Picks the source (see the module docs).
pub(crate) fn choose_source(file: Option<&Path>) -> Source {
    if let Some(f) = file {
        return Source::File(f.to_path_buf());
    }
    if env_setting("BASE_URL").is_some() || env_setting("CLIENT_ID").is_some() {
        return Source::Env;
    }
    Source::File(PathBuf::from(looker_ini::DEFAULT_FILE))
}

fn ini_error(path: &Path, e: IniError) -> CliError {
    let code = if matches!(e, IniError::NoSection { .. }) { exit::USAGE } else { exit::FAILURE };
    let hint = match e {
        IniError::NoSection { .. } => "; pick one with --section NAME",
        _ => "",
    };
    CliError::new(code, format!("{}: {e}{hint}", path.display()))
}

/// Reads a text file of at most [`MAX_INI_BYTES`].
fn read_ini(path: &Path) -> Result<String, CliError> {
    let cannot = |e: std::io::Error| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            "; name the looker.ini to import (`lookerctl import PATH`), or set LOOKERSDK_BASE_URL, \
             LOOKERSDK_CLIENT_ID and LOOKERSDK_CLIENT_SECRET"
        } else {
            ""
        };
        CliError::failure(format!("cannot read {}: {e}{hint}", path.display()))
    };
    let f = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    f.take(MAX_INI_BYTES + 1).read_to_end(&mut bytes).map_err(cannot)?;
    if bytes.len() as u64 > MAX_INI_BYTES {
        return Err(CliError::failure(format!(
            "{} is larger than 1 MiB; is it a looker.ini?",
            path.display()
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| CliError::failure(format!("{} is not UTF-8 text; is it a looker.ini?", path.display())))
}

fn from_file(path: &Path, section: Option<&str>) -> Result<Found, CliError> {
    let text = zeroize::Zeroizing::new(read_ini(path)?);
    let sections = looker_ini::parse(&text).map_err(|e| ini_error(path, e))?;
    let mut s = looker_ini::select(sections, section).map_err(|e| ini_error(path, e))?;
    let settings = s.profile_settings().map_err(|e| ini_error(path, e))?;
    let client_id = s
        .client_id()
        .map_err(|e| ini_error(path, e))?
        .ok_or_else(|| {
            CliError::failure(format!(
                "{}: [{}] has no client_id; add the API key's client_id to it, or add the profile alone with \
                 `lookerctl profile add NAME --base-url URL`",
                path.display(),
                s.name
            ))
        })?
        .to_string();
    let secret_section = s.secret_section().map(str::to_string);
    let secret_line = s.line_of(SECRET_KEY);
    let secret = s.take_secret();
    Ok(Found {
        settings,
        client_id,
        secret,
        default_name: s.suggested_profile_name(),
        file: Some(FileOrigin {
            kind: FileKind::Ini,
            path: path.to_path_buf(),
            text,
            section: s.name.clone(),
            secret_section,
            secret_line,
        }),
    })
}

fn from_env() -> Result<Found, CliError> {
    let need = |key: &str, example: &str| {
        env_setting(key).ok_or_else(|| {
            CliError::usage(format!(
                "{ENV_PREFIX}{key} is not set; set it (e.g. {ENV_PREFIX}{key}={example}) or name a looker.ini to import"
            ))
        })
    };
    let base_url = need("BASE_URL", "https://example.looker.com")?;
    let client_id = need("CLIENT_ID", "AbC123")?;
    let verify_tls = match env_setting("VERIFY_SSL") {
        None => true,
        Some(v) => match v.to_lowercase().as_str() {
            "yes" | "y" | "true" | "t" | "1" => true,
            "no" | "n" | "false" | "f" | "0" => false,
            _ => {
                return Err(CliError::usage(format!(
                    "{ENV_PREFIX}VERIFY_SSL={v:?} is neither true nor false; use true or false"
                )))
            }
        },
    };
    let timeout = env_setting("TIMEOUT")
        .map(|t| crate::duration::parse(&t).map_err(|e| CliError::usage(format!("{ENV_PREFIX}TIMEOUT: {e}"))))
        .transpose()?;
    let secret =
        std::env::var(format!("{ENV_PREFIX}CLIENT_SECRET")).ok().filter(|s| !s.is_empty()).map(Secret::new);
    Ok(Found {
        settings: ProfileSettings { verify_tls, timeout, ..ProfileSettings::new(base_url) },
        client_id,
        secret,
        default_name: ENV_PROFILE_NAME.into(),
        file: None,
    })
}

/// `lookerctl import`.
pub(crate) async fn import(cli: &Cli, args: &ImportArgs) -> Result<u8, CliError> {
    let source = match &args.netrc {
        Some(p) => Source::Netrc(netrc::path_or_default(p.as_deref())?),
        None => choose_source(args.file.as_deref()),
    };
    if source == Source::Env && (args.section.is_some() || args.remove_secret) {
        return Err(CliError::usage(format!(
            "--section and --remove-secret are for a looker.ini, but the settings come from the {ENV_PREFIX}* \
             variables here; name the file (`lookerctl import PATH …`) to import a looker.ini"
        )));
    }
    let mut found = match &source {
        Source::File(p) => from_file(p, args.section.as_deref())?,
        Source::Env => from_env()?,
        Source::Netrc(p) => netrc::from_netrc(p, args.machine.as_deref())?,
    };
    found.settings.allow_insecure_http = args.allow_insecure_http;
    let explicit = if cli.profile_from_env { None } else { cli.profile.as_deref().filter(|p| !p.is_empty()) };
    let name = explicit.map(str::to_string).unwrap_or_else(|| found.default_name.clone());
    let cred = args.credential.as_str();

    // Plan the whole config edit before any secret is read or stored, and let go of
    // the config's lock while a person may be typing the secret; then, locked again,
    // plan it once more on the file as it is now, store the secret and save.
    let path = config_path(cli);
    let base_url = normalize_base_url(&found.settings.base_url).map_err(CliError::failure)?;
    plan(&mut ConfigEditor::open(&path)?, &name, cred, &base_url, &found, args.default)?;
    let secret = match found.secret.take() {
        Some(s) if !s.is_empty() => s,
        _ => read_secret(&name, cred)?,
    };
    let store = open_store(cli).await?;
    let mut ed = ConfigEditor::open(&path)?;
    let (created, change) = plan(&mut ed, &name, cred, &base_url, &found, args.default)?;
    let key = SecretKey::new(name.as_str(), cred);
    store_then_save(&mut ed, &store, &key, &found.client_id, &secret, change).await?;
    drop((secret, ed));
    poke(cli).await?;

    let mut removed_from_file = false;
    let mut file_holds_secret = false;
    if let Some(origin) = &found.file {
        if origin.secret_section.is_some() {
            if args.remove_secret {
                remove_secret(origin)?;
                removed_from_file = true;
            } else {
                file_holds_secret = true;
            }
        } else if args.remove_secret {
            output::note(&format!(
                "{} holds no {} for {}; nothing to remove",
                origin.path.display(),
                origin.secret_word(),
                origin.what()
            ));
        }
    }

    let change_word = match change {
        CredentialChange::Added => "added",
        CredentialChange::Updated => "updated",
        CredentialChange::Unchanged => "unchanged",
    };
    if cli.json {
        output::json(&serde_json::json!({
            "profile": name,
            "profile_created": created,
            "base_url": base_url,
            "credential": cred,
            "client_id": found.client_id,
            "credential_change": change_word,
            "source": match source { Source::File(_) => "file", Source::Env => "environment", Source::Netrc(_) => "netrc" },
            "file": found.file.as_ref().map(|o| o.path.display().to_string()),
            "section": found.file.as_ref().map(|o| o.section.clone()),
            "secret_store": store.describe(),
            "secret_removed_from_file": removed_from_file,
            "file_still_holds_secret": file_holds_secret,
        }))?;
    } else {
        let from = match &found.file {
            Some(o) => format!("{} of {}", o.what(), o.path.display()),
            None => format!("the {ENV_PREFIX}* variables"),
        };
        let what = if created { "created" } else { "existing, settings kept" };
        output::line(&format!(
            "imported {from} as profile {name} ({what}), credential {cred} (client_id {}, {change_word})",
            found.client_id
        ))?;
        output::line(&format!("the client_secret is in {}, not in the config", store.describe()))?;
        if removed_from_file {
            if let Some(o) = &found.file {
                output::line(&format!("removed the {} from {}", o.secret_word(), o.path.display()))?;
            }
        }
        output::line(&format!("check it: lookerctl credential verify {name} {cred}"))?;
    }

    if let Some(o) = found.file.as_ref().filter(|_| file_holds_secret) {
        let path_word = hint_word(&o.path.display().to_string());
        let mut again = match o.kind {
            FileKind::Ini => format!("lookerctl import {path_word}"),
            FileKind::Netrc => {
                format!("lookerctl import --netrc {path_word} --machine {}", hint_word(&o.section))
            }
        };
        if args.section.is_some() {
            again.push_str(&format!(" --section {}", hint_word(&o.section)));
        }
        if explicit.is_some() {
            again.push_str(&format!(" --profile {name}"));
        }
        if cred != "default" {
            again.push_str(&format!(" --credential {cred}"));
        }
        let line = o.secret_line.map(|l| format!(" (line {l})")).unwrap_or_default();
        output::warn(&format!(
            "{} still holds the {} in plain text{line}. The secret store has it now: delete it \
             from the file with `{again} --remove-secret` (safe to run again), or remove it yourself",
            o.path.display(),
            o.secret_word()
        ));
    }
    let ini_default =
        found.file.as_ref().filter(|o| o.kind == FileKind::Ini).and_then(|o| o.secret_section.as_deref());
    if removed_from_file && ini_default == Some("DEFAULT") {
        output::note("the client_secret was in [DEFAULT]: other sections of the file no longer inherit it");
    }
    if source == Source::Env && std::env::var_os(format!("{ENV_PREFIX}CLIENT_SECRET")).is_some() {
        output::warn(&format!(
            "{ENV_PREFIX}CLIENT_SECRET still holds the secret in this environment; the agent has it now, so \
             unset it (and remove it from shell start-up or .env files)"
        ));
    }
    Ok(exit::OK)
}

/// Applies the import to the config being edited: the profile (created, or kept when
/// it exists for the same base URL), the credential set and maybe `default_profile`.
/// Returns whether the profile was created and what became of the credential.
fn plan(
    ed: &mut ConfigEditor,
    name: &str,
    cred: &str,
    base_url: &str,
    found: &Found,
    default: bool,
) -> Result<(bool, CredentialChange), CliError> {
    let created = match ed.config()?.profiles.get(name) {
        Some(p) if p.base_url != base_url => {
            return Err(CliError::usage(format!(
                "profile {name:?} already exists for {}, not {base_url}; import under another name with \
                 --profile NAME, or remove it first (`lookerctl profile remove {name}`)",
                p.base_url
            )))
        }
        Some(_) => false,
        None => {
            ed.add_profile(name, &found.settings)?;
            true
        }
    };
    let change = ed.add_credential(name, cred, &found.client_id)?;
    if default {
        ed.set_default_profile(Some(name))?;
    }
    ed.config()?;
    Ok((created, change))
}

/// Rewrites the looker.ini without its client_secret line: atomically (a temporary
/// file in the same folder, renamed over it), with the file's mode and owner, every
/// other byte unchanged. A symlink is written through.
fn remove_secret(origin: &FileOrigin) -> Result<(), CliError> {
    let by_hand = |what: String| {
        CliError::failure(format!(
            "the secret is stored, but {what}; remove the client_secret line from {} yourself",
            origin.path.display()
        ))
    };
    let target = std::fs::canonicalize(&origin.path)
        .map_err(|e| by_hand(format!("{} cannot be resolved ({e})", origin.path.display())))?;
    let current = zeroize::Zeroizing::new(read_ini(&target).map_err(|e| by_hand(e.message))?);
    if *current != *origin.text {
        return Err(CliError::failure(format!(
            "the secret is stored, but {} changed while lookerctl ran, so it was not rewritten; run the import again",
            origin.path.display()
        )));
    }
    let (new_text, still) = match origin.kind {
        FileKind::Ini => {
            let section = origin.secret_section.as_deref().unwrap_or(&origin.section);
            let new_text = zeroize::Zeroizing::new(looker_ini::remove_key(&current, section, SECRET_KEY));
            let still = looker_ini::parse(&new_text)
                .ok()
                .and_then(|s| looker_ini::select(s, Some(&origin.section)).ok())
                .is_none_or(|s| s.secret().is_some());
            (new_text, still)
        }
        FileKind::Netrc => netrc::without_password(&current, &origin.section),
    };
    if *new_text == *current || still {
        return Err(by_hand(format!("lookerctl could not find the {} to remove", origin.secret_word())));
    }
    let meta = std::fs::metadata(&target).map_err(|e| by_hand(format!("cannot read its mode ({e})")))?;
    let dir = target.parent().unwrap_or(Path::new("."));
    let prefix = match origin.kind {
        FileKind::Ini => ".looker.ini.",
        FileKind::Netrc => ".netrc.",
    };
    let mut tmp = AtomicFile::in_folder(dir, prefix, "")
        .map_err(|e| by_hand(format!("cannot write in {} ({e})", dir.display())))?;
    let fmeta = tmp.file().metadata().map_err(|e| by_hand(e.to_string()))?;
    if (fmeta.uid(), fmeta.gid()) != (meta.uid(), meta.gid()) {
        std::os::unix::fs::fchown(tmp.file(), Some(meta.uid()), Some(meta.gid()))
            .map_err(|e| by_hand(format!("its owner could not be kept ({e})")))?;
    }
    tmp.set_mode(meta.mode() & 0o7777).map_err(|e| by_hand(format!("its mode could not be kept ({e})")))?;
    tmp.write_synced(new_text.as_bytes())
        .map_err(|e| by_hand(format!("writing the new file failed ({e})")))?;
    let done = tmp.rename_to(&target).map_err(|e| by_hand(format!("replacing the file failed ({e})")))?;
    // The secret is gone from the file already; a folder that cannot be synced is no failure.
    let _ = done.sync();
    Ok(())
}

impl FileOrigin {
    /// `[Looker]` or `machine example.looker.com`.
    fn what(&self) -> String {
        match self.kind {
            FileKind::Ini => format!("[{}]", self.section),
            FileKind::Netrc => format!("machine {}", self.section),
        }
    }

    /// What holds the secret in this kind of file.
    fn secret_word(&self) -> &'static str {
        match self.kind {
            FileKind::Ini => "client_secret",
            FileKind::Netrc => "password",
        }
    }
}
