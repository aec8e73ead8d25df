//! UTC calendar arithmetic for Unix seconds, written by hand (proleptic
//! Gregorian calendar, Howard Hinnant's days-from-civil and its inverse) so
//! no crate needs a date library and nothing consults the local time zone.
//! The callers format the fields: the CLI as `YYYY-MM-DD HH:MM:SS`, the
//! daemon's messages as `YYYY-MM-DD HH:MM UTC`, its syslog lines as
//! `Mmm dd hh:mm:ss`.

/// A Unix time broken into UTC calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    /// Year (1970 and later).
    pub year: u64,
    /// Month, 1-12.
    pub month: u64,
    /// Day of the month, 1-31.
    pub day: u64,
    /// Hour, 0-23.
    pub hour: u64,
    /// Minute, 0-59.
    pub minute: u64,
    /// Second, 0-59 (Unix time has no leap seconds).
    pub second: u64,
}

impl Utc {
    /// The UTC fields of `unix` seconds after 1970-01-01 00:00:00.
    pub fn from_unix(unix: u64) -> Utc {
        let (year, month, day) = civil_from_days(unix / 86_400);
        let secs = unix % 86_400;
        Utc {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
        }
    }
}

/// Year, month (1-12) and day (1-31) of the day `days` after 1970-01-01.
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
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
    (yoe + era * 400 + u64::from(m <= 2), m, d)
}

/// Days from 1970-01-01 to year `y` (1970 and later), month `m` (1-12),
/// day `d`: the inverse of [`civil_from_days`]. It does not check that the
/// day exists (31 February counts on into March); callers that must refuse
/// such dates compare the round trip.
pub fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        let t = Utc::from_unix(1_709_251_199);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (2024, 2, 29, 23, 59, 59)
        );
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
    }

    #[test]
    fn days_round_trip_through_the_calendar() {
        // Every day from 1970 to past 2400 (two century rules, one 400-year leap).
        for days in 0..160_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }
}
