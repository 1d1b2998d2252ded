//! The command line teaches: every subcommand's `--help` has an example, completions are
//! valid scripts for their shell, and `sluice version` says what was built.

mod common;

use common::*;

const SUBCOMMANDS: [&str; 9] = ["run", "check", "echo", "status", "routes", "demo", "completions", "version", "help"];

#[test]
fn every_subcommand_help_has_an_example() {
    for subcommand in SUBCOMMANDS.iter().filter(|s| **s != "help") {
        let output = run_sluice_command(&[subcommand, "--help"]);
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{subcommand} --help failed");
        assert!(text.contains("Example"), "sluice {subcommand} --help has no example:\n{text}");
    }
    let top = run_sluice_command(&["--help"]);
    let text = String::from_utf8_lossy(&top.stdout);
    for subcommand in SUBCOMMANDS {
        assert!(text.contains(subcommand), "{subcommand} missing from --help:\n{text}");
    }
}

#[test]
fn bash_completion_is_a_valid_script_naming_the_subcommands_and_flags() {
    let output = run_sluice_command(&["completions", "bash"]);
    assert!(output.status.success());
    let script = String::from_utf8(output.stdout).unwrap();
    for word in ["run", "check", "--manifests", "--access-log", "--acme-challenge", "tls-alpn-01"] {
        assert!(script.contains(word), "{word} not completed");
    }
    let dir = TempDir::new("completions");
    let path = dir.write("sluice.bash", &script);
    let checked = std::process::Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    for shell in ["zsh", "fish"] {
        let output = run_sluice_command(&["completions", shell]);
        assert!(output.status.success() && output.stdout.len() > 1000, "{shell}");
    }
    assert!(!run_sluice_command(&["completions", "cmd.exe"]).status.success());
}

#[test]
fn version_names_the_build() {
    let output = run_sluice_command(&["version"]);
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.starts_with(&format!("sluice {}\n", env!("CARGO_PKG_VERSION"))), "{text}");
    let commit = text.lines().find_map(|l| l.strip_prefix("commit:")).unwrap().trim().to_owned();
    assert!(commit == "unknown" || (commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit())), "{text}");
    assert!(text.contains("target:  x86_64") || text.contains("target:  aarch64"), "{text}");
    assert!(text.contains("rustc:   rustc 1."), "{text}");
}

#[test]
fn demo_serves_the_http_and_the_layer_4_halves() {
    let dir = TempDir::new("demo");
    let (http, https, admin) = (free_addr("127.0.0.1"), free_addr("127.0.0.1"), free_addr("127.0.0.1"));
    let mut cmd = std::process::Command::new(SLUICE);
    cmd.args(["demo", "--http", &http.to_string(), "--https", &https.to_string(), "--admin", &admin.to_string()]);
    let demo = Proc::spawn("sluice demo", cmd, dir.path().join("demo.log"), true);
    assert!(
        wait_until(std::time::Duration::from_secs(20), || demo.log().contains("sluice status:")),
        "the demo did not print its status; log:\n{}",
        demo.log()
    );
    let printed = demo.log();
    for line in
        ["curl http://127.0.77.10:9000/hello", "nc -u -w1 127.0.77.11 9053", &format!("Dashboard: http://{admin}/")]
    {
        assert!(printed.contains(line), "{line} not printed:\n{printed}");
    }
    // The status table names both LoadBalancer Services with their addresses.
    let status = printed.split("sluice status:").nth(1).unwrap_or_default();
    assert!(status.contains("demo/tcp-echo") && status.contains("127.0.77.10"), "{status}");
    assert!(status.contains("demo/udp-echo") && status.contains("127.0.77.11"), "{status}");

    // The HTTP half.
    let answer = exchange(http, &http_request("GET", "shop.demo.test", "/cart", &[], b"")).unwrap();
    assert_eq!(answer.status, 200);
    // The TCP half: any bytes, here an HTTP request to the web echo behind the Service.
    let answer = exchange("127.0.77.10:9000".parse().unwrap(), &http_request("GET", "x", "/hello", &[], b"")).unwrap();
    assert_eq!((answer.status, answer.echo().str("path").to_owned()), (200, "/hello".to_owned()));
    // The UDP half.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    udp.send_to(b"ping", "127.0.77.11:9053").unwrap();
    let mut buf = [0u8; 16];
    let n = udp.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    // Requests show in the access log.
    assert!(wait_until(std::time::Duration::from_secs(5), || demo.log().contains("\"path\":\"/cart\"")));
}
