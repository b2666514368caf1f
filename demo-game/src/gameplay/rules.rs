//! The game's rules: what talking, painting, minting and verifying do. The keyboard (or the
//! tour) only writes [`Intent`]s.

use std::sync::Arc;

use bevy::prelude::*;
use bevy_kiln::{
    ArtFailed, ArtKind, ArtMinted, ArtProgress, ArtReady, GenerateArt, KilnWallet, MintArt,
    MintFailed, NpcChoices, NpcPersonaFailed, NpcRemembered, NpcReplied, NpcReplyDelta, PlayerSaid,
    TokenVerified, VerifyToken,
};
use kiln_nftgen::{GeneratedArt, TokenId};

use crate::app::AppSystems;
use crate::gameplay::village::{Altar, Fleeing, Nearby, Villager, WALK_MAX, WALK_MIN};
use crate::save::{GalleryEntry, Line, SaveGame};
use crate::screens::Screen;

/// What the player wants, from the keyboard or the tour.
#[derive(Message, Debug, Clone, PartialEq)]
pub enum Intent {
    /// E: talk to the NPC in reach, or use the altar.
    Interact,
    /// Enter in the text box: say this, or paint this.
    Submit(String),
    /// M: mint the picture on the altar.
    Mint,
    /// G: open or close the gallery.
    ToggleGallery,
    /// V: verify every token in the gallery again.
    Reverify,
    /// Esc: close the text box, the shop or the gallery.
    Close,
}

/// Who the text box talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressee {
    /// An NPC.
    Npc(Entity),
    /// The altar (a description to paint).
    Altar,
}

/// What the screen shows besides the village.
#[derive(Resource, Debug, Default, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Walking about.
    #[default]
    Walking,
    /// Typing into the text box.
    Typing(Addressee),
    /// An NPC's shop panel.
    Shop(Entity),
}

/// The text being typed.
#[derive(Resource, Debug, Default, Clone)]
pub struct TypedText(pub String);

/// The conversation on screen.
#[derive(Resource, Debug, Default, Clone)]
pub struct Dialogue {
    /// The NPC being talked to.
    pub npc: Option<Entity>,
    /// The reply as it streams in (cleared when it is complete).
    pub streaming: String,
    /// Waiting for a reply.
    pub waiting: bool,
}

/// The altar's state.
#[derive(Resource, Debug, Default, Clone)]
pub enum AltarState {
    /// Nothing painted yet.
    #[default]
    Idle,
    /// Painting `prompt`, at `step` of `total`.
    Painting {
        /// The description.
        prompt: String,
        /// Steps done.
        step: u32,
        /// Steps in all.
        total: u32,
    },
    /// A picture is on the altar.
    Painted {
        /// The description.
        prompt: String,
        /// The picture.
        art: Arc<GeneratedArt>,
        /// Its asset.
        image: Handle<Image>,
        /// Minting it is under way.
        minting: bool,
        /// Minted as this token.
        token: Option<TokenId>,
    },
    /// Something went wrong (the reason); the game goes on.
    Failed(String),
}

/// A short message at the top of the screen (what just happened).
#[derive(Resource, Debug, Default, Clone)]
pub struct Notice(pub String);

/// The game's rules.
pub struct RulesPlugin;

impl Plugin for RulesPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<Intent>()
            .init_resource::<Mode>()
            .init_resource::<TypedText>()
            .init_resource::<Dialogue>()
            .init_resource::<AltarState>()
            .init_resource::<Notice>()
            .add_systems(
                Update,
                (
                    offer_gifts,
                    handle_intents,
                    npc_replied,
                    persona_failed,
                    remember,
                    altar_progress,
                    minted,
                    verified,
                )
                    .chain()
                    .in_set(AppSystems::Rules),
            )
            .add_observer(reply_delta);
    }
}

