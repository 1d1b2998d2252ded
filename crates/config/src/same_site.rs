//! Which browsers mishandle `SameSite=None` (`session-cookie-conditional-samesite-none`).
//!
//! Browsers that predate `SameSite=None` either reject such a cookie outright (Chrome 51 to
//! 66, UC Browser before 12.13.2) or read it as `SameSite=Strict` (Safari and embedded
//! browsers on macOS 10.14, every browser on iOS 12). Sending them the cookie without the
//! attribute keeps their sessions sticky. The rules are the Chromium project's published
//! list of incompatible clients, matched by hand on the `User-Agent`: no regex and no
//! allocation per request.

/// True unless `user_agent` names a browser known to reject or misread `SameSite=None`.
pub fn same_site_none_is_safe(user_agent: &str) -> bool {
    !(has_webkit_same_site_bug(user_agent) || drops_unrecognized_same_site_cookies(user_agent))
}

/// iOS 12, or Safari / an embedded browser on macOS 10.14, treat `None` as `Strict`.
fn has_webkit_same_site_bug(ua: &str) -> bool {
    ios_major(ua) == Some(12)
        || (mac_os_x_version(ua) == Some((10, 14)) && (is_safari(ua) || is_mac_embedded_browser(ua)))
}

/// Chrome 51–66 and UC Browser before 12.13.2 reject cookies with an unknown `SameSite`.
fn drops_unrecognized_same_site_cookies(ua: &str) -> bool {
    if ua.contains("UCBrowser/") {
        return uc_browser_version(ua).is_none_or(|version| version < (12, 13, 2));
    }
    is_chromium_based(ua) && chromium_major(ua).is_some_and(|major| (51..67).contains(&major))
}

/// `(iP…; CPU … OS 12_0 … ) AppleWebKit/`: the iOS major version.
fn ios_major(ua: &str) -> Option<u32> {
    let start = ua.find("(iP")?;
    let rest = &ua[start..];
    let (inside, _) = rest.split_once(") AppleWebKit/")?;
    let cpu = inside.find("; CPU ")?;
    // The last "OS <digits>" of the parenthesis, as the greedy pattern finds it.
    let mut major = None;
    let mut search = &inside[cpu..];
    while let Some(at) = search.find("OS ") {
        let after = &search[at + 3..];
        if let (Some(n), _) = leading_number(after) {
            major = Some(n);
        }
        search = after;
    }
    major
}

/// `(Macintosh; … Mac OS X 10_14_6 … ) AppleWebKit/`: the macOS version.
fn mac_os_x_version(ua: &str) -> Option<(u32, u32)> {
    let start = ua.find("(Macintosh;")?;
    let (inside, _) = ua[start..].split_once(") AppleWebKit/")?;
    let at = inside.find("Mac OS X ")?;
    let (major, rest) = leading_number(&inside[at + "Mac OS X ".len()..]);
    let (minor, _) = leading_number(rest.strip_prefix('_')?);
    Some((major?, minor?))
}

/// `Version/… Safari/` and not Chromium.
fn is_safari(ua: &str) -> bool {
    ua.find("Version/").is_some_and(|at| ua[at..].contains(" Safari/")) && !is_chromium_based(ua)
}

/// A macOS app's web view: `Mozilla/x.y (Macintosh; … Mac OS X 10_14_6) AppleWebKit/x.y (KHTML, like Gecko)`
/// and nothing else.
fn is_mac_embedded_browser(ua: &str) -> bool {
    let Some(rest) = ua.strip_prefix("Mozilla/") else {
        return false;
    };
    let rest = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let Some(rest) = rest.strip_prefix(" (Macintosh;") else {
        return false;
    };
    let Some(tail) = rest.strip_suffix(" (KHTML, like Gecko)") else {
        return false;
    };
    let Some((inside, webkit)) = tail.rsplit_once(") AppleWebKit/") else {
        return false;
    };
    let version_ok = !webkit.is_empty() && webkit.bytes().all(|b| b == b'.' || b.is_ascii_digit());
    let os = inside.rfind("Mac OS X ").map(|at| &inside[at + "Mac OS X ".len()..]);
    let os_ok = os.is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b == b'_' || b.is_ascii_digit()));
    version_ok && os_ok
}

