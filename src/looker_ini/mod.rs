//! The Looker SDKs' `looker.ini`, read for `lookerctl import`.
//!
//! The Python SDK reads it with `configparser.ConfigParser()` and then cleans the
//! values; this module follows both, so a file the SDK accepts is read the same way:
//!
//! ```ini
//! [Looker]
//! # comment lines start with '#' or ';' (only whole lines: a '#' after a value is part of it)
//! base_url=https://example.looker.com:19999
//! client_id: AbCdEf123
//! client_secret="s3cr=t#1"
//! verify_ssl=True
//! timeout=120
//! ```
//!
//! - `[Section]` headers (names are case-sensitive); a `[DEFAULT]` section gives
//!   every section its keys, unless the section sets them itself;
//! - `key=value` or `key: value`, split at the first `=` or `:`; keys are
//!   case-insensitive; key and value are trimmed;
//! - an indented line continues the value above it (configparser's multi-line values);
//! - `%%` is a literal `%` and `%(key)s` the value of another key (configparser's
//!   basic interpolation); any other `%` is an error, as in Python;
//! - then, as the SDK does: an empty value (or `""`, `''`) counts as absent, and a
//!   value that starts or ends with a quote loses every quote at both ends
//!   (`"abc"` and `'abc'` read `abc`; a `=` or `#` inside stays).
//!
//! The client_secret leaves the parser only as a [`Secret`](crate::secret::Secret) (see
//! [`IniSection::take_secret`]); no error message or `Debug` output shows a value of
//! a key whose name contains `secret`.

mod edit;
mod interpolate;
mod parse;
mod scan;
mod section;

pub use edit::remove_key;
pub use parse::parse;
pub(crate) use section::IniSection;

/// The file the SDKs read by default, in the current folder.
pub(crate) const DEFAULT_FILE: &str = "looker.ini";

/// configparser's section of defaults for every other section.
pub const DEFAULTS_SECTION: &str = "DEFAULT";

const SECRET_KEY: &str = "client_secret";

/// A looker.ini that cannot be imported. Never contains a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IniError {
    /// A problem on one line (1-based).
    #[error("line {line}: {message}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The section asked for is not in the file.
    #[error("no section [{name}] in the file; it has {available}")]
    NoSection {
        /// The section asked for.
        name: String,
        /// The sections there are, e.g. `[Looker], [Staging]`.
        available: String,
    },
    /// The file has no section at all (it may be empty).
    #[error("no [section] in the file; a looker.ini starts with a header such as [Looker]")]
    NoSections,
}

impl IniError {
    /// The line the error is about, if any.
    #[cfg(test)]
    pub(crate) fn line(&self) -> Option<usize> {
        match self {
            IniError::Line { line, .. } => Some(*line),
            _ => None,
        }
    }
}

fn at(line: usize, message: impl Into<String>) -> IniError {
    IniError::Line { line, message: message.into() }
}

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("secret") || k.contains("password") || k.contains("token")
}

/// Picks a section: by name, or the first one like the SDK does when none is named.
pub fn select(sections: Vec<IniSection>, name: Option<&str>) -> Result<IniSection, IniError> {
    let available = || {
        if sections.is_empty() {
            return None;
        }
        Some(sections.iter().map(|s| format!("[{}]", s.name)).collect::<Vec<_>>().join(", "))
    };
    match name {
        None => sections.into_iter().next().ok_or(IniError::NoSections),
        Some(n) => {
            let Some(list) = available() else { return Err(IniError::NoSections) };
            sections
                .into_iter()
                .find(|s| s.name == n)
                .ok_or_else(|| IniError::NoSection { name: n.to_string(), available: list })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const SAMPLE: &str = "\
; exported by hand
[Looker]
# API version is required (ignored by the agent)
api_version=4.0
base_url=https://example.looker.com:19999/api/4.0
client_id: AbC123
client_secret = \"x=y#z;w\"
verify_ssl=False
timeout = 90

[Staging]
base_url = 'https://staging.example.com'
Client_ID=def
CLIENT_SECRET=plain#not-a-comment
empty=
quoted_empty=\"\"
";

    #[test]
    fn select_by_name_or_first() {
        let s = parse(SAMPLE).unwrap();
        assert_eq!(select(s.clone(), None).unwrap().name, "Looker");
        assert_eq!(select(s.clone(), Some("Staging")).unwrap().name, "Staging");
        let e = select(s, Some("staging")).unwrap_err().to_string();
        assert!(e.contains("[Looker], [Staging]"), "{e}");
        assert_eq!(select(parse("").unwrap(), None).unwrap_err(), IniError::NoSections);
    }
}
