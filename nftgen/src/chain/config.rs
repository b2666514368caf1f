//! Where the chain is and who signs: the embedded local chain by default, any EVM JSON-RPC
//! endpoint by configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::ChainError;
use super::local::LOCAL_CHAIN_ID;
use crate::CreatorAddress;

/// Environment variable: JSON-RPC URL of the chain to use instead of the local one.
pub const RPC_URL_ENV: &str = "KILN_RPC_URL";
/// Environment variable: the signing account's private key (0x-hex), with [`RPC_URL_ENV`].
pub const PRIVATE_KEY_ENV: &str = "KILN_PRIVATE_KEY";
/// Environment variable: the provenance contract's address on that chain.
pub const CONTRACT_ENV: &str = "KILN_CONTRACT";
/// Environment variable: Kiln's data directory (local chain, journal, content store).
pub const DATA_DIR_ENV: &str = "KILN_DATA_DIR";

/// The keys of anvil's (and Hardhat's) ten default accounts: public test keys from a published
/// mnemonic, which the local chain funds and anyone can sign with. Account 0 deploys the
/// contract and is the default local wallet.
pub const DEV_KEYS: [&str; 10] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
];

/// Kiln's data directory: `$KILN_DATA_DIR`, else `$XDG_DATA_HOME/kiln`, else
/// `~/.local/share/kiln`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os(DATA_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_DATA_HOME").map(|d| PathBuf::from(d).join("kiln")))
        .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".local/share/kiln")))
        .unwrap_or_else(|| PathBuf::from(".kiln-data"))
}

/// A remote chain: endpoint, signing key and contract. `Debug` shows neither the key nor the
/// URL's credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteChain {
    /// JSON-RPC URL (http or https).
    pub rpc_url: String,
    /// The signing account's private key, 0x-hex.
    pub private_key: String,
    /// The provenance contract (deploy one with `nftgen deploy`).
    pub contract: Option<CreatorAddress>,
    /// First block to search for the contract's events (its deployment block).
    pub from_block: u64,
}

impl std::fmt::Debug for RemoteChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteChain")
            .field("rpc_url", &redact_url(&self.rpc_url))
            .field("private_key", &"<redacted>")
            .field("contract", &self.contract)
            .field("from_block", &self.from_block)
            .finish()
    }
}

/// Refuses a public test key ([`DEV_KEYS`]) on any chain but the local one
/// ([`LOCAL_CHAIN_ID`]): anyone can sign
/// with those keys, so anything they own on a real chain is anyone's.
pub fn check_signing_key(key: &str, chain_id: u64) -> Result<(), ChainError> {
    let key = key.trim().trim_start_matches("0x").to_ascii_lowercase();
    let public = DEV_KEYS
        .iter()
        .any(|k| k.trim_start_matches("0x") == key.as_str());
    if public && chain_id != LOCAL_CHAIN_ID {
        return Err(ChainError::Config(format!(
            "the signing key is one of anvil's public test keys, which sign only on the local \
             chain (id {LOCAL_CHAIN_ID}); this chain is id {chain_id}: set {PRIVATE_KEY_ENV} to your own key"
        )));
    }
    Ok(())
}

/// An RPC URL split as [`redact_url`] and [`url_secrets`] need it: scheme, user info, host (with
/// port) and the rest (path, query, fragment). `None` without a `scheme://`.
fn url_parts(url: &str) -> Option<(&str, Option<&str>, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    Some((scheme, user, host, tail))
}

/// An RPC URL as Kiln shows it: scheme, host and port, without the user, password, path or
/// query that providers put API keys in (`https://mainnet.example/v3/<key>` →
/// `https://mainnet.example/…`).
pub fn redact_url(url: &str) -> String {
    match url_parts(url) {
        Some((scheme, _, host, tail)) => {
            let hidden = if tail.is_empty() || tail == "/" {
                tail
            } else {
                "/…"
            };
            format!("{scheme}://{host}{hidden}")
        }
        None => "<RPC URL>".into(),
    }
}

/// The parts of `url` that may hold credentials (user info, path, query), for scrubbing them
/// out of error texts that quote the URL.
pub(crate) fn url_secrets(url: &str) -> Vec<String> {
    let Some((_, user, _, tail)) = url_parts(url) else {
        return vec![url.to_string()];
    };
    let tail = tail.trim_start_matches('/');
    user.into_iter()
        .chain((!tail.is_empty()).then_some(tail))
        .map(str::to_string)
        .collect()
}

