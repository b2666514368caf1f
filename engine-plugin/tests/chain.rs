//! ChainPlugin on a real anvil: paint, mint, verify inside an app.

// Bevy's system parameters read best without their lifetimes (`Res<T>`, `Query<..>`).
#![allow(elided_lifetimes_in_paths)]

mod common;

use std::time::Duration;

use bevy_kiln::{
    ArtKind, ArtMinted, ArtPlugin, ArtReady, ChainPlugin, ChainStatus, GenerateArt, KilnWallet,
    MintArt, MintFailed, TokenVerified, VerifyToken,
};
use common::{app, record, run_until, seen};
use kiln_nftgen::chain::{ChainConfig, Verdict};

#[test]
fn painted_art_is_minted_and_verified_from_the_game() {
    let data = tempfile::tempdir().unwrap();
    let mut app = app((
        ArtPlugin {
            steps: Some(8),
            ..Default::default()
        },
        ChainPlugin {
            config: Some(ChainConfig::local(data.path())),
            ..Default::default()
        },
    ));
    record::<ArtReady>(&mut app);
    record::<ArtMinted>(&mut app);
    record::<MintFailed>(&mut app);
    record::<TokenVerified>(&mut app);
    let altar = app.world_mut().spawn_empty().id();
    let wallet = app.world().resource::<KilnWallet>().0;
    assert!(wallet.is_some(), "the chain config names a wallet");
    app.world_mut().write_message(GenerateArt {
        prompt: "a golden ring".into(),
        kind: ArtKind::Item,
        seed: 5,
        creator: wallet,
        requester: altar,
    });
    run_until(&mut app, Duration::from_secs(60), "the art", |app| {
        !seen::<ArtReady>(app).is_empty()
    });
    let art = seen::<ArtReady>(&app)[0].art.clone();
    app.world_mut().write_message(MintArt {
        requester: altar,
        art: art.clone(),
    });
    run_until(&mut app, Duration::from_secs(60), "the mint", |app| {
        !seen::<ArtMinted>(app).is_empty() || !seen::<MintFailed>(app).is_empty()
    });
    assert!(
        seen::<MintFailed>(&app).is_empty(),
        "{:?}",
        seen::<MintFailed>(&app)
    );
    let minted = seen::<ArtMinted>(&app)[0].clone();
    assert_eq!(minted.requester, altar);
    let ChainStatus::Ready { account, .. } = app.world().resource::<ChainStatus>().clone() else {
        panic!("chain not ready");
    };
    let mut bound = art.record.clone();
    bound.creator = Some(account);
    assert_eq!(minted.token_id.0, bound.recipe_hash().0);
    // The picture in the content store: these pixels, with the attributed record.
    let stored = kiln_nftgen::png_io::read(&minted.png).unwrap();
    assert_eq!(stored.content_hash, art.content_hash);
    assert_eq!(stored.record, bound);

    app.world_mut().write_message(VerifyToken {
        requester: altar,
        token_id: minted.token_id,
    });
    // Minting the same art again is refused, and the game hears why.
    app.world_mut().write_message(MintArt {
        requester: altar,
        art,
    });
    run_until(
        &mut app,
        Duration::from_secs(60),
        "the verdict and the refusal",
        |app| !seen::<TokenVerified>(app).is_empty() && !seen::<MintFailed>(app).is_empty(),
    );
    assert_eq!(
        seen::<TokenVerified>(&app)[0].verdict,
        Ok(Verdict::Authentic)
    );
    assert!(
        seen::<MintFailed>(&app)[0]
            .reason
            .contains("already minted")
    );
}

/// The local node stopped under the game (Ctrl-C in the terminal that started it, a crash, a
/// kill): the chain worker starts or joins it again, once, and the mint goes through; the
/// status stays ready.
#[test]
fn a_mint_after_the_local_node_stopped_starts_it_again_and_lands() {
    let data = tempfile::tempdir().unwrap();
    let mut app = app((
        ArtPlugin {
            steps: Some(8),
            ..Default::default()
        },
        ChainPlugin {
            config: Some(ChainConfig::local(data.path())),
            ..Default::default()
        },
    ));
    record::<ArtReady>(&mut app);
    record::<ArtMinted>(&mut app);
    record::<MintFailed>(&mut app);
    let altar = app.world_mut().spawn_empty().id();
    let wallet = app.world().resource::<KilnWallet>().0;
    app.world_mut().write_message(GenerateArt {
        prompt: "a silver key".into(),
        kind: ArtKind::Item,
        seed: 6,
        creator: wallet,
        requester: altar,
    });
    run_until(&mut app, Duration::from_secs(60), "art and chain", |app| {
        !seen::<ArtReady>(app).is_empty()
            && matches!(
                app.world().resource::<ChainStatus>(),
                ChainStatus::Ready { .. }
            )
    });
    // Let the node write its state once, then kill it.
    std::thread::sleep(Duration::from_millis(1500));
    // The node's pid, from the record Kiln keeps of it (`{"pid": …, "port": …}`).
    let running = std::fs::read_to_string(data.path().join("local-chain/anvil.json")).unwrap();
    let pid: String = running
        .split("\"pid\"")
        .nth(1)
        .unwrap()
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let art = seen::<ArtReady>(&app)[0].art.clone();
    app.world_mut().write_message(MintArt {
        requester: altar,
        art,
    });
    run_until(&mut app, Duration::from_secs(90), "the mint", |app| {
        !seen::<ArtMinted>(app).is_empty() || !seen::<MintFailed>(app).is_empty()
    });
    assert!(
        seen::<MintFailed>(&app).is_empty(),
        "{:?}",
        seen::<MintFailed>(&app)
    );
    assert!(matches!(
        app.world().resource::<ChainStatus>(),
        ChainStatus::Ready { .. }
    ));
}
