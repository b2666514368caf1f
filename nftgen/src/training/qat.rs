//! Quantization-aware training of kiln-sprite for kiln-sprite-q ([`crate::sprite::SpriteNet::set_quantization_aware`]):
//! the fake quantization the forward pass applies to the layers the integer model runs as int8
//! products, with straight-through gradients.

use candle_core::{D, Tensor};

/// Fake int8 quantization of each row (last dimension) as kiln-sprite-q quantizes a layer's
/// input (`nftgen/RECIPE.md` §9.4): with `m` the row's largest magnitude in Q12 units, the step is
/// `2^max(bit_len(m) − 7, 0)` Q12 units and the values round to −127..=127 steps. The gradient
/// passes straight through.
pub(crate) fn fake_quant_rows(x: &Tensor) -> candle_core::Result<Tensor> {
    let xd = x.detach();
    let m = (xd.abs()?.max_keepdim(D::Minus1)? * 4096.0)?
        .round()?
        .maximum(1.0)?;
    let bit_len = (m.log()? / std::f64::consts::LN_2)?.floor()? + 1.0;
    // Below 64 Q12 units the integer row is exact (q = x << −e): the step is one Q12 unit.
    let e = (bit_len? - 7.0)?.maximum(0.0)?;
    let step = ((e * std::f64::consts::LN_2)?.exp()? / 4096.0)?;
    x + (int8_steps(&xd, &step)? - xd)?.detach()
}

/// Fake symmetric int8 quantization of each output channel (row) of a weight matrix, step
/// `max|w| / 127`, with a straight-through gradient.
pub(crate) fn fake_quant_channels(w: &Tensor) -> candle_core::Result<Tensor> {
    let wd = w.detach();
    let step = (wd.abs()?.max_keepdim(D::Minus1)? / 127.0)?.maximum(1e-12)?;
    w + (int8_steps(&wd, &step)? - wd)?.detach()
}

/// `x` rounded to whole multiples of `step` (broadcast over the last dimension) within ±127.
fn int8_steps(x: &Tensor, step: &Tensor) -> candle_core::Result<Tensor> {
    x.broadcast_div(step)?
        .round()?
        .clamp(-127f32, 127f32)?
        .broadcast_mul(step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn fake_quantization_rounds_as_the_integer_model_does() {
        use crate::model::sprite_q::ops;
        let dev = Device::Cpu;
        let mut next = crate::model::sprite_q::ops::xorshift32(5);
        // Rows of Q12 activations (what the integer model holds) of growing magnitudes.
        let mut q12 = Vec::new();
        for r in 0..64u32 {
            let span = 40 << (r / 4);
            for _ in 0..40 {
                q12.push((next() % (2 * span + 1)) as i32 - span as i32);
            }
        }
        let rows: Vec<f32> = q12.iter().map(|&k| k as f32 / 4096.0).collect();
        let x = Tensor::from_vec(rows, (64, 40), &dev).unwrap();
        let fq = fake_quant_rows(&x).unwrap().to_vec2::<f32>().unwrap();
        for (r, got) in fq.iter().enumerate() {
            let row = &q12[r * 40..][..40];
            let mut q = [0i8; 40];
            let e = ops::quantize_row_i8(row, &mut q);
            for ((g, &qi), &k) in got.iter().zip(&q).zip(row) {
                // In Q12 units the integer row is q · 2^e. The two roundings differ only on a
                // tie (half up against half away from zero), and then by one step.
                let (got, want) = (g * 4096.0, qi as f32 * 2f32.powi(e));
                let tie = e > 0 && k.rem_euclid(1 << e) == 1 << (e - 1);
                let off = (got - want).abs() / 2f32.powi(e.max(0));
                assert!(
                    off < 1e-3 || (tie && (off - 1.0).abs() < 1e-3),
                    "row {r}: {k} → {got} vs {want}"
                );
            }
        }
        // Weights: per output channel, the largest magnitude maps to ±127.
        let w = Tensor::new(&[[0.5f32, -0.25, 0.1], [2.0, 1.0, -0.02]], &dev).unwrap();
        let fw = fake_quant_channels(&w).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(fw[0][0], 0.5);
        assert!((fw[0][2] - (25.4f32).round() * 0.5 / 127.0).abs() < 1e-7);
        assert!((fw[1][2] - (-1.27f32).round() * 2.0 / 127.0).abs() < 1e-7);
        // Straight-through: the gradient of the sum is 1 everywhere.
        let var = candle_core::Var::from_tensor(&x).unwrap();
        let grads = fake_quant_rows(var.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap();
        assert!(g.to_vec1::<f32>().unwrap().iter().all(|&v| v == 1.0));
    }
}
