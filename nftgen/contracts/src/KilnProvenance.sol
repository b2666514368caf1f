// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC2981} from "@openzeppelin/contracts/interfaces/IERC2981.sol";
import {IERC4906} from "@openzeppelin/contracts/interfaces/IERC4906.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";
import {IERC7007} from "./IERC7007.sol";

/// @title Kiln provenance: one token per generated image, bound to the recipe that painted it.
/// @notice A token's id is the keccak256 of the image's canonical recipe bytes (Kiln's
/// `GenerationRecord` v1, see nftgen/RECIPE.md); the recipe names its creator at bytes 5..25 and
/// only that account can mint it, to itself.
///
/// Minting is commit–reveal, so nobody who sees a recipe (in the mempool, or in a PNG shared
/// before minting) can take it: the creator first commits
/// `commitmentOf(creator, keccak256(recipe), contentHash, salt)` with `commit`, then, at least one
/// block later and at most `MAX_COMMITMENT_AGE` blocks later, reveals recipe, content hash and
/// salt with `mint` (or ERC-7007's `addAigcData`, salt as `proof`), which mints.
///
/// Only recipes of pipelines that paint their creator into the picture are minted (the owner's
/// list, `kiln-pipeline/2` from deployment): a recipe of such a pipeline re-attributed to someone
/// else paints another picture, so nobody can mint another creator's art as their own.
/// `kiln-pipeline/1` does not bind its creator and is refused.
///
/// One creator mints one picture once: a second recipe of the same creator claiming the same
/// content hash is refused (`tokenOf(creator, contentHash)`). The index is per creator, so nobody
/// can squat another creator's picture with it. Across creators the contract keeps no index by
/// content hash (that one would be first-come): when two recipes of different creators claim one
/// picture, re-running them decides which painted it.
///
/// Storage per token is the ERC-721 owner and one index entry, (creator, content hash) → token;
/// the creator is the first owner and is written down on the token's first transfer (it stays
/// the royalty receiver). The full recipe travels in calldata and in the `Provenance` event,
/// which lets anyone rebuild and re-run it.
contract KilnProvenance is ERC721, IERC2981, IERC4906, IERC7007, Ownable2Step {
    /// @notice Royalty on secondary sales, in basis points of the price, paid to the creator.
    uint96 public immutable royaltyBps;

    /// @notice Blocks between a commitment and the earliest block its reveal may be mined in.
    uint256 public constant MIN_COMMITMENT_AGE = 1;
    /// @notice Blocks after a commitment when its reveal is last accepted (it can be made again).
    uint256 public constant MAX_COMMITMENT_AGE = 43_200;

    /// @dev Prefix of canonical recipe bytes v1: "KILN", version 1.
    bytes5 private constant RECIPE_V1 = 0x4b494c4e01;

    string private _metadataBase;
    mapping(bytes32 commitment => uint256 blockNumber) private _commitments;
    mapping(uint256 tokenId => address creator) private _creatorAfterTransfer;
    mapping(bytes32 pipeline => bool) private _pipelineAllowed;
    mapping(bytes32 creatorContent => uint256 tokenId) private _tokenOf;

    /// @notice The owner allowed (or stopped allowing) mints of `pipeline` recipes.
    event PipelineSet(string pipeline, bool allowed);

    /// @notice The full provenance of `tokenId`: its creator, its image's content hash and the
    /// canonical recipe bytes (whose keccak256 is `tokenId`).
    event Provenance(uint256 indexed tokenId, address indexed creator, bytes32 indexed contentHash, bytes recipe);

    /// @notice The recipe is not canonical recipe bytes v1: a wrong prefix, or its fields do not
    /// end exactly at its end (`offset` is where decoding stopped).
    error RecipeMalformed(uint256 offset);
    /// @notice Only the creator named in the recipe may mint it.
    error NotCreator(address creator, address sender);
    /// @notice This recipe is already minted.
    error AlreadyMinted(uint256 tokenId);
    /// @notice The content hash is zero or not 32 bytes long.
    error ContentHashInvalid();
    /// @notice `addAigcData` names a token id that is not the keccak256 of the prompt.
    error TokenIdMismatch(uint256 tokenId, uint256 expected);
    /// @notice The royalty is above 100%.
    error RoyaltyTooHigh(uint96 bps);
    /// @notice No commitment matches this reveal (another sender, recipe, content hash or salt).
    error CommitmentMissing(bytes32 commitment);
    /// @notice The commitment is too recent: the reveal may be mined from block `revealFrom` on.
    error CommitmentTooRecent(bytes32 commitment, uint256 revealFrom);
    /// @notice The commitment expired after block `lastBlock`; commit again.
    error CommitmentExpired(bytes32 commitment, uint256 lastBlock);
    /// @notice `proof` (the salt) is not 32 bytes long.
    error SaltInvalid();
    /// @notice The recipe's pipeline does not paint its creator into the picture (or is unknown):
    /// anyone could mint such a recipe naming themselves.
    error PipelineNotAllowed(string pipeline);
    /// @notice `creator` already minted a token (`tokenId`) claiming this content hash.
    error ContentAlreadyMinted(address creator, bytes32 contentHash, uint256 tokenId);

    /// @param metadataBase prefix of `tokenURI`; the token id in 0x-hex and ".json" follow it.
    /// @param royaltyBps_ royalty paid to the creator, in basis points (at most 10000).
    constructor(string memory metadataBase, uint96 royaltyBps_) ERC721("Kiln Provenance", "KILN") Ownable(msg.sender) {
        if (royaltyBps_ > 10_000) revert RoyaltyTooHigh(royaltyBps_);
        _metadataBase = metadataBase;
        royaltyBps = royaltyBps_;
        _setPipeline("kiln-pipeline/2", true);
    }

    /// @notice Whether recipes of `pipeline` may be minted.
    function pipelineAllowed(string calldata pipeline) external view returns (bool) {
        return _pipelineAllowed[keccak256(bytes(pipeline))];
    }

    /// @notice Allows (or stops allowing) mints of `pipeline` recipes; owner only. Allow only
    /// pipelines whose pixels depend on the creator named in the recipe. Tokens minted already
    /// are not touched.
    function setPipeline(string calldata pipeline, bool allowed) external onlyOwner {
        _setPipeline(pipeline, allowed);
    }

    /// @notice The token `creator` minted claiming `contentHash`, or 0 if none.
    function tokenOf(address creator, bytes32 contentHash) external view returns (uint256) {
        return _tokenOf[_creatorContent(creator, contentHash)];
    }

    /// @notice The commitment that lets `creator` mint `recipeHash` (the token id) with
    /// `contentHash`: keccak256 of the four ABI-encoded words. Keep `salt` secret until the reveal.
    function commitmentOf(address creator, bytes32 recipeHash, bytes32 contentHash, bytes32 salt)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(creator, recipeHash, contentHash, salt));
    }

    /// @notice Records `commitment` at this block. Committing again while it is pending changes
    /// nothing (so a copy of the call cannot delay the reveal); an expired one starts again.
    function commit(bytes32 commitment) external {
        uint256 committedAt = _commitments[commitment];
        if (committedAt == 0 || block.number > committedAt + MAX_COMMITMENT_AGE) _commitments[commitment] = block.number;
    }

    /// @notice The block `commitment` was made in, or 0 if it was not (or was revealed).
    function commitmentBlock(bytes32 commitment) external view returns (uint256) {
        return _commitments[commitment];
    }

    /// @notice Reveals a matured commitment and mints the image with content hash `contentHash`,
    /// painted by `recipe`, to its creator, who must be the sender.
    /// @return tokenId keccak256(recipe)
    function mint(bytes calldata recipe, bytes32 contentHash, bytes32 salt) external returns (uint256 tokenId) {
        return _mintRecipe(recipe, contentHash, salt);
    }

    /// @inheritdoc IERC7007
    /// @dev Mints `tokenId` to the sender, exactly as `mint` does: the ERC-7007 way in. `prompt`
    /// is the canonical recipe, `aigcData` the 32-byte content hash and `proof` the commitment's
    /// 32-byte salt (verification itself is by re-execution, off chain).
    function addAigcData(uint256 tokenId, bytes calldata prompt, bytes calldata aigcData, bytes calldata proof)
        external
    {
        if (aigcData.length != 32) revert ContentHashInvalid();
        if (proof.length != 32) revert SaltInvalid();
        uint256 expected = uint256(keccak256(prompt));
        if (tokenId != expected) revert TokenIdMismatch(tokenId, expected);
        _mintRecipe(prompt, bytes32(aigcData), bytes32(proof));
    }

    /// @inheritdoc IERC7007
    /// @dev True exactly when the token `keccak256(prompt)` is minted with content hash `aigcData`.
    /// It says what was recorded, not that the recipe paints the image: re-run it for that.
    function verify(bytes calldata prompt, bytes calldata aigcData, bytes calldata)
        external
        view
        returns (bool success)
    {
        if (aigcData.length != 32 || prompt.length < 25) return false;
        uint256 tokenId = _tokenOf[_creatorContent(address(bytes20(prompt[5:25])), bytes32(aigcData))];
        return tokenId != 0 && tokenId == uint256(keccak256(prompt));
    }

    /// @notice Whether `tokenId` is minted.
    function minted(uint256 tokenId) external view returns (bool) {
        return _ownerOf(tokenId) != address(0);
    }

    /// @notice The creator of `tokenId` (the account named in its recipe), or zero if not minted.
    function creatorOf(uint256 tokenId) public view returns (address) {
        address creator = _creatorAfterTransfer[tokenId];
        return creator != address(0) ? creator : _ownerOf(tokenId);
    }

    /// @inheritdoc IERC2981
    function royaltyInfo(uint256 tokenId, uint256 salePrice)
        external
        view
        returns (address receiver, uint256 royaltyAmount)
    {
        receiver = creatorOf(tokenId);
        if (receiver == address(0)) return (address(0), 0);
        royaltyAmount = Math.mulDiv(salePrice, royaltyBps, 10_000);
    }

    /// @notice ERC-721 metadata JSON of `tokenId`: the base, the id as 32-byte 0x-hex, ".json".
    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        _requireOwned(tokenId);
        return string.concat(_metadataBase, Strings.toHexString(tokenId, 32), ".json");
    }

    /// @notice Moves token metadata to another base (a gateway, another store); owner only.
    function setMetadataBase(string calldata metadataBase) external onlyOwner {
        _metadataBase = metadataBase;
        emit BatchMetadataUpdate(0, type(uint256).max);
    }

    /// @inheritdoc IERC165
    function supportsInterface(bytes4 interfaceId) public view override(ERC721, IERC165) returns (bool) {
        return interfaceId == type(IERC7007).interfaceId || interfaceId == type(IERC2981).interfaceId
            || interfaceId == bytes4(0x49064906) || super.supportsInterface(interfaceId);
    }

    /// @dev Remembers the creator (the first owner: tokens are minted to their creator) on a
    /// token's first transfer.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        from = super._update(to, tokenId, auth);
        if (from != address(0) && _creatorAfterTransfer[tokenId] == address(0)) {
            _creatorAfterTransfer[tokenId] = from;
        }
    }

    /// @dev The key of the (creator, content hash) index.
    function _creatorContent(address creator, bytes32 contentHash) private pure returns (bytes32) {
        return keccak256(abi.encode(creator, contentHash));
    }

    function _setPipeline(string memory pipeline, bool allowed) private {
        _pipelineAllowed[keccak256(bytes(pipeline))] = allowed;
        emit PipelineSet(pipeline, allowed);
    }

    function _mintRecipe(bytes calldata recipe, bytes32 contentHash, bytes32 salt) private returns (uint256 tokenId) {
        (address creator, uint256 pipelineAt, uint256 pipelineEnd) = _recipeCreator(recipe);
        if (creator != msg.sender) revert NotCreator(creator, msg.sender);
        if (!_pipelineAllowed[keccak256(recipe[pipelineAt:pipelineEnd])]) {
            revert PipelineNotAllowed(string(recipe[pipelineAt:pipelineEnd]));
        }
        if (contentHash == bytes32(0)) revert ContentHashInvalid();
        tokenId = uint256(keccak256(recipe));
        if (_ownerOf(tokenId) != address(0)) revert AlreadyMinted(tokenId);
        bytes32 creatorContent = _creatorContent(creator, contentHash);
        uint256 earlier = _tokenOf[creatorContent];
        if (earlier != 0) revert ContentAlreadyMinted(creator, contentHash, earlier);
        bytes32 commitment = commitmentOf(creator, bytes32(tokenId), contentHash, salt);
        uint256 committedAt = _commitments[commitment];
        if (committedAt == 0) revert CommitmentMissing(commitment);
        if (block.number < committedAt + MIN_COMMITMENT_AGE) revert CommitmentTooRecent(commitment, committedAt + MIN_COMMITMENT_AGE);
        if (block.number > committedAt + MAX_COMMITMENT_AGE) revert CommitmentExpired(commitment, committedAt + MAX_COMMITMENT_AGE);
        delete _commitments[commitment];
        _tokenOf[creatorContent] = tokenId;
        _mint(creator, tokenId);
        emit AigcData(tokenId, recipe, abi.encodePacked(contentHash), abi.encodePacked(salt));
        emit Provenance(tokenId, creator, contentHash, recipe);
    }

    /// @dev Walks canonical recipe bytes v1 (RECIPE.md): the fields must end exactly at the end.
    /// Returns the creator at bytes 5..25 and where the pipeline string's bytes start and end.
    function _recipeCreator(bytes calldata r)
        private
        pure
        returns (address creator, uint256 pipelineAt, uint256 pipelineEnd)
    {
        if (r.length < 25 || bytes5(r[0:5]) != RECIPE_V1) revert RecipeMalformed(0);
        uint256 p = _skipString(r, 25); // model id
        p = _skipString(r, p + 32); // model sha256, prompt
        p = _skipString(r, p); // negative prompt
        p = _skipString(r, p + 8); // seed, scheduler
        pipelineAt = p + 16 + 4; // steps, guidance, width, height, then the pipeline's length
        pipelineEnd = _skipString(r, p + 16); // pipeline
        p = _skipString(r, pipelineEnd); // engine
        p = _skipString(r, p); // backend
        if (p != r.length) revert RecipeMalformed(p);
        creator = address(bytes20(r[5:25]));
    }

    /// @dev The offset after the string (u32 big-endian length, then bytes) at `p`.
    function _skipString(bytes calldata r, uint256 p) private pure returns (uint256) {
        if (p + 4 > r.length) revert RecipeMalformed(p);
        uint256 end = p + 4 + uint32(bytes4(r[p:p + 4]));
        if (end > r.length) revert RecipeMalformed(p);
        return end;
    }
}