/// A `toml` parse error of `file` as Kiln reports it: the line, column and what is wrong,
/// without the source line toml quotes (it may hold a key) or any quoted value.
fn config_parse_error(file: &Path, text: &str, e: &toml::de::Error) -> ChainError {
    let place = e
        .span()
        .map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!(", line {line}, column {col}")
        })
        .unwrap_or_default();
    // serde's messages quote offending values ("invalid type: string \"…\""); keys and field
    // names are in backticks and stay.
    let mut message = String::new();
    let mut quoted = false;
    for c in e.message().chars() {
        if c == '"' {
            if !quoted {
                message.push_str("\"…\"");
            }
            quoted = !quoted;
        } else if !quoted {
            message.push(c);
        }
    }
    ChainError::Config(format!("{}{place}: {}", file.display(), message.trim()))
}

/// Chain configuration. `Debug` shows no key.
#[derive(Clone, PartialEq)]
pub struct ChainConfig {
    /// Data directory: `local-chain/` (anvil state), `journal/`, `store/`.
    pub data_dir: PathBuf,
    /// A remote chain; `None` starts (or joins) the embedded local chain.
    pub remote: Option<RemoteChain>,
    /// Signing key for the local chain (default: anvil's account 0).
    pub local_key: String,
    /// Limit for each JSON-RPC request.
    pub request_timeout: Duration,
    /// Limit for waiting for a receipt after sending.
    pub receipt_timeout: Duration,
    /// Royalty (basis points) a newly deployed contract pays creators.
    pub royalty_bps: u16,
    /// Blocks a mint must have on top (its own included) before it counts as confirmed and is
    /// checked once more against reorganisations; `None`: 1 on development chains (id 31337),
    /// 2 elsewhere.
    pub confirmations: Option<u64>,
    /// How long a transaction may sit unmined on a remote chain before it is signed again at
    /// the same nonce with higher fees.
    pub fee_bump_after: Duration,
    /// The most a mint's transactions may pay per gas (wei), bumps included; `None`:
    /// [`DEFAULT_FEE_CAP_MULTIPLE`] times the base fee when the mint began, plus its first tip.
    /// A transaction whose fee reached it waits at that fee.
    pub max_fee_per_gas: Option<u128>,
    /// How many times one step of a mint is signed again with higher fees, at most.
    pub max_fee_bumps: u32,
    /// Blocks per `eth_getLogs` request (providers cap the range of one query).
    pub log_page_blocks: u64,
}

/// The default fee ceiling of a mint, in base fees of the block it began at (plus its first
/// tip): room for a base fee that doubles twice while it waits, and no more.
pub const DEFAULT_FEE_CAP_MULTIPLE: u128 = 4;
/// The default number of fee bumps of one step of a mint (each at least 1/8 above the last:
/// six take the fee to about twice the first).
pub const DEFAULT_MAX_FEE_BUMPS: u32 = 6;

impl std::fmt::Debug for ChainConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainConfig")
            .field("data_dir", &self.data_dir)
            .field("remote", &self.remote)
            .field("local_key", &"<redacted>")
            .field("request_timeout", &self.request_timeout)
            .field("receipt_timeout", &self.receipt_timeout)
            .field("royalty_bps", &self.royalty_bps)
            .field("confirmations", &self.confirmations)
            .field("fee_bump_after", &self.fee_bump_after)
            .field("max_fee_per_gas", &self.max_fee_per_gas)
            .field("max_fee_bumps", &self.max_fee_bumps)
            .field("log_page_blocks", &self.log_page_blocks)
            .finish()
    }
}

