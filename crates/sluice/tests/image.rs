//! The container image: `scripts/image` builds an OCI archive `FROM scratch` with buildah (no
//! registry) around the binary under test, and the archive must be a runnable image — OCI
//! layout, config with user 65532 and entrypoint `/sluice`, a layer holding the binary, the
//! libraries `ldd` lists and the loader, enough to run it: `chroot ROOTFS /sluice --version`,
//! as root and as UID 65532. Without buildah or root, the rootfs the script assembles is
//! checked the same way as far as possible (and the test says what it skipped).
//!
//! The binary is the test profile's (`CARGO_BIN_EXE_sluice`), stripped to save disk space
//! and time (a debug build is large): no release build here. The
//! `Containerfile` needs base images from a registry and is not built; only its essentials
//! are checked.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TempDir, SLUICE};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs `cmd`, panicking with its output unless it succeeds; returns stdout.
fn run(cmd: &mut Command) -> String {
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The files `ldd` says the binary loads (libraries and loader).
fn ldd_files(binary: &Path) -> Vec<String> {
    let out = run(Command::new("ldd").arg(binary));
    let mut files = Vec::new();
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [_, "=>", path, ..] if path.starts_with('/') => files.push((*path).to_owned()),
            [path, ..] if path.starts_with('/') => files.push((*path).to_owned()),
            _ => {}
        }
    }
    files
}

/// Why buildah cannot build here, if it cannot.
fn buildah_unusable() -> Option<String> {
    match Command::new("buildah").arg("--version").output() {
        Err(e) => return Some(format!("buildah is not installed ({e}); scripts/deps installs it")),
        Ok(o) if !o.status.success() => return Some("`buildah --version` fails".to_owned()),
        Ok(_) => {}
    }
    if !is_root() {
        return Some("not root (scripts/image would need `buildah unshare` and subordinate IDs)".to_owned());
    }
    None
}

/// A blob of the OCI layout by digest.
fn blob(layout: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap_or_else(|| panic!("unexpected digest {digest}"));
    layout.join("blobs/sha256").join(hex)
}

fn json(path: &Path) -> serde_json::Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A stripped copy of the binary under test (same libraries, a fraction of the size).
fn image_binary(work: &Path) -> PathBuf {
    let copy = work.join("sluice");
    fs::copy(SLUICE, &copy).expect("copy the binary under test");
    match Command::new("strip").arg(&copy).status() {
        Ok(status) if status.success() => {}
        other => println!("cannot strip the binary ({other:?}); the image holds it as built"),
    }
    copy
}

/// Checks the OCI archive and unpacks its layers into `rootfs` (removing the archive and the
/// layout as it goes, to need little disk space).
fn check_archive(archive: &Path, work: &Path, rootfs: &Path) {
    let layout = work.join("layout");
    fs::create_dir_all(&layout).expect("layout dir");
    run(Command::new("tar").arg("-xf").arg(archive).arg("-C").arg(&layout));
    fs::remove_file(archive).expect("remove the archive");
    let oci_layout = json(&layout.join("oci-layout"));
    assert_eq!(oci_layout["imageLayoutVersion"], "1.0.0");
    let index = json(&layout.join("index.json"));
    let manifests = index["manifests"].as_array().expect("index.json: manifests");
    assert_eq!(manifests.len(), 1, "one image in the archive: {index}");
    assert!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .is_some_and(|r| r.starts_with("sluice:")),
        "the image is named sluice:VERSION: {index}"
    );
    let manifest = json(&blob(&layout, manifests[0]["digest"].as_str().expect("manifest digest")));
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    let config = json(&blob(&layout, manifest["config"]["digest"].as_str().expect("config digest")));
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["User"], "65532:65532", "runs as 65532: {config}");
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/sluice"]), "{config}");
    for port in ["80/tcp", "443/tcp", "10254/tcp"] {
        assert!(config["config"]["ExposedPorts"].get(port).is_some(), "exposes {port}: {config}");
    }
    assert_eq!(config["config"]["Labels"]["org.opencontainers.image.title"], "sluice");
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.version"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "{config}"
    );
    // No base image: the layers are only ours.
    assert_eq!(manifest["annotations"]["org.opencontainers.image.base.name"].as_str().unwrap_or(""), "");
    let layers = manifest["layers"].as_array().expect("layers");
    assert!(!layers.is_empty(), "no layers: {manifest}");
    fs::create_dir_all(rootfs).expect("rootfs dir");
    for layer in layers {
        // GNU tar recognises a compressed layer by itself.
        run(Command::new("tar")
            .arg("-xf")
            .arg(blob(&layout, layer["digest"].as_str().expect("layer digest")))
            .arg("-C")
            .arg(rootfs));
    }
    fs::remove_dir_all(&layout).expect("remove the layout");
}

