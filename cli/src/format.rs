//! Text formatting for people: UTC times and secrets in groups.

use twofold_config::time::Utc;

/// Formats Unix seconds as UTC `YYYY-MM-DD HH:MM:SS`.
pub fn utc(unix: u64) -> String {
    let t = Utc::from_unix(unix);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
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
