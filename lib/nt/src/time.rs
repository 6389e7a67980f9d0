//! System time (`LARGE_INTEGER` 100 ns intervals since 1601-01-01 UTC, the FILETIME of files and
//! registry keys) split into calendar fields, as `RtlTimeToTimeFields` does, and shown in
//! ISO 8601 form.

use core::fmt;

/// Calendar fields of a system time (`TIME_FIELDS`), in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeFields {
    /// Year (1601..=30828).
    pub year: u16,
    /// Month, 1..=12.
    pub month: u16,
    /// Day of the month, 1..=31.
    pub day: u16,
    /// Hour, 0..=23.
    pub hour: u16,
    /// Minute, 0..=59.
    pub minute: u16,
    /// Second, 0..=59.
    pub second: u16,
    /// Milliseconds, 0..=999.
    pub milliseconds: u16,
    /// Day of the week, 0 (Sunday)..=6.
    pub weekday: u16,
}

/// Splits a system time into calendar fields (`RtlTimeToTimeFields`).
pub fn time_to_time_fields(time: u64) -> TimeFields {
    let secs = time / 10_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // 1601-01-01 was a Monday.
    let weekday = ((days + 1) % 7) as u16;
    // Days since 0000-03-01 of the proleptic Gregorian calendar (1601-01-01 is day 584694).
    let z = days as i64 + 584_694;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    TimeFields {
        year: year as u16,
        month: month as u16,
        day: day as u16,
        hour: (rem / 3600) as u16,
        minute: (rem / 60 % 60) as u16,
        second: (rem % 60) as u16,
        milliseconds: (time / 10_000 % 1000) as u16,
        weekday,
    }
}

/// A system time shown as ISO 8601 UTC with 100 ns precision: `2022-06-01T12:34:56.1234567Z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iso8601(pub u64);

impl fmt::Display for Iso8601 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = time_to_time_fields(self.0);
        if t.year > 9999 {
            // Past year 9999 (FILETIMEs reach 30828): the plain form.
            return write!(
                f,
                "{:05}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
                t.year,
                t.month,
                t.day,
                t.hour,
                t.minute,
                t.second,
                self.0 % 10_000_000
            );
        }
        // Digits placed directly: timelines print millions of these.
        let mut b = *b"0000-00-00T00:00:00.0000000Z";
        let mut put = |at: usize, width: usize, mut v: u64| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, t.year as u64);
        put(5, 2, t.month as u64);
        put(8, 2, t.day as u64);
        put(11, 2, t.hour as u64);
        put(14, 2, t.minute as u64);
        put(17, 2, t.second as u64);
        put(20, 7, self.0 % 10_000_000);
        // The buffer holds ASCII digits and separators only.
        f.write_str(core::str::from_utf8(&b).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn known_times() {
        // The epoch, a Monday.
        let t = time_to_time_fields(0);
        assert_eq!((t.year, t.month, t.day, t.weekday), (1601, 1, 1, 1));
        // 1970-01-01 (Thursday) is 116444736000000000.
        let t = time_to_time_fields(116_444_736_000_000_000);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.weekday),
            (1970, 1, 1, 0, 4)
        );
        // 2000-02-29 23:59:59.999 (leap day of a century leap year, Tuesday):
        // Unix 951868799 s.
        let ft = 116_444_736_000_000_000 + 951_868_799 * 10_000_000 + 9_990_000;
        let t = time_to_time_fields(ft);
        assert_eq!(
            (
                t.year,
                t.month,
                t.day,
                t.hour,
                t.minute,
                t.second,
                t.milliseconds,
                t.weekday
            ),
            (2000, 2, 29, 23, 59, 59, 999, 2)
        );
        assert_eq!(Iso8601(ft).to_string(), "2000-02-29T23:59:59.9990000Z");
        // 1900-03-01 (not a leap year: the day after 02-28). Unix -2203891200.
        let ft = 116_444_736_000_000_000 - 2_203_891_200 * 10_000_000;
        assert_eq!(Iso8601(ft).to_string(), "1900-03-01T00:00:00.0000000Z");
        // The largest FILETIME: 30828-09-14T02:48:05.4775807Z.
        assert_eq!(
            Iso8601(i64::MAX as u64).to_string(),
            "30828-09-14T02:48:05.4775807Z"
        );
    }
}