/// What each villager can still give: their gifts the player does not have yet, offered to the
/// model as the `item` choices of `give_item` (an NPC with nothing left cannot choose it).
fn offer_gifts(
    save: Res<SaveGame>,
    villagers: Query<(Entity, &Villager, Option<&NpcChoices>)>,
    arrived: Query<(), Added<Villager>>,
    mut commands: Commands,
) {
    // What can be given changes only with the inventory, or when villagers arrive.
    if !save.is_changed() && arrived.is_empty() {
        return;
    }
    for (entity, villager, offered) in &villagers {
        let owned: Vec<&str> = villager
            .gifts
            .iter()
            .copied()
            .filter(|g| !save.inventory.iter().any(|i| i == g))
            .collect();
        let Ok(choices) = bevy_kiln::Choices::new().with("item", owned) else {
            continue;
        };
        if offered.is_none_or(|o| o.0 != choices) {
            commands.entity(entity).insert(NpcChoices(choices));
        }
    }
}

fn handle_intents(
    mut intents: MessageReader<Intent>,
    mut mode: ResMut<Mode>,
    mut typed: ResMut<TypedText>,
    mut dialogue: ResMut<Dialogue>,
    mut altar_state: ResMut<AltarState>,
    mut notice: ResMut<Notice>,
    mut save: ResMut<SaveGame>,
    nearby: Res<Nearby>,
    villagers: Query<&Villager>,
    altar: Single<Entity, With<Altar>>,
    mut said: MessageWriter<PlayerSaid>,
    mut paint: MessageWriter<GenerateArt>,
    mut mint: MessageWriter<MintArt>,
    mut verify: MessageWriter<VerifyToken>,
    wallet: Res<KilnWallet>,
    (screen, mut next_screen): (Res<State<Screen>>, ResMut<NextState<Screen>>),
) {
    for intent in intents.read() {
        match (intent, mode.clone()) {
            (Intent::Interact, Mode::Walking) => match *nearby {
                Nearby::Npc(npc) => {
                    typed.0.clear();
                    dialogue.npc = Some(npc);
                    *mode = Mode::Typing(Addressee::Npc(npc));
                }
                Nearby::Altar => {
                    typed.0.clear();
                    *mode = Mode::Typing(Addressee::Altar);
                }
                Nearby::Nothing => notice.0 = "Nobody in reach: walk up to someone first.".into(),
            },
            (Intent::Submit(text), Mode::Typing(to)) => {
                let text = text.trim().to_string();
                *mode = Mode::Walking;
                typed.0.clear();
                if text.is_empty() {
                    continue;
                }
                match to {
                    Addressee::Npc(npc) => {
                        let Ok(villager) = villagers.get(npc) else {
                            continue;
                        };
                        save.note_line(
                            &villager.name,
                            Line {
                                who: "You".into(),
                                text: text.clone(),
                                emotion: String::new(),
                                action: String::new(),
                            },
                        );
                        save.store();
                        dialogue.npc = Some(npc);
                        dialogue.streaming.clear();
                        dialogue.waiting = true;
                        said.write(PlayerSaid::new(npc, text));
                    }
                    Addressee::Altar => {
                        if matches!(*altar_state, AltarState::Painting { .. }) {
                            notice.0 = "The altar is still painting.".into();
                            continue;
                        }
                        save.paintings += 1;
                        let seed = seed_for(&text, save.paintings);
                        save.store();
                        *altar_state = AltarState::Painting {
                            prompt: text.clone(),
                            step: 0,
                            total: 0,
                        };
                        // Painted for the player's wallet: the creator is part of the picture.
                        paint.write(GenerateArt {
                            prompt: text,
                            kind: ArtKind::Item,
                            seed,
                            creator: wallet.0,
                            requester: *altar,
                        });
                    }
                }
            }
            (Intent::Mint, _) => match &mut *altar_state {
                AltarState::Painted {
                    art,
                    minting,
                    token,
                    ..
                } if !*minting && token.is_none() => {
                    *minting = true;
                    notice.0 = "Minting on the local chain...".into();
                    mint.write(MintArt {
                        requester: *altar,
                        art: art.clone(),
                    });
                }
                AltarState::Painted { token: Some(_), .. } => {
                    notice.0 = "This picture is already minted.".into();
                }
                _ => notice.0 = "Paint something at the altar first.".into(),
            },
            (Intent::ToggleGallery, _) if *screen.get() == Screen::Gallery => {
                next_screen.set(Screen::Playing);
            }
            (Intent::Close, _) => {
                *mode = Mode::Walking;
                typed.0.clear();
                if *screen.get() == Screen::Gallery {
                    next_screen.set(Screen::Playing);
                }
            }
            (Intent::ToggleGallery, _) => {
                *mode = Mode::Walking;
                typed.0.clear();
                next_screen.set(Screen::Gallery);
            }
            (Intent::Reverify, _) => {
                for entry in &mut save.gallery {
                    if let Ok(token_id) = entry.token_id.parse::<TokenId>() {
                        entry.verdict = "verifying".into();
                        verify.write(VerifyToken {
                            requester: *altar,
                            token_id,
                        });
                    }
                }
            }
            _ => {}
        }
    }
}

