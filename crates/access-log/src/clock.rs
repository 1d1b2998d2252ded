//! The time of a line, formatted once per second per thread: a busy worker writes thousands
//! of lines a second, all with the same date and clock, so only the milliseconds are new.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// One second, formatted both ways the log writes it.
struct Second {
    /// Seconds since the epoch it is for; `u64::MAX` before the first line.
    unix: u64,
    /// RFC 3339 up to the seconds: `2026-12-04T10:00:00`.
    rfc3339: String,
    /// nginx's `$time_local` in UTC: `04/Dec/2026:10:00:00 +0000`.
    nginx: String,
}

thread_local! {
    static SECOND: RefCell<Second> =
        const { RefCell::new(Second { unix: u64::MAX, rfc3339: String::new(), nginx: String::new() }) };
}

impl Second {
    fn at(&mut self, unix: u64) {
        if self.unix == unix {
            return;
        }
        let text = humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(unix)).to_string();
        // `YYYY-MM-DDTHH:MM:SSZ`; humantime writes four-digit years up to 9999.
        let rfc3339 = text.strip_suffix('Z').unwrap_or(&text);
        self.nginx = nginx_time(rfc3339);
        self.rfc3339.clear();
        self.rfc3339.push_str(rfc3339);
        self.unix = unix;
    }
}

/// nginx's `$time_local` from RFC 3339 seconds, re-ordered: no calendar arithmetic of our own.
fn nginx_time(rfc3339: &str) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let part = |range: std::ops::Range<usize>| rfc3339.get(range).unwrap_or("00");
    let month = part(5..7).parse::<usize>().ok().and_then(|m| MONTHS.get(m.wrapping_sub(1))).copied().unwrap_or("Jan");
    format!("{}/{month}/{}:{} +0000", part(8..10), part(0..4), part(11..19))
}

/// The last second humantime formats (the end of year 9999).
const LAST_SECOND: u64 = 253_402_300_799;

fn since_epoch(time: SystemTime) -> (u64, u32) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    (since.as_secs().min(LAST_SECOND), since.subsec_millis())
}

/// A time as RFC 3339 in UTC with milliseconds (`2026-12-04T10:00:00.123Z`), on the stack.
pub(crate) struct Rfc3339([u8; 24]);

impl Rfc3339 {
    /// `time`, formatted.
    pub(crate) fn of(time: SystemTime) -> Self {
        let (unix, millis) = since_epoch(time);
        let mut bytes = *b"1970-01-01T00:00:00.000Z";
        SECOND.with_borrow_mut(|second| {
            second.at(unix);
            if let (Some(to), Some(from)) = (bytes.get_mut(..19), second.rfc3339.as_bytes().get(..19)) {
                to.copy_from_slice(from);
            }
        });
        bytes[20..23].copy_from_slice(&[digit(millis / 100), digit(millis / 10 % 10), digit(millis % 10)]);
        Self(bytes)
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("1970-01-01T00:00:00.000Z")
    }
}

/// Appends `time` as nginx's `$time_local` in UTC: `04/Dec/2026:10:00:00 +0000`.
pub(crate) fn push_nginx(out: &mut Vec<u8>, time: SystemTime) {
    let (unix, _) = since_epoch(time);
    SECOND.with_borrow_mut(|second| {
        second.at(unix);
        out.extend_from_slice(second.nginx.as_bytes());
    });
}

fn digit(value: u32) -> u8 {
    b'0' + (value % 10) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn text(push: fn(&mut Vec<u8>, SystemTime), time: SystemTime) -> String {
        let mut out = Vec::new();
        push(&mut out, time);
        String::from_utf8(out).unwrap()
    }

    fn push_rfc3339(out: &mut Vec<u8>, time: SystemTime) {
        out.extend_from_slice(Rfc3339::of(time).as_str().as_bytes());
    }

    #[test]
    fn both_formats_follow_the_clock() {
        let at = UNIX_EPOCH + Duration::from_millis(1_796_378_400_007);
        assert_eq!(text(push_rfc3339, at), "2026-12-04T10:00:00.007Z");
        assert_eq!(text(push_nginx, at), "04/Dec/2026:10:00:00 +0000");
        // The next second, the next month: the cached second is replaced.
        let later = UNIX_EPOCH + Duration::from_millis(1_798_761_599_999);
        assert_eq!(text(push_rfc3339, later), "2026-12-31T23:59:59.999Z");
        assert_eq!(text(push_rfc3339, later + Duration::from_millis(1)), "2027-01-01T00:00:00.000Z");
        assert_eq!(text(push_nginx, later + Duration::from_millis(1)), "01/Jan/2027:00:00:00 +0000");
    }

    #[test]
    fn clocks_out_of_range_are_clamped() {
        let before = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(text(push_rfc3339, before), "1970-01-01T00:00:00.000Z");
        let far = UNIX_EPOCH + Duration::from_secs(LAST_SECOND * 2);
        assert_eq!(text(push_rfc3339, far), "9999-12-31T23:59:59.000Z");
    }
}
