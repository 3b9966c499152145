//! `~/.netrc`, as ftp, curl and Google's looker-cli (gzr) read it: `machine HOST
//! login CLIENT_ID password SECRET`, for `lookerctl import --netrc`.
//!
//! Tokens are separated by any whitespace (newlines included), so an entry may span
//! lines or share one; quotes are not special (a quote is part of the value). `default`
//! (the entry for every other host) is parsed and ignored: a Looker profile needs a
//! host. `macdef NAME` is skipped with its body (up to the next empty line). A word
//! starting with `#` where a keyword is expected starts a comment to the end of its
//! line, as curl and Python's netrc allow. Passwords are kept in [`Secret`]s, and
//! each one's byte range is recorded so [`remove_password`] can take it out of the
//! file leaving every other byte as it was.

use crate::secret::Secret;
use std::ops::Range;

/// One `machine` entry.
#[derive(Debug)]
pub struct NetrcEntry {
    /// The host name after `machine`.
    pub machine: String,
    /// The `login` (for Looker: the API key's client_id).
    pub login: Option<String>,
    /// The `password` (the client secret).
    pub password: Option<Secret>,
    /// 1-based line of the `machine` keyword.
    pub line: usize,
    /// 1-based line of the `password` keyword.
    pub password_line: Option<usize>,
    /// Bytes of `password VALUE`, keyword to value.
    password_span: Option<Range<usize>>,
}

/// A netrc file that cannot be read as one. Never holds a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetrcError {
    /// A keyword at the end of the file without its value.
    #[error("line {line}: `{keyword}` has no value after it")]
    MissingValue {
        /// The keyword.
        keyword: String,
        /// 1-based line.
        line: usize,
    },
    /// A word where a keyword (`machine`, `login`, `password`…) was expected.
    #[error("line {line}: expected a keyword (machine, default, login, password, account, macdef), found {word:?}")]
    Unexpected {
        /// The word (never a value: values follow their keyword).
        word: String,
        /// 1-based line.
        line: usize,
    },
    /// `login`, `password` or `account` before any `machine` or `default`.
    #[error("line {line}: `{keyword}` comes before any `machine`")]
    Orphan {
        /// The keyword.
        keyword: String,
        /// 1-based line.
        line: usize,
    },
}

struct Tokens<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Tokens<'a> {
    fn skip_space(&mut self) {
        let b = self.text.as_bytes();
        while self.pos < b.len() && b[self.pos].is_ascii_whitespace() {
            if b[self.pos] == b'\n' {
                self.line += 1;
            }
            self.pos += 1;
        }
    }

    /// The next word, its byte range and its line.
    fn next(&mut self) -> Option<(&'a str, Range<usize>, usize)> {
        self.skip_space();
        let b = self.text.as_bytes();
        if self.pos >= b.len() {
            return None;
        }
        let start = self.pos;
        while self.pos < b.len() && !b[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
        Some((&self.text[start..self.pos], start..self.pos, self.line))
    }

    fn skip_line(&mut self) {
        match self.text[self.pos..].find('\n') {
            Some(i) => self.pos += i,
            None => self.pos = self.text.len(),
        }
    }

    /// Skips a macro body: everything up to and including the next empty line.
    fn skip_macro(&mut self) {
        self.skip_line();
        match self.text[self.pos..].find("\n\n") {
            Some(i) => {
                self.line += self.text[self.pos..self.pos + i + 2].matches('\n').count();
                self.pos += i + 2;
            }
            None => self.pos = self.text.len(),
        }
    }
}

/// Parses a netrc file; `machine` entries in file order (`default` left out).
pub fn parse(text: &str) -> Result<Vec<NetrcEntry>, NetrcError> {
    let mut t = Tokens { text, pos: 0, line: 1 };
    let mut entries = Vec::new();
    // None: before any entry; Some(None): inside `default`; Some(Some(e)): a machine.
    let mut current: Option<Option<NetrcEntry>> = None;
    while let Some((word, word_span, line)) = t.next() {
        let mut value = |keyword: &str| {
            t.next().ok_or_else(|| NetrcError::MissingValue { keyword: keyword.to_string(), line })
        };
        match word {
            "machine" => {
                let (host, _, _) = value(word)?;
                if let Some(Some(e)) = current.take() {
                    entries.push(e);
                }
                current = Some(Some(NetrcEntry {
                    machine: host.to_string(),
                    login: None,
                    password: None,
                    line,
                    password_line: None,
                    password_span: None,
                }));
            }
            "default" => {
                if let Some(Some(e)) = current.take() {
                    entries.push(e);
                }
                current = Some(None);
            }
            "login" | "password" | "account" | "port" => {
                let (v, span, _) = value(word)?;
                let Some(entry) = current.as_mut() else {
                    return Err(NetrcError::Orphan { keyword: word.to_string(), line });
                };
                if let Some(e) = entry.as_mut() {
                    match word {
                        "login" => e.login = Some(v.to_string()),
                        "password" => {
                            e.password = Some(Secret::new(v));
                            e.password_line = Some(line);
                            // From the keyword's first byte to the value's last.
                            e.password_span = Some(word_span.start..span.end);
                        }
                        _ => {}
                    }
                }
            }
            "macdef" => {
                value(word)?;
                t.skip_macro();
            }
            w if w.starts_with('#') => t.skip_line(),
            w => {
                // Show at most a short prefix: a misplaced word may be half of a secret.
                let shown: String = w.chars().take(12).collect();
                return Err(NetrcError::Unexpected { word: shown, line });
            }
        }
    }
    if let Some(Some(e)) = current {
        entries.push(e);
    }
    Ok(entries)
}