fn is_chromium_based(ua: &str) -> bool {
    ua.contains("Chrome") || ua.contains("Chromium")
}

/// `Chrom<anything but space or slash>/<major>[.digits]* `: the Chromium major version.
fn chromium_major(ua: &str) -> Option<u32> {
    let mut search = ua;
    while let Some(at) = search.find("Chrom") {
        let after = &search[at + "Chrom".len()..];
        let name_end = after.find([' ', '/']).unwrap_or(after.len());
        if name_end > 0 {
            if let Some(version) = after[name_end..].strip_prefix('/') {
                let (major, rest) = leading_number(version);
                let rest = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
                if let (Some(major), true) = (major, rest.starts_with(' ')) {
                    return Some(major);
                }
            }
        }
        search = after;
    }
    None
}

/// `UCBrowser/<major>.<minor>.<build>[.digits]* `.
fn uc_browser_version(ua: &str) -> Option<(u32, u32, u32)> {
    let at = ua.find("UCBrowser/")?;
    let (major, rest) = leading_number(&ua[at + "UCBrowser/".len()..]);
    let (minor, rest) = leading_number(rest.strip_prefix('.')?);
    let (build, rest) = leading_number(rest.strip_prefix('.')?);
    let rest = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    rest.starts_with(' ').then_some((major?, minor?, build?))
}

/// The decimal number `text` starts with (`None` when it does not, or it overflows), and
/// the rest of `text`.
fn leading_number(text: &str) -> (Option<u32>, &str) {
    let end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, rest) = text.split_at(end);
    (digits.parse().ok(), rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_that_mishandle_same_site_none() {
        for ua in [
            // Chrome 51–66 (and Chromium-based browsers of those versions).
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/60.0.3112.113 Safari/537.36",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/51.0.2704.103 Safari/537.36",
            "Mozilla/5.0 (Linux; Android 8.0.0; SM-G960F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/66.0.3359.126 Mobile Safari/537.36",
            // iOS 12: Safari, Chrome on iOS, iPad.
            "Mozilla/5.0 (iPhone; CPU iPhone OS 12_0 like Mac OS X) AppleWebKit/602.1.50 (KHTML, like Gecko) CriOS/56.0.2924.75 Mobile/14E5239e Safari/602.1",
            "Mozilla/5.0 (iPad; CPU OS 12_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Mobile/15E148 Safari/604.1",
            // macOS 10.14: Safari, and an app's embedded web view.
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1.2 Safari/605.1.15",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605.1.15 (KHTML, like Gecko)",
            // UC Browser before 12.13.2.
            "Mozilla/5.0 (Linux; U; Android 7.0; en-US; SM-G935F Build/NRD90M) AppleWebKit/534.30 (KHTML, like Gecko) Version/4.0 UCBrowser/11.3.8.976 U3/0.8.0 Mobile Safari/534.30",
            "Mozilla/5.0 (Linux; U; Android 9; en-US) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/57.0.2987.108 UCBrowser/12.13.1.1189 Mobile Safari/537.36",
            // A UC Browser whose version cannot be read is taken for an old one.
            "UCBrowser/99999999999999999999.1.1 x",
        ] {
            assert!(!same_site_none_is_safe(ua), "{ua}");
        }
    }

    #[test]
    fn current_and_older_browsers_get_same_site_none() {
        for ua in [
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/67.0.3396.99 Safari/537.36",
            // Before 51, Chrome ignores SameSite altogether: the cookie is kept.
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2704.103 Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 13_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0.4 Safari/605.1.15",
            // Chrome on macOS 10.14 is fine.
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.117 Safari/537.36",
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "Mozilla/5.0 (Linux; U; Android 9; en-US) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/57.0.2987.108 UCBrowser/12.13.2.1208 Mobile Safari/537.36",
            "curl/8.5.0",
            "",
            "Chrome/60",
            "(iP; CPU OS ) AppleWebKit/",
            "(Macintosh; Mac OS X 10_) AppleWebKit/",
            "Mozilla/5.0 (Macintosh;",
        ] {
            assert!(same_site_none_is_safe(ua), "{ua}");
        }
    }
}
