//! The UTC windows budgets count in. Day and month boundaries are computed here, from whatever
//! clock the caller trusts: Redis's when replicas share their counters, this host's otherwise.

pub(crate) const DAY_MS: i64 = 86_400_000;

/// The UTC day and month a request's spend counts in, fixed when it is admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Windows {
    pub day_start: i64,
    pub month_start: i64,
}

impl Windows {
    /// The windows containing `ms` (ms since the Unix epoch).
    pub fn at(ms: i64) -> Self {
        let (day_start, month_start) = day_and_month_start(ms);
        Self {
            day_start,
            month_start,
        }
    }

    pub fn day_end(self) -> i64 {
        self.day_start + DAY_MS
    }

    pub fn month_end(self) -> i64 {
        next_month_start(self.month_start)
    }

    /// Whether `ms` falls in both windows.
    pub fn contain(self, ms: i64) -> bool {
        (self.day_start..self.day_end()).contains(&ms)
            && (self.month_start..self.month_end()).contains(&ms)
    }
}

/// The start of the UTC day and month containing `ms`, in ms since the epoch.
pub fn day_and_month_start(ms: i64) -> (i64, i64) {
    let days = ms.div_euclid(DAY_MS);
    let (_, _, day) = civil_from_days(days);
    (days * DAY_MS, (days - (day - 1)) * DAY_MS)
}

/// Howard Hinnant's days-to-civil conversion: (year, month 1-12, day 1-31).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The first ms of the UTC month after the one that starts at `month_start`.
pub(crate) fn next_month_start(month_start: i64) -> i64 {
    // Any day 32 days on is in the next month; take that month's start.
    day_and_month_start(month_start + 32 * DAY_MS).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_day_and_month_starts() {
        // 2024-02-29T13:00:00Z: a leap day.
        let ms = 1_709_211_600_000;
        let (day, month) = day_and_month_start(ms);
        assert_eq!(day, 1_709_164_800_000); // 2024-02-29T00:00Z
        assert_eq!(month, 1_706_745_600_000); // 2024-02-01T00:00Z
        assert_eq!(next_month_start(month), 1_709_251_200_000); // 2024-03-01T00:00Z
        // December rolls over into the next year.
        let (_, december) = day_and_month_start(1_734_000_000_000); // 2024-12-12
        assert_eq!(next_month_start(december), 1_735_689_600_000); // 2025-01-01T00:00Z
    }

    #[test]
    fn windows_contain_their_own_instants_only() {
        let w = Windows::at(1_709_211_600_000);
        assert!(w.contain(1_709_164_800_000));
        assert!(w.contain(1_709_251_199_999));
        assert!(!w.contain(1_709_251_200_000), "the next day is March");
        assert!(!w.contain(1_709_164_799_999), "the day before");
        assert_eq!(w.day_end(), 1_709_251_200_000);
        assert_eq!(w.month_end(), 1_709_251_200_000);
    }
}
