//! Profile and credential names: the one rule, checked wherever a name enters the
//! program (config loading and edits, `lookerctl` arguments, the file store's file
//! names, the systemd credentials folder).
//!
//! A name becomes a TOML key, a file name and part of a systemd credential name, so
//! it is `[A-Za-z0-9][A-Za-z0-9._-]*` and at most [`MAX_LEN`] bytes: never empty,
//! never `.`-led, never a path.

use std::fmt;

/// The longest name, in bytes.
pub(crate) const MAX_LEN: usize = 64;

/// A valid profile or credential name (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Name(String);

/// A name that breaks the rule; says which kind of name and how to write one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid {kind} name {name:?}: use letters, digits, '.', '_' and '-', starting with a letter or digit (at most {MAX_LEN})"
)]
pub(crate) struct InvalidName {
    /// What the name names ("profile", "credential").
    pub(crate) kind: &'static str,
    /// The name as given.
    pub(crate) name: String,
}

impl Name {
    /// True when `name` follows the rule.
    pub(crate) fn is_valid(name: &str) -> bool {
        let b = name.as_bytes();
        b.len() <= MAX_LEN
            && b.first().is_some_and(u8::is_ascii_alphanumeric)
            && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    }

    /// Checks `name` as a name of `kind` ("profile", "credential").
    pub(crate) fn check<'a>(kind: &'static str, name: &'a str) -> Result<&'a str, InvalidName> {
        if Name::is_valid(name) {
            Ok(name)
        } else {
            Err(InvalidName { kind, name: name.to_owned() })
        }
    }

    /// The name `name`, if valid.
    pub fn parse(kind: &'static str, name: &str) -> Result<Name, InvalidName> {
        Name::check(kind, name).map(|n| Name(n.to_owned()))
    }

    /// The name as text.
    #[cfg(test)]
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an owned string.
    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// clap value parser for an argument naming a profile.
pub(crate) fn profile_arg(s: &str) -> Result<String, InvalidName> {
    Name::parse("profile", s).map(Name::into_string)
}

/// clap value parser for an argument naming a credential set.
pub(crate) fn credential_arg(s: &str) -> Result<String, InvalidName> {
    Name::parse("credential", s).map(Name::into_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        for ok in ["prod", "a", "0", "eu.prod", "my_set-2", &"z".repeat(MAX_LEN)] {
            assert!(Name::is_valid(ok), "{ok:?}");
        }
        let too_long = "z".repeat(MAX_LEN + 1);
        for bad in ["", ".p", "_p", "-p", "a/b", "..", "a b", "é", "a\0", too_long.as_str()] {
            assert!(!Name::is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn errors_say_the_kind_and_the_rule() {
        let e = Name::parse("credential", "a/b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid credential name \"a/b\": use letters, digits, '.', '_' and '-', starting with a letter or digit (at most 64)"
        );
        assert_eq!(Name::parse("profile", "prod").unwrap().as_str(), "prod");
        assert_eq!(profile_arg("prod").unwrap(), "prod");
        assert!(credential_arg("../x").is_err());
    }
}
