//! Measures the art pipeline; `cargo xtask bench art` runs it at 1 and 2 threads
//! (`RAYON_NUM_THREADS`) and prints the table. One JSON line per measurement on stdout.
//!
//! - kiln-sprite v1 (the shipped f32 model of `kiln-pipeline/1`, or random weights of its
//!   architecture when it is absent) at each supported size and step count: seconds per image,
//!   and the same work timed as plain GEMMs of the model's shapes in this process (the
//!   reference: how fast candle's matrix product alone would do it).
//! - kiln-sprite-q (the shipped integer model of `kiln-pipeline/2`) at the same sizes and steps,
//!   and its reference: the same int8 matrix products (every linear layer of both guidance
//!   rows, the patch embedding once) as bare int8 GEMMs with the same dot-product kernel.
//! - With `--gpu-only`: kiln-sprite-q on the GPU backend (wgpu; whatever adapter opens, Mesa's
//!   lavapipe on a machine without a GPU) beside the CPU's integer kernels, checking that both
//!   paint the same content hash, and naming the adapter.
//! - One Stable Diffusion UNet step on 32×32 latents (256×256 pixels through SD's 8× VAE), for
//!   the guidance pair, on the tiny random checkpoint's UNet and on a full-size SD 2.1 /
//!   SD-Turbo UNet with random weights.

