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

/// "00" to "99", for placing two digits at once.
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

impl Iso8601 {
    /// The 28 characters of the form, for years up to 9999 (`None` past it): digits placed
    /// directly, two at a time, as timelines print millions of these.
    pub fn digits(&self) -> Option<[u8; 28]> {
        let t = time_to_time_fields(self.0);
        if t.year > 9999 {
            return None;
        }
        let mut b = *b"0000-00-00T00:00:00.0000000Z";
        let mut pair = |at: usize, v: u64| {
            let i = (v % 100) as usize * 2;
            b[at..at + 2].copy_from_slice(&PAIRS[i..i + 2]);
        };
        let frac = self.0 % 10_000_000;
        pair(0, u64::from(t.year) / 100);
        pair(2, u64::from(t.year));
        pair(5, t.month.into());
        pair(8, t.day.into());
        pair(11, t.hour.into());
        pair(14, t.minute.into());
        pair(17, t.second.into());
        pair(20, frac / 100_000);
        pair(22, frac / 1000);
        pair(24, frac / 10);
        b[26] = b'0' + (frac % 10) as u8;
        Some(b)
    }
}

impl fmt::Display for Iso8601 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(b) = self.digits() {
            // The buffer holds ASCII digits and separators only.
            return f.write_str(core::str::from_utf8(&b).map_err(|_| fmt::Error)?);
        }
        // Past year 9999 (FILETIMEs reach 30828): the plain form.
        let t = time_to_time_fields(self.0);
        write!(
            f,
            "{:05}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
            t.year,
            t.month,
            t.day,
            t.hour,
            t.minute,
            t.second,
            self.0 % 10_000_000
        )
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

    /// The digit form agrees with the fields formatted one by one, over times spread across
    /// the years up to 9999 and every digit position of the fraction.
    #[test]
    fn iso8601_digits_agree_with_the_fields() {
        let mut t: u64 = 1;
        for i in 0..20_000u64 {
            // A multiplicative sequence over the range up to year 9999.
            t = t
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let ft = (t >> 8) % 2_650_467_743_999_999_999 + i;
            let f = time_to_time_fields(ft);
            let want = std::format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
                f.year,
                f.month,
                f.day,
                f.hour,
                f.minute,
                f.second,
                ft % 10_000_000
            );
            assert_eq!(Iso8601(ft).to_string(), want, "{ft}");
        }
    }
}
