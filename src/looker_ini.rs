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
//! The client_secret leaves the parser only as a [`Secret`] (see
//! [`IniSection::take_secret`]); no error message or `Debug` output shows a value of
//! a key whose name contains `secret`.

use crate::config;
use crate::config_edit::ProfileSettings;
use crate::secret::Secret;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::time::Duration;

/// The file the SDKs read by default, in the current folder.
pub const DEFAULT_FILE: &str = "looker.ini";

/// configparser's section of defaults for every other section.
pub const DEFAULTS_SECTION: &str = "DEFAULT";

const SECRET_KEY: &str = "client_secret";

/// configparser's `MAX_INTERPOLATION_DEPTH`.
const MAX_INTERPOLATION_DEPTH: usize = 10;

/// How many bytes of settings a file may expand to, counting `[DEFAULT]` once per
/// section and every `%(key)s` expansion. A looker.ini holds a few hundred bytes;
/// the bound keeps a hostile one (a `%(a)s%(a)s...` bomb, thousands of sections
/// times thousands of defaults) from taking all the memory or time there is.
const MAX_EXPANDED_BYTES: usize = 16 << 20;

/// What is left of [`MAX_EXPANDED_BYTES`] while one file is parsed.
struct Budget(std::cell::Cell<usize>);

impl Budget {
    fn charge(&self, n: usize) -> Result<(), String> {
        let left = self.0.get().checked_sub(n).ok_or_else(|| {
            format!(
                "the settings expand to more than {} MiB (through [DEFAULT] copied into every section \
                 or %(...)s references); is this really a looker.ini?",
                MAX_EXPANDED_BYTES >> 20
            )
        })?;
        self.0.set(left);
        Ok(())
    }
}

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
    pub fn line(&self) -> Option<usize> {
        match self {
            IniError::Line { line, .. } => Some(*line),
            _ => None,
        }
    }
}

fn at(line: usize, message: impl Into<String>) -> IniError {
    IniError::Line { line, message: message.into() }
}

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
    pub line: usize,
    /// The line each entry was read from.
    entry_lines: Vec<usize>,
    /// The client_secret, its line and the section that set it.
    secret: Option<(Secret, usize, String)>,
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

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("secret") || k.contains("password") || k.contains("token")
}

impl IniSection {
    /// A cleaned value by key (case-insensitive). Never the client_secret.
    pub fn get(&self, key: &str) -> Option<&str> {
        let key = key.to_lowercase();
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
    }

