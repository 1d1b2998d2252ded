//! Parsers for annotation and ConfigMap values, with ingress-nginx's rules: booleans as Go's
//! `strconv.ParseBool`, sizes and times in nginx units. Each returns why a value is invalid.

use std::time::Duration;

use http::StatusCode;

/// `true`/`false` and the other spellings Go's `strconv.ParseBool` takes.
pub(crate) fn boolean(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("{value:?} is not a boolean (true or false)")),
    }
}

/// A whole number in `min..=max`.
pub(crate) fn number(value: &str, min: u32, max: u32) -> Result<u32, String> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("{value:?} is not a whole number from {min} to {max}"))
}

/// An nginx size (`8k`, `1m`, `2g`, bytes without unit); `0` means no limit (`None`).
pub(crate) fn size(value: &str) -> Result<Option<u64>, String> {
    let invalid = || format!("{value:?} is not a size (a number with an optional k, m or g unit)");
    let value = value.trim();
    let (digits, unit) = match value.char_indices().last() {
        Some((at, c)) if c.is_ascii_alphabetic() => (&value[..at], c.to_ascii_lowercase()),
        _ => (value, 'b'),
    };
    let n: u64 = digits.parse().map_err(|_| invalid())?;
    let factor: u64 = match unit {
        'b' => 1,
        'k' => 1 << 10,
        'm' => 1 << 20,
        'g' => 1 << 30,
        _ => return Err(invalid()),
    };
    let bytes = n.checked_mul(factor).ok_or_else(invalid)?;
    Ok((bytes > 0).then_some(bytes))
}

/// A time in seconds (`30`), or in nginx units (`500ms`, `30s`, `5m`, `1h`, `1d`).
pub(crate) fn duration(value: &str) -> Result<Duration, String> {
    let invalid = || format!("{value:?} is not a time (seconds, or a number with ms, s, m, h or d)");
    let value = value.trim();
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let n: u64 = value[..split].parse().map_err(|_| invalid())?;
    let unit = match &value[split..] {
        "ms" => Duration::from_millis(1),
        "" | "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        "d" => Duration::from_secs(86_400),
        _ => return Err(invalid()),
    };
    unit.checked_mul(u32::try_from(n).map_err(|_| invalid())?).ok_or_else(invalid)
}

/// A redirect status from 300 to 308.
pub(crate) fn redirect_code(value: &str) -> Result<StatusCode, String> {
    number(value, 300, 308)
        .ok()
        .and_then(|n| StatusCode::from_u16(u16::try_from(n).ok()?).ok())
        .ok_or_else(|| format!("{value:?} is not a redirect status from 300 to 308"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_units() {
        assert_eq!(size("8k"), Ok(Some(8192)));
        assert_eq!(size("1M"), Ok(Some(1 << 20)));
        assert_eq!(size("2g"), Ok(Some(2 << 30)));
        assert_eq!(size("100"), Ok(Some(100)));
        assert_eq!(size("0"), Ok(None));
        assert!(size("1x").is_err() && size("").is_err() && size("-1").is_err() && size("99999999999g").is_err());
        assert_eq!(duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert!(duration("ten").is_err() && duration("5y").is_err() && duration("").is_err());
        assert_eq!(boolean("True"), Ok(true));
        assert!(boolean("yes").is_err());
        assert_eq!(redirect_code("308"), Ok(StatusCode::PERMANENT_REDIRECT));
        assert!(redirect_code("200").is_err() && redirect_code("309").is_err());
        assert_eq!(number("50", 0, 100), Ok(50));
        assert!(number("101", 0, 100).is_err());
    }
}
