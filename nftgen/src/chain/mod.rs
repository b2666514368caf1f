//! Provenance on chain (cargo feature `chain`): mint generated art as ERC-721 / ERC-7007 tokens
//! of Kiln's `KilnProvenance` contract, read their records back and verify them.
//!
//! - [`ChainClient::open`] connects to the chain in a [`ChainConfig`]: by default the embedded
//!   [`LocalChain`] (anvil on 127.0.0.1 with a state file), which it starts, or joins when another
//!   process already runs it, and where it deploys the contract once; or any EVM JSON-RPC
//!   endpoint. The client runs on its own tokio runtime behind a blocking API; every request and
//!   every receipt wait has a timeout.
//! - [`ChainClient::mint`] simulates the mint first (a refusal decodes into a typed
//!   [`MintRejection`] and sends nothing), then commits to it and, a block later, reveals it
//!   (commit–reveal: a copied transaction cannot take it). Each step is signed locally under
//!   the account's lock and written to the mint [`journal`](ChainClient::journal) before it is
//!   sent. If the process or the RPC dies in between, the next [`open`](ChainClient::open) takes
//!   the mint from where it stands: no token is lost and none is minted twice (the token id is
//!   the recipe hash, so the contract refuses a second copy).
//! - [`ChainClient::record`] reads a token's [`ChainRecord`]; [`verify`](crate::chain::verify())
//!   re-runs it.
//!
//! ```no_run
//! use kiln_nftgen::chain::{ChainClient, ChainConfig, verify};
//! use kiln_nftgen::{ArtModel, Control, GenerationRequest};
//!
//! let chain = ChainClient::open(&ChainConfig::load(kiln_nftgen::chain::default_data_dir())?)?;
//! let model = ArtModel::load(kiln_nftgen::default_model_path())?;
//! let art = model.generate(&GenerationRequest::new("a red sword", 3), &mut |_| Control::Continue)?;
//! let minted = chain.mint(&art)?; // commits, reveals: MintReceipt { token_id, tx, block, gas_used, .. }
//! let report = verify(&chain, minted.token_id, None, model.path())?;
//! assert!(report.verdict.is_authentic());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client;
mod config;
mod deploy;
mod error;
mod journal;
mod local;
mod verify;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alloy::eips::BlockId;
use alloy::eips::eip2718::Encodable2718;
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::{Filter, TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolConstructor, SolEvent};
use serde::{Deserialize, Serialize};

pub use client::{ChainRecord, ListedToken, MintReceipt, TOKENS_PER_QUERY};
pub use config::{
    CONTRACT_ENV, ChainConfig, DATA_DIR_ENV, DEV_KEYS, PRIVATE_KEY_ENV, RPC_URL_ENV, RemoteChain,
    check_signing_key, default_data_dir, redact_url,
};
pub use error::{ChainError, MintRejection};
pub use journal::{JournalEntry, MintState, PendingMint, Resolution};
pub use local::{ANVIL_ENV, LOCAL_CHAIN_ID, LocalChain, find_anvil};
pub use verify::{
    DEFAULT_MAX_COST, FileRecord, Verdict, Verification, VerifyOptions, recipe_cost, verify,
    verify_file, verify_file_with, verify_file_with_limit, verify_with, verify_with_limit,
};

use crate::provenance::store::{ContentStore, write_atomic};
use crate::{ContentHash, CreatorAddress, GeneratedArt, GenerationRecord, TokenId, TxHash};

#[allow(missing_docs)]
mod contract {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        KilnProvenance,
        "contracts/KilnProvenance.json"
    );
}
pub use contract::KilnProvenance;
use contract::KilnProvenance::KilnProvenanceErrors;

