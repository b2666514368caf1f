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
        Ok(())
    }

    /// Simulates `tx` (revert → typed error), then fills nonce (fresh from the node, so a failed
    /// earlier send leaves no gap), gas and fees, and signs. Returns (raw bytes, hash, nonce).
    pub(super) fn sign(&self, tx: TransactionRequest) -> Result<(Vec<u8>, B256, u64), ChainError> {
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

    pub(super) fn send_raw(&self, raw: &[u8]) -> Result<(), ChainError> {
        self.rpc(
            "eth_sendRawTransaction",
            self.provider.send_raw_transaction(raw),
        )
        .map(|_| ())
    }

    /// Polls for the receipt of `hash` until the receipt timeout.
    pub(super) fn wait_receipt(&self, hash: B256) -> Result<TransactionReceipt, ChainError> {
        self.wait_receipt_until(hash, Instant::now() + self.receipt_timeout)
    }

    /// Polls for the receipt of `hash` until `deadline`.
    pub(super) fn wait_receipt_until(
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
    pub(super) fn sign_mint(
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
