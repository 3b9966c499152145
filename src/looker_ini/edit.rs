//! A looker.ini rewritten without one key (`lookerctl import --remove-secret`),
//! every other byte kept.

use super::scan::{scan, Kind};
use std::ops::Range;

/// The text without `key`'s line (and its indented continuation lines) in `[section]`;
/// every other byte stays as it was. Unchanged if the key is not there.
///
/// For `lookerctl import --remove-secret`: pass [`IniSection::secret_section`](super::IniSection::secret_section) as
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
    use super::super::tests::SAMPLE;
    use super::*;

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
}