    /// The line a key was read from (for `client_secret` too).
    pub fn line_of(&self, key: &str) -> Option<usize> {
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
    /// inherited (what [`remove_key`] must be given to delete it).
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

/// What one line of the file is, given the lines before it.
#[derive(Debug)]
enum Kind {
    Blank,
    Comment,
    Header(String),
    Opt { key: String, value: String },
    Continuation(String),
    Bad(String),
}

struct Line {
    number: usize,
    range: Range<usize>,
    kind: Kind,
}

/// configparser's line rules (`RawConfigParser._read`), shared by [`parse`] and [`remove_key`].
fn scan(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut in_section = false;
    let mut in_value = false;
    let mut indent_level = 0;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let range = offset..offset + raw.len();
        offset += raw.len();
        let mut line = raw.trim_end_matches(['\n', '\r']);
        if i == 0 {
            line = line.trim_start_matches('\u{feff}');
        }
        let stripped = line.trim();
        let kind = if stripped.is_empty() {
            Kind::Blank
        } else if stripped.starts_with('#') || stripped.starts_with(';') {
            Kind::Comment
        } else {
            let indent = line.chars().take_while(|c| c.is_whitespace()).count();
            if in_value && indent > indent_level {
                Kind::Continuation(stripped.to_string())
            } else {
                indent_level = indent;
                in_value = false;
                if let Some(rest) = stripped.strip_prefix('[') {
                    match rest.rfind(']') {
                        Some(end) if end > 0 => {
                            in_section = true;
                            Kind::Header(rest[..end].to_string())
                        }
                        _ => {
                            Kind::Bad("a section header needs a name and a closing ']', e.g. [Looker]".into())
                        }
                    }
                } else if !in_section {
                    Kind::Bad(
                        "a setting before any [section] header; add a header such as [Looker] above it"
                            .into(),
                    )
                } else {
                    match stripped.find(['=', ':']) {
                        None => Kind::Bad("expected key=value (or key: value)".into()),
                        Some(0) => Kind::Bad("a value without a key before its '=' or ':'".into()),
                        Some(pos) => {
                            in_value = true;
                            Kind::Opt {
                                key: stripped[..pos].trim_end().to_lowercase(),
                                value: stripped[pos + 1..].trim_start().to_string(),
                            }
                        }
                    }
                }
            }
        };
        out.push(Line { number: i + 1, range, kind });
    }
    out
}

struct RawOpt {
    key: String,
    lines: Vec<String>,
    line: usize,
}

struct RawSection {
    name: String,
    line: usize,
    opts: Vec<RawOpt>,
}

impl RawOpt {
    fn value(&self) -> String {
        self.lines.join("\n").trim_end().to_string()
    }
}

/// Parses a looker.ini into its sections, in file order (`[DEFAULT]` merged into each).
pub fn parse(text: &str) -> Result<Vec<IniSection>, IniError> {
    let mut sections: Vec<RawSection> = Vec::new();
    let mut defaults = RawSection { name: DEFAULTS_SECTION.into(), line: 0, opts: Vec::new() };
    // Where each section and key first appeared, so duplicates are found without
    // rescanning (a file with 100,000 keys must not take minutes).
    let mut section_index: HashMap<String, usize> = HashMap::new();
    let mut key_lines: HashMap<(Option<usize>, String), usize> = HashMap::new();
    // Where new keys go: None = [DEFAULT], Some(i) = sections[i].
    let mut current: Option<usize> = None;
    for line in scan(text) {
        let section = match current {
            Some(i) => sections.get_mut(i),
            None => Some(&mut defaults),
        };
        match line.kind {
            Kind::Comment => {}
            Kind::Blank => {
                // configparser keeps blank lines inside a multi-line value (trimmed at the end).
                if let Some(opt) = section.and_then(|s| s.opts.last_mut()) {
                    opt.lines.push(String::new());
                }
            }
            Kind::Continuation(v) => {
                if let Some(opt) = section.and_then(|s| s.opts.last_mut()) {
                    opt.lines.push(v);
                }
            }
            Kind::Bad(message) => return Err(at(line.number, message)),
            Kind::Header(name) => {
                if name == DEFAULTS_SECTION {
                    current = None;
                    // A value ends at the next header: stop blank lines joining the last one.
                    defaults.opts.push(RawOpt { key: String::new(), lines: Vec::new(), line: 0 });
                    continue;
                }
                if let Some(first) = section_index.get(&name).and_then(|&i| sections.get(i)) {
                    return Err(at(
                        line.number,
                        format!("section [{name}] appears twice (first at line {}); merge them", first.line),
                    ));
                }
                section_index.insert(name.clone(), sections.len());
                sections.push(RawSection { name, line: line.number, opts: Vec::new() });
                current = Some(sections.len() - 1);
            }
            Kind::Opt { key, value } => {
                let Some(section) = section else { continue };
                if let Some(first) = key_lines.get(&(current, key.clone())) {
                    return Err(at(
                        line.number,
                        format!(
                            "{key} appears twice in [{}] (first at line {first}); keep one",
                            section.name
                        ),
                    ));
                }
                key_lines.insert((current, key.clone()), line.number);
                section.opts.push(RawOpt { key, lines: vec![value], line: line.number });
            }
        }
    }
    defaults.opts.retain(|o| !o.key.is_empty());
    let budget = Budget(std::cell::Cell::new(MAX_EXPANDED_BYTES));
    sections.iter().map(|s| finish(s, &defaults, &budget)).collect()
}

/// Interpolates and cleans one section the way `dict(parser[section])` and the SDK's
/// `_clean_input` do.
fn finish(raw: &RawSection, defaults: &RawSection, budget: &Budget) -> Result<IniSection, IniError> {
    // (key, raw value, line, section it came from): own keys first, then inherited ones.
    let mut all: Vec<(&str, String, usize, &str)> = Vec::new();
    let own: HashSet<&str> = raw.opts.iter().map(|o| o.key.as_str()).collect();
    let inherited = defaults.opts.iter().filter(|o| !own.contains(o.key.as_str()));
    for (o, from) in
        raw.opts.iter().map(|o| (o, raw.name.as_str())).chain(inherited.map(|o| (o, DEFAULTS_SECTION)))
    {
        let value = o.value();
        budget.charge(o.key.len() + value.len() + 1).map_err(|m| at(o.line, m))?;
        all.push((o.key.as_str(), value, o.line, from));
    }
    let index: HashMap<&str, &str> = all.iter().map(|(k, v, ..)| (*k, v.as_str())).collect();
    let lookup = |k: &str| index.get(k).copied();
    let mut section = IniSection {
        name: raw.name.clone(),
        entries: Vec::new(),
        line: raw.line,
        entry_lines: Vec::new(),
        secret: None,
    };
    for (key, value, line, from) in &all {
        let value = interpolate(value, &lookup, 0, is_secret_key(key), budget)
            .map_err(|m| at(*line, format!("{key}: {m}")))?;
        if value.is_empty() || value == "\"\"" || value == "''" {
            continue;
        }
        let value = if value.starts_with(['"', '\'']) || value.ends_with(['"', '\'']) {
            value.trim_matches(['"', '\'']).to_string()
        } else {
            value
        };
        if *key == SECRET_KEY {
            section.secret = Some((Secret::new(value), *line, from.to_string()));
        } else {
            section.entries.push((key.to_string(), value));
            section.entry_lines.push(*line);
        }
    }
    Ok(section)
}

/// configparser's `BasicInterpolation`: `%%` and `%(key)s`. Messages never show the
/// value, nor a name referred to from inside a secret (`hide`): that is the secret's text.
fn interpolate<'a>(
    value: &str,
    lookup: &impl Fn(&str) -> Option<&'a str>,
    depth: usize,
    hide: bool,
    budget: &Budget,
) -> Result<String, String> {
    if depth > MAX_INTERPOLATION_DEPTH {
        return Err("%(...)s references nest too deep (a loop?)".into());
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(p) = rest.find('%') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        if let Some(r) = rest.strip_prefix("%%") {
            out.push('%');
            rest = r;
        } else if let Some(r) = rest.strip_prefix("%(") {
            let end = r.find(")s").filter(|&e| e > 0 && !r[..e].contains(')')).ok_or_else(|| {
                "a '%(' not followed by key)s; write %% for a literal % (configparser's rule)".to_string()
            })?;
            let var = r[..end].to_lowercase();
            let v = lookup(&var).ok_or_else(|| {
                let shown = if hide || is_secret_key(&var) {
                    "another key".to_string()
                } else {
                    format!("%({var})s")
                };
                format!("refers to {shown}, which is not set in this section or [DEFAULT]")
            })?;
            let expanded = interpolate(v, lookup, depth + 1, hide || is_secret_key(&var), budget)?;
            // At least a byte per reference, so a million references to an empty key count too.
            budget.charge(expanded.len() + 1)?;
            out.push_str(&expanded);
            rest = &r[end + 2..];
        } else {
            return Err(
                "a '%' must be followed by '%' or '(' ; write %% for a literal % (configparser's rule)"
                    .into(),
            );
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The text without `key`'s line (and its indented continuation lines) in `[section]`;
/// every other byte stays as it was. Unchanged if the key is not there.
///
/// For `lookerctl import --remove-secret`: pass [`IniSection::secret_section`] as
/// `section` so a client_secret inherited from `[DEFAULT]` is found.
pub fn remove_key(text: &str, section: &str, key: &str) -> String {
    let key = key.to_lowercase();
    let mut drop: Vec<Range<usize>> = Vec::new();
    let mut current: Option<String> = None;
    let mut removing = false;
    let mut blanks: Vec<Range<usize>> = Vec::new();
    for line in scan(text) {
        match line.kind {
            Kind::Continuation(_) if removing => {
                drop.append(&mut blanks);
                drop.push(line.range);
            }
            Kind::Blank if removing => blanks.push(line.range),
            Kind::Comment | Kind::Blank | Kind::Continuation(_) => {}
            Kind::Header(name) => {
                (removing, current) = (false, Some(name));
                blanks.clear();
            }
            Kind::Opt { key: k, .. } => {
                blanks.clear();
                removing = current.as_deref() == Some(section) && k == key;
                if removing {
                    drop.push(line.range);
                }
            }
            Kind::Bad(_) => {
                removing = false;
                blanks.clear();
            }
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for r in drop {
        out.push_str(&text[pos..r.start]);
        pos = r.end;
    }
    out.push_str(&text[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
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
    fn sections_keys_quotes_and_comments() {
        let s = parse(SAMPLE).unwrap();
        assert_eq!(s.len(), 2);
        let (a, b) = (&s[0], &s[1]);
        assert_eq!((a.name.as_str(), a.line), ("Looker", 2));
        assert_eq!(a.base_url().unwrap(), "https://example.looker.com:19999");
        assert_eq!(a.client_id().unwrap(), Some("AbC123"));
        assert_eq!(a.secret().unwrap().expose(), "x=y#z;w");
        assert_eq!(a.line_of("CLIENT_SECRET"), Some(7));
        assert!(!a.verify_ssl().unwrap());
        assert_eq!(a.timeout().unwrap(), Some(Duration::from_secs(90)));
        assert_eq!(a.get("API_VERSION"), Some("4.0"));
        assert_eq!(a.get("client_secret"), None);
        assert_eq!(b.base_url().unwrap(), "https://staging.example.com");
        assert_eq!(b.get("client_id"), Some("def"));
        assert_eq!(b.secret().unwrap().expose(), "plain#not-a-comment");
        assert_eq!((b.get("empty"), b.get("quoted_empty")), (None, None));
        assert!(b.verify_ssl().unwrap());
        let settings = a.profile_settings().unwrap();
        assert!(!settings.verify_tls);
        assert_eq!(settings.base_url, "https://example.looker.com:19999");
    }

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
    fn sdk_quote_stripping() {
        let s = parse("[a]\nk1=\"abc\"\nk2='abc'\nk3=\"abc'\nk4=\"\"abc\"\"\nk5=a\"b\nk6=''\n").unwrap();
        let get = |k| s[0].get(k);
        assert_eq!(
            (get("k1"), get("k2"), get("k3"), get("k4")),
            (Some("abc"), Some("abc"), Some("abc"), Some("abc"))
        );
        assert_eq!((get("k5"), get("k6")), (Some("a\"b"), None));
    }

    #[test]
    fn defaults_interpolation_and_continuations() {
        let text = "[DEFAULT]\nhost = example.com\nverify_ssl = no\n\n[a]\nbase_url = https://%(host)s\n\
                    client_secret = 100%%\n  more\n\n  lines\n\n[b]\nverify_ssl = yes\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 2, "DEFAULT is not a section");
        assert_eq!(s[0].base_url().unwrap(), "https://example.com");
        assert_eq!(s[0].secret().unwrap().expose(), "100%\nmore\n\nlines");
        assert!(!s[0].verify_ssl().unwrap());
        assert!(s[1].verify_ssl().unwrap());
        assert_eq!(s[1].get("host"), Some("example.com"));
        assert_eq!(s[1].line_of("host"), Some(2));

        let e = parse("[a]\nbase_url = x\n  client_id = y\n").unwrap()[0].base_url().unwrap_err();
        assert!(e.to_string().contains("indent"), "{e}");
    }

    #[test]
    fn errors_have_lines_and_no_values() {
        let cases: &[(&str, usize, &str)] = &[
            ("base_url=x\n", 1, "before any [section]"),
            ("[a]\n\nthis-is-my-secret\n", 3, "key=value"),
            ("[a]\nk=1\nK=2\n", 3, "twice"),
            ("[a]\n[b]\n[a]\n", 3, "twice"),
            ("[a\n", 1, "closing"),
            ("[a]\n= v\n", 2, "without a key"),
            ("[a]\nclient_secret = 50%off\n", 2, "%%"),
            ("[a]\nclient_secret = %(nope)s\n", 2, "not set"),
            ("[a]\nx = %(y)s\ny = %(x)s\n", 2, "deep"),
        ];
        for (text, line, needle) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line(), Some(*line), "{text:?}: {e}");
            let msg = e.to_string();
            assert!(msg.contains(needle), "{text:?}: {msg}");
            assert!(!msg.contains("this-is-my-secret") && !msg.contains("off"), "{msg}");
        }
        let e = parse("[a]\nverify_ssl = maybe\n").unwrap()[0].verify_ssl().unwrap_err();
        assert_eq!(e.line(), Some(2));
    }

    #[test]
    fn select_by_name_or_first() {
        let s = parse(SAMPLE).unwrap();
        assert_eq!(select(s.clone(), None).unwrap().name, "Looker");
        assert_eq!(select(s.clone(), Some("Staging")).unwrap().name, "Staging");
        let e = select(s, Some("staging")).unwrap_err().to_string();
        assert!(e.contains("[Looker], [Staging]"), "{e}");
        assert_eq!(select(parse("").unwrap(), None).unwrap_err(), IniError::NoSections);
    }

    #[test]
    fn remove_key_keeps_everything_else() {
        let out = remove_key(SAMPLE, "Looker", "CLIENT_SECRET");
        assert_eq!(out, SAMPLE.replace("client_secret = \"x=y#z;w\"\n", ""));
        let out = remove_key(SAMPLE, "Staging", "client_secret");
        assert_eq!(out, SAMPLE.replace("CLIENT_SECRET=plain#not-a-comment\n", ""));
        assert_eq!(remove_key(SAMPLE, "Nope", "client_secret"), SAMPLE);
        assert_eq!(remove_key(SAMPLE, "Looker", "nope"), SAMPLE);

        let crlf = "[a]\r\nclient_id=1\r\nclient_secret=2\r\n  continued\r\n\r\n# kept\r\nx=3";
        assert_eq!(remove_key(crlf, "a", "client_secret"), "[a]\r\nclient_id=1\r\n\r\n# kept\r\nx=3");
        let last = "[a]\nclient_secret=2";
        assert_eq!(remove_key(last, "a", "client_secret"), "[a]\n");
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
