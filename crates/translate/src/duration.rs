//! Durations written by users: Gateway API timeouts, MetalLB timers, Sluice's annotations.

use std::time::Duration;

/// A duration as Gateway API and MetalLB write them (Go's syntax without fractions or
/// microseconds): `1h`, `10s`, `500ms`, combined like `1m30s`.
pub(crate) fn parse(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let number: u64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let (unit, after) = if let Some(after) = rest.strip_prefix("ms") {
            (Duration::from_millis(number), after)
        } else if let Some(after) = rest.strip_prefix('s') {
            (Duration::from_secs(number), after)
        } else if let Some(after) = rest.strip_prefix('m') {
            (Duration::from_secs(number.checked_mul(60)?), after)
        } else if let Some(after) = rest.strip_prefix('h') {
            (Duration::from_secs(number.checked_mul(3600)?), after)
        } else {
            return None;
        };
        total = total.checked_add(unit)?;
        rest = after;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::parse;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse("2h"), Some(Duration::from_secs(7200)));
        for bad in ["", "s", "10", "1d", "-1s", "1.5s", "99999999999999999999h"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
