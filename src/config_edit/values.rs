//! A profile's settings as the TOML values an edit writes, and how a value is
//! replaced without losing its comments.

use super::{CredentialChange, EditError, ProfileSettings};
use crate::config;
use toml_edit::{Item, TableLike, Value};

/// The keys a profile's settings write; `None` removes the key (its default).
pub(super) fn settings_values(
    name: &str,
    s: &ProfileSettings,
) -> Result<Vec<(&'static str, Option<Value>)>, EditError> {
    let invalid = |m: String| EditError::Invalid(format!("profile {name:?}: {m}"));
    let base_url = config::normalize_base_url(&s.base_url).map_err(invalid)?;
    let url = url::Url::parse(&base_url).map_err(|e| invalid(e.to_string()))?;
    if url.scheme() == "http" && !crate::looker::client::is_loopback(&url) && !s.allow_insecure_http {
        return Err(invalid(format!(
            "{base_url} is plain http: client secrets and tokens would cross the network unencrypted; \
             use https, or allow it explicitly (--allow-insecure-http) on a network you trust"
        )));
    }
    let ca_file = match &s.ca_file {
        None => None,
        Some(p) => {
            let abs = std::path::absolute(p).map_err(|e| invalid(format!("ca_file {}: {e}", p.display())))?;
            let text = abs.to_str().ok_or_else(|| {
                invalid(format!("ca_file {} is not valid UTF-8; move it to a plain path", abs.display()))
            })?;
            // One that cannot be used would only fail at the first login: say so now.
            // (verify_tls = false ignores it.)
            if s.verify_tls {
                config::CaFile::read(&abs).certs().map_err(|why| invalid(why.to_string()))?;
            }
            Some(Value::from(text))
        }
    };
    let timeout = match s.timeout {
        None => None,
        Some(d) if d.as_secs() == 0 => return Err(invalid("timeout must be at least 1s".into())),
        Some(d) => Some(Value::from(crate::duration::format(d))),
    };
    Ok(vec![
        ("base_url", Some(Value::from(base_url))),
        ("verify_tls", (!s.verify_tls).then(|| Value::from(false))),
        ("ca_file", ca_file),
        ("timeout", timeout),
        ("allow_insecure_http", s.allow_insecure_http.then(|| Value::from(true))),
    ])
}

/// Replaces a value keeping its comments (Table::insert would reset the key's decor).
pub(super) fn set_value(t: &mut dyn TableLike, key: &str, v: Value) {
    match t.get_mut(key) {
        Some(Item::Value(old)) => {
            let decor = old.decor().clone();
            *old = v;
            *old.decor_mut() = decor;
        }
        _ => {
            t.insert(key, Item::Value(v));
        }
    }
}

pub(super) fn update_client_id(t: &mut dyn TableLike, client_id: &str) -> CredentialChange {
    if t.get("client_id").and_then(Item::as_str) == Some(client_id) {
        return CredentialChange::Unchanged;
    }
    set_value(t, "client_id", Value::from(client_id));
    CredentialChange::Updated
}
