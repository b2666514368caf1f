//! Provenance on chain (cargo feature `chain`): mint generated art as ERC-721 / ERC-7007 tokens
//! of Kiln's `KilnProvenance` contract, read their records back and verify them.
//!
//! - [`ChainClient::open`] connects to the chain in a [`ChainConfig`]: by default the embedded
//!   [`LocalChain`] (anvil on 127.0.0.1 with a state file), which it starts, or joins when another
//!   process already runs it, and where it deploys the contract once; or any EVM JSON-RPC
//!   endpoint. The client runs on its own tokio runtime behind a blocking API; every request and
//!   every receipt wait has a timeout.
//! - [`ChainClient::mint`] simulates the call first (a refusal decodes into a typed
//!   [`MintRejection`] and sends nothing), signs locally, writes the signed transaction to the
//!   mint [`journal`](ChainClient::journal) as *pending*, broadcasts it and waits for the receipt.
//!   If the process or the RPC dies in between, the next [`open`](ChainClient::open) resolves the
//!   pending mint: no token is lost and none is minted twice (the token id is the recipe hash,
//!   so the contract refuses a second copy).
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
//! let minted = chain.mint(&art, chain.account())?; // MintReceipt { token_id, tx, block, gas_used }
//! let report = verify(&chain, minted.token_id, None, model.path())?;
//! assert!(report.verdict.is_authentic());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod error;
mod local;
mod verify;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alloy::eips::eip2718::Encodable2718;
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::{Filter, TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolConstructor, SolEvent};
use serde::{Deserialize, Serialize};

pub use config::{
    CONTRACT_ENV, ChainConfig, DATA_DIR_ENV, DEV_KEYS, PRIVATE_KEY_ENV, RPC_URL_ENV, RemoteChain,
    check_signing_key, default_data_dir, redact_url,
};
pub use error::{ChainError, MintRejection};
pub use local::{ANVIL_ENV, LOCAL_CHAIN_ID, LocalChain, find_anvil};
pub use verify::{FileRecord, Verdict, Verification, verify, verify_file};

use crate::provenance::store::{ContentStore, write_atomic};
use crate::{ContentHash, CreatorAddress, GeneratedArt, GenerationRecord, TokenId, TxHash};

#[allow(missing_docs)]
mod contract {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        KilnProvenance,
        "../assets/contracts/KilnProvenance.json"
    );
}
pub use contract::KilnProvenance;
use contract::KilnProvenance::KilnProvenanceErrors;

/// A confirmed mint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MintReceipt {
    /// The token (= the recipe hash).
    pub token_id: TokenId,
    /// The transaction.
    pub tx: TxHash,
    /// The block it was mined in.
    pub block: u64,
    /// Gas the transaction used.
    pub gas_used: u64,
}

/// What the chain says about a token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainRecord {
    /// The token.
    pub token_id: TokenId,
    /// Its current owner.
    pub owner: CreatorAddress,
    /// The creator (named in the recipe, checked against the minter by the contract).
    pub creator: CreatorAddress,
    /// The image's content hash, as committed on chain.
    pub content_hash: ContentHash,
    /// The recipe, decoded from the canonical bytes in the mint's `Provenance` event.
    pub record: GenerationRecord,
    /// The mint transaction.
    pub tx: TxHash,
    /// The mint block.
    pub block: u64,
    /// `tokenURI`.
    pub token_uri: String,
}

/// State of a mint in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MintState {
    /// Signed and (maybe) sent; no receipt seen yet.
    Pending,
    /// Mined and successful.
    Confirmed,
    /// Mined and reverted, or refused by the node when sent.
    Failed,
    /// Could not be settled (the node refused to resend it and it could not be signed again,
    /// or the node failed): `reason` says why. It stops nothing else; the next client that
    /// mints tries it again.
    Unresolved,
}

/// One mint in the journal (`<data_dir>/journal/<chain id>/<token id>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The token.
    pub token_id: TokenId,
    /// Where the mint stands.
    pub state: MintState,
    /// The signed transaction's hash.
    pub tx: TxHash,
    /// The signed transaction (EIP-2718 bytes, 0x-hex), resent if the chain lost it.
    pub raw_tx: String,
    /// Its nonce.
    pub nonce: u64,
    /// The signing account (the creator).
    pub from: CreatorAddress,
    /// The receiver.
    pub to: CreatorAddress,
    /// The canonical recipe bytes (0x-hex), to sign the mint again if its nonce went elsewhere.
    pub recipe: String,
    /// The image's content hash.
    pub content_hash: ContentHash,
    /// The contract.
    pub contract: CreatorAddress,
    /// The block, once confirmed.
    pub block: Option<u64>,
    /// Gas used, once confirmed.
    pub gas_used: Option<u64>,
    /// Why it failed, if it did.
    pub reason: Option<String>,
}