impl ChainConfig {
    /// The embedded local chain with data in `data_dir`.
    pub fn local(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            remote: None,
            local_key: DEV_KEYS[0].to_string(),
            request_timeout: Duration::from_secs(10),
            receipt_timeout: Duration::from_secs(60),
            royalty_bps: 500,
            confirmations: None,
            fee_bump_after: Duration::from_secs(30),
            max_fee_per_gas: None,
            max_fee_bumps: DEFAULT_MAX_FEE_BUMPS,
            log_page_blocks: 10_000,
        }
    }

    /// Signs local-chain transactions with `key` (e.g. one of [`DEV_KEYS`]).
    pub fn with_local_key(mut self, key: &str) -> Self {
        self.local_key = key.to_string();
        self
    }

    /// Sets both timeouts.
    pub fn with_timeouts(mut self, request: Duration, receipt: Duration) -> Self {
        self.request_timeout = request;
        self.receipt_timeout = receipt;
        self
    }

    /// The configuration for `data_dir`: `<data_dir>/chain.toml` if present, then the
    /// environment ([`RPC_URL_ENV`], [`PRIVATE_KEY_ENV`], [`CONTRACT_ENV`]) on top; no RPC URL
    /// means the local chain.
    ///
    /// ```toml
    /// rpc_url = "https://sepolia.example/rpc"
    /// private_key = "0x…"            # or KILN_PRIVATE_KEY
    /// contract = "0x…"
    /// from_block = 7000000
    /// request_timeout_secs = 10
    /// receipt_timeout_secs = 120
    /// confirmations = 2              # default: 1 on chain id 31337, else 2
    /// fee_bump_after_secs = 30
    /// max_fee_gwei = 50              # default: 4 × the base fee when the mint began, + tip
    /// max_fee_bumps = 6
    /// log_page_blocks = 10000
    /// ```
    pub fn load(data_dir: impl Into<PathBuf>) -> Result<Self, ChainError> {
        Self::load_with_env(data_dir, &|k| std::env::var(k).ok())
    }

    /// The configuration of `<data_dir>/chain.toml` alone, ignoring the environment: for tests
    /// and tools that must never pick up a wallet a developer exported in their shell.
    pub fn load_file(data_dir: impl Into<PathBuf>) -> Result<Self, ChainError> {
        Self::load_with_env(data_dir, &|_| None)
    }

    /// [`load`](Self::load) with `env` in place of the process environment.
    fn load_with_env(
        data_dir: impl Into<PathBuf>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ChainError> {
        let data_dir = data_dir.into();
        let file = data_dir.join("chain.toml");
        let mut f = ConfigFile::default();
        if file.is_file() {
            let text = std::fs::read_to_string(&file).map_err(|e| ChainError::io(&file, e))?;
            f = toml::from_str(&text).map_err(|e| config_parse_error(&file, &text, &e))?;
        }
        let env = |k: &str| env(k).filter(|v| !v.is_empty());
        f.rpc_url = env(RPC_URL_ENV).or(f.rpc_url);
        f.private_key = env(PRIVATE_KEY_ENV).or(f.private_key);
        f.contract = env(CONTRACT_ENV).or(f.contract);
        Self::from_file(data_dir, f, &file)
    }

    fn from_file(data_dir: PathBuf, f: ConfigFile, file: &Path) -> Result<Self, ChainError> {
        let mut cfg = Self::local(data_dir);
        if let Some(s) = f.request_timeout_secs {
            cfg.request_timeout = positive(s, "request_timeout_secs")?;
        }
        if let Some(s) = f.receipt_timeout_secs {
            cfg.receipt_timeout = positive(s, "receipt_timeout_secs")?;
        }
        if let Some(n) = f.confirmations {
            if n == 0 {
                return Err(ChainError::Config(
                    "confirmations must be at least 1 (the block of the mint itself)".into(),
                ));
            }
            cfg.confirmations = Some(n);
        }
        if let Some(s) = f.fee_bump_after_secs {
            cfg.fee_bump_after = positive(s, "fee_bump_after_secs")?;
        }
        if let Some(gwei) = f.max_fee_gwei {
            if !(gwei.is_finite() && gwei > 0.0 && gwei <= 1e9) {
                return Err(ChainError::Config(format!(
                    "max_fee_gwei must be above 0 and at most 1e9 (it is {gwei})"
                )));
            }
            cfg.max_fee_per_gas = Some((gwei * 1e9).round() as u128);
        }
        if let Some(n) = f.max_fee_bumps {
            cfg.max_fee_bumps = n;
        }
        if let Some(n) = f.log_page_blocks {
            if n == 0 {
                return Err(ChainError::Config(
                    "log_page_blocks must be at least 1".into(),
                ));
            }
            cfg.log_page_blocks = n;
        }
        if let Some(bps) = f.royalty_bps {
            if bps > 10_000 {
                return Err(ChainError::Config(format!(
                    "royalty_bps {bps} is above 10000 (100%)"
                )));
            }
            cfg.royalty_bps = bps;
        }
        let contract = f
            .contract
            .map(|c| {
                c.parse::<CreatorAddress>().map_err(|e| {
                    ChainError::Config(format!(
                        "contract `{c}`: {e} ({CONTRACT_ENV} or {})",
                        file.display()
                    ))
                })
            })
            .transpose()?;
        match (f.rpc_url, f.private_key) {
            (Some(rpc_url), Some(private_key)) => {
                cfg.remote = Some(RemoteChain {
                    rpc_url,
                    private_key,
                    contract,
                    from_block: f.from_block.unwrap_or(0),
                });
            }
            (Some(_), None) => {
                return Err(ChainError::Config(format!(
                    "an RPC URL is set but no private key: set {PRIVATE_KEY_ENV} or `private_key` in {}",
                    file.display()
                )));
            }
            (None, key) => {
                if let Some(key) = key {
                    cfg.local_key = key;
                }
            }
        }
        Ok(cfg)
    }
}

