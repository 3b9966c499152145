//! The DURATION syntax (docs/reference.md): `90`, `90s`, `5m`, `1h` (and anything humantime reads).

use std::time::Duration;

/// Parses a DURATION; a bare number is seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration: use e.g. 90, 90s, 5m or 1h".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("invalid duration {t:?} ({e}): use e.g. 90, 90s, 5m or 1h"))
}

/// Formats a duration the way [`parse`] reads it back (e.g. `5m`, `1h 30m`).
pub(crate) fn format(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// A serde adapter for config fields holding a DURATION string (or a number of seconds).
pub(crate) mod serde_opt {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }

    /// Deserializes `Option<Duration>` from `90`, `"90s"`, `"5m"`...
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<Raw>::deserialize(d)? {
            None => Ok(None),
            Some(Raw::Secs(s)) => Ok(Some(Duration::from_secs(s))),
            Some(Raw::Text(t)) => super::parse(&t).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_forms() {
        assert_eq!(parse("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse("soon").unwrap_err().contains("5m"));
        assert!(parse("").is_err());
        assert_eq!(format(Duration::from_secs(300)), "5m");
    }
}
