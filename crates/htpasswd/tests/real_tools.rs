//! Hashes written at test time by the real tools a user would run to make a basic-auth Secret
//! (Apache's `htpasswd` and `openssl passwd`), read as an `auth-file` and as an `auth-map`.
//! The tools come from `scripts/deps` (apache2-utils, openssl); a missing one fails the test.

use std::process::Command;
use std::sync::OnceLock;

use sluice_htpasswd::Htpasswd;

/// Runs a tool and returns its standard output.
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap_or_else(|error| {
        panic!("cannot run {program} ({error}): run scripts/deps to install apache2-utils and openssl")
    });
    assert!(output.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("the tool writes text")
}

/// `htpasswd -nb FLAGS USER PASSWORD`: the `user:hash` line.
fn run_htpasswd(flags: &[&str], user: &str, password: &str) -> String {
    let mut args = vec!["-nb"];
    args.extend(flags);
    args.extend([user, password]);
    run("htpasswd", &args).trim().to_owned()
}

/// `openssl passwd FLAG PASSWORD` as a `user:hash` line.
fn openssl(flag: &str, user: &str, password: &str) -> String {
    format!("{user}:{}", run("openssl", &["passwd", flag, password]).trim())
}

/// One user made by a tool: its `user:hash` line, its password, and whether its hash is one
/// that `is_costly` should report (bcrypt, SHA-crypt).
struct Entry {
    line: String,
    user: &'static str,
    password: &'static str,
    costly: bool,
}

/// The tool that makes an entry: `htpasswd -nb` with these flags, or `openssl passwd` with this
/// one.
enum Tool {
    Htpasswd(&'static [&'static str]),
    Openssl(&'static str),
}

/// The users, made once per test binary (bcrypt and 50,000 rounds take a moment).
fn entries() -> &'static [Entry] {
    static ENTRIES: OnceLock<Vec<Entry>> = OnceLock::new();
    ENTRIES.get_or_init(|| {
        [
            ("bcrypt", "correct horse", true, Tool::Htpasswd(&["-B", "-C", "5"])),
            ("apr1", "pä:ss wörd", false, Tool::Htpasswd(&["-m"])),
            ("sha1", "hunter2", false, Tool::Htpasswd(&["-s"])),
            ("sha256", "s3cret:with:colons", true, Tool::Htpasswd(&["-2"])),
            ("sha512", "Tr0ub4dor&3", true, Tool::Htpasswd(&["-5"])),
            ("sha256-50000", "at the limit", true, Tool::Htpasswd(&["-2", "-r", "50000"])),
            ("sha512-1000", "fewest rounds", true, Tool::Htpasswd(&["-5", "-r", "1000"])),
            ("openssl-apr1", "ö", false, Tool::Openssl("-apr1")),
            ("openssl-md5", "md5 crypt", false, Tool::Openssl("-1")),
            ("openssl-sha256", "x", true, Tool::Openssl("-5")),
            ("openssl-sha512", "a much longer passphrase than most people type", true, Tool::Openssl("-6")),
        ]
        .into_iter()
        .map(|(user, password, costly, tool)| {
            let line = match tool {
                Tool::Htpasswd(flags) => run_htpasswd(flags, user, password),
                Tool::Openssl(flag) => openssl(flag, user, password),
            };
            Entry { line, user, password, costly }
        })
        .collect()
    })
}

/// Right password, wrong password, another user's password, an unknown user; and the cache.
fn check_all(htpasswd: &Htpasswd) {
    assert_eq!(htpasswd.len(), entries().len());
    for (entry, other) in entries().iter().zip(entries().iter().cycle().skip(1)) {
        let (user, password) = (entry.user, entry.password.as_bytes());
        let hash = &entry.line;
        assert_eq!(htpasswd.is_costly(user, password), entry.costly, "{hash}");
        assert!(!htpasswd.verify(user, b"wrong"), "{hash}");
        assert!(!htpasswd.verify(user, other.password.as_bytes()), "{hash}");
        assert!(!htpasswd.verify(user, &[password, b"x"].concat()), "{hash}");
        assert!(htpasswd.verify(user, password), "{hash}");
        assert!(!htpasswd.is_costly(user, password), "{hash}: a success is remembered");
        assert!(htpasswd.verify(user, password), "{hash}: again, from the cache");
        assert!(!htpasswd.verify(&format!("{user}x"), password), "{hash}: unknown user");
    }
    assert!(!htpasswd.verify("nobody", b"hunter2"));
}

