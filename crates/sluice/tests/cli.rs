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
