//! The structured reply: its shape (who speaks, the emotions and actions it may name, how many
//! sentences), the grammar that admits only such replies, and reading them back.

pub mod grammar;
pub(crate) mod parse;

/// What a reply may hold: the speaker's name, the emotions and actions it may name, and at most
/// how many sentences it says. A persona gives its own ([`crate::Persona::reply_shape`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyShape<'a> {
    /// The speaker's name, written in every reply.
    pub name: &'a str,
    /// The emotions a reply may name.
    pub emotions: &'a [String],
    /// The actions a reply may name.
    pub actions: &'a [String],
    /// The most sentences `say` may hold.
    pub max_sentences: u8,
}
