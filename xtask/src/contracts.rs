//! `cargo xtask contracts`: compiles the provenance contract with the pinned solc-js and writes
//! the committed artifact (`nftgen/contracts/KilnProvenance.json`).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// The Solidity project: sources, the standard-JSON compiler input and the npm lock.
pub const PROJECT: &str = "nftgen/contracts";
/// The committed artifact the Rust client is built from.
pub const ARTIFACT: &str = "nftgen/contracts/KilnProvenance.json";

/// Runs solc-js on the standard-JSON input and returns its output (errors are fatal).
pub fn compile(npm: &Path) -> Result<Value> {
    let input = std::fs::File::open(Path::new(PROJECT).join("solc-input.json"))?;
    // Output goes to a file, not a pipe: node writes to pipes asynchronously and solc-js exits
    // right after writing, which cuts piped output at 64 KiB.
    let out_path = std::env::temp_dir().join(format!("kiln-solc-{}.json", std::process::id()));
    let status = Command::new("node")
        .arg(npm.join("node_modules/solc/solc.js"))
        .arg("--standard-json")
        .arg("--base-path")
        .arg(PROJECT)
        .arg("--include-path")
        .arg(npm.join("node_modules"))
        .stdin(input)
        .stdout(std::fs::File::create(&out_path)?)
        .status()
        .context("cannot start node (run `cargo xtask setup`)");
    let text = std::fs::read_to_string(&out_path);
    let _ = std::fs::remove_file(&out_path);
    let status = status?;
    if !status.success() {
        bail!("solc-js failed ({status})");
    }
    // solc-js prints notes such as "Cannot retry compilation with SMT" before the JSON.
    let text = text?;
    let json = &text[text.find('{').context("solc-js printed no JSON")?..];
    let output: Value = serde_json::from_str(json).context("solc-js output is not JSON")?;
    let mut failed = false;
    for e in output["errors"].as_array().into_iter().flatten() {
        eprintln!("{}", e["formattedMessage"].as_str().unwrap_or_default());
        failed |= e["severity"] == "error";
    }
    if failed {
        bail!("the contract does not compile");
    }
    Ok(output)
}

/// Compiles and writes the artifact; returns (creation, runtime) code sizes in bytes.
pub fn build(npm: &Path) -> Result<(usize, usize)> {
    let output = compile(npm)?;
    let c = &output["contracts"]["src/KilnProvenance.sol"]["KilnProvenance"];
    let metadata: Value = serde_json::from_str(c["metadata"].as_str().context("no metadata")?)?;
    let hex = |v: &Value| format!("0x{}", v.as_str().unwrap_or_default());
    let bytecode = hex(&c["evm"]["bytecode"]["object"]);
    let deployed = hex(&c["evm"]["deployedBytecode"]["object"]);
    let artifact = json!({
        "contractName": "KilnProvenance",
        "sourceName": "nftgen/contracts/src/KilnProvenance.sol",
        "compiler": metadata["compiler"]["version"],
        "settings": {
            "evmVersion": metadata["settings"]["evmVersion"],
            "optimizer": metadata["settings"]["optimizer"],
        },
        "abi": c["abi"],
        "bytecode": bytecode,
        "deployedBytecode": deployed,
    });
    std::fs::create_dir_all(Path::new(ARTIFACT).parent().context("artifact dir")?)?;
    std::fs::write(ARTIFACT, serde_json::to_string_pretty(&artifact)? + "\n")?;
    Ok(((bytecode.len() - 2) / 2, (deployed.len() - 2) / 2))
}