use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::stable_diffusion::unet_2d;
use kiln_nftgen::sprite::{self, SpriteConfig};
use kiln_nftgen::{ArtModel, Control, GenerationRequest};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `reps` generations of `req`, after one 1-step warm-up.
fn time_generate(model: &ArtModel, req: &GenerationRequest, reps: usize) -> Result<f64> {
    model.generate(&req.clone().steps(1), &mut |_| Control::Continue)?;
    let mut times = vec![];
    for _ in 0..reps {
        let t = Instant::now();
        model.generate(req, &mut |_| Control::Continue)?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

/// Seconds for the dense matrix products of one sprite step, run as bare GEMMs.
fn gemm_reference(cfg: &SpriteConfig, w: u32, h: u32, reps: usize) -> Result<f64> {
    let dev = Device::Cpu;
    let d = cfg.dim;
    let prefix = match cfg.conditioning {
        sprite::Conditioning::InContext => 1 + cfg.text.max_tokens,
        sprite::Conditioning::AdaLn => 0,
    };
    let tokens = prefix + (w as usize / cfg.patch) * (h as usize / cfg.patch);
    let rows = 2 * tokens;
    let mut shapes = vec![];
    for i in 0..cfg.depth {
        shapes.push((d, 3 * d));
        shapes.push((d, d));
        shapes.push((d, cfg.mlp_ratio * d));
        shapes.push((cfg.mlp_ratio * d, d));
        if i >= cfg.depth / 2 {
            shapes.push((2 * d, d));
        }
    }
    let mats: Vec<(Tensor, Tensor)> = shapes
        .iter()
        .map(|&(i, o)| {
            Ok((
                Tensor::ones((rows, i), DType::F32, &dev)?,
                Tensor::ones((i, o), DType::F32, &dev)?,
            ))
        })
        .collect::<Result<_>>()?;
    let mut times = vec![];
    for _ in 0..reps {
        let t = Instant::now();
        for (a, b) in &mats {
            std::hint::black_box(a.matmul(b)?);
        }
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

/// Seconds for the int8 matrix products of one kiln-sprite-q step, run as bare GEMMs (the
/// patch embedding once, every other token layer for both guidance rows).
fn int_gemm_reference(
    net: &kiln_nftgen::model::sprite_q::SpriteQNet,
    w: u32,
    h: u32,
    reps: usize,
) -> f64 {
    use kiln_nftgen::model::sprite_q::gemm;
    let kernel = gemm::Kernel::active();
    let p = net.config().patch;
    let tokens = (w as usize / p) * (h as usize / p);
    let layers = net.token_layers();
    let mut jobs = Vec::new();
    for (row, (name, layer)) in [0, 1]
        .iter()
        .flat_map(|&r| layers.iter().map(move |l| (r, *l)))
    {
        if row == 1 && name == "patch_in" {
            continue;
        }
        let a = gemm::Rows::from_slice(kernel, &vec![1i8; tokens * layer.inp], tokens, layer.inp);
        let w = gemm::Packed::new(&layer.weight, layer.out, layer.inp);
        let acc = vec![0i32; tokens * layer.out];
        jobs.push((a, w, acc));
    }
    let mut times = vec![];
    for _ in 0..reps {
        let t = Instant::now();
        for (a, w, acc) in jobs.iter_mut() {
            gemm::gemm_packed(kernel, a, w, acc);
            std::hint::black_box(&acc);
        }
        times.push(t.elapsed().as_secs_f64());
    }
    median(times)
}

/// kiln-sprite-q on the GPU beside the CPU's integer kernels: one JSON line per size and step
/// count, after checking that both paint the same content hash.
fn gpu_rows() -> Result<()> {
    let path = kiln_nftgen::default_model_path();
    let cpu = ArtModel::load(&path)?;
    let mut gpu = ArtModel::load(&path)?;
    let device = kiln_nftgen::gpu::GpuDevice::open_headless()?;
    gpu.use_gpu(&device)?;
    let adapter = device.adapter().to_string();
    // A software rasterizer is for correctness: fewer, shorter runs.
    let (reps, step_counts): (usize, &[u32]) = if device.is_software() {
        (1, &[20])
    } else {
        (5, &[10, 20, 50])
    };
    let sizes = cpu.sizes().map(<[_]>::to_vec).unwrap_or_default();
    for &[w, h] in &sizes {
        for &steps in step_counts {
            let req = GenerationRequest::new("a glowing green potion", 1)
                .steps(steps)
                .size(w, h);
            let a = cpu.generate(&req, &mut |_| Control::Continue)?;
            let b = gpu.generate(&req, &mut |_| Control::Continue)?;
            anyhow::ensure!(
                a.content_hash == b.content_hash,
                "the GPU painted {} where the CPU painted {}",
                b.content_hash,
                a.content_hash
            );
            let cpu_secs = time_generate(&cpu, &req, reps)?;
            let gpu_secs = time_generate(&gpu, &req, reps)?;
            println!(
                "{}",
                serde_json::json!({"what": "sprite-q-gpu", "adapter": adapter, "size": format!("{w}x{h}"),
                    "steps": steps, "secs": gpu_secs, "cpu_secs": cpu_secs, "same_pixels": true})
            );
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--gpu-only") {
        return gpu_rows();
    }
    let full_sd = !args.iter().any(|a| a == "--no-full-sd");
    let reps: usize = 5;
    let threads = candle_core::utils::get_num_threads();
    let dir = tempfile::tempdir()?;

    let shipped = kiln_nftgen::v1_model_path();
    let (cfg, path) = if shipped.is_file() {
        let model = ArtModel::load(&shipped)?;
        let cfg = model.sprite_config().cloned().expect("a kiln-sprite file");
        (cfg, shipped)
    } else {
        let cfg = kiln_nftgen::train::training_config();
        let path = dir.path().join("random.safetensors");
        sprite::save(&path, &cfg, &sprite::random_weights(&cfg, 1)?)?;
        (cfg, path)
    };
    let model = ArtModel::load(&path)?;
    let params: usize = candle_core::safetensors::load(&path, &Device::Cpu)?
        .values()
        .map(|t| t.elem_count())
        .sum();
    for &[w, h] in &cfg.sizes {
        for steps in [10u32, 20, 50] {
            let req = GenerationRequest::new("a glowing green potion", 1)
                .steps(steps)
                .size(w, h);
            let secs = time_generate(&model, &req, reps)?;
            let gemm = gemm_reference(&cfg, w, h, reps)? * steps as f64;
            println!(
                "{}",
                serde_json::json!({"what": "sprite", "model": cfg.name, "threads": threads, "params": params,
                    "size": format!("{w}x{h}"), "steps": steps, "secs": secs, "gemm_secs": gemm})
            );
        }
    }

    // The integer model of pipeline/2, same sizes and steps.
    let q_path = kiln_nftgen::default_model_path();
    let q = ArtModel::load(&q_path)?;
    let net = q
        .sprite_q_net()
        .expect("the default model is kiln-sprite-q");
    let kernel = kiln_nftgen::model::sprite_q::gemm::Kernel::active();
    let q_params: usize = net.token_layers().iter().map(|(_, l)| l.weight.len()).sum();
    for &[w, h] in &net.config().sizes.clone() {
        for steps in [10u32, 20, 50] {
            let req = GenerationRequest::new("a glowing green potion", 1)
                .steps(steps)
                .size(w, h);
            let secs = time_generate(&q, &req, reps)?;
            let gemm = int_gemm_reference(net, w, h, reps) * steps as f64;
            println!(
                "{}",
                serde_json::json!({"what": "sprite-q", "model": net.config().name, "threads": threads,
                    "params": q_params, "kernel": kernel.name(), "size": format!("{w}x{h}"),
                    "steps": steps, "secs": secs, "gemm_secs": gemm})
            );
        }
    }

    // The tiny checkpoint's UNet, loaded from the file the loader tests use: one guided step.
    let dev = Device::Cpu;
    let ckpt = dir.path().join("tiny-sd");
    kiln_nftgen::sd::write_tiny_checkpoint(&ckpt)?;
    let weights = candle_core::safetensors::load(
        ckpt.join("unet/diffusion_pytorch_model.safetensors"),
        &dev,
    )?;
    let unet = unet_2d::UNet2DConditionModel::new(
        VarBuilder::from_tensors(weights, DType::F32, &dev),
        4,
        4,
        false,
        kiln_nftgen::sd::tiny_unet_config(),
    )?;
    let x = Tensor::zeros((2, 4, 32, 32), DType::F32, &dev)?;
    let text = Tensor::zeros((2, 77, 32), DType::F32, &dev)?;
    unet.forward(&x, 999.0, &text)?;
    let mut times = vec![];
    for _ in 0..reps {
        let t = Instant::now();
        std::hint::black_box(unet.forward(&x, 999.0, &text)?);
        times.push(t.elapsed().as_secs_f64());
    }
    println!(
        "{}",
        serde_json::json!({"what": "sd-tiny-unet-step", "threads": threads, "size": "256x256", "secs": median(times)})
    );

    if full_sd {
        // SD 2.1 / SD-Turbo UNet shape (865 M parameters), random weights, one guided step.
        let block = |c, heads, cross: bool| unet_2d::BlockConfig {
            out_channels: c,
            use_cross_attn: cross.then_some(1),
            attention_head_dim: heads,
        };
        let cfg = unet_2d::UNet2DConditionModelConfig {
            blocks: vec![
                block(320, 5, true),
                block(640, 10, true),
                block(1280, 20, true),
                block(1280, 20, false),
            ],
            cross_attention_dim: 1024,
            use_linear_projection: true,
            ..Default::default()
        };
        let varmap = candle_nn::VarMap::new();
        let t = Instant::now();
        let unet = unet_2d::UNet2DConditionModel::new(
            VarBuilder::from_varmap(&varmap, DType::F32, &dev),
            4,
            4,
            false,
            cfg,
        )?;
        let build = t.elapsed().as_secs_f64();
        let params: usize = varmap.all_vars().iter().map(|v| v.elem_count()).sum();
        let x = Tensor::zeros((2, 4, 32, 32), DType::F32, &dev)?;
        let text = Tensor::zeros((2, 77, 1024), DType::F32, &dev)?;
        let t = Instant::now();
        std::hint::black_box(unet.forward(&x, 999.0, &text)?);
        println!(
            "{}",
            serde_json::json!({"what": "sd-turbo-unet-step", "threads": threads, "params": params,
                "size": "256x256", "secs": t.elapsed().as_secs_f64(), "build_secs": build})
        );
    }
    Ok(())
}