/// The rootfs holds the binary, what `ldd` lists, the mount points; and runs it if we may chroot.
fn check_rootfs(rootfs: &Path, binary_path: &Path) -> Vec<String> {
    let mut skipped = Vec::new();
    let binary = fs::read(rootfs.join("sluice")).expect("/sluice in the image");
    assert!(binary == fs::read(binary_path).expect("read the binary under test"), "/sluice is the binary given");
    for file in ldd_files(binary_path) {
        assert!(rootfs.join(file.trim_start_matches('/')).is_file(), "{file} (from ldd) is missing in the image");
    }
    for dir in ["tmp", "var/lib/sluice"] {
        assert!(rootfs.join(dir).is_dir(), "/{dir} (a mount point in deploy/deployment.yaml) is missing");
    }
    assert!(fs::read_to_string(rootfs.join("etc/passwd")).expect("/etc/passwd").contains(":65532:65532:"));
    if !is_root() {
        skipped.push("running /sluice in the rootfs (chroot needs root)".to_owned());
        return skipped;
    }
    let meta = fs::metadata(rootfs.join("var/lib/sluice")).expect("state dir");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 65532, "/var/lib/sluice belongs to 65532");
    // Only what the image holds: a missing library makes the loader fail here.
    let version = run(Command::new("chroot").arg(rootfs).args(["/sluice", "--version"]));
    assert!(version.starts_with("sluice "), "{version}");
    let version = run(Command::new("chroot").arg("--userspec=65532:65532").arg(rootfs).args(["/sluice", "--version"]));
    assert!(version.starts_with("sluice "), "{version}");
    skipped
}

#[test]
fn scripts_image_builds_a_runnable_oci_image_from_scratch() {
    let work = TempDir::new("image");
    let rootfs = work.path().join("rootfs");
    let binary = image_binary(work.path());
    let mut skipped = Vec::new();
    match buildah_unusable() {
        None => {
            let archive = work.path().join("sluice-image.tar");
            let out = run(Command::new(repo_root().join("scripts/image"))
                .arg("--binary")
                .arg(&binary)
                .arg("--output")
                .arg(&archive)
                .env("TMPDIR", work.path()));
            println!("{out}");
            check_archive(&archive, work.path(), &rootfs);
            // Nothing of buildah's temporary storage is left behind.
            let left: Vec<_> = fs::read_dir(work.path())
                .expect("work dir")
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("sluice-image.") && e.path().is_dir())
                .map(|e| e.path())
                .collect();
            assert!(left.is_empty(), "scripts/image left {left:?}");
        }
        Some(reason) => {
            println!("buildah cannot build here: {reason}; checking the rootfs scripts/image assembles instead");
            skipped.push(format!("the OCI archive ({reason})"));
            run(Command::new(repo_root().join("scripts/image"))
                .arg("--binary")
                .arg(&binary)
                .arg("--rootfs")
                .arg(&rootfs));
        }
    }
    skipped.extend(check_rootfs(&rootfs, &binary));
    if skipped.is_empty() {
        println!("checked: OCI archive, config, layer contents, chroot runs as root and as 65532");
    } else {
        println!("NOT checked here: {}", skipped.join("; "));
    }
}

#[test]
fn the_containerfile_builds_the_release_binary_onto_a_nonroot_runtime() {
    let text = fs::read_to_string(repo_root().join("Containerfile")).expect("Containerfile");
    let from: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from.len(), 2, "a builder and a runtime stage: {from:?}");
    assert!(from[0].contains("rust:") && from[0].contains("bookworm"), "{}", from[0]);
    assert!(from[1].contains("distroless/cc-debian12:nonroot") || from[1] == "FROM scratch", "{}", from[1]);
    assert!(text.contains("cargo build --release --locked -p sluice"));
    assert!(text.lines().any(|l| l.trim() == "USER 65532:65532"));
    assert!(text.lines().any(|l| l.trim() == r#"ENTRYPOINT ["/sluice"]"#));
    let ignore = fs::read_to_string(repo_root().join(".dockerignore")).expect(".dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "/target"), "the build context leaves target/ out");
}
