//! Times as people and headers read them: `2026-12-06 00:01:02 UTC` for `mq queue show`, and
//! RFC 5322's `Sun, 06 Dec 2026 00:01:02 +0000` for a `Date:` header. UTC only: the CLI needs
//! no time zone database.

use std::time::SystemTime;

/// Seconds since the Unix epoch now; 0 for a clock before it.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The civil date and time of `seconds` since the epoch, UTC: year, month, day, hour, minute,
/// second, and the weekday (0 = Sunday).
pub(crate) fn civil(seconds: u64) -> (u64, u32, u32, u32, u32, u32, u32) {
    let days = seconds / 86_400;
    let rest = seconds % 86_400;
    // Days to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`), unsigned: the
    // epoch and after only.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + u64::from(month <= 2);
    // 1970-01-01 was a Thursday.
    let weekday = ((days + 4) % 7) as u32;
    let (hour, minute, second) = (
        (rest / 3_600) as u32,
        (rest / 60 % 60) as u32,
        (rest % 60) as u32,
    );
    (year, month, day, hour, minute, second, weekday)
}

/// `2026-12-06 00:01:02 UTC`.
pub(crate) fn utc(seconds: u64) -> String {
    let (year, month, day, hour, minute, second, _) = civil(seconds);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
}

/// `Sun, 06 Dec 2026 00:01:02 +0000`, as a `Date:` header has it (RFC 5322 §3.3).
pub(crate) fn rfc5322(seconds: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day, hour, minute, second, weekday) = civil(seconds);
    let (weekday, month) = (DAYS[weekday as usize], MONTHS[month as usize - 1]);
    format!("{weekday}, {day:02} {month} {year} {hour:02}:{minute:02}:{second:02} +0000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants_are_rendered() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(rfc5322(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        // 2000-02-29 (a leap day in a century year) 12:34:56.
        assert_eq!(utc(951_827_696), "2000-02-29 12:34:56 UTC");
        assert_eq!(rfc5322(951_827_696), "Tue, 29 Feb 2000 12:34:56 +0000");
        assert_eq!(utc(1_796_515_200), "2026-12-06 00:00:00 UTC");
        assert_eq!(rfc5322(1_796_515_200), "Sun, 06 Dec 2026 00:00:00 +0000");
    }
}
