//! Build information for `sluice version`: the commit (read from `.git`, no git binary
//! needed), the target triple, the profile and the compiler.

use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("../..");
    let git = root.join(".git");
    println!("cargo:rerun-if-changed={}", git.join("HEAD").display());
    let commit = head_commit(&git).unwrap_or_else(|| "unknown".to_owned());
    if let Some(reference) = head_reference(&git) {
        println!("cargo:rerun-if-changed={}", git.join(reference).display());
    }
    println!("cargo:rustc-env=SLUICE_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=SLUICE_TARGET={}", std::env::var("TARGET").unwrap_or_default());
    println!("cargo:rustc-env=SLUICE_PROFILE={}", std::env::var("PROFILE").unwrap_or_default());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SLUICE_RUSTC={version}");
}

/// `refs/heads/main` when HEAD points at a branch.
fn head_reference(git: &Path) -> Option<String> {
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    head.trim().strip_prefix("ref: ").map(str::to_owned)
}

/// The commit HEAD names: directly, through a loose ref, or through packed-refs.
fn head_commit(git: &Path) -> Option<String> {
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let Some(reference) = head.trim().strip_prefix("ref: ") else {
        return Some(head.trim().to_owned());
    };
    if let Ok(commit) = std::fs::read_to_string(git.join(reference)) {
        return Some(commit.trim().to_owned());
    }
    let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
    packed.lines().find(|line| line.ends_with(reference)).and_then(|line| line.split(' ').next()).map(str::to_owned)
}
