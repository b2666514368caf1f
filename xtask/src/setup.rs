//! `cargo xtask setup`: system packages and the default model.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Debian packages the build needs, with a command that proves each is present.
const APT: &[(&str, &str)] = &[
    ("cmake", "cmake --version"),
    ("clang", "clang --version"),
    (
        "libclang-dev",
        "test -n \"$(ls /usr/lib/llvm-*/lib/libclang*.so* 2>/dev/null)\"",
    ),
    ("pkg-config", "pkg-config --version"),
    ("g++", "g++ --version"),
    ("python3-pip", "python3 -m pip --version"),
    // For the reference llama-bench that `cargo xtask bench npc` links (llama.cpp's HTTP client).
    ("libssl-dev", "test -e /usr/include/openssl/ssl.h"),
    // solc (solc-js), OpenZeppelin Contracts and anvil come from the npm registry.
    ("nodejs", "node --version"),
    ("npm", "npm --version"),
    // The demo game renders with Vulkan on Mesa's software driver (lavapipe), in a window
    // (X11, or Xvfb where there is no display) or headless; the art GPU backend's tests run
    // their compute shaders on it too.
    (
        "mesa-vulkan-drivers",
        "ls /usr/share/vulkan/icd.d/lvp_icd.*.json",
    ),
    ("libvulkan1", "ldconfig -p | grep -q 'libvulkan.so.1 '"),
    ("xvfb", "command -v Xvfb"),
    ("xauth", "command -v xauth"),
    ("libx11-xcb1", "ldconfig -p | grep -q libX11-xcb.so.1"),
    ("libxcursor1", "ldconfig -p | grep -q libXcursor.so.1"),
    ("libxrandr2", "ldconfig -p | grep -q libXrandr.so.2"),
    ("libxi6", "ldconfig -p | grep -q libXi.so.6"),
    (
        "libxkbcommon-x11-0",
        "ldconfig -p | grep -q libxkbcommon-x11.so.0",
    ),
];

/// Kiln's cache directory: `$KILN_CACHE_DIR`, else `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`.
/// (The same rule as `kiln_npc::default_model_path`.)
pub fn cache_dir() -> PathBuf {
    std::env::var_os("KILN_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("kiln")))
        .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/kiln")))
        .unwrap_or_else(|| PathBuf::from(".kiln-cache"))
}

fn ok(check: &str) -> bool {
    Command::new("sh")
        .args(["-c", check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs what is missing, then fetches the model; returns the model's path.
pub fn setup() -> Result<PathBuf> {
    let missing: Vec<&str> = APT
        .iter()
        .filter(|(_, check)| !ok(check))
        .map(|(pkg, _)| *pkg)
        .collect();
    if !missing.is_empty() {
        let install = format!(
            "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {}",
            missing.join(" ")
        );
        if !is_root() {
            bail!(
                "missing system packages: {}. Run as root:\n  sudo sh -c '{install}'",
                missing.join(", ")
            );
        }
        eprintln!("xtask: installing {}", missing.join(", "));
        crate::run(Command::new("sh").args(["-c", &install]))?;
    }
    npm_tools()?;
    fetch_model()
}

/// Where `npm_tools` installs the contract tool chain (the path `kiln-nftgen` looks in).
pub fn npm_dir() -> PathBuf {
    cache_dir().join("npm")
}

/// Installs the pinned npm packages of `nftgen/contracts/package-lock.json` (solc, OpenZeppelin
/// Contracts, anvil, and Hardhat, whose node is the chain tests' second EVM node) into the
/// cache, unless the same lock file is already installed there.
pub fn npm_tools() -> Result<PathBuf> {
    let src = Path::new("nftgen/contracts");
    let lock = std::fs::read(src.join("package-lock.json")).context("reading the npm lock file")?;
    let dir = npm_dir();
    let anvil = dir.join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    if std::fs::read(dir.join("package-lock.json")).is_ok_and(|l| l == lock) && anvil.is_file() {
        eprintln!("xtask: contract tools ready: {}", dir.display());
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::copy(src.join("package.json"), dir.join("package.json"))?;
    std::fs::copy(src.join("package-lock.json"), dir.join("package-lock.json"))?;
    eprintln!("xtask: installing solc, OpenZeppelin Contracts, anvil and Hardhat from npm");
    crate::run(
        Command::new("npm")
            .args([
                "ci",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ])
            .current_dir(&dir),
    )?;
    if !anvil.is_file() {
        bail!("npm installed no anvil binary at {}", anvil.display());
    }
    let hardhat = dir.join("node_modules/hardhat/internal/cli/cli.js");
    if !hardhat.is_file() {
        bail!("npm installed no Hardhat at {}", hardhat.display());
    }
    Ok(dir)
}

/// Downloads one PyPI package (no dependencies) into `dest` with pip; `kind` is
/// `--only-binary=:all:` for a wheel or `--no-binary=:all:` for the source release. pip checks
/// the file against `sha256` (hash-checking mode) and refuses any other bytes.
pub fn pip_download(spec: &str, sha256: &str, kind: &str, dest: &Path) -> Result<()> {
    let requirements = dest.join("kiln-requirements.txt");
    std::fs::write(&requirements, format!("{spec} --hash=sha256:{sha256}\n"))
        .with_context(|| format!("writing {}", requirements.display()))?;
    let downloaded = crate::run(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--require-hashes",
                kind,
                "--disable-pip-version-check",
                "-d",
            ])
            .arg(dest)
            .arg("-r")
            .arg(&requirements),
    );
    let _ = std::fs::remove_file(&requirements);
    downloaded
}

/// Fetches the default model with `kiln fetch-models` (the command a game's build or installer
/// calls; idempotent: a verified copy is kept); returns its path.
pub fn fetch_model() -> Result<PathBuf> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "run",
            "--quiet",
            "-p",
            "kiln-cli",
            "--",
            "fetch-models",
            "--dir",
        ])
        .arg(cache_dir().join("models"))
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run `kiln fetch-models`")?;
    if !out.status.success() {
        bail!("`kiln fetch-models` failed ({})", out.status);
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !path.is_file() {
        bail!(
            "`kiln fetch-models` printed {}, which is no file",
            path.display()
        );
    }
    Ok(path)
}