/// `text` without `entry`'s `password VALUE`: a line holding only that goes whole;
/// otherwise the pair goes with the blanks before it on its line. Every other byte
/// stays. `entry` must come from [`parse`] of this very `text`.
pub fn remove_password(text: &str, entry: &NetrcEntry) -> String {
    let Some(span) = entry.password_span.clone() else { return text.to_string() };
    let line_start = text[..span.start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = text[span.end..].find('\n').map(|i| span.end + i).unwrap_or(text.len());
    let before = &text[line_start..span.start];
    let after = &text[span.end..line_end];
    let blank = |s: &str| s.bytes().all(|b| b == b' ' || b == b'\t' || b == b'\r');
    let (cut_start, cut_end) = if blank(before) && blank(after) {
        (line_start, (line_end + 1).min(text.len()))
    } else if !blank(before) {
        let trimmed = before.trim_end_matches([' ', '\t']).len();
        (line_start + trimmed, span.end)
    } else {
        let rest = after.len() - after.trim_start_matches([' ', '\t']).len();
        (span.start, span.end + rest)
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..cut_start]);
    out.push_str(&text[cut_end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> NetrcEntry {
        let mut v = parse(text).unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0)
    }

    #[test]
    fn entries_across_lines_and_on_one() {
        let text = "machine a.looker.com login ID1 password s1\n\
                    machine b.looker.com\n  login ID2\n  password \"s2\"\n\
                    default login anon password x\n";
        let v = parse(text).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].machine.as_str(), v[0].login.as_deref()), ("a.looker.com", Some("ID1")));
        assert_eq!(v[0].password.as_ref().unwrap().expose(), "s1");
        assert_eq!(v[1].password.as_ref().unwrap().expose(), "\"s2\"", "quotes are not special");
        assert_eq!((v[1].line, v[1].password_line), (2, Some(4)));
    }

    #[test]
    fn macdef_comments_and_default_are_skipped() {
        let text =
            "# my hosts\nmacdef init\ncd /pub\nmachine not.this\n\nmachine h login i password p # note\n";
        let e = one(text);
        assert_eq!(e.machine, "h");
        let only_default = parse("default login a password b\n").unwrap();
        assert!(only_default.is_empty());
    }

    #[test]
    fn errors_name_the_line_and_never_a_whole_value() {
        assert_eq!(
            parse("machine h login").unwrap_err(),
            NetrcError::MissingValue { keyword: "login".into(), line: 1 }
        );
        assert!(matches!(parse("login x").unwrap_err(), NetrcError::Orphan { .. }));
        let e = parse("machine h\nbogus-word-that-is-long password p").unwrap_err();
        assert_eq!(e, NetrcError::Unexpected { word: "bogus-word-t".into(), line: 2 });
    }

    #[test]
    fn removal_keeps_everything_else() {
        let text = "machine a login x password p1 account q\nmachine h login ID password s3cret\n";
        let v = parse(text).unwrap();
        assert_eq!(
            remove_password(text, &v[1]),
            "machine a login x password p1 account q\nmachine h login ID\n"
        );
        assert_eq!(
            remove_password(text, &v[0]),
            "machine a login x account q\nmachine h login ID password s3cret\n"
        );

        let multi = "machine h\n\tlogin ID\n\tpassword s3cret\n\nmachine z login q\n";
        let e = &parse(multi).unwrap()[0];
        assert_eq!(remove_password(multi, e), "machine h\n\tlogin ID\n\nmachine z login q\n");

        let lead = "machine h\npassword s3cret login ID\n";
        let e = one(lead);
        assert_eq!(remove_password(lead, &e), "machine h\nlogin ID\n");

        let no_newline = "machine h login ID password s3cret";
        assert_eq!(remove_password(no_newline, &one(no_newline)), "machine h login ID");
        let removed = remove_password(text, &v[1]);
        assert!(parse(&removed).unwrap()[1].password.is_none());
    }
}
