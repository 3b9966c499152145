//! Looker's timestamps (`2024-01-01T00:00:00.000+00:00`), written without a
//! date library: the emulator needs only UTC and the Gregorian calendar.

use std::time::{SystemTime, UNIX_EPOCH};

/// `at` in UTC, as Looker writes `created_at`. Times before 1970 are
/// written as the epoch.
pub(crate) fn looker(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's
/// `civil_from_days`, which holds for every day of the proleptic calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(looker(UNIX_EPOCH), "1970-01-01T00:00:00.000+00:00");
        // `date -u -d @1709210096` is Thu Feb 29 12:34:56 UTC 2024.
        let leap = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(looker(leap), "2024-02-29T12:34:56.789+00:00");
        // 2000-03-01: after a leap day of a century divisible by 400.
        assert_eq!(looker(UNIX_EPOCH + Duration::from_secs(951_868_800)), "2000-03-01T00:00:00.000+00:00");
    }
}
