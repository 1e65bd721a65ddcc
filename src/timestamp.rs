//! Unix nanoseconds to the ISO-8601 UTC form both backends take (`2026-08-01T12:00:00.005Z`,
//! RFC 3339 with a `Z` offset). Civil-date conversion after H. Hinnant's days-from-civil
//! algorithm, written out here so the filter needs no date crate.

/// Formats Unix nanoseconds as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (microseconds: Opik keeps µs).
pub fn iso8601(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let micros = (unix_ns % 1_000_000_000) / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
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

#[cfg(test)]
mod tests {
    use super::iso8601;

    #[test]
    fn known_instants() {
        let cases = [
            (0, "1970-01-01T00:00:00.000000Z"),
            (1_785_585_600_005_000_000, "2026-08-01T12:00:00.005000Z"),
            (951_782_400_000_000_000, "2000-02-29T00:00:00.000000Z"),
            (1_709_210_096_123_456_789, "2024-02-29T12:34:56.123456Z"),
            (4_102_444_799_999_999_000, "2099-12-31T23:59:59.999999Z"),
        ];
        for (ns, text) in cases {
            assert_eq!(iso8601(ns), text);
        }
    }
}
