//! Deploying the provenance contract (and finding the local chain's deployment).

use super::*;

/// What the client remembers about a deployment (`<data_dir>/local-chain/deployment.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deployment {
    chain_id: u64,
    contract: CreatorAddress,
    block: u64,
}

impl ChainClient {
    /// Uses the contract deployed on the local chain before, or deploys it.
    pub(super) fn local_deployment(
        &mut self,
        dir: &Path,
        royalty_bps: u16,
    ) -> Result<(), ChainError> {
        // One process decides and deploys; the others wait and use its contract.
        let _deploying = journal::lock_file(
            &dir.join("deploy.lock"),
            nix::fcntl::FlockArg::LockExclusive,
        )?;
        let file = dir.join("deployment.json");
        if let Some(d) = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Deployment>(&b).ok())
            .filter(|d| d.chain_id == self.chain_id)
        {
            self.contract = addr(d.contract);
            self.from_block = d.block;
            match self.require_code() {
                Ok(()) => return Ok(()),
                Err(ChainError::OldContract { .. }) => {
                    tracing::warn!(contract = %d.contract, "the local chain's contract is an older KilnProvenance; deploying this version (its tokens stay at the old address)")
                }
                Err(_) => {
                    tracing::warn!(contract = %d.contract, "the local chain lost the contract; deploying it again")
                }
            }
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
        let signed = self.sign(tx, BlockId::latest(), None, None, self.max_fee_per_gas)?;
        let hash = signed.hash;
        self.send_raw(&signed.raw)?;
        let receipt = self.wait_receipt(hash)?;
        if !receipt.status() {
            return Err(ChainError::Reverted {
                tx: tx_hash(hash),
                block: receipt.block_number.unwrap_or(0),
            });
        }
        Ok(receipt)
    }
}
