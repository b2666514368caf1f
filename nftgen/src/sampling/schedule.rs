//! Noise schedules, timestep spacing and the DDIM / Euler / Euler-ancestral steppers.
//!
//! All scalar coefficients are computed in binary64 on the host; tensor updates are element-wise
//! affine combinations, so the result does not depend on thread count. `RECIPE.md` specifies the
//! formulas.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::provenance::record::SchedulerKind;
use crate::sampling::noise::NoiseRng;

/// How the betas of the training noise schedule are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// Linear from `beta_start` to `beta_end`.
    Linear,
    /// Linear in √β (Stable Diffusion's `scaled_linear`).
    ScaledLinear,
    /// The cosine schedule (`squaredcos_cap_v2`), betas capped at 0.999.
    #[serde(alias = "squaredcos_cap_v2")]
    Cosine,
}

/// What the denoiser predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prediction {
    /// The added noise ε.
    Epsilon,
    /// The velocity v = √ᾱ·ε − √(1−ᾱ)·x₀.
    #[serde(alias = "v_prediction")]
    V,
}

/// The training noise schedule of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseSchedule {
    /// Number of training timesteps T.
    pub train_steps: usize,
    /// Beta layout.
    pub beta_schedule: BetaSchedule,
    /// First beta (ignored by the cosine schedule).
    pub beta_start: f64,
    /// Last beta (ignored by the cosine schedule).
    pub beta_end: f64,
}

impl NoiseSchedule {
    /// ᾱ_t for t in 0..T.
    pub fn alphas_cumprod(&self) -> Vec<f64> {
        let n = self.train_steps;
        let betas: Vec<f64> = match self.beta_schedule {
            BetaSchedule::Linear => (0..n)
                .map(|i| self.beta_start + (self.beta_end - self.beta_start) * frac(i, n))
                .collect(),
            BetaSchedule::ScaledLinear => {
                let (a, b) = (self.beta_start.sqrt(), self.beta_end.sqrt());
                (0..n).map(|i| (a + (b - a) * frac(i, n)).powi(2)).collect()
            }
            BetaSchedule::Cosine => {
                let f = |t: f64| {
                    ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                        .cos()
                        .powi(2)
                };
                (0..n)
                    .map(|i| {
                        let t1 = i as f64 / n as f64;
                        let t2 = (i + 1) as f64 / n as f64;
                        (1.0 - f(t2) / f(t1)).min(0.999)
                    })
                    .collect()
            }
        };
        let mut acc = 1.0;
        betas
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect()
    }
}

/// i / (n - 1), as `linspace` does (0 when n = 1).
fn frac(i: usize, n: usize) -> f64 {
    if n <= 1 {
        0.0
    } else {
        i as f64 / (n - 1) as f64
    }
}

/// "Trailing" timesteps: `t_i = floor(T·(n−i)/n) − 1` for i in 0..n (descending, first is T−1).
pub fn timesteps(train_steps: usize, steps: usize) -> Vec<usize> {
    (0..steps)
        .map(|i| (train_steps * (steps - i)) / steps - 1)
        .collect()
}

/// Runs one scheduler over the timesteps of a generation.
pub(crate) struct Stepper {
    kind: SchedulerKind,
    prediction: Prediction,
    alphas: Vec<f64>,
    timesteps: Vec<usize>,
}

impl Stepper {
    pub(crate) fn new(
        kind: SchedulerKind,
        schedule: &NoiseSchedule,
        prediction: Prediction,
        steps: usize,
    ) -> Self {
        Self {
            kind,
            prediction,
            alphas: schedule.alphas_cumprod(),
            timesteps: timesteps(schedule.train_steps, steps),
        }
    }

    pub(crate) fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    fn alpha(&self, i: usize) -> f64 {
        self.alphas[self.timesteps[i]]
    }

    /// ᾱ after step i (1 after the last step).
    fn alpha_next(&self, i: usize) -> f64 {
        self.timesteps
            .get(i + 1)
            .map(|&t| self.alphas[t])
            .unwrap_or(1.0)
    }

    fn sigma(alpha: f64) -> f64 {
        ((1.0 - alpha) / alpha).sqrt()
    }

    fn uses_sigma_space(&self) -> bool {
        matches!(
            self.kind,
            SchedulerKind::Euler | SchedulerKind::EulerAncestral
        )
    }

    /// Factor applied to unit noise to form the starting sample.
    pub(crate) fn init_scale(&self) -> f64 {
        if self.uses_sigma_space() {
            1.0 / self.alpha(0).sqrt()
        } else {
            1.0
        }
    }

    /// Factor that turns the sample at step i into the model input x_t.
    pub(crate) fn input_scale(&self, i: usize) -> f64 {
        if self.uses_sigma_space() {
            self.alpha(i).sqrt()
        } else {
            1.0
        }
    }

