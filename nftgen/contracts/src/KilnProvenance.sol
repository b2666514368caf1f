// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC2981} from "@openzeppelin/contracts/interfaces/IERC2981.sol";
import {IERC4906} from "@openzeppelin/contracts/interfaces/IERC4906.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";
import {IERC7007} from "./IERC7007.sol";

/// @title Kiln provenance: one token per generated image, bound to the recipe that painted it.
/// @notice A token's id is the keccak256 of the image's canonical recipe bytes (Kiln's
/// `GenerationRecord` v1, see nftgen/RECIPE.md); the recipe names its creator at bytes 5..25 and
/// only that account can mint it. Storage per token is two slots: the creator (royalty receiver)
/// and the content hash's claim on its token id, so one image is minted once. The full recipe
/// travels in calldata and in the `Provenance` event, which lets anyone rebuild and re-run it.
contract KilnProvenance is ERC721, IERC2981, IERC4906, IERC7007, Ownable {
    /// @notice Royalty on secondary sales, in basis points of the price, paid to the creator.
    uint96 public immutable royaltyBps;

    /// @dev Prefix of canonical recipe bytes v1: "KILN", version 1.
    bytes5 private constant RECIPE_V1 = 0x4b494c4e01;

    string private _metadataBase;
    mapping(uint256 tokenId => address creator) private _creatorOf;
    mapping(bytes32 contentHash => uint256 tokenId) private _tokenOfContent;

    /// @notice The full provenance of `tokenId`: its creator, its image's content hash and the
    /// canonical recipe bytes (whose keccak256 is `tokenId`).
    event Provenance(uint256 indexed tokenId, address indexed creator, bytes32 indexed contentHash, bytes recipe);

    /// @notice The recipe is not canonical recipe bytes v1 (too short or wrong prefix).
    error RecipeMalformed();
    /// @notice Only the creator named in the recipe may mint it.
    error NotCreator(address creator, address sender);
    /// @notice This image is already minted, as `tokenId`.
    error DuplicateContent(bytes32 contentHash, uint256 tokenId);
    /// @notice This recipe is already minted.
    error AlreadyMinted(uint256 tokenId);
    /// @notice The content hash is zero or not 32 bytes long.
    error ContentHashInvalid();
    /// @notice `addAigcData` names a token id that is not the keccak256 of the prompt.
    error TokenIdMismatch(uint256 tokenId, uint256 expected);
    /// @notice The royalty is above 100%.
    error RoyaltyTooHigh(uint96 bps);

    /// @param metadataBase prefix of `tokenURI`; the token id in 0x-hex and ".json" follow it.
    /// @param royaltyBps_ royalty paid to the creator, in basis points (at most 10000).
    constructor(string memory metadataBase, uint96 royaltyBps_) ERC721("Kiln Provenance", "KILN") Ownable(msg.sender) {
        if (royaltyBps_ > 10_000) revert RoyaltyTooHigh(royaltyBps_);
        _metadataBase = metadataBase;
        royaltyBps = royaltyBps_;
    }

    /// @notice Mints the image with content hash `contentHash`, painted by `recipe`, to `to`.
    /// The sender must be the creator named in the recipe.
    /// @return tokenId keccak256(recipe)
    function mint(address to, bytes calldata recipe, bytes32 contentHash) external returns (uint256 tokenId) {
        return _mintRecipe(to, recipe, contentHash);
    }

    /// @inheritdoc IERC7007
    /// @dev Mints `tokenId` to the sender: the ERC-7007 way in. `prompt` is the canonical recipe,
    /// `aigcData` the 32-byte content hash; `proof` is not used (verification is by re-execution).
    function addAigcData(uint256 tokenId, bytes calldata prompt, bytes calldata aigcData, bytes calldata)
        external
    {
        if (aigcData.length != 32) revert ContentHashInvalid();
        uint256 expected = uint256(keccak256(prompt));
        if (tokenId != expected) revert TokenIdMismatch(tokenId, expected);
        _mintRecipe(msg.sender, prompt, bytes32(aigcData));
    }

    /// @inheritdoc IERC7007
    function verify(bytes calldata prompt, bytes calldata aigcData, bytes calldata)
        external
        view
        returns (bool success)
    {
        if (aigcData.length != 32) return false;
        uint256 tokenId = _tokenOfContent[bytes32(aigcData)];
        return tokenId != 0 && tokenId == uint256(keccak256(prompt)) && _ownerOf(tokenId) != address(0);
    }

    /// @notice The token that holds the image with this content hash, or 0 if none does.
    function tokenOfContent(bytes32 contentHash) external view returns (uint256) {
        return _tokenOfContent[contentHash];
    }

    /// @notice The creator of `tokenId` (the account named in its recipe), or zero if not minted.
    function creatorOf(uint256 tokenId) external view returns (address) {
        return _creatorOf[tokenId];
    }

    /// @inheritdoc IERC2981
    function royaltyInfo(uint256 tokenId, uint256 salePrice)
        external
        view
        returns (address receiver, uint256 royaltyAmount)
    {
        receiver = _creatorOf[tokenId];
        if (receiver == address(0)) return (address(0), 0);
        royaltyAmount = (salePrice * royaltyBps) / 10_000;
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

    function _mintRecipe(address to, bytes calldata recipe, bytes32 contentHash) private returns (uint256 tokenId) {
        if (recipe.length < 25 || bytes5(recipe[0:5]) != RECIPE_V1) revert RecipeMalformed();
        address creator = address(bytes20(recipe[5:25]));
        if (creator != msg.sender) revert NotCreator(creator, msg.sender);
        if (contentHash == bytes32(0)) revert ContentHashInvalid();
        tokenId = uint256(keccak256(recipe));
        uint256 holder = _tokenOfContent[contentHash];
        if (holder != 0) revert DuplicateContent(contentHash, holder);
        if (_creatorOf[tokenId] != address(0)) revert AlreadyMinted(tokenId);
        _tokenOfContent[contentHash] = tokenId;
        _creatorOf[tokenId] = creator;
        _mint(to, tokenId);
        emit AigcData(tokenId, recipe, abi.encodePacked(contentHash), "");
        emit Provenance(tokenId, creator, contentHash, recipe);
    }
}
