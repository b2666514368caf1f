//! Noise schedules, samplers and Kiln's seeded noise streams.

pub mod noise;
pub mod noise_q;
pub mod schedule;