    /// (x̂₀, ε̂) from the model input x_t and the model output at step i.
    fn split(&self, i: usize, x_t: &Tensor, out: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let a = self.alpha(i);
        let (sa, s1a) = (a.sqrt(), (1.0 - a).sqrt());
        Ok(match self.prediction {
            Prediction::Epsilon => {
                let x0 = ((x_t - out.affine(s1a, 0.0)?)? * (1.0 / sa))?;
                (x0, out.clone())
            }
            Prediction::V => {
                let x0 = (x_t.affine(sa, 0.0)? - out.affine(s1a, 0.0)?)?;
                let eps = (x_t.affine(s1a, 0.0)? + out.affine(sa, 0.0)?)?;
                (x0, eps)
            }
        })
    }

    /// Advances the sample x by step i given the (guided) model output.
    pub(crate) fn step(
        &self,
        i: usize,
        x: &Tensor,
        out: &Tensor,
        rng: &mut NoiseRng,
    ) -> candle_core::Result<Tensor> {
        let x_t = x.affine(self.input_scale(i), 0.0)?;
        let (x0, eps) = self.split(i, &x_t, out)?;
        match self.kind {
            SchedulerKind::Ddim => {
                let an = self.alpha_next(i);
                x0.affine(an.sqrt(), 0.0)? + eps.affine((1.0 - an).sqrt(), 0.0)?
            }
            SchedulerKind::Euler => {
                let (s, sn) = (Self::sigma(self.alpha(i)), Self::sigma(self.alpha_next(i)));
                x + eps.affine(sn - s, 0.0)?
            }
            SchedulerKind::EulerAncestral => {
                let (s, sn) = (Self::sigma(self.alpha(i)), Self::sigma(self.alpha_next(i)));
                let up = (sn * sn * (s * s - sn * sn) / (s * s)).max(0.0).sqrt();
                let down = (sn * sn - up * up).max(0.0).sqrt();
                let moved = (x + eps.affine(down - s, 0.0)?)?;
                if up > 0.0 {
                    let noise = rng.normals(x.elem_count());
                    let noise = Tensor::from_vec(noise, x.shape(), x.device())?;
                    moved + noise.affine(up, 0.0)?
                } else {
                    Ok(moved)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_timesteps() {
        assert_eq!(timesteps(1000, 1), vec![999]);
        assert_eq!(timesteps(1000, 4), vec![999, 749, 499, 249]);
        let t = timesteps(1000, 1000);
        assert_eq!((t[0], t[999]), (999, 0));
    }

    #[test]
    fn schedules_decrease_and_match_sd() {
        let sd = NoiseSchedule {
            train_steps: 1000,
            beta_schedule: BetaSchedule::ScaledLinear,
            beta_start: 0.00085,
            beta_end: 0.012,
        };
        let a = sd.alphas_cumprod();
        assert!((a[0] - (1.0 - 0.00085)).abs() < 1e-12);
        // Stable Diffusion's final ᾱ is about 0.0047.
        assert!((a[999] - 0.00466).abs() < 1e-4, "{}", a[999]);
        assert!(a.windows(2).all(|w| w[1] < w[0]));
        let cos = NoiseSchedule {
            beta_schedule: BetaSchedule::Cosine,
            ..sd
        };
        let c = cos.alphas_cumprod();
        assert!(c.windows(2).all(|w| w[1] <= w[0]) && c[999] < 1e-3);
    }

    #[test]
    fn a_perfect_denoiser_recovers_the_image() {
        // With a model that predicts the true noise of a fixed x0, every scheduler lands on x0.
        let dev = candle_core::Device::Cpu;
        let sched = NoiseSchedule {
            train_steps: 1000,
            beta_schedule: BetaSchedule::ScaledLinear,
            beta_start: 0.00085,
            beta_end: 0.012,
        };
        let x0 = Tensor::new(&[0.5f32, -0.25, 0.75, 0.0], &dev).unwrap();
        for kind in [
            SchedulerKind::Ddim,
            SchedulerKind::Euler,
            SchedulerKind::EulerAncestral,
        ] {
            for prediction in [Prediction::Epsilon, Prediction::V] {
                let st = Stepper::new(kind, &sched, prediction, 10);
                let mut rng = NoiseRng::new(1);
                let noise = Tensor::from_vec(rng.normals(4), 4, &dev).unwrap();
                let mut x = noise.affine(st.init_scale(), 0.0).unwrap();
                for i in 0..10 {
                    let a = st.alpha(i);
                    let x_t = x.affine(st.input_scale(i), 0.0).unwrap();
                    // The noise the sample currently carries, given x0.
                    let eps = ((&x_t - x0.affine(a.sqrt(), 0.0).unwrap()).unwrap()
                        * (1.0 / (1.0 - a).sqrt()))
                    .unwrap();
                    let out = match prediction {
                        Prediction::Epsilon => eps,
                        Prediction::V => (eps.affine(a.sqrt(), 0.0).unwrap()
                            - x0.affine((1.0 - a).sqrt(), 0.0).unwrap())
                        .unwrap(),
                    };
                    x = st.step(i, &x, &out, &mut rng).unwrap();
                }
                let got = x.to_vec1::<f32>().unwrap();
                for (g, w) in got.iter().zip([0.5f32, -0.25, 0.75, 0.0]) {
                    assert!((g - w).abs() < 1e-3, "{kind:?} {prediction:?}: {got:?}");
                }
            }
        }
    }
}
