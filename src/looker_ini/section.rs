//! One `[section]` of a looker.ini, cleaned as the SDK cleans it, and what the
//! agent reads from it (base_url, client_id, verify_ssl, timeout).

use super::{at, is_secret_key, IniError, SECRET_KEY};
use crate::config;
use crate::config_edit::ProfileSettings;
use crate::secret::Secret;
use std::fmt;
use std::time::Duration;

/// One `[section]` of a looker.ini, with the SDK's cleaning applied.
#[derive(Clone)]
pub struct IniSection {
    /// The name between the brackets, as written.
    pub name: String,
    /// Keys (lowercased) and cleaned values in file order, then those inherited from
    /// `[DEFAULT]`. Empty values are left out, and so is `client_secret`: see
    /// [`IniSection::take_secret`].
    pub entries: Vec<(String, String)>,
    /// The line of the `[section]` header (1-based).
    pub(crate) line: usize,
    /// The line each entry was read from.
    pub(super) entry_lines: Vec<usize>,
    /// The client_secret, its line and the section that set it.
    pub(super) secret: Option<(Secret, usize, String)>,
}

impl fmt::Debug for IniSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Entries<'a>(&'a [(String, String)]);
        impl fmt::Debug for Entries<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut m = f.debug_map();
                for (k, v) in self.0 {
                    if is_secret_key(k) {
                        m.entry(k, &"<redacted>");
                    } else {
                        m.entry(k, v);
                    }
                }
                m.finish()
            }
        }
        f.debug_struct("IniSection")
            .field("name", &self.name)
            .field("line", &self.line)
            .field("entries", &Entries(&self.entries))
            .field("client_secret", &self.secret.as_ref().map(|(s, _, _)| s))
            .finish()
    }
}

impl IniSection {
    /// A cleaned value by key (case-insensitive). Never the client_secret.
    pub fn get(&self, key: &str) -> Option<&str> {
        let key = key.to_lowercase();
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
    }

    /// The line a key was read from (for `client_secret` too).
    pub(crate) fn line_of(&self, key: &str) -> Option<usize> {
        let key = key.to_lowercase();
        if key == SECRET_KEY {
            return self.secret.as_ref().map(|(_, line, _)| *line);
        }
        self.entries.iter().position(|(k, _)| *k == key).and_then(|i| self.entry_lines.get(i).copied())
    }

    /// The client_secret, if the section (or `[DEFAULT]`) sets one.
    pub fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref().map(|(s, _, _)| s)
    }

    /// Takes the client_secret out of the section.
    pub fn take_secret(&mut self) -> Option<Secret> {
        self.secret.take().map(|(s, _, _)| s)
    }

    /// The section whose line holds the client_secret: this one, or `DEFAULT` when
    /// inherited (what [`remove_key`](super::remove_key) must be given to delete it).
    pub fn secret_section(&self) -> Option<&str> {
        self.secret.as_ref().map(|(_, _, section)| section.as_str())
    }

    fn single_line(&self, key: &str) -> Result<Option<&str>, IniError> {
        match self.get(key) {
            Some(v) if v.contains('\n') => Err(at(
                self.line_of(key).unwrap_or(self.line),
                format!(
                    "{key} continues on an indented line below it (an indented line continues \
                     the value above it in an ini file); remove the indentation"
                ),
            )),
            other => Ok(other),
        }
    }

    /// `base_url`, normalised (a `/api/4.0` suffix dropped); required.
    pub fn base_url(&self) -> Result<String, IniError> {
        let raw = self.single_line("base_url")?.ok_or_else(|| {
            at(
                self.line,
                format!("[{}] has no base_url; add e.g. base_url=https://example.looker.com", self.name),
            )
        })?;
        config::normalize_base_url(raw).map_err(|e| at(self.line_of("base_url").unwrap_or(self.line), e))
    }

    /// `client_id`, if set.
    pub fn client_id(&self) -> Result<Option<&str>, IniError> {
        self.single_line("client_id")
    }

    /// `verify_ssl` as the SDK reads it (yes/y/true/t/1, no/n/false/f/0); default true.
    pub fn verify_ssl(&self) -> Result<bool, IniError> {
        let Some(v) = self.single_line("verify_ssl")? else { return Ok(true) };
        match v.to_lowercase().as_str() {
            "yes" | "y" | "true" | "t" | "1" => Ok(true),
            "no" | "n" | "false" | "f" | "0" => Ok(false),
            _ => Err(at(
                self.line_of("verify_ssl").unwrap_or(self.line),
                format!("verify_ssl = {v:?} is neither true nor false; use True or False"),
            )),
        }
    }

    /// `timeout` (seconds in the SDK; a DURATION such as `2m` is accepted too), if set.
    pub fn timeout(&self) -> Result<Option<Duration>, IniError> {
        let Some(v) = self.single_line("timeout")? else { return Ok(None) };
        crate::duration::parse(v).map(Some).map_err(|e| at(self.line_of("timeout").unwrap_or(self.line), e))
    }

    /// The profile settings this section describes (base_url, verify_ssl, timeout).
    pub fn profile_settings(&self) -> Result<ProfileSettings, IniError> {
        Ok(ProfileSettings {
            verify_tls: self.verify_ssl()?,
            timeout: self.timeout()?,
            ..ProfileSettings::new(self.base_url()?)
        })
    }

    /// A valid profile name made from the section name (`Looker` -> `looker`).
    pub fn suggested_profile_name(&self) -> String {
        let mut s: String = self
            .name
            .trim()
            .chars()
            .map(
                |c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c.to_ascii_lowercase() } else { '-' },
            )
            .collect();
        s = s.trim_start_matches(|c: char| !c.is_ascii_alphanumeric()).to_string();
        s.truncate(crate::name::MAX_LEN);
        if s.is_empty() {
            "looker".into()
        } else {
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use crate::config;

    #[test]
    fn debug_never_shows_secrets() {
        let mut s =
            parse("[a]\nbase_url=https://a\nclient_secret=hunter2\nembed_secret=swordfish\n").unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("swordfish"), "{dbg}");
        assert!(dbg.contains("https://a"));
        assert_eq!(s[0].take_secret().unwrap().expose(), "hunter2");
        assert!(s[0].secret().is_none());
    }

    #[test]
    fn profile_name_suggestion() {
        let name = |n: &str| {
            let mut s = parse("[x]\n").unwrap().remove(0);
            s.name = n.into();
            s.suggested_profile_name()
        };
        assert_eq!(name("Looker"), "looker");
        assert_eq!(name("My Instance (prod)"), "my-instance--prod-");
        assert_eq!(name("__"), "looker");
        assert!(config::validate_name("profile", &name("Ünïcode")).is_ok());
    }
}