fn positive(secs: f64, field: &str) -> Result<Duration, ChainError> {
    if secs.is_finite() && secs > 0.0 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(ChainError::Config(format!(
            "{field} must be a positive number of seconds, got {secs}"
        )))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    rpc_url: Option<String>,
    private_key: Option<String>,
    contract: Option<String>,
    from_block: Option<u64>,
    request_timeout_secs: Option<f64>,
    receipt_timeout_secs: Option<f64>,
    royalty_bps: Option<u16>,
    confirmations: Option<u64>,
    fee_bump_after_secs: Option<f64>,
    max_fee_gwei: Option<f64>,
    max_fee_bumps: Option<u32>,
    log_page_blocks: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(redact_url("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
        assert_eq!(
            redact_url("https://alice:hunter2@rpc.example:443/v3/abcdef?key=k"),
            "https://rpc.example:443/…"
        );
        assert_eq!(redact_url("https://rpc.example/"), "https://rpc.example/");
        assert_eq!(redact_url("not a url with hunter2"), "<RPC URL>");
        let secrets = url_secrets("https://alice:hunter2@rpc.example/v3/abcdef?key=k");
        assert_eq!(secrets, ["alice:hunter2", "v3/abcdef?key=k"]);
    }

    /// The fee ceiling and bump limit are read from `chain.toml`; a ceiling that is not a
    /// positive number of gwei is refused by name.
    #[test]
    fn fee_limits_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("chain.toml");
        std::fs::write(&file, "max_fee_gwei = 2.5\nmax_fee_bumps = 3\n").unwrap();
        let cfg = ChainConfig::load_file(dir.path()).unwrap();
        assert_eq!(cfg.max_fee_per_gas, Some(2_500_000_000));
        assert_eq!(cfg.max_fee_bumps, 3);
        let defaults = ChainConfig::local(dir.path());
        assert_eq!(
            (defaults.max_fee_per_gas, defaults.max_fee_bumps),
            (None, DEFAULT_MAX_FEE_BUMPS)
        );
        for bad in ["0", "-1", "nan", "inf", "1e12"] {
            std::fs::write(&file, format!("max_fee_gwei = {bad}\n")).unwrap();
            let err = ChainConfig::load_file(dir.path()).unwrap_err().to_string();
            assert!(err.contains("max_fee_gwei"), "{bad}: {err}");
        }
    }

    #[test]
    fn public_test_keys_cover_all_ten_of_anvils_accounts() {
        assert_eq!(DEV_KEYS.len(), 10);
        assert!(check_signing_key(DEV_KEYS[9], 1).is_err());
        assert!(check_signing_key(DEV_KEYS[5], LOCAL_CHAIN_ID).is_ok());
    }

    #[test]
    fn debug_shows_no_key() {
        let mut cfg = ChainConfig::local("/tmp/x");
        cfg.remote = Some(RemoteChain {
            rpc_url: "https://u:p4ss@rpc.example/v3/apikey".into(),
            private_key: SECRET.into(),
            contract: None,
            from_block: 0,
        });
        let shown = format!("{cfg:?}");
        for leak in [
            &SECRET[2..],
            DEV_KEYS[0].trim_start_matches("0x"),
            "p4ss",
            "apikey",
        ] {
            assert!(!shown.contains(leak), "{shown}");
        }
    }

    #[test]
    fn config_errors_name_the_place_but_no_value() {
        let dir = tempfile::tempdir().unwrap();
        for (text, needle) in [
            (
                format!("private-key = \"{SECRET}\"\n"),
                "line 1, column 1: unknown field `private-key`",
            ),
            (
                format!("rpc_url = \"http://x\"\nfrom_block = \"{SECRET}\"\n"),
                "line 2, column 14",
            ),
            (format!("private_key = {SECRET}\n"), "line 1"),
        ] {
            std::fs::write(dir.path().join("chain.toml"), &text).unwrap();
            let err = ChainConfig::load(dir.path()).unwrap_err().to_string();
            assert!(err.contains("chain.toml") && err.contains(needle), "{err}");
            assert!(!err.contains(&SECRET[2..12]), "{err}");
        }
    }

    #[test]
    fn public_test_keys_sign_only_on_the_local_chain() {
        assert!(check_signing_key(DEV_KEYS[1], LOCAL_CHAIN_ID).is_ok());
        assert!(check_signing_key(SECRET, 1).is_ok());
        let err = check_signing_key(&DEV_KEYS[0].to_uppercase().replace("0X", "0x"), 11155111)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("public test keys") && err.contains("11155111"),
            "{err}"
        );
    }
}
