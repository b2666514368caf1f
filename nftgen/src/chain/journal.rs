//! The mint journal: every mint is written down before it is sent, and settled against the chain
//! when a client opens.

use super::*;

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

impl ChainClient {
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

    pub(super) fn journal_path(&self, token: TokenId) -> PathBuf {
        self.journal_dir.join(format!("{token}.json"))
    }

    pub(super) fn write_journal(&self, entry: &JournalEntry) -> Result<(), ChainError> {
        let bytes = serde_json::to_vec_pretty(entry).expect("serialises");
        let path = self.journal_path(entry.token_id);
        write_atomic(&path, &bytes).map_err(|e| ChainError::io(&path, e))?;
        Ok(())
    }

    pub(super) fn settle(
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
    pub(super) fn resolve_journal(&self) -> Result<Vec<Resolution>, ChainError> {
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
}
