//! The lines of a looker.ini, each with its kind (header, key=value,
//! continuation, comment, blank), as configparser tells them apart.

use std::ops::Range;

/// What one line of the file is, given the lines before it.
#[derive(Debug)]
pub(super) enum Kind {
    Blank,
    Comment,
    Header(String),
    Opt { key: String, value: String },
    Continuation(String),
    Bad(String),
}

pub(super) struct Line {
    pub(super) number: usize,
    pub(super) range: Range<usize>,
    pub(super) kind: Kind,
}

/// configparser's line rules (`RawConfigParser._read`), shared by [`parse`](super::parse) and [`remove_key`](super::remove_key).
pub(super) fn scan(text: &str) -> Vec<Line> {
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
