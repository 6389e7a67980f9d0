//! `RtlTimeToTimeFields` / `RtlTimeFieldsToTime`: NT system time (100 ns
//! intervals since 1 January 1601, UTC, in the proleptic Gregorian
//! calendar) to and from `TIME_FIELDS`. 1 January 1601 was a Monday.

/// `TIME_FIELDS` (every member a `CSHORT`; `weekday` 0 is Sunday).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeFields {
    pub year: i16,
    pub month: i16,
    pub day: i16,
    pub hour: i16,
    pub minute: i16,
    pub second: i16,
    pub milliseconds: i16,
    pub weekday: i16,
}

const TICKS_PER_MS: i64 = 10_000;
const MS_PER_DAY: i64 = 86_400_000;
/// Days from 0000-03-01 (the civil-from-days epoch below) to 1601-01-01.
const DAYS_TO_1601: i64 = 584_694;

fn leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 0000-03-01 of a civil date (March-based years, so the leap
/// day ends a year).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// `RtlTimeToTimeFields`. Negative times are before 1601 and are clamped
/// to 0 (Windows treats the time as unsigned; no `TIME_FIELDS` year
/// before 1601 exists).
pub fn time_to_fields(time: i64) -> TimeFields {
    let t = time.max(0);
    let ms_total = t / TICKS_PER_MS;
    let days = ms_total / MS_PER_DAY;
    let ms = ms_total % MS_PER_DAY;
    let (y, m, d) = civil_from_days(days + DAYS_TO_1601);
    TimeFields {
        year: y as i16,
        month: m as i16,
        day: d as i16,
        hour: (ms / 3_600_000) as i16,
        minute: (ms / 60_000 % 60) as i16,
        second: (ms / 1000 % 60) as i16,
        milliseconds: (ms % 1000) as i16,
        weekday: ((days + 1) % 7) as i16,
    }
}

/// `RtlTimeFieldsToTime`: `None` (Windows' FALSE) when a field is out of
/// range: year before 1601 or after 30827, month 1..=12, day within the
/// month, hour < 24, minute and second < 60, milliseconds < 1000. The
/// weekday is ignored.
pub fn fields_to_time(f: &TimeFields) -> Option<i64> {
    let (y, m, d) = (f.year as i64, f.month as i64, f.day as i64);
    if !(1601..=30827).contains(&y)
        || !(1..=12).contains(&m)
        || d < 1
        || d > days_in_month(y, m)
        || !(0..24).contains(&f.hour)
        || !(0..60).contains(&f.minute)
        || !(0..60).contains(&f.second)
        || !(0..1000).contains(&f.milliseconds)
    {
        return None;
    }
    let days = days_from_civil(y, m, d) - DAYS_TO_1601;
    let ms = days * MS_PER_DAY
        + f.hour as i64 * 3_600_000
        + f.minute as i64 * 60_000
        + f.second as i64 * 1000
        + f.milliseconds as i64;
    Some(ms * TICKS_PER_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    fn tf(
        year: i16,
        month: i16,
        day: i16,
        hour: i16,
        minute: i16,
        second: i16,
        ms: i16,
        wd: i16,
    ) -> TimeFields {
        TimeFields {
            year,
            month,
            day,
            hour,
            minute,
            second,
            milliseconds: ms,
            weekday: wd,
        }
    }

    #[test]
    fn known_dates() {
        assert_eq!(days_from_civil(1601, 1, 1), DAYS_TO_1601);
        assert_eq!(time_to_fields(0), tf(1601, 1, 1, 0, 0, 0, 0, 1));
        // The Unix epoch is 11644473600 s after 1601 (a Thursday).
        let unix = 116_444_736_000_000_000;
        assert_eq!(time_to_fields(unix), tf(1970, 1, 1, 0, 0, 0, 0, 4));
        assert_eq!(fields_to_time(&tf(1970, 1, 1, 0, 0, 0, 0, 0)), Some(unix));
        // 2000-02-29 12:34:56.789, a Tuesday.
        let t = fields_to_time(&tf(2000, 2, 29, 12, 34, 56, 789, 0)).unwrap();
        assert_eq!(t, unix + (951_827_696_789 * 10_000));
        assert_eq!(time_to_fields(t), tf(2000, 2, 29, 12, 34, 56, 789, 2));
        assert_eq!(time_to_fields(-5), time_to_fields(0));
    }

    #[test]
    fn invalid_fields() {
        for f in [
            tf(1600, 12, 31, 0, 0, 0, 0, 0),
            tf(2001, 2, 29, 0, 0, 0, 0, 0),
            tf(1900, 2, 29, 0, 0, 0, 0, 0),
            tf(2000, 13, 1, 0, 0, 0, 0, 0),
            tf(2000, 0, 1, 0, 0, 0, 0, 0),
            tf(2000, 4, 31, 0, 0, 0, 0, 0),
            tf(2000, 1, 1, 24, 0, 0, 0, 0),
            tf(2000, 1, 1, 0, 60, 0, 0, 0),
            tf(2000, 1, 1, 0, 0, -1, 0, 0),
            tf(2000, 1, 1, 0, 0, 0, 1000, 0),
            tf(30828, 1, 1, 0, 0, 0, 0, 0),
        ] {
            assert_eq!(fields_to_time(&f), None, "{f:?}");
        }
        assert!(fields_to_time(&tf(2000, 2, 29, 0, 0, 0, 0, 0)).is_some());
    }

    proptest::proptest! {
        /// Fields -> time -> fields is the identity (weekday aside), and the
        /// weekday advances by one a day.
        #[test]
        fn round_trip(t in 0i64..0x7FFF_FFFF_FFFF_FFFF / 2) {
            let f = time_to_fields(t);
            proptest::prop_assert!((1601..=30827).contains(&f.year));
            let back = fields_to_time(&f).unwrap();
            proptest::prop_assert_eq!(back, t - t % TICKS_PER_MS);
            let next = time_to_fields(t + MS_PER_DAY * TICKS_PER_MS);
            if next.year <= 30827 {
                proptest::prop_assert_eq!(next.weekday, (f.weekday + 1) % 7);
            }
        }
    }
}
