//! The village and its rules, each a plugin: [`village`] (the place, its people, walking,
//! painted scenery), [`rules`] (what talking, painting, minting and verifying do) and [`input`]
//! (the keyboard).

pub mod input;
pub mod rules;
pub mod village;