/// A seed from the description and a counter: the same description painted again looks different.
fn seed_for(prompt: &str, n: u64) -> u64 {
    prompt
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
        .wrapping_add(n)
        % 1_000_000
}

fn reply_delta(delta: On<NpcReplyDelta>, mut dialogue: ResMut<Dialogue>) {
    if dialogue.npc == Some(delta.entity) {
        dialogue.streaming.push_str(&delta.text);
    }
}

/// A villager whose persona file did not load cannot talk: the player is told, and the dialogue
/// stops waiting for a reply that will not come.
fn persona_failed(
    mut failed: MessageReader<NpcPersonaFailed>,
    villagers: Query<&Villager>,
    mut dialogue: ResMut<Dialogue>,
    mut notice: ResMut<Notice>,
) {
    for f in failed.read() {
        let Ok(villager) = villagers.get(f.npc) else {
            continue;
        };
        if dialogue.npc == Some(f.npc) {
            dialogue.waiting = false;
            dialogue.streaming.clear();
        }
        notice.0 = format!(
            "{} cannot talk: the persona file did not load ({})",
            villager.name, f.error
        );
    }
}

fn npc_replied(
    mut replies: MessageReader<NpcReplied>,
    mut villagers: Query<(&mut Villager, &Transform)>,
    mut dialogue: ResMut<Dialogue>,
    mut save: ResMut<SaveGame>,
    mut mode: ResMut<Mode>,
    mut notice: ResMut<Notice>,
    mut commands: Commands,
) {
    for r in replies.read() {
        let Ok((mut villager, transform)) = villagers.get_mut(r.npc) else {
            continue;
        };
        villager.emotion = r.reply.emotion.clone();
        if dialogue.npc == Some(r.npc) {
            dialogue.waiting = false;
            dialogue.streaming.clear();
        }
        let line = Line {
            who: villager.name.clone(),
            text: r.reply.say.clone(),
            emotion: r.reply.emotion.clone(),
            action: r.reply.action.clone(),
        };
        save.note_line(&villager.name, line);
        match r.reply.action.as_str() {
            "open_shop" => *mode = Mode::Shop(r.npc),
            "give_item" => {
                // The item the NPC named: the grammar let it name only what it still owns.
                if let Some(gift) = r.reply.arg("item")
                    && villager.gifts.contains(&gift)
                    && !save.inventory.iter().any(|i| i == gift)
                {
                    save.inventory.push(gift.to_string());
                    notice.0 = format!("{} gave you a {gift}.", villager.name);
                }
            }
            "flee" => {
                let here = transform.translation.truncate();
                let away = if here.x >= 0.0 {
                    WALK_MAX.x
                } else {
                    WALK_MIN.x
                };
                commands.entity(r.npc).insert(Fleeing {
                    to: Vec2::new(away, WALK_MAX.y),
                    away: 8.0,
                });
                notice.0 = format!("{} hurries away.", villager.name);
            }
            _ => {}
        }
        save.store();
    }
}

fn remember(
    mut remembered: MessageReader<NpcRemembered>,
    villagers: Query<&Villager>,
    mut save: ResMut<SaveGame>,
) {
    let mut changed = false;
    for r in remembered.read() {
        if let Ok(villager) = villagers.get(r.npc) {
            save.memories
                .insert(villager.name.clone(), r.memory.clone());
            changed = true;
        }
    }
    if changed {
        save.store();
    }
}