/// A mint that is signed, journaled and broadcast, waiting for its receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMint {
    /// The token.
    pub token_id: TokenId,
    /// The transaction.
    pub tx: TxHash,
}

/// How [`ChainClient::open`] settled a journal entry left from before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The token.
    pub token_id: TokenId,
    /// Its state now.
    pub state: MintState,
    /// What was done.
    pub action: &'static str,
    /// Why it could not be settled, for [`MintState::Unresolved`].
    pub reason: Option<String>,
}

/// What the client remembers about a deployment (`<data_dir>/local-chain/deployment.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deployment {
    chain_id: u64,
    contract: CreatorAddress,
    block: u64,
}

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
    journal_dir: PathBuf,
    store: ContentStore,
    local: Option<LocalChain>,
    resolutions: Vec<Resolution>,
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
/// started it), then removes [`DATA_ENTRIES`] and the caller's own `extra` entries — nothing
/// else. Returns what was removed.
pub fn clear_data_dir(data_dir: &Path, extra: &[&str]) -> Result<Vec<PathBuf>, ChainError> {
    LocalChain::stop_running(local_chain_dir(data_dir))?;
    let mut removed = Vec::new();
    for name in DATA_ENTRIES.iter().chain(extra) {
        let path = data_dir.join(name);
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

impl ChainClient {
    /// Connects as `config` says, starting (or joining) the local chain when no RPC is
    /// configured and deploying the contract there on first use; then resolves the journal's
    /// pending mints ([`resolutions`](Self::resolutions) tells what was done).
    pub fn open(config: &ChainConfig) -> Result<Self, ChainError> {
        Self::connect(config, true, true)
    }

    /// Connects like [`open`](Self::open) but leaves the journal alone: for reading and
    /// verifying, which must work whatever state an earlier mint was left in.
    pub fn open_read_only(config: &ChainConfig) -> Result<Self, ChainError> {
        Self::connect(config, true, false)
    }

    /// Connects to the configured remote chain without a contract, only to
    /// [`deploy_contract`](Self::deploy_contract) one (mints and reads need [`open`](Self::open)).
    pub fn open_for_deploy(config: &ChainConfig) -> Result<Self, ChainError> {
        if config.remote.is_none() {
            return Err(ChainError::Config(
                "no RPC configured: the local chain deploys its contract by itself".into(),
            ));
        }
        Self::connect(config, false, false)
    }

    fn connect(
        config: &ChainConfig,
        need_contract: bool,
        resolve: bool,
    ) -> Result<Self, ChainError> {
        let store = ContentStore::open(config.data_dir.join("store"))?;
        let (local, url, key, contract, from_block) = match &config.remote {
            Some(r) => (
                None,
                r.rpc_url.clone(),
                r.private_key.clone(),
                r.contract,
                r.from_block,
            ),
            None => {
                let local = LocalChain::start(local_chain_dir(&config.data_dir))?;
                let url = local.url();
                (Some(local), url, config.local_key.clone(), None, 0)
            }
        };
        let signer = parse_signer(&key)?;
        let account = signer.address();
        let url_secrets = config::url_secrets(&url);
        let parsed = url.parse().map_err(|e| {
            ChainError::Config(format!("RPC URL `{}`: {e}", config::redact_url(&url)))
        })?;
        let url = config::redact_url(&url);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ChainError::Rpc {
                url: url.clone(),
                detail: format!("cannot start the async runtime: {e}"),
            })?;
        let mut client = Self {
            rt,
            provider: RootProvider::new_http(parsed),
            wallet: EthereumWallet::from(signer),
            account,
            contract: Address::ZERO,
            chain_id: 0,
            from_block,
            url,
            url_secrets,
            request_timeout: config.request_timeout,
            receipt_timeout: config.receipt_timeout,
            journal_dir: PathBuf::new(),
            store,
            local: None,
            resolutions: Vec::new(),
        };
        client.chain_id = client.rpc("eth_chainId", client.provider.get_chain_id())?;
        config::check_signing_key(&key, client.chain_id)?;
        client.journal_dir = config
            .data_dir
            .join("journal")
            .join(client.chain_id.to_string());
        std::fs::create_dir_all(&client.journal_dir)
            .map_err(|e| ChainError::io(&client.journal_dir, e))?;
        match (&local, contract) {
            (_, Some(c)) => {
                client.contract = addr(c);
                client.require_code()?;
            }
            (Some(l), None) => client.local_deployment(l.dir(), config.royalty_bps)?,
            (None, None) if !need_contract => return Ok(client),
            (None, None) => {
                return Err(ChainError::Config(format!(
                    "no contract address for chain {}: deploy one with `nftgen deploy` and set {CONTRACT_ENV}",
                    client.chain_id
                )));
            }
        }
        client.local = local;
        if resolve {
            client.resolutions = client.resolve_journal()?;
        }
        Ok(client)
    }

    /// The signing account (the creator of what it mints).
    pub fn account(&self) -> CreatorAddress {
        creator(self.account)
    }

    /// The contract's address.
    pub fn contract(&self) -> CreatorAddress {
        creator(self.contract)
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The JSON-RPC URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The embedded local chain, when this client runs on it.
    pub fn local_chain(&self) -> Option<&LocalChain> {
        self.local.as_ref()
    }

    /// The content store (PNGs and metadata of minted art).
    pub fn store(&self) -> &ContentStore {
        &self.store
    }

    /// How `open` settled mints left pending by an earlier run.
    pub fn resolutions(&self) -> &[Resolution] {
        &self.resolutions
    }

    /// The journal's entries, oldest first. An unreadable entry is skipped with a warning (and
    /// left on disk for a person to look at), so one damaged file cannot stop the rest.
    pub fn journal(&self) -> Result<Vec<JournalEntry>, ChainError> {
        let mut entries = Vec::new();
        let dir = &self.journal_dir;
        for e in std::fs::read_dir(dir).map_err(|e| ChainError::io(dir, e))? {
            let path = e.map_err(|e| ChainError::io(dir, e))?.path();
            if path.extension().is_some_and(|x| x == "json") {
                let entry = std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        serde_json::from_slice::<JournalEntry>(&b).map_err(|e| e.to_string())
                    });
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "skipping an unreadable mint journal entry");
                        continue;
                    }
                };
                let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                entries.push((modified, entry));
            }
        }
        entries.sort_by_key(|(m, e)| (*m, e.token_id));
        Ok(entries.into_iter().map(|(_, e)| e).collect())
    }

    /// Runs one request with the request timeout.
    fn rpc<T, E: std::fmt::Display>(
        &self,
        what: &str,
        fut: impl std::future::IntoFuture<Output = Result<T, E>>,
    ) -> Result<T, ChainError> {
        self.timed(what, fut)?.map_err(|e| ChainError::Rpc {
            url: self.url.clone(),
            detail: self.scrub(format!("{what}: {e}")),
        })
    }

    /// `text` without the parts of the RPC URL that may hold credentials (transport errors
    /// quote the URL).
    fn scrub(&self, mut text: String) -> String {
        for secret in &self.url_secrets {
            text = text.replace(secret.as_str(), "…");
        }
        text
    }

    /// Runs one request with the request timeout, leaving its own error to the caller.
    fn timed<T>(
        &self,
        what: &str,
        fut: impl std::future::IntoFuture<Output = T>,
    ) -> Result<T, ChainError> {
        let limit = self.request_timeout;
        self.rt
            .block_on(async { tokio::time::timeout(limit, fut.into_future()).await })
            .map_err(|_| ChainError::Timeout {
                url: self.url.clone(),
                what: what.to_string(),
                after: limit,
            })
    }

    fn require_code(&self) -> Result<(), ChainError> {
        let code = self.rpc("eth_getCode", self.provider.get_code_at(self.contract))?;
        if code.is_empty() {
            return Err(ChainError::NoContract {
                address: creator(self.contract),
                chain_id: self.chain_id,
            });
        }
        Ok(())
    }

    /// Uses the contract deployed on the local chain before, or deploys it.
    fn local_deployment(&mut self, dir: &Path, royalty_bps: u16) -> Result<(), ChainError> {
        let file = dir.join("deployment.json");
        if let Some(d) = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Deployment>(&b).ok())
            .filter(|d| d.chain_id == self.chain_id)
        {
            self.contract = addr(d.contract);
            self.from_block = d.block;
            if self.require_code().is_ok() {
                return Ok(());
            }
            tracing::warn!(contract = %d.contract, "the local chain lost the contract; deploying it again");
        }
        let base = format!("file://{}/", self.store.tokens_dir().display());
        let receipt = self.deploy_contract(&base, royalty_bps)?;
        let contract = receipt.contract_address.ok_or_else(|| ChainError::Rpc {
            url: self.url.clone(),
            detail: "deployment receipt names no contract".into(),
        })?;
        self.contract = contract;
        self.from_block = receipt.block_number.unwrap_or(0);
        let d = Deployment {
            chain_id: self.chain_id,
            contract: creator(contract),
            block: self.from_block,
        };
        write_atomic(&file, &serde_json::to_vec_pretty(&d).expect("serialises"))
            .map_err(|e| ChainError::io(&file, e))?;
        tracing::info!(%contract, block = self.from_block, "provenance contract deployed");
        Ok(())
    }

    /// Deploys a new provenance contract (the signer becomes its owner) whose `tokenURI` is
    /// `metadata_base` + token id + ".json"; returns the receipt.
    pub fn deploy_contract(
        &self,
        metadata_base: &str,
        royalty_bps: u16,
    ) -> Result<TransactionReceipt, ChainError> {
        let mut code = KilnProvenance::BYTECODE.to_vec();
        code.extend(
            KilnProvenance::constructorCall {
                metadataBase: metadata_base.to_string(),
                royaltyBps_: alloy::primitives::Uint::from(royalty_bps),
            }
            .abi_encode(),
        );
        let tx = TransactionRequest::default()
            .with_from(self.account)
            .with_deploy_code(Bytes::from(code));
        let (raw, hash, _) = self.sign(tx)?;
        self.send_raw(&raw)?;
        let receipt = self.wait_receipt(hash)?;
        if !receipt.status() {
            return Err(ChainError::Reverted {
                tx: tx_hash(hash),
                block: receipt.block_number.unwrap_or(0),
            });
        }
        Ok(receipt)
    }

    /// Simulates `tx` (revert → typed error), then fills nonce (fresh from the node, so a failed
    /// earlier send leaves no gap), gas and fees, and signs. Returns (raw bytes, hash, nonce).
    fn sign(&self, tx: TransactionRequest) -> Result<(Vec<u8>, B256, u64), ChainError> {
        self.simulate(&tx)?;
        let gas = self.rpc("eth_estimateGas", self.provider.estimate_gas(tx.clone()))?;
        let nonce = self.rpc(
            "eth_getTransactionCount",
            self.provider.get_transaction_count(self.account).pending(),
        )?;
        let fees = self.rpc("fee estimation", self.provider.estimate_eip1559_fees())?;
        let tx = tx
            .with_nonce(nonce)
            .with_chain_id(self.chain_id)
            // Headroom over the estimate: state may move between estimate and inclusion.
            .with_gas_limit(gas + gas / 5)
            .with_max_fee_per_gas(fees.max_fee_per_gas)
            .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
        let envelope = self
            .rt
            .block_on(tx.build(&self.wallet))
            .map_err(|e| ChainError::Rpc {
                url: self.url.clone(),
                detail: format!("cannot sign the transaction: {e}"),
            })?;
        Ok((envelope.encoded_2718(), *envelope.tx_hash(), nonce))
    }

    /// `eth_call` of `tx`; a revert becomes [`ChainError::Rejected`].
    fn simulate(&self, tx: &TransactionRequest) -> Result<(), ChainError> {
        match self.timed("eth_call (simulation)", self.provider.call(tx.clone()))? {
            Ok(_) => Ok(()),
            Err(e) => match e.as_error_resp() {
                Some(payload) if payload.as_revert_data().is_some() => Err(ChainError::Rejected(
                    rejection(payload.as_revert_data().unwrap_or_default().as_ref()),
                )),
                _ => Err(ChainError::Rpc {
                    url: self.url.clone(),
                    detail: self.scrub(format!("eth_call: {e}")),
                }),
            },
        }
    }

    fn send_raw(&self, raw: &[u8]) -> Result<(), ChainError> {
        self.rpc(
            "eth_sendRawTransaction",
            self.provider.send_raw_transaction(raw),
        )
        .map(|_| ())
    }

    /// Polls for the receipt of `hash` until the receipt timeout.
    fn wait_receipt(&self, hash: B256) -> Result<TransactionReceipt, ChainError> {
        self.wait_receipt_until(hash, Instant::now() + self.receipt_timeout)
    }

    /// Polls for the receipt of `hash` until `deadline`.
    fn wait_receipt_until(
        &self,
        hash: B256,
        deadline: Instant,
    ) -> Result<TransactionReceipt, ChainError> {
        loop {
            if let Some(r) = self.rpc(
                "eth_getTransactionReceipt",
                self.provider.get_transaction_receipt(hash),
            )? {
                return Ok(r);
            }
            if Instant::now() >= deadline {
                return Err(ChainError::Timeout {
                    url: self.url.clone(),
                    what: format!("the receipt of {hash}"),
                    after: self.receipt_timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn journal_path(&self, token: TokenId) -> PathBuf {
        self.journal_dir.join(format!("{token}.json"))
    }

    fn write_journal(&self, entry: &JournalEntry) -> Result<(), ChainError> {
        let bytes = serde_json::to_vec_pretty(entry).expect("serialises");
        let path = self.journal_path(entry.token_id);
        write_atomic(&path, &bytes).map_err(|e| ChainError::io(&path, e))?;
        Ok(())
    }

    /// Binds `art` to this wallet as creator: one naming another creator is refused; a
    /// `kiln-pipeline/1` record with no creator gets this account (its pixels do not depend on
    /// it), a `kiln-pipeline/2` one is refused (its pixels do: the creator is in the noise).
    pub fn attribute(&self, art: &GeneratedArt) -> Result<GeneratedArt, ChainError> {
        match art.record.creator {
            Some(c) if c != self.account() => Err(ChainError::CreatorMismatch {
                creator: c,
                signer: self.account(),
            }),
            Some(_) => Ok(art.clone()),
            None if art.record.pipeline != crate::PIPELINE => Err(ChainError::CreatorNotPainted {
                pipeline: art.record.pipeline.clone(),
                signer: self.account(),
            }),
            None => {
                let mut art = art.clone();
                art.record.creator = Some(self.account());
                art.recipe_hash = art.record.recipe_hash();
                Ok(art)
            }
        }
    }

    /// Mints `art` to `to` and waits for the receipt ([`submit`](Self::submit) then
    /// [`confirm`](Self::confirm)).
    pub fn mint(&self, art: &GeneratedArt, to: CreatorAddress) -> Result<MintReceipt, ChainError> {
        let pending = self.submit(art, to)?;
        self.confirm(&pending)
    }

    /// Simulates the mint, signs it, stores the art (PNG + metadata), journals the mint as
    /// pending and broadcasts it. A refusal in simulation stores, journals and sends nothing.
    pub fn submit(
        &self,
        art: &GeneratedArt,
        to: CreatorAddress,
    ) -> Result<PendingMint, ChainError> {
        let art = self.attribute(art)?;
        let token_id = TokenId::from(art.recipe_hash);
        if let Ok(bytes) = std::fs::read(self.journal_path(token_id))
            && let Ok(e) = serde_json::from_slice::<JournalEntry>(&bytes)
            && e.state == MintState::Pending
        {
            tracing::info!(%token_id, tx = %e.tx, "this mint is already pending; waiting for it");
            return Ok(PendingMint { token_id, tx: e.tx });
        }
        // Simulated first: a refused mint (a duplicate of someone's content, say) writes
        // nothing, so it cannot replace the stored image and metadata of the token that holds
        // the content.
        let (entry, raw) = self.sign_mint(to, &art.record.canonical_bytes(), art.content_hash)?;
        self.store.put(&art)?;
        self.write_journal(&entry)?;
        tracing::info!(%token_id, tx = %entry.tx, nonce = entry.nonce, "mint signed and journaled; sending");
        if let Err(e) = self.send_raw(&raw) {
            // The node refused it (no funds, a fee or nonce it will not take): this transaction
            // will never be mined, so it must not stay pending. A timeout is different — the
            // node may have it — and stays pending for the journal to settle.
            if let ChainError::Rpc { detail, .. } = &e {
                let mut settled = entry.clone();
                let minted = self.exists(token_id).unwrap_or(false);
                settled.state = if minted {
                    MintState::Confirmed
                } else {
                    MintState::Failed
                };
                settled.reason = Some(format!("the node refused the transaction: {detail}"));
                self.write_journal(&settled)?;
            }
            return Err(e);
        }
        Ok(PendingMint {
            token_id,
            tx: entry.tx,
        })
    }

    /// Simulates and signs `mint(to, recipe, content)`: the journal entry to write before
    /// sending, and the signed bytes to send.
    fn sign_mint(
        &self,
        to: CreatorAddress,
        recipe: &[u8],
        content: ContentHash,
    ) -> Result<(JournalEntry, Vec<u8>), ChainError> {
        let call = KilnProvenance::mintCall {
            to: addr(to),
            recipe: recipe.to_vec().into(),
            contentHash: B256::from(content.0),
        };
        let tx = TransactionRequest::default()
            .with_from(self.account)
            .with_to(self.contract)
            .with_input(call.abi_encode());
        let (raw, hash, nonce) = self.sign(tx)?;
        let entry = JournalEntry {
            token_id: TokenId(alloy::primitives::keccak256(recipe).0),
            state: MintState::Pending,
            tx: tx_hash(hash),
            raw_tx: alloy::hex::encode_prefixed(&raw),
            nonce,
            from: self.account(),
            to,
            recipe: alloy::hex::encode_prefixed(recipe),
            content_hash: content,
            contract: creator(self.contract),
            block: None,
            gas_used: None,
            reason: None,
        };
        Ok((entry, raw))
    }

    /// Waits for a submitted mint's receipt and records the outcome in the journal.
    pub fn confirm(&self, pending: &PendingMint) -> Result<MintReceipt, ChainError> {
        let receipt = self.wait_receipt(B256::from(pending.tx.0))?;
        self.settle(pending.token_id, &receipt)
    }

    fn settle(
        &self,
        token: TokenId,
        receipt: &TransactionReceipt,
    ) -> Result<MintReceipt, ChainError> {
        let path = self.journal_path(token);
        let bytes = std::fs::read(&path).map_err(|e| ChainError::io(&path, e))?;
        let mut entry: JournalEntry =
            serde_json::from_slice(&bytes).map_err(|e| ChainError::io(&path, e))?;
        let block = receipt.block_number.unwrap_or(0);
        entry.block = Some(block);
        entry.gas_used = Some(receipt.gas_used);
        if receipt.status() {
            entry.state = MintState::Confirmed;
            self.write_journal(&entry)?;
            tracing::info!(%token, block, gas = receipt.gas_used, "mint confirmed");
            Ok(MintReceipt {
                token_id: token,
                tx: tx_hash(receipt.transaction_hash),
                block,
                gas_used: receipt.gas_used,
            })
        } else {
            entry.state = MintState::Failed;
            entry.reason = Some("reverted on chain".into());
            self.write_journal(&entry)?;
            Err(ChainError::Reverted {
                tx: tx_hash(receipt.transaction_hash),
                block,
            })
        }
    }

    /// Settles the journal against the chain: a pending mint whose receipt exists is confirmed
    /// (or failed); one the chain has forgotten (a crash before anvil saved it, a dropped
    /// transaction) is sent again (same signed bytes, so it cannot mint twice), or signed again
    /// when the node refuses the old bytes and this client holds the key; on the local chain, a
    /// confirmed mint the chain lost is sent again too. An entry that cannot be settled is
    /// marked [`MintState::Unresolved`] with the reason and never stops the others, nor the
    /// client. All of it takes at most the receipt timeout; what is left waits for the next run.
    fn resolve_journal(&self) -> Result<Vec<Resolution>, ChainError> {
        let mut out = Vec::new();
        let mut entries = self.journal()?;
        // Replays must go in nonce order per account, or later ones wait behind a gap.
        entries.sort_by_key(|e| (e.from, e.nonce));
        let deadline = Instant::now() + self.receipt_timeout;
        for entry in entries {
            if entry.contract != creator(self.contract) {
                continue;
            }
            let check_confirmed = self.local.is_some() && entry.state == MintState::Confirmed;
            let open = matches!(entry.state, MintState::Pending | MintState::Unresolved);
            if !open && !check_confirmed {
                continue;
            }
            if Instant::now() >= deadline {
                tracing::warn!(token = %entry.token_id, "journal: out of time; left for the next run");
                continue;
            }
            match self.resolve_entry(&entry, deadline) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => {}
                Err(e) => {
                    let reason = e.to_string();
                    tracing::warn!(token = %entry.token_id, %reason, "journal: this mint cannot be settled now");
                    let mut marked = entry.clone();
                    marked.state = MintState::Unresolved;
                    marked.reason = Some(reason);
                    self.write_journal(&marked)?;
                    out.push(Resolution {
                        token_id: entry.token_id,
                        state: MintState::Unresolved,
                        action: "could not be settled",
                        reason: marked.reason,
                    });
                }
            }
        }
        for r in &out {
            tracing::info!(token = %r.token_id, state = ?r.state, action = r.action, "journal resolved");
        }
        Ok(out)
    }

    /// Settles one journal entry (see [`resolve_journal`](Self::resolve_journal)).
    fn resolve_entry(
        &self,
        entry: &JournalEntry,
        deadline: Instant,
    ) -> Result<Option<Resolution>, ChainError> {
        let resolution = |state, action| {
            Some(Resolution {
                token_id: entry.token_id,
                state,
                action,
                reason: None,
            })
        };
        let hash = B256::from(entry.tx.0);
        let receipt = self.rpc(
            "eth_getTransactionReceipt",
            self.provider.get_transaction_receipt(hash),
        )?;
        if let Some(r) = receipt {
            if entry.state == MintState::Confirmed {
                return Ok(None);
            }
            let state = self.settled_state(entry.token_id, &r)?;
            return Ok(resolution(state, "receipt found"));
        }
        if self.exists(entry.token_id)? {
            // Minted by another transaction (a replacement): the token is there.
            let mut e = entry.clone();
            e.state = MintState::Confirmed;
            e.reason = None;
            self.write_journal(&e)?;
            return Ok(resolution(MintState::Confirmed, "token found on chain"));
        }
        let raw = alloy::hex::decode(&entry.raw_tx)
            .map_err(|e| ChainError::io(self.journal_path(entry.token_id), e))?;
        tracing::warn!(token = %entry.token_id, tx = %entry.tx, "the chain does not know this mint; sending it again");
        match self.send_raw(&raw) {
            Ok(()) => {}
            // Still in the node's mempool: wait for it below.
            Err(ChainError::Rpc { detail, .. })
                if detail.contains("already known") || detail.contains("already imported") => {}
            // Refused (its nonce went elsewhere, its fee is below the base fee now, …): this
            // wallet signs the mint again with a fresh nonce and fees.
            Err(ChainError::Rpc { detail, .. }) if entry.from == self.account() => {
                tracing::warn!(token = %entry.token_id, %detail, "the node refused the old transaction; signing the mint again");
                let recipe = alloy::hex::decode(&entry.recipe)
                    .map_err(|e| ChainError::io(self.journal_path(entry.token_id), e))?;
                let (fresh, raw) = self.sign_mint(entry.to, &recipe, entry.content_hash)?;
                self.write_journal(&fresh)?;
                self.send_raw(&raw)?;
                let r = self.wait_receipt_until(B256::from(fresh.tx.0), deadline)?;
                let state = self.settled_state(entry.token_id, &r)?;
                return Ok(resolution(state, "signed again"));
            }
            Err(e) => return Err(e),
        }
        let r = self.wait_receipt_until(hash, deadline)?;
        let state = self.settled_state(entry.token_id, &r)?;
        Ok(resolution(state, "sent again"))
    }

    /// [`settle`](Self::settle), with a revert as a state rather than an error.
    fn settled_state(
        &self,
        token: TokenId,
        receipt: &TransactionReceipt,
    ) -> Result<MintState, ChainError> {
        match self.settle(token, receipt) {
            Ok(_) => Ok(MintState::Confirmed),
            Err(ChainError::Reverted { .. }) => Ok(MintState::Failed),
            Err(e) => Err(e),
        }
    }

    fn instance(&self) -> KilnProvenance::KilnProvenanceInstance<&RootProvider> {
        KilnProvenance::new(self.contract, &self.provider)
    }

    /// Whether `token` is minted.
    pub fn exists(&self, token: TokenId) -> Result<bool, ChainError> {
        let c = self.instance();
        let creator = self.rpc("creatorOf", c.creatorOf(token_u256(token)).call())?;
        Ok(creator != Address::ZERO)
    }

    /// The token holding the image with this content hash, if any.
    pub fn token_of_content(&self, content: ContentHash) -> Result<Option<TokenId>, ChainError> {
        let c = self.instance();
        let id = self.rpc(
            "tokenOfContent",
            c.tokenOfContent(B256::from(content.0)).call(),
        )?;
        Ok((!id.is_zero()).then(|| token_of(id)))
    }

    /// The chain's record of `token`, or `None` if it is not minted.
    pub fn record(&self, token: TokenId) -> Result<Option<ChainRecord>, ChainError> {
        if !self.exists(token)? {
            return Ok(None);
        }
        let c = self.instance();
        let filter = Filter::new()
            .address(self.contract)
            .event_signature(KilnProvenance::Provenance::SIGNATURE_HASH)
            .topic1(B256::from(token.0))
            .from_block(self.from_block);
        let logs = self.rpc("eth_getLogs", self.provider.get_logs(&filter))?;
        let bad = |detail: String| ChainError::BadRecord { token, detail };
        let log = logs
            .first()
            .ok_or_else(|| bad("minted, but its Provenance event is not found".into()))?;
        let event = KilnProvenance::Provenance::decode_log_data(log.data())
            .map_err(|e| bad(format!("undecodable Provenance event: {e}")))?;
        let recipe = event.recipe.to_vec();
        if alloy::primitives::keccak256(&recipe).0 != token.0 {
            return Err(bad(
                "the event's recipe does not hash to the token id".into()
            ));
        }
        let record = GenerationRecord::from_canonical_bytes(&recipe)
            .map_err(|e| bad(format!("the recipe does not decode: {e}")))?;
        let content_hash = ContentHash(event.contentHash.0);
        if self.token_of_content(content_hash)? != Some(token) {
            return Err(bad(
                "the content hash in its event is not committed to it".into()
            ));
        }
        let owner = self.rpc("ownerOf", c.ownerOf(token_u256(token)).call())?;
        let token_uri = self.rpc("tokenURI", c.tokenURI(token_u256(token)).call())?;
        Ok(Some(ChainRecord {
            token_id: token,
            owner: creator(owner),
            creator: creator(event.creator),
            content_hash,
            record,
            tx: log.transaction_hash.map(tx_hash).unwrap_or(TxHash([0; 32])),
            block: log.block_number.unwrap_or(0),
            token_uri,
        }))
    }

    /// Tokens `owner` holds now, in the order they reached it.
    pub fn tokens_of(&self, owner: CreatorAddress) -> Result<Vec<TokenId>, ChainError> {
        let filter = Filter::new()
            .address(self.contract)
            .event_signature(KilnProvenance::Transfer::SIGNATURE_HASH)
            .topic2(addr(owner).into_word())
            .from_block(self.from_block);
        let logs = self.rpc("eth_getLogs", self.provider.get_logs(&filter))?;
        let c = self.instance();
        let mut out = Vec::new();
        for log in logs {
            let Some(id) = log.topics().get(3) else {
                continue;
            };
            let token = TokenId(id.0);
            if out.contains(&token) {
                continue;
            }
            let now = self.rpc("ownerOf", c.ownerOf(token_u256(token)).call())?;
            if now == addr(owner) {
                out.push(token);
            }
        }
        Ok(out)
    }

    /// Sets anvil's automine (local development chains only): off, a sent transaction waits in
    /// the mempool. For tests of interrupted mints.
    pub fn set_automine(&self, on: bool) -> Result<(), ChainError> {
        self.rpc::<(), _>(
            "evm_setAutomine",
            self.provider
                .raw_request::<_, ()>("evm_setAutomine".into(), (on,)),
        )
    }
}

/// Decodes revert data into a [`MintRejection`].
fn rejection(data: &[u8]) -> MintRejection {
    use alloy::sol_types::SolInterface;
    match KilnProvenanceErrors::abi_decode(data) {
        Ok(KilnProvenanceErrors::DuplicateContent(e)) => MintRejection::DuplicateContent {
            content_hash: ContentHash(e.contentHash.0),
            token_id: token_of(e.tokenId),
        },
        Ok(KilnProvenanceErrors::NotCreator(e)) => MintRejection::NotCreator {
            creator: creator(e.creator),
            sender: creator(e.sender),
        },
        Ok(KilnProvenanceErrors::AlreadyMinted(e)) => MintRejection::AlreadyMinted {
            token_id: token_of(e.tokenId),
        },
        Ok(KilnProvenanceErrors::RecipeMalformed(_)) => MintRejection::RecipeMalformed,
        Ok(KilnProvenanceErrors::ContentHashInvalid(_)) => MintRejection::ContentHashInvalid,
        Ok(KilnProvenanceErrors::ERC721InvalidReceiver(e)) => MintRejection::InvalidReceiver {
            receiver: creator(e.receiver),
        },
        Ok(other) => MintRejection::Other(format!("{other:?}")),
        Err(_) => MintRejection::Other(alloy::hex::encode_prefixed(data)),
    }
}
