//! A looker.ini's text to its sections: configparser's rules, then the SDK's
//! cleaning of the values (see the parent module's documentation).

use super::interpolate::{interpolate, Budget};
use super::scan::{scan, Kind};
use super::{at, is_secret_key, IniError, IniSection, DEFAULTS_SECTION, SECRET_KEY};
use crate::secret::Secret;
use std::collections::{HashMap, HashSet};

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
    let budget = Budget::new();
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

#[cfg(test)]
mod tests {
    use super::super::tests::SAMPLE;
    use super::*;
    use std::time::Duration;

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
}