fn altar_progress(
    mut progress: MessageReader<ArtProgress>,
    mut ready: MessageReader<ArtReady>,
    mut failed: MessageReader<ArtFailed>,
    altar: Single<Entity, With<Altar>>,
    mut state: ResMut<AltarState>,
) {
    for p in progress.read().filter(|p| p.requester == *altar) {
        if let AltarState::Painting { step, total, .. } = &mut *state {
            (*step, *total) = (p.step, p.total);
        }
    }
    for r in ready.read().filter(|r| r.requester == *altar) {
        *state = AltarState::Painted {
            prompt: r.record.prompt.clone(),
            art: r.art.clone(),
            image: r.image.clone(),
            minting: false,
            token: None,
        };
    }
    for f in failed.read().filter(|f| f.requester == *altar) {
        *state = AltarState::Failed(format!("The altar could not paint: {}", f.reason));
    }
}

fn minted(
    mut minted: MessageReader<ArtMinted>,
    mut failed: MessageReader<MintFailed>,
    mut state: ResMut<AltarState>,
    mut save: ResMut<SaveGame>,
    mut notice: ResMut<Notice>,
    mut verify: MessageWriter<VerifyToken>,
) {
    for m in minted.read() {
        let AltarState::Painted {
            prompt,
            minting,
            token,
            ..
        } = &mut *state
        else {
            continue;
        };
        *minting = false;
        *token = Some(m.token_id);
        save.gallery.push(GalleryEntry {
            token_id: m.token_id.to_string(),
            prompt: prompt.clone(),
            image: m.png.clone(),
            tx: m.tx.to_string(),
            verdict: "verifying".into(),
        });
        save.store();
        notice.0 = format!(
            "Minted token {} in block {}.",
            short(&m.token_id.to_string()),
            m.block
        );
        verify.write(VerifyToken {
            requester: m.requester,
            token_id: m.token_id,
        });
    }
    for f in failed.read() {
        if let AltarState::Painted { minting, .. } = &mut *state {
            *minting = false;
        }
        notice.0 = format!("Minting failed: {}", f.reason);
    }
}

fn verified(
    mut verified: MessageReader<TokenVerified>,
    mut save: ResMut<SaveGame>,
    mut notice: ResMut<Notice>,
) {
    let mut changed = false;
    for v in verified.read() {
        let id = v.token_id.to_string();
        let verdict = match &v.verdict {
            Ok(verdict) => verdict_name(verdict),
            Err(e) => {
                notice.0 = format!("Verification failed: {e}");
                "unverified".into()
            }
        };
        for entry in save.gallery.iter_mut().filter(|e| e.token_id == id) {
            entry.verdict = verdict.clone();
            changed = true;
        }
        if let Ok(v) = &v.verdict {
            notice.0 = format!("Token {}: {}", short(&id), v.describe());
        }
    }
    if changed {
        save.store();
    }
}

