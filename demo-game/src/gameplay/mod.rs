//! The village and its rules, each a plugin: [`village`] (its people, walking, the camera),
//! with [`map`] (the ground and buildings) and [`art`] (every picture, cached or painted),
//! [`rules`] (what talking, painting, minting and verifying do) and [`input`]
//! (the keyboard).

pub mod art;
pub mod input;
pub mod map;
pub mod rules;
pub mod village;
