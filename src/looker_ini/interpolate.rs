//! configparser's basic interpolation (`%%` and `%(key)s`), bounded in depth and
//! in the bytes a file may expand to.

use super::is_secret_key;

/// configparser's `MAX_INTERPOLATION_DEPTH`.
const MAX_INTERPOLATION_DEPTH: usize = 10;

/// How many bytes of settings a file may expand to, counting `[DEFAULT]` once per
/// section and every `%(key)s` expansion. A looker.ini holds a few hundred bytes;
/// the bound keeps a hostile one (a `%(a)s%(a)s...` bomb, thousands of sections
/// times thousands of defaults) from taking all the memory or time there is.
const MAX_EXPANDED_BYTES: usize = 16 << 20;

/// What is left of [`MAX_EXPANDED_BYTES`] while one file is parsed.
pub(super) struct Budget(std::cell::Cell<usize>);

impl Budget {
    /// The whole of [`MAX_EXPANDED_BYTES`], for one file.
    pub(super) fn new() -> Budget {
        Budget(std::cell::Cell::new(MAX_EXPANDED_BYTES))
    }

    pub(super) fn charge(&self, n: usize) -> Result<(), String> {
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

/// configparser's `BasicInterpolation`: `%%` and `%(key)s`. Messages never show the
/// value, nor a name referred to from inside a secret (`hide`): that is the secret's text.
pub(super) fn interpolate<'a>(
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