/// A connection to the provenance contract on one chain, with a signing account.
pub struct ChainClient {
    rt: tokio::runtime::Runtime,
    provider: RootProvider,
    wallet: EthereumWallet,
    account: Address,
    contract: Address,
    chain_id: u64,
    from_block: u64,
    /// The RPC URL as shown ([`config::redact_url`]): errors and logs never hold credentials.
    url: String,
    /// Parts of the real URL that may hold credentials, scrubbed from error texts.
    url_secrets: Vec<String>,
    request_timeout: Duration,
    receipt_timeout: Duration,
    confirmations: u64,
    fee_bump_after: Duration,
    max_fee_per_gas: Option<u128>,
    max_fee_bumps: u32,
    log_page_blocks: u64,
    journal_dir: PathBuf,
    store: ContentStore,
    local: Option<LocalChain>,
    resolutions: Vec<Resolution>,
    /// Locks of the mints this client is taking through their steps (one process per mint).
    mint_locks: std::sync::Mutex<std::collections::HashMap<TokenId, journal::MintLock>>,
}

impl std::fmt::Debug for ChainClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainClient")
            .field("url", &self.url)
            .field("chain_id", &self.chain_id)
            .field("contract", &self.contract)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

fn addr(a: CreatorAddress) -> Address {
    Address::from(a.0)
}

fn parse_signer(key: &str) -> Result<PrivateKeySigner, ChainError> {
    key.trim()
        .parse()
        .map_err(|e| ChainError::Config(format!("the private key is not a 32-byte hex key: {e}")))
}

impl ChainConfig {
    /// The account this configuration signs with (the creator of what it mints), without
    /// starting or calling any node.
    pub fn signer_address(&self) -> Result<CreatorAddress, ChainError> {
        let key = match &self.remote {
            Some(r) => &r.private_key,
            None => &self.local_key,
        };
        Ok(creator(parse_signer(key)?.address()))
    }
}

fn creator(a: Address) -> CreatorAddress {
    CreatorAddress(a.into_array())
}

fn tx_hash(h: B256) -> TxHash {
    TxHash(h.0)
}

fn token_u256(t: TokenId) -> U256 {
    U256::from_be_bytes(t.0)
}

fn token_of(u: U256) -> TokenId {
    TokenId(u.to_be_bytes())
}

/// The local chain's directory inside a data directory.
pub fn local_chain_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("local-chain")
}

/// The entries Kiln's chain client keeps in a data directory: the local node, the mint journal
/// and the content store. Everything else there (`chain.toml`, what a game or a person put
/// there) is not Kiln's to delete.
pub const DATA_ENTRIES: [&str; 3] = ["local-chain", "journal", "store"];

/// Starts a data directory afresh: stops the local node running for it (whichever process
/// started it), then removes the local chain, its journal and the content store ([`DATA_ENTRIES`])
/// and the caller's own `extra` entries — nothing else. Journals of other chains (remote mints,
/// perhaps still pending, with the salts their reveals need) are never removed, and while one
/// exists the content store (their pictures) is kept too. Returns what was removed.
pub fn clear_data_dir(data_dir: &Path, extra: &[&str]) -> Result<Vec<PathBuf>, ChainError> {
    LocalChain::stop_running(local_chain_dir(data_dir))?;
    let journals = data_dir.join("journal");
    let local = LOCAL_CHAIN_ID.to_string();
    let remote: Vec<PathBuf> = std::fs::read_dir(&journals)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy() != local)
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    let mut targets: Vec<PathBuf> = vec![local_chain_dir(data_dir)];
    if remote.is_empty() {
        targets.push(journals);
        targets.push(data_dir.join("store"));
    } else {
        tracing::warn!(kept = ?remote, "keeping the journals of other chains and the content store: they hold mints on those chains");
        targets.push(journals.join(&local));
    }
    targets.extend(extra.iter().map(|name| data_dir.join(name)));
    let mut removed = Vec::new();
    for path in targets {
        let result = match std::fs::symlink_metadata(&path) {
            Err(_) => continue,
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
        };
        result.map_err(|e| ChainError::io(&path, e))?;
        removed.push(path);
    }
    Ok(removed)
}
