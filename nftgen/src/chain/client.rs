//! The client: connecting, requests with timeouts, signing and sending, minting and reading tokens.

use super::*;

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
    /// The commitment's transaction (none for a mint journaled before commit–reveal).
    pub commit_tx: Option<TxHash>,
    /// Gas the commitment used.
    pub commit_gas_used: Option<u64>,
}

impl MintReceipt {
    /// Gas of the commitment and the mint together.
    pub fn total_gas(&self) -> u64 {
        self.gas_used + self.commit_gas_used.unwrap_or(0)
    }
}

/// Token ids per `eth_getLogs` query when a listing asks for several tokens' events at once
/// (providers cap the topics of one filter).
pub const TOKENS_PER_QUERY: usize = 100;

/// One row of a listing ([`ChainClient::records_of`]): a token and its record, or why it could
/// not be read.
pub type ListedToken = (TokenId, Result<ChainRecord, ChainError>);

/// A signed transaction.
pub(super) struct Signed {
    pub(super) raw: Vec<u8>,
    pub(super) hash: B256,
    pub(super) nonce: u64,
    pub(super) fees: (u128, u128),
}

impl Signed {
    /// Makes it the current step of `e`.
    pub(super) fn put(self, e: &mut JournalEntry) {
        e.tx = tx_hash(self.hash);
        e.raw_tx = alloy::hex::encode_prefixed(&self.raw);
        e.nonce = self.nonce;
        e.fees = Some(self.fees);
    }
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
            confirmations: 1,
            fee_bump_after: config.fee_bump_after,
            max_fee_per_gas: config.max_fee_per_gas,
            max_fee_bumps: config.max_fee_bumps,
            log_page_blocks: config.log_page_blocks,
            journal_dir: PathBuf::new(),
            store,
            local: None,
            resolutions: Vec::new(),
            mint_locks: Default::default(),
        };
        client.chain_id = client.rpc("eth_chainId", client.provider.get_chain_id())?;
        config::check_signing_key(&key, client.chain_id)?;
        client.confirmations =
            config
                .confirmations
                .unwrap_or(if client.chain_id == LOCAL_CHAIN_ID {
                    1
                } else {
                    2
                });
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

    /// Runs one request with the request timeout.
    pub(super) fn rpc<T, E: std::fmt::Display>(
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

    pub(super) fn require_code(&self) -> Result<(), ChainError> {
        let code = self.rpc("eth_getCode", self.provider.get_code_at(self.contract))?;
        if code.is_empty() {
            return Err(ChainError::NoContract {
                address: creator(self.contract),
                chain_id: self.chain_id,
            });
        }
        // This client speaks commit–reveal to a contract that mints only creator-bound
        // pipelines and indexes one token per creator and picture: older ones cannot serve it.
        let c = self.instance();
        let current = self
            .timed("MAX_COMMITMENT_AGE", c.MAX_COMMITMENT_AGE().call())?
            .is_ok()
            && self
                .timed(
                    "pipelineAllowed",
                    c.pipelineAllowed(crate::PIPELINE_2.into()).call(),
                )?
                .is_ok_and(|allowed| allowed);
        if !current {
            return Err(ChainError::OldContract {
                address: creator(self.contract),
            });
        }
        Ok(())
    }

    /// Simulates `tx` at `block` (revert → typed error), then fills nonce (fresh from the node,
    /// so a failed earlier send leaves no gap, unless `nonce` is given), gas and fees (at least
    /// `min_fees`, at most `cap` per gas), and signs.
    pub(super) fn sign(
        &self,
        tx: TransactionRequest,
        block: BlockId,
        nonce: Option<u64>,
        min_fees: Option<(u128, u128)>,
        cap: Option<u128>,
    ) -> Result<Signed, ChainError> {
        self.simulate(&tx, block)?;
        let gas = self.rpc(
            "eth_estimateGas",
            self.provider.estimate_gas(tx.clone()).block(block),
        )?;
        let nonce = match nonce {
            Some(n) => n,
            None => self.rpc(
                "eth_getTransactionCount",
                self.provider.get_transaction_count(self.account).pending(),
            )?,
        };
        let fees = self.rpc("fee estimation", self.provider.estimate_eip1559_fees())?;
        let (floor_max, floor_tip) = min_fees.unwrap_or((0, 0));
        let cap = cap.unwrap_or(u128::MAX);
        let tip = fees.max_priority_fee_per_gas.max(floor_tip).min(cap);
        let max = fees.max_fee_per_gas.max(floor_max).max(tip).min(cap);
        let tx = tx
            .with_nonce(nonce)
            .with_chain_id(self.chain_id)
            // Headroom over the estimate: state may move between estimate and inclusion.
            .with_gas_limit(gas + gas / 5)
            .with_max_fee_per_gas(max)
            .with_max_priority_fee_per_gas(tip);
        let envelope = self
            .rt
            .block_on(tx.build(&self.wallet))
            .map_err(|e| ChainError::Rpc {
                url: self.url.clone(),
                detail: format!("cannot sign the transaction: {e}"),
            })?;
        Ok(Signed {
            raw: envelope.encoded_2718(),
            hash: *envelope.tx_hash(),
            nonce,
            fees: (max, tip),
        })
    }

    /// `eth_call` of `tx` at `block`; a revert becomes [`ChainError::Rejected`].
    fn simulate(&self, tx: &TransactionRequest, block: BlockId) -> Result<(), ChainError> {
        match self.timed(
            "eth_call (simulation)",
            self.provider.call(tx.clone()).block(block),
        )? {
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

    /// Broadcasts a signed transaction. The node's own refusal (an error answer: no funds, a
    /// nonce or fee it will not take, "already known") is [`ChainError::Refused`]; a request
    /// that did not get an answer (connection reset, HTTP error, timeout) is
    /// [`ChainError::Rpc`] or [`ChainError::Timeout`] — the node may have taken the transaction.
    pub(super) fn send_raw(&self, raw: &[u8]) -> Result<(), ChainError> {
        match self.timed(
            "eth_sendRawTransaction",
            self.provider.send_raw_transaction(raw),
        )? {
            Ok(_) => Ok(()),
            Err(e) if e.as_error_resp().is_some() => Err(ChainError::Refused {
                url: self.url.clone(),
                detail: self.scrub(format!("eth_sendRawTransaction: {e}")),
            }),
            Err(e) => Err(ChainError::Rpc {
                url: self.url.clone(),
                detail: self.scrub(format!("eth_sendRawTransaction: {e}")),
            }),
        }
    }

    /// Polls for the receipt of `hash` until the receipt timeout.
    pub(super) fn wait_receipt(&self, hash: B256) -> Result<TransactionReceipt, ChainError> {
        let deadline = Instant::now() + self.receipt_timeout;
        loop {
            if let Some(r) = self.rpc(
                "eth_getTransactionReceipt",
                self.provider.get_transaction_receipt(hash),
            )? {
                return Ok(r);
            }
            self.before(deadline, || format!("the receipt of {hash}"))?;
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A [`ChainError::Timeout`] for `what` once `deadline` (set from the receipt timeout)
    /// has passed.
    pub(super) fn before(
        &self,
        deadline: Instant,
        what: impl FnOnce() -> String,
    ) -> Result<(), ChainError> {
        if Instant::now() < deadline {
            return Ok(());
        }
        Err(ChainError::Timeout {
            url: self.url.clone(),
            what: what(),
            after: self.receipt_timeout,
        })
    }

    /// Checks that `art` can be minted by this wallet as its creator: its pipeline must paint
    /// the creator into the picture ([`crate::pipeline_binds_creator`]; `kiln-pipeline/1` does
    /// not, so anyone could mint its recipes naming themselves), and its record must name this
    /// account (art painted without a creator, or for another, paints another picture).
    pub fn attribute(&self, art: &GeneratedArt) -> Result<GeneratedArt, ChainError> {
        if !crate::pipeline_binds_creator(&art.record.pipeline) {
            return Err(ChainError::CreatorNotBound {
                pipeline: art.record.pipeline.clone(),
            });
        }
        match art.record.creator {
            Some(c) if c != self.account() => Err(ChainError::CreatorMismatch {
                creator: c,
                signer: self.account(),
            }),
            Some(_) => Ok(art.clone()),
            None => Err(ChainError::CreatorNotPainted {
                pipeline: art.record.pipeline.clone(),
                signer: self.account(),
            }),
        }
    }

    /// Mints `art` to this account, its creator, and waits for the receipt: commits, waits a
    /// block, reveals ([`submit`](Self::submit) then [`confirm`](Self::confirm)).
    pub fn mint(&self, art: &GeneratedArt) -> Result<MintReceipt, ChainError> {
        let pending = self.submit(art)?;
        self.confirm(&pending)
    }

    /// Checks the mint (a refusal decodes into a typed [`MintRejection`] and writes and sends
    /// nothing), stores the art (PNG + metadata), signs a commitment to it with a fresh salt,
    /// journals the mint as [`MintState::Committing`] and broadcasts the commitment.
    /// [`confirm`](Self::confirm) reveals it. A mint already open in the journal is picked up
    /// where it stands.
    pub fn submit(&self, art: &GeneratedArt) -> Result<PendingMint, ChainError> {
        let art = self.attribute(art)?;
        let token_id = TokenId::from(art.recipe_hash);
        if !self.claim_mint(token_id)? {
            return Err(ChainError::MintBusy { token: token_id });
        }
        let submitted = self.submit_claimed(art, token_id);
        if submitted.is_err() {
            self.release_mint(token_id);
        }
        submitted
    }

    /// [`submit`](Self::submit) with the mint's lock held.
    fn submit_claimed(
        &self,
        art: GeneratedArt,
        token_id: TokenId,
    ) -> Result<PendingMint, ChainError> {
        if let Some(e) = self.read_entry(token_id).filter(|e| {
            e.is_open() && e.contract == creator(self.contract) && e.from == self.account()
        }) {
            tracing::info!(%token_id, tx = %e.tx, state = ?e.state, "this mint is already under way; taking it from there");
            return Ok(PendingMint { token_id, tx: e.tx });
        }
        let recipe = art.record.canonical_bytes();
        let salt = self.fresh_salt()?;
        let mut entry = JournalEntry {
            token_id,
            state: MintState::Committing,
            tx: TxHash([0; 32]),
            raw_tx: String::new(),
            nonce: 0,
            fees: None,
            replaced: Vec::new(),
            from: self.account(),
            recipe: alloy::hex::encode_prefixed(&recipe),
            content_hash: art.content_hash,
            salt,
            commit_raw_tx: None,
            commit_tx: None,
            commit_block: None,
            commit_gas_used: None,
            contract: creator(self.contract),
            block: None,
            gas_used: None,
            reason: None,
            fee_cap: None,
            fee_bumps: 0,
            waiting: None,
        };
        // The reveal, simulated before anything is written: every check the contract makes
        // but the commitment's must pass, so a refused mint (a recipe minted already, say)
        // stores, journals and sends nothing.
        match self.simulate(&self.reveal_call(&entry)?, BlockId::latest()) {
            Err(ChainError::Rejected(MintRejection::CommitmentMissing)) => {}
            Err(e) => return Err(e),
            Ok(()) => {
                return Err(ChainError::Rpc {
                    url: self.url.clone(),
                    detail: "the contract would mint without a commitment: it is not a KilnProvenance with commit–reveal".into(),
                });
            }
        }
        let _lock = self.account_lock()?;
        let deadline = Instant::now() + self.receipt_timeout;
        entry.fee_cap = Some(self.fee_cap()?);
        let signed = self.sign_step(&entry, MintState::Committing, None, None, deadline)?;
        entry.commit_raw_tx = Some(alloy::hex::encode_prefixed(&signed.raw));
        signed.put(&mut entry);
        self.store.put(&art)?;
        self.write_journal(&entry)?;
        tracing::info!(%token_id, tx = %entry.tx, nonce = entry.nonce, "commitment signed and journaled; sending");
        self.send_new(&mut entry)?;
        Ok(PendingMint {
            token_id,
            tx: entry.tx,
        })
    }

    /// The most a new mint's transactions may pay per gas: the configured `max_fee_per_gas`, else
    /// [`config::DEFAULT_FEE_CAP_MULTIPLE`] times the latest block's base fee plus the node's
    /// suggested tip (never below what the node suggests now, or the first transaction could
    /// not be signed).
    pub(super) fn fee_cap(&self) -> Result<u128, ChainError> {
        if let Some(cap) = self.max_fee_per_gas {
            return Ok(cap);
        }
        let fees = self.rpc("fee estimation", self.provider.estimate_eip1559_fees())?;
        let block = self.rpc(
            "eth_getBlockByNumber",
            self.provider
                .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest),
        )?;
        let base = block
            .and_then(|b| b.header.base_fee_per_gas)
            .map_or(fees.max_fee_per_gas, u128::from);
        Ok(base
            .saturating_mul(config::DEFAULT_FEE_CAP_MULTIPLE)
            .saturating_add(fees.max_priority_fee_per_gas)
            .max(fees.max_fee_per_gas))
    }

    /// A new commitment salt from the operating system's randomness (0x-hex, 32 bytes).
    pub(super) fn fresh_salt(&self) -> Result<String, ChainError> {
        let mut salt = [0u8; 32];
        getrandom::fill(&mut salt).map_err(|e| ChainError::Rpc {
            url: self.url.clone(),
            detail: format!("no randomness for the commitment's salt: {e}"),
        })?;
        Ok(alloy::hex::encode_prefixed(salt))
    }

    /// The commitment of `e`, as the contract computes it.
    fn commitment(&self, e: &JournalEntry) -> Result<B256, ChainError> {
        use alloy::sol_types::SolValue;
        Ok(alloy::primitives::keccak256(
            (
                addr(e.from),
                B256::from(e.token_id.0),
                B256::from(e.content_hash.0),
                e.salt_word()?,
            )
                .abi_encode(),
        ))
    }

    /// The reveal of `e`: `mint(recipe, contentHash, salt)` from this account.
    fn reveal_call(&self, e: &JournalEntry) -> Result<TransactionRequest, ChainError> {
        let call = KilnProvenance::mintCall {
            recipe: e.recipe_bytes()?.into(),
            contentHash: B256::from(e.content_hash.0),
            salt: e.salt_word()?,
        };
        Ok(TransactionRequest::default()
            .with_from(self.account)
            .with_to(self.contract)
            .with_input(call.abi_encode()))
    }

    /// Signs `step` of `e` (the commitment or the reveal). The reveal is simulated on the
    /// pending block, the first its commitment has matured for; a node that answers "too
    /// recent" there is waited on until the next block.
    pub(super) fn sign_step(
        &self,
        e: &JournalEntry,
        step: MintState,
        nonce: Option<u64>,
        min_fees: Option<(u128, u128)>,
        deadline: Instant,
    ) -> Result<Signed, ChainError> {
        if step == MintState::Committing {
            let call = KilnProvenance::commitCall {
                commitment: self.commitment(e)?,
            };
            let tx = TransactionRequest::default()
                .with_from(self.account)
                .with_to(self.contract)
                .with_input(call.abi_encode());
            return self.sign(tx, BlockId::latest(), nonce, min_fees, e.fee_cap);
        }
        let tx = self.reveal_call(e)?;
        loop {
            match self.sign(tx.clone(), BlockId::pending(), nonce, min_fees, e.fee_cap) {
                Err(ChainError::Rejected(MintRejection::CommitmentTooRecent { reveal_from }))
                    if Instant::now() < deadline =>
                {
                    tracing::debug!(
                        reveal_from,
                        "the commitment has not matured; waiting for a block"
                    );
                    std::thread::sleep(self.poll_interval());
                }
                other => return other,
            }
        }
    }

    /// Waits for a submitted mint: the commitment's receipt, then the reveal (signed, journaled,
    /// sent) and its receipt and confirmations; records the outcome in the journal.
    pub fn confirm(&self, pending: &PendingMint) -> Result<MintReceipt, ChainError> {
        let entry = self
            .read_entry(pending.token_id)
            .ok_or_else(|| ChainError::BadJournal {
                token: pending.token_id,
                detail: "no readable journal entry for this mint".into(),
            })?;
        if !self.claim_mint(pending.token_id)? {
            return Err(ChainError::MintBusy {
                token: pending.token_id,
            });
        }
        let deadline = Instant::now() + self.receipt_timeout;
        let advanced = self.advance(entry, deadline);
        self.release_mint(pending.token_id);
        let (e, _) = advanced?;
        match e.state {
            MintState::Confirmed => Ok(e.receipt().expect("confirmed")),
            _ => Err(ChainError::MintFailed {
                token: e.token_id,
                reason: e.reason.unwrap_or_else(|| "reverted on chain".into()),
            }),
        }
    }

    fn instance(&self) -> KilnProvenance::KilnProvenanceInstance<&RootProvider> {
        KilnProvenance::new(self.contract, &self.provider)
    }

    /// Whether `token` is minted.
    pub fn exists(&self, token: TokenId) -> Result<bool, ChainError> {
        let c = self.instance();
        self.rpc("minted", c.minted(token_u256(token)).call())
    }

    /// The content hash `token` was minted with, if it is minted (read from its `Provenance`
    /// event and checked against the contract's index, as [`record`](Self::record) does).
    pub fn content_of(&self, token: TokenId) -> Result<Option<ContentHash>, ChainError> {
        Ok(self.record(token)?.map(|r| r.content_hash))
    }

    /// The token `creator` minted claiming the picture `content`, if any: one picture is one
    /// token of its creator.
    pub fn token_of(
        &self,
        creator: CreatorAddress,
        content: ContentHash,
    ) -> Result<Option<TokenId>, ChainError> {
        let c = self.instance();
        let id = self.rpc(
            "tokenOf",
            c.tokenOf(addr(creator), B256::from(content.0)).call(),
        )?;
        Ok((!id.is_zero()).then(|| token_of(id)))
    }

    /// The chain's record of `token`, or `None` if it is not minted.
    pub fn record(&self, token: TokenId) -> Result<Option<ChainRecord>, ChainError> {
        if !self.exists(token)? {
            return Ok(None);
        }
        let filter = Filter::new()
            .event_signature(KilnProvenance::Provenance::SIGNATURE_HASH)
            .topic1(B256::from(token.0));
        let logs = self.logs(filter)?;
        self.record_from(token, logs.first(), None).map(Some)
    }

    /// The chain's record of minted `token` from its `Provenance` event `log` (found by the
    /// caller), checked against the token id and the contract's index; `owner` when the caller
    /// has just read it.
    fn record_from(
        &self,
        token: TokenId,
        log: Option<&alloy::rpc::types::Log>,
        owner: Option<Address>,
    ) -> Result<ChainRecord, ChainError> {
        let c = self.instance();
        let bad = |detail: String| ChainError::BadRecord { token, detail };
        let log = log.ok_or_else(|| {
            bad(format!(
                "minted, but its Provenance event is not found in the scanned blocks (from block {}: is `from_block` after the contract's deployment?)",
                self.from_block
            ))
        })?;
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
        if self.token_of(creator(event.creator), content_hash)? != Some(token) {
            return Err(bad(
                "the contract's index does not name this token for its event's creator and content hash".into(),
            ));
        }
        let owner = match owner {
            Some(o) => o,
            None => self.rpc("ownerOf", c.ownerOf(token_u256(token)).call())?,
        };
        let token_uri = self.rpc("tokenURI", c.tokenURI(token_u256(token)).call())?;
        Ok(ChainRecord {
            token_id: token,
            owner: creator(owner),
            creator: creator(event.creator),
            content_hash,
            record,
            tx: log.transaction_hash.map(tx_hash).unwrap_or(TxHash([0; 32])),
            block: log.block_number.unwrap_or(0),
            token_uri,
        })
    }

    /// The records of the tokens `owner` holds, in the order they reached it, `skip` first
    /// and at most `limit`: a page of the listing. Two scans of the contract's logs serve the
    /// whole page (its transfers to `owner`, then the `Provenance` events of its tokens, at
    /// most [`TOKENS_PER_QUERY`] ids a query), not one scan per token, so a spammer who sends
    /// junk tokens to a victim does not multiply the requests by the chain's length. A token
    /// whose record cannot be read — junk, or a request that failed — is a row with the
    /// reason, never the end of the listing.
    pub fn records_of(
        &self,
        owner: CreatorAddress,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<ListedToken>, ChainError> {
        let c = self.instance();
        // Tokens sent to `owner` that it still holds; one whose owner cannot be read now is
        // kept, with the error, for its row.
        let mut held = Vec::new();
        for token in self.received_by(owner)? {
            match self.rpc("ownerOf", c.ownerOf(token_u256(token)).call()) {
                Ok(now) if now == addr(owner) => held.push((token, None)),
                Ok(_) => {}
                Err(e) => held.push((token, Some(e))),
            }
        }
        let page: Vec<(TokenId, Option<ChainError>)> =
            held.into_iter().skip(skip).take(limit).collect();
        let mut events = Vec::new();
        for chunk in page.chunks(TOKENS_PER_QUERY) {
            let ids: Vec<B256> = chunk.iter().map(|(t, _)| B256::from(t.0)).collect();
            let filter = Filter::new()
                .event_signature(KilnProvenance::Provenance::SIGNATURE_HASH)
                .topic1(ids);
            events.extend(self.logs(filter)?);
        }
        Ok(page
            .into_iter()
            .map(|(token, failed)| {
                let row = match failed {
                    Some(e) => Err(e),
                    None => {
                        let log = events
                            .iter()
                            .find(|l| l.topics().get(1) == Some(&B256::from(token.0)));
                        self.record_from(token, log, Some(addr(owner)))
                    }
                };
                (token, row)
            })
            .collect())
    }

    /// The contract's logs matching `filter` from the first block that can hold them to the
    /// head, fetched in pages of `log_page_blocks` blocks (providers cap the range of one query).
    fn logs(&self, filter: Filter) -> Result<Vec<alloy::rpc::types::Log>, ChainError> {
        let head = self.rpc("eth_blockNumber", self.provider.get_block_number())?;
        let mut out = Vec::new();
        let mut from = self.from_block;
        while from <= head {
            let to = head.min(from.saturating_add(self.log_page_blocks - 1));
            let page = filter
                .clone()
                .address(self.contract)
                .from_block(from)
                .to_block(to);
            out.extend(self.rpc("eth_getLogs", self.provider.get_logs(&page))?);
            from = to + 1;
        }
        Ok(out)
    }

    /// Tokens whose mint claims the image with content hash `content`, oldest first (several
    /// recipes can claim one picture; re-running them tells which painted it).
    pub fn tokens_with_content(&self, content: ContentHash) -> Result<Vec<TokenId>, ChainError> {
        let filter = Filter::new()
            .event_signature(KilnProvenance::Provenance::SIGNATURE_HASH)
            .topic3(B256::from(content.0));
        let mut out: Vec<TokenId> = Vec::new();
        for log in self.logs(filter)? {
            if let Some(id) = log.topics().get(1).map(|t| TokenId(t.0))
                && !out.contains(&id)
            {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Tokens `owner` holds now, in the order they reached it.
    pub fn tokens_of(&self, owner: CreatorAddress) -> Result<Vec<TokenId>, ChainError> {
        let c = self.instance();
        let mut out = Vec::new();
        for token in self.received_by(owner)? {
            let now = self.rpc("ownerOf", c.ownerOf(token_u256(token)).call())?;
            if now == addr(owner) {
                out.push(token);
            }
        }
        Ok(out)
    }

    /// Tokens ever transferred (or minted) to `owner`, once each, in the order they reached it:
    /// one scan of the contract's `Transfer` logs.
    fn received_by(&self, owner: CreatorAddress) -> Result<Vec<TokenId>, ChainError> {
        let filter = Filter::new()
            .event_signature(KilnProvenance::Transfer::SIGNATURE_HASH)
            .topic2(addr(owner).into_word());
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for log in self.logs(filter)? {
            if let Some(id) = log.topics().get(3).map(|t| TokenId(t.0))
                && seen.insert(id)
            {
                out.push(id);
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
        Ok(KilnProvenanceErrors::NotCreator(e)) => MintRejection::NotCreator {
            creator: creator(e.creator),
            sender: creator(e.sender),
        },
        Ok(KilnProvenanceErrors::AlreadyMinted(e)) => MintRejection::AlreadyMinted {
            token_id: token_of(e.tokenId),
        },
        Ok(KilnProvenanceErrors::RecipeMalformed(e)) => MintRejection::RecipeMalformed {
            offset: e.offset.saturating_to(),
        },
        Ok(KilnProvenanceErrors::ContentHashInvalid(_)) => MintRejection::ContentHashInvalid,
        Ok(KilnProvenanceErrors::CommitmentMissing(_)) => MintRejection::CommitmentMissing,
        Ok(KilnProvenanceErrors::CommitmentTooRecent(e)) => MintRejection::CommitmentTooRecent {
            reveal_from: e.revealFrom.saturating_to(),
        },
        Ok(KilnProvenanceErrors::CommitmentExpired(e)) => MintRejection::CommitmentExpired {
            last_block: e.lastBlock.saturating_to(),
        },
        Ok(KilnProvenanceErrors::PipelineNotAllowed(e)) => MintRejection::PipelineNotAllowed {
            pipeline: crate::printable(&e.pipeline),
        },
        Ok(KilnProvenanceErrors::ContentAlreadyMinted(e)) => MintRejection::ContentAlreadyMinted {
            token_id: token_of(e.tokenId),
        },
        Ok(other) => MintRejection::Other(format!("{other:?}")),
        Err(_) => MintRejection::Other(alloy::hex::encode_prefixed(data)),
    }
}