#[test]
fn auth_file_from_real_tools() {
    let mut text = String::from("# made by htpasswd and openssl passwd\n\n");
    for entry in entries() {
        text.push_str(&entry.line);
        text.push('\n');
    }
    let (htpasswd, problems) = Htpasswd::from_file(&text);
    assert_eq!(problems, [], "{text}");
    check_all(&htpasswd);
}

#[test]
fn auth_map_from_real_tools() {
    let pairs: Vec<(&str, &str)> =
        entries().iter().map(|entry| entry.line.split_once(':').expect("user:hash")).collect();
    let (htpasswd, problems) = Htpasswd::from_map(pairs);
    assert_eq!(problems, []);
    check_all(&htpasswd);
}

#[test]
fn bad_lines_are_reported_and_good_ones_still_work() {
    let good = run_htpasswd(&["-B", "-C", "5"], "alice", "alice's password");
    let also_good = run_htpasswd(&["-m"], "bob", "bob's password");
    let plain = run_htpasswd(&["-p"], "carol", "carol's password"); // plain text, refused
    let des = run_htpasswd(&["-d"], "dave", "dave's password");
    let text = format!("{good}\nthis line has no colon\n{plain}\n\n{des}\n{also_good}\n:nouser\nalice:{{SHA}}x\n");
    let (htpasswd, problems) = Htpasswd::from_file(&text);
    let lines: Vec<_> = problems.iter().map(|p| (p.line, p.user.as_deref())).collect();
    assert_eq!(
        lines,
        [(Some(2), None), (Some(3), Some("carol")), (Some(5), Some("dave")), (Some(7), None), (Some(8), Some("alice")),]
    );
    for problem in &problems {
        assert!(!problem.reason.contains("carol's password"), "{problem}");
    }
    assert!(problems[2].reason.contains("DES crypt"), "{}", problems[2]);
    assert!(problems[4].reason.contains("already on line 1"), "{}", problems[4]);
    assert_eq!(htpasswd.len(), 2);
    assert!(htpasswd.verify("alice", b"alice's password"));
    assert!(htpasswd.verify("bob", b"bob's password"));
    assert!(!htpasswd.verify("carol", b"carol's password"));
    assert!(!htpasswd.verify("dave", b"dave's password"));
}

#[test]
fn bcrypt_cost_above_12_is_refused() {
    let line = run_htpasswd(&["-B", "-C", "13"], "slow", "pw");
    let (htpasswd, problems) = Htpasswd::from_file(&line);
    assert_eq!(problems.len(), 1, "{line}");
    assert!(problems[0].reason.contains("bcrypt cost 13 is above 12"), "{}", problems[0]);
    assert!(!htpasswd.verify("slow", b"pw"));
    assert!(!htpasswd.is_costly("slow", b"pw"));
    // Cost 12 is the highest accepted.
    let line = run_htpasswd(&["-B", "-C", "12"], "slow", "pw");
    assert_eq!(Htpasswd::from_file(&line).0.len(), 1, "{line}");
}

#[test]
fn sha_crypt_rounds_above_50000_are_refused() {
    let line = run_htpasswd(&["-5", "-r", "50001"], "slow", "pw");
    let (_, problems) = Htpasswd::from_file(&line);
    assert!(problems[0].reason.contains("rounds=50001 is above 50000"), "{}", problems[0]);
    // crypt(3)'s maximum, too slow to make with the tool: the same hash with the rounds changed.
    let line = run_htpasswd(&["-5"], "slow", "pw").replacen("$6$", "$6$rounds=999999999$", 1);
    let (htpasswd, problems) = Htpasswd::from_file(&line);
    assert_eq!(problems.len(), 1, "{line}");
    assert!(problems[0].reason.contains("rounds=999999999 is above 50000"), "{}", problems[0]);
    assert!(!htpasswd.verify("slow", b"pw"));
}

#[test]
fn passwords_as_long_as_htpasswd_takes() {
    // htpasswd hashes up to 255 bytes and refuses more, which is where verify stops.
    let longest = "p".repeat(255);
    let line = run_htpasswd(&["-s"], "long", &longest);
    let (htpasswd, problems) = Htpasswd::from_file(&line);
    assert_eq!(problems, []);
    assert!(htpasswd.verify("long", longest.as_bytes()));
    let refused = Command::new("htpasswd").args(["-nbs", "long", &"p".repeat(256)]).output();
    assert!(!refused.expect("htpasswd runs").status.success());
    // bcrypt reads only the first 72 bytes, in Apache as here.
    let line = run_htpasswd(&["-B", "-C", "5"], "long", &"b".repeat(80));
    let htpasswd = Htpasswd::from_file(&line).0;
    assert!(htpasswd.verify("long", &[b'b'; 72]));
    assert!(!htpasswd.verify("long", &[b'b'; 71]));
}
