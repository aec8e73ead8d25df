//! Text formatting for people: UTC times and secrets in groups.

/// Formats Unix seconds as UTC `YYYY-MM-DD HH:MM:SS`.
///
/// Written by hand (proleptic Gregorian calendar, days-from-civil inverse) so
/// the CLI needs no date crate and never consults the local time zone.
pub fn utc(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Year, month (1-12) and day (1-31) of the day `days` after 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a
    // year; eras are 400-year cycles of 146 097 days.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Splits a base32 secret into space-separated groups of four for typing by hand.
pub fn group4(secret: &str) -> String {
    let mut out = String::with_capacity(secret.len() + secret.len() / 4);
    for (i, c) in secret.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_timestamps() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(utc(1_709_251_199), "2024-02-29 23:59:59");
        assert_eq!(utc(1_709_251_200), "2024-03-01 00:00:00");
        assert_eq!(utc(4_102_444_799), "2099-12-31 23:59:59");
        assert_eq!(utc(4_107_542_400), "2100-03-01 00:00:00");
    }

    #[test]
    fn far_future_does_not_overflow() {
        assert_eq!(utc(253_402_300_799), "9999-12-31 23:59:59");
        assert!(!utc(u64::MAX).is_empty());
    }

    #[test]
    fn secret_in_groups_of_four() {
        assert_eq!(
            group4("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"),
            "JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP"
        );
        assert_eq!(group4("ABCDEF"), "ABCD EF");
        assert_eq!(group4("ABCD"), "ABCD");
        assert_eq!(group4(""), "");
    }
}
