//! Kiln's own token sampler: top-k, top-p and temperature over the logits, drawn with a seeded
//! SplitMix64 generator, so the same logits and seed always pick the same token on any machine.

use serde::{Deserialize, Serialize};

/// How reply tokens are picked.
///
/// ```
/// let s = kiln_npc::Sampling::default().with_temperature(0.0); // greedy
/// assert_eq!(s.temperature(), 0.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "SamplingFields")]
pub struct Sampling {
    temperature: f32,
    top_k: u32,
    top_p: f32,
    repeat_penalty: f32,
}

/// [`Sampling`] as stored. A saved or hand-written value goes through the same builders as one
/// made in code, so it is clamped the same way (a top-k of 0 would leave nothing to sample).
#[derive(Deserialize)]
struct SamplingFields {
    temperature: f32,
    top_k: u32,
    top_p: f32,
    #[serde(default = "default_repeat_penalty")]
    repeat_penalty: f32,
}

impl From<SamplingFields> for Sampling {
    fn from(f: SamplingFields) -> Self {
        Sampling::default()
            .with_temperature(f.temperature)
            .with_top_k(f.top_k)
            .with_top_p(f.top_p)
            .with_repeat_penalty(f.repeat_penalty)
    }
}

fn default_repeat_penalty() -> f32 {
    1.0
}

impl Default for Sampling {
    /// Temperature 0.7, top-k 40, top-p 0.9, repeat penalty 1.15.
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_k: 40,
            top_p: 0.9,
            repeat_penalty: 1.15,
        }
    }
}

impl Sampling {
    /// Softmax temperature; 0 (or less) picks the most likely token every time.
    #[must_use]
    pub fn with_temperature(mut self, t: f32) -> Self {
        self.temperature = if t.is_finite() { t.max(0.0) } else { 0.0 };
        self
    }
    /// How many of the most likely tokens are considered (at least 1).
    #[must_use]
    pub fn with_top_k(mut self, k: u32) -> Self {
        self.top_k = k.max(1);
        self
    }
    /// Nucleus sampling: the smallest set of tokens whose probability reaches `p` (0 < p ≤ 1).
    #[must_use]
    pub fn with_top_p(mut self, p: f32) -> Self {
        self.top_p = if p.is_finite() {
            p.clamp(0.01, 1.0)
        } else {
            1.0
        };
        self
    }
    /// Discourages tokens the reply already used: their logits are divided by `penalty` (when
    /// positive) or multiplied by it (when negative), as llama.cpp does. 1 turns it off.
    #[must_use]
    pub fn with_repeat_penalty(mut self, penalty: f32) -> Self {
        self.repeat_penalty = if penalty.is_finite() {
            penalty.max(1.0)
        } else {
            1.0
        };
        self
    }
    /// The repeat penalty.
    pub fn repeat_penalty(&self) -> f32 {
        self.repeat_penalty
    }
    /// A logit after the repeat penalty: divided by the penalty when positive, multiplied when
    /// negative, as llama.cpp does.
    pub(crate) fn penalized(&self, logit: f32) -> f32 {
        if logit > 0.0 {
            logit / self.repeat_penalty
        } else {
            logit * self.repeat_penalty
        }
    }
    /// The temperature.
    pub fn temperature(&self) -> f32 {
        self.temperature
    }
    /// The top-k.
    pub fn top_k(&self) -> u32 {
        self.top_k
    }
    /// The top-p.
    pub fn top_p(&self) -> f32 {
        self.top_p
    }
}

