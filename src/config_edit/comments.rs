//! Keeping the user's comments when an edit removes a table or a value: a comment
//! detached above the removed part stays in the file, above whatever follows.

use toml_edit::{DocumentMut, Item, Table};

/// One step of a path to a table in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// Every table printed with a header, in document order (as toml_edit prints them).
fn tables_in_order(doc: &DocumentMut) -> Vec<Vec<Seg>> {
    fn walk(t: &Table, path: &mut Vec<Seg>, last: &mut isize, out: &mut Vec<(isize, Vec<Seg>)>) {
        if !t.is_dotted() {
            if let Some(p) = t.position() {
                *last = p;
            }
            let hidden = path.is_empty() || (t.is_implicit() && t.get_values().is_empty());
            if !hidden {
                out.push((*last, path.clone()));
            }
        }
        for (key, item) in t.iter() {
            match item {
                Item::Table(sub) => {
                    path.push(Seg::Key(key.to_string()));
                    walk(sub, path, last, out);
                    path.pop();
                }
                Item::ArrayOfTables(aot) => {
                    for (i, sub) in aot.iter().enumerate() {
                        path.push(Seg::Key(key.to_string()));
                        path.push(Seg::Index(i));
                        walk(sub, path, last, out);
                        path.pop();
                        path.pop();
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(doc.as_table(), &mut Vec::new(), &mut 0, &mut out);
    out.sort_by_key(|(pos, _)| *pos);
    out.into_iter().map(|(_, p)| p).collect()
}

fn table_at_mut<'a>(doc: &'a mut DocumentMut, path: &[Seg]) -> Option<&'a mut Table> {
    let mut t = doc.as_table_mut();
    let mut i = 0;
    while i < path.len() {
        let Seg::Key(k) = &path[i] else { return None };
        t = match (t.get_mut(k)?, path.get(i + 1)) {
            (Item::ArrayOfTables(aot), Some(Seg::Index(n))) => {
                i += 1;
                aot.get_mut(*n)?
            }
            (Item::Table(sub), _) => sub,
            _ => return None,
        };
        i += 1;
    }
    Some(t)
}

/// Before tables are removed: comments above the first of them that are separated from
/// its header by a blank line describe what came before (a file header, a section
/// note), not the table, so they move to the next table that stays, or to the end.
pub(super) fn keep_detached_comments(doc: &mut DocumentMut, removed: impl Fn(&[Seg]) -> bool) {
    let order = tables_in_order(doc);
    let Some(first) = order.iter().position(|p| removed(p)) else { return };
    let next = order[first + 1..].iter().find(|p| !removed(p)).cloned();
    let Some(first_table) = table_at_mut(doc, &order[first]) else { return };
    let prefix = raw_str(first_table.decor().prefix());
    let (detached, attached) = split_detached(&prefix);
    if !has_comment(detached) {
        return;
    }
    first_table.decor_mut().set_prefix(attached);
    match next.and_then(|p| table_at_mut(doc, &p)) {
        Some(t) => {
            let new = prepend(detached, &raw_str(t.decor().prefix()));
            t.decor_mut().set_prefix(new);
        }
        None => {
            let old = doc.trailing().as_str().unwrap_or("").to_string();
            doc.set_trailing(format!("{detached}{old}"));
        }
    }
}

/// Removes a top-level key; its detached comments (a file header, say) move to what
/// follows: the next top-level key, else the first table, else the end of the file.
pub(super) fn remove_root_value(doc: &mut DocumentMut, key: &str) {
    let prefix = raw_str(doc.as_table().key(key).and_then(|k| k.leaf_decor().prefix()));
    let values: Vec<String> =
        doc.as_table().iter().filter(|(_, item)| item.is_value()).map(|(k, _)| k.to_string()).collect();
    if doc.remove(key).is_none() {
        return;
    }
    let (detached, _) = split_detached(&prefix);
    if !has_comment(detached) {
        return;
    }
    let next_key = values.iter().skip_while(|k| k.as_str() != key).nth(1);
    if let Some(mut k) = next_key.and_then(|k| doc.as_table_mut().key_mut(k)) {
        let new = prepend(detached, &raw_str(k.leaf_decor().prefix()));
        k.leaf_decor_mut().set_prefix(new);
        return;
    }
    if let Some(t) = tables_in_order(doc).first().cloned().and_then(|p| table_at_mut(doc, &p)) {
        let new = prepend(detached, &raw_str(t.decor().prefix()));
        t.decor_mut().set_prefix(new);
        return;
    }
    let old = doc.trailing().as_str().unwrap_or("").to_string();
    doc.set_trailing(format!("{detached}{old}"));
}

/// A new first top-level `key` is printed above every table: keep a file header
/// (the first table's detached comments) above it, and a blank line below it.
pub(super) fn keep_header_above(doc: &mut DocumentMut, key: &str) {
    let Some(t) = tables_in_order(doc).first().cloned().and_then(|p| table_at_mut(doc, &p)) else { return };
    let prefix = raw_str(t.decor().prefix());
    let (detached, attached) = split_detached(&prefix);
    let header = detached.to_string();
    t.decor_mut().set_prefix(format!("\n{}", skip_blank_lines(attached)));
    if let Some(mut k) = doc.as_table_mut().key_mut(key) {
        k.leaf_decor_mut().set_prefix(header);
    }
}

fn raw_str(raw: Option<&toml_edit::RawString>) -> String {
    raw.and_then(|r| r.as_str()).unwrap_or("").to_string()
}

fn has_comment(s: &str) -> bool {
    s.lines().any(|l| l.trim_start().starts_with('#'))
}

/// `detached` (which ends with a blank line) above `existing`, without doubling the blank line.
fn prepend(detached: &str, existing: &str) -> String {
    format!("{detached}{}", skip_blank_lines(existing))
}

/// Splits a table's prefix after its last blank line.
fn split_detached(prefix: &str) -> (&str, &str) {
    let mut cut = 0;
    let mut at = 0;
    for line in prefix.split_inclusive('\n') {
        at += line.len();
        if line.trim().is_empty() && line.ends_with('\n') {
            cut = at;
        }
    }
    prefix.split_at(cut)
}

fn skip_blank_lines(s: &str) -> &str {
    let mut at = 0;
    for line in s.split_inclusive('\n') {
        if !line.trim().is_empty() || !line.ends_with('\n') {
            break;
        }
        at += line.len();
    }
    &s[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detached_comment_split() {
        assert_eq!(split_detached("# a\n\n# b\n"), ("# a\n\n", "# b\n"));
        assert_eq!(split_detached("\n# b\n"), ("\n", "# b\n"));
        assert_eq!(split_detached("# b\n"), ("", "# b\n"));
        assert_eq!(skip_blank_lines("\n \n# x\n"), "# x\n");
    }
}
