// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";

/// @title ERC-7007: verifiable AI-generated content token (ERC-165 interface id 0x702c55a6).
/// @notice Written from the ERC text: `prompt` is what the model was asked, `aigcData` the content
/// (or its hash), `proof` whatever lets `verify` decide.
interface IERC7007 is IERC165 {
    /// @notice Emitted when AI-generated content data is attached to `tokenId`. As in ERC-7007's
    /// Final text, `prompt` and `aigcData` are indexed (their topics are keccak256 of the bytes).
    event AigcData(uint256 indexed tokenId, bytes indexed prompt, bytes indexed aigcData, bytes proof);

    /// @notice Attaches `prompt`, `aigcData` and `proof` to `tokenId`.
    function addAigcData(uint256 tokenId, bytes calldata prompt, bytes calldata aigcData, bytes calldata proof)
        external;

    /// @notice Whether `aigcData` is recorded as the output of `prompt` (given `proof`).
    function verify(bytes calldata prompt, bytes calldata aigcData, bytes calldata proof)
        external
        view
        returns (bool success);
}
