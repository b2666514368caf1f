//! Kiln's seeded noise generator: SplitMix64 into Box–Muller, specified in `RECIPE.md`.
//!
//! Candle's CPU random generator cannot be seeded, and a recipe must be re-implementable by
//! anyone, so every random number of a generation comes from this documented stream.

/// Seeded stream of standard normal `f32` values.
///
/// Algorithm (normative, see `nftgen/RECIPE.md`):
/// - state starts at the seed; each `u64` is SplitMix64: `state += 0x9E3779B97F4A7C15`, then
///   `z = state; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
///   z ^ (z >> 31)` (wrapping arithmetic);
/// - normals come in pairs from two `u64` draws `a`, `b`: `u1 = ((a >> 11) + 1) / 2^53` (in (0, 1]),
///   `u2 = (b >> 11) / 2^53`, `r = sqrt(-2 ln u1)`, `z0 = r cos(2π u2)`, `z1 = r sin(2π u2)`, all in
///   IEEE-754 binary64, then each rounded to binary32; `z0` is emitted before `z1`;
/// - a request for an odd count discards the unused `z1` of its last pair.
#[derive(Debug, Clone)]
pub struct NoiseRng {
    state: u64,
}

impl NoiseRng {
    /// A stream starting at `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Next SplitMix64 output.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `n` standard normal values, in stream order.
    pub fn normals(&mut self, n: usize) -> Vec<f32> {
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            let a = self.next_u64();
            let b = self.next_u64();
            let u1 = ((a >> 11) + 1) as f64 * SCALE;
            let u2 = (b >> 11) as f64 * SCALE;
            let r = (-2.0 * u1.ln()).sqrt();
            let angle = 2.0 * std::f64::consts::PI * u2;
            out.push((r * angle.cos()) as f32);
            out.push((r * angle.sin()) as f32);
        }
        out.truncate(n);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // Reference values of SplitMix64 seeded with 0 (the published test vector).
        let mut r = NoiseRng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn normals_look_standard_and_continue_the_stream() {
        let mut r = NoiseRng::new(42);
        let v = r.normals(20_001);
        assert_eq!(v.len(), 20_001);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
        // Same seed, same stream; an odd request discards one value of the last pair.
        let mut a = NoiseRng::new(7);
        let mut b = NoiseRng::new(7);
        let first = a.normals(3);
        assert_eq!(first, b.normals(4)[..3]);
        assert_eq!(a.normals(2), b.normals(2));
    }
}