/// SplitMix64: tiny, fast, and specified in a few lines, so anyone can re-implement it.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 53 bits.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// The seed of turn `turn` of a chat seeded with `seed`.
pub(crate) fn turn_seed(seed: u64, turn: usize) -> u64 {
    let mut g = SplitMix64::new(seed ^ (turn as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
    g.next_u64()
}

/// The `k` largest logits as (token, logit), most likely first (ties: lower token id first).
/// One pass over the vocabulary, no allocation beyond the result; NaN logits are skipped.
pub(crate) fn top_k(logits: &[f32], k: usize) -> Vec<(i32, f32)> {
    let k = k.max(1).min(logits.len());
    let mut best: Vec<(i32, f32)> = Vec::with_capacity(k + 1);
    let mut threshold = f32::NEG_INFINITY;
    for (i, &l) in logits.iter().enumerate() {
        if l.is_nan() || (best.len() == k && l <= threshold) {
            continue;
        }
        let i = i as i32;
        let at = best.partition_point(|&(bi, bl)| bl > l || (bl == l && bi < i));
        best.insert(at, (i, l));
        if best.len() > k {
            best.pop();
        }
        if best.len() == k {
            threshold = best[k - 1].1;
        }
    }
    best
}

/// Picks one of `candidates` (token, logit), sorted most likely first, all allowed.
pub(crate) fn pick(candidates: &[(i32, f32)], s: &Sampling, rng: &mut SplitMix64) -> i32 {
    debug_assert!(!candidates.is_empty());
    if s.temperature <= 0.0 || candidates.len() == 1 {
        return candidates[0].0;
    }
    let k = (s.top_k as usize).clamp(1, candidates.len());
    let cands = &candidates[..k];
    let max = f64::from(cands[0].1);
    let t = f64::from(s.temperature);
    let weights: Vec<f64> = cands
        .iter()
        .map(|(_, l)| ((f64::from(*l) - max) / t).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    // Nucleus: keep the most likely tokens until their mass reaches top_p.
    let mut kept = 0;
    let mut mass = 0.0;
    for w in &weights {
        kept += 1;
        mass += w / total;
        if mass >= f64::from(s.top_p) {
            break;
        }
    }
    let kept_total: f64 = weights[..kept].iter().sum();
    let mut u = rng.next_f64() * kept_total;
    for (i, w) in weights[..kept].iter().enumerate() {
        if u < *w {
            return cands[i].0;
        }
        u -= w;
    }
    cands[kept - 1].0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_sampling_is_clamped_like_built_sampling() {
        // A hand-edited save: top-k 0 would leave nothing to sample, the rest is out of range.
        let s: Sampling = serde_json::from_str(
            r#"{"temperature": -3.0, "top_k": 0, "top_p": 7.5, "repeat_penalty": 0.1}"#,
        )
        .unwrap();
        assert_eq!(
            (s.temperature(), s.top_k(), s.top_p(), s.repeat_penalty()),
            (0.0, 1, 1.0, 1.0)
        );
        let picked = pick(
            &[(5, 1.0), (6, 0.5)],
            &Sampling::default().with_top_k(0),
            &mut SplitMix64::new(1),
        );
        assert_eq!(picked, 5);
        // What Kiln writes reads back unchanged.
        let d = Sampling::default();
        let back: Sampling = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn splitmix_reference_values() {
        // First outputs of SplitMix64 seeded with 0 (as published with the algorithm).
        let mut g = SplitMix64::new(0);
        assert_eq!(g.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(g.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn top_k_orders_and_breaks_ties_by_id() {
        let l = [0.5, 2.0, 2.0, -1.0, 3.0, f32::NAN, 2.0];
        assert_eq!(top_k(&l, 3), vec![(4, 3.0), (1, 2.0), (2, 2.0)]);
        assert_eq!(top_k(&l, 1), vec![(4, 3.0)]);
        assert_eq!(top_k(&l, 100).len(), 6, "NaN is skipped");
        // Agrees with a full sort on pseudo-random logits.
        let mut g = SplitMix64::new(9);
        let big: Vec<f32> = (0..5000)
            .map(|_| (g.next_f64() * 20.0 - 10.0) as f32)
            .collect();
        let mut sorted: Vec<(i32, f32)> = big
            .iter()
            .enumerate()
            .map(|(i, l)| (i as i32, *l))
            .collect();
        sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(top_k(&big, 40), sorted[..40].to_vec());
    }

    #[test]
    fn greedy_and_seeded_picks() {
        let c = [(7, 5.0), (3, 4.9), (9, 1.0)];
        let greedy = Sampling::default().with_temperature(0.0);
        assert_eq!(pick(&c, &greedy, &mut SplitMix64::new(1)), 7);
        let s = Sampling::default().with_top_p(1.0).with_temperature(1.0);
        let a: Vec<i32> = (0..50)
            .map(|i| pick(&c, &s, &mut SplitMix64::new(i)))
            .collect();
        let b: Vec<i32> = (0..50)
            .map(|i| pick(&c, &s, &mut SplitMix64::new(i)))
            .collect();
        assert_eq!(a, b);
        assert!(
            a.contains(&7) && a.contains(&3),
            "both likely tokens get drawn: {a:?}"
        );
    }
}