/// The verdict's short name, as in `nftgen verify --json`: `authentic`, `image_altered`, ….
pub fn verdict_name(verdict: &kiln_nftgen::chain::Verdict) -> String {
    serde_json::to_value(verdict)
        .ok()
        .and_then(|j| j["verdict"].as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// `0x1234...abcd` (the default font has no ellipsis glyph).
pub fn short(id: &str) -> String {
    if id.len() > 14 {
        format!("{}...{}", &id[..6], &id[id.len() - 4..])
    } else {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A villager whose persona did not load: the player reads why, and the dialogue stops
    /// waiting.
    #[test]
    fn a_villager_without_a_persona_is_reported_and_not_waited_for() {
        let mut app = App::new();
        app.add_plugins(MinimalPlugins)
            .add_message::<NpcPersonaFailed>()
            .init_resource::<Dialogue>()
            .init_resource::<Notice>()
            .add_systems(Update, persona_failed);
        let npc = app
            .world_mut()
            .spawn(Villager {
                name: "Mira".into(),
                home: Vec2::ZERO,
                colour: Color::WHITE,
                gifts: &[],
                wares: &[],
                emotion: String::new(),
            })
            .id();
        *app.world_mut().resource_mut::<Dialogue>() = Dialogue {
            npc: Some(npc),
            streaming: String::new(),
            waiting: true,
        };
        app.world_mut().write_message(NpcPersonaFailed {
            npc,
            error: "npcs/merchant.toml: unknown field `nmae`".into(),
            dropped_lines: 1,
        });
        app.update();
        let notice = &app.world().resource::<Notice>().0;
        assert!(
            notice.starts_with("Mira cannot talk") && notice.contains("merchant.toml"),
            "{notice}"
        );
        assert!(!app.world().resource::<Dialogue>().waiting);
    }

    /// The rules for NPC actions, on a reply the game received (the model's side is tested in
    /// bevy_kiln and by the tour).
    #[test]
    fn actions_open_the_shop_give_items_and_send_npcs_running() {
        let dir = tempfile::tempdir().unwrap();
        let mut app = App::new();
        app.add_plugins(MinimalPlugins)
            .add_message::<NpcReplied>()
            .init_resource::<Mode>()
            .init_resource::<Dialogue>()
            .init_resource::<Notice>()
            .insert_resource(SaveGame::load_or_default(dir.path()))
            .add_systems(Update, (npc_replied, offer_gifts).chain());
        let npc = app
            .world_mut()
            .spawn((
                Transform::from_xyz(-300.0, 70.0, 0.0),
                Villager {
                    name: "Bram".into(),
                    home: Vec2::new(-300.0, 70.0),
                    colour: Color::WHITE,
                    gifts: &["iron nail", "whetstone"],
                    wares: &["short sword"],
                    emotion: String::new(),
                },
            ))
            .id();
        let reply = |action: &str, emotion: &str| NpcReplied {
            npc,
            reply: bevy_kiln::NpcReply {
                say: format!("({action})"),
                emotion: emotion.into(),
                action: action.into(),
                args: Default::default(),
            },
            fallback: false,
        };
        let gift = |item: &str| {
            let mut r = reply("give_item", "proud");
            r.reply.args.insert("item".into(), item.into());
            r
        };

        app.world_mut().write_message(reply("open_shop", "happy"));
        app.update();
        assert_eq!(*app.world().resource::<Mode>(), Mode::Shop(npc));
        assert_eq!(app.world().get::<Villager>(npc).unwrap().emotion, "happy");
        let offered = |app: &mut App| app.world().get::<NpcChoices>(npc).unwrap().0.clone();
        assert_eq!(offered(&mut app).get("item"), ["iron nail", "whetstone"]);

        // The named item changes hands once; an item Bram does not own (a fallback cannot name
        // one, and the grammar never does) changes nothing.
        for item in ["whetstone", "iron nail", "whetstone", "dragon egg"] {
            app.world_mut().write_message(gift(item));
            app.update();
        }
        let save = app.world().resource::<SaveGame>();
        assert_eq!(save.inventory, ["whetstone", "iron nail"]);
        assert_eq!(save.transcripts["Bram"].len(), 5);
        // Bram has nothing left to give: give_item is no longer offered to the model.
        assert!(offered(&mut app).get("item").is_empty());
        assert_eq!(
            SaveGame::load_or_default(dir.path()).inventory.len(),
            2,
            "saved"
        );

        app.world_mut().write_message(reply("flee", "angry"));
        app.update();
        let fleeing = app.world().get::<Fleeing>(npc).expect("Bram runs off");
        assert_eq!(fleeing.to, Vec2::new(WALK_MIN.x, WALK_MAX.y));
        assert!(app.world().resource::<Notice>().0.contains("hurries away"));
    }

    #[test]
    fn seeds_vary_with_the_description_and_the_count() {
        assert_eq!(seed_for("a red sword", 1), seed_for("a red sword", 1));
        assert_ne!(seed_for("a red sword", 1), seed_for("a red sword", 2));
        assert_ne!(seed_for("a red sword", 1), seed_for("a blue sword", 1));
        assert!(seed_for("anything", 7) < 1_000_000);
    }

    #[test]
    fn long_ids_are_shortened() {
        assert_eq!(short("0x0123456789abcdef"), "0x0123...cdef");
        assert_eq!(short("0x01"), "0x01");
    }
}
