//! The GPU backend of `kiln-pipeline/2` (feature `gpu`): the integer kernels of
//! `nftgen/RECIPE.md` §9 as WGSL compute shaders through wgpu.
//!
//! The shaders compute exactly what the CPU computes — i32 and u32 only, int8 dot products with
//! `dot4I8Packed`, the same rounding rule, tables and saturation — so a picture painted on any
//! GPU re-verifies bit for bit on any CPU, and the other way round. The model's weights are
//! uploaded once; each denoising step is one command buffer; the sample is read back once, at
//! the end, on the calling thread.
//!
//! ```no_run
//! use kiln_nftgen::gpu::GpuDevice;
//! use kiln_nftgen::{ArtModel, Control, GenerationRequest};
//!
//! let mut model = ArtModel::load(kiln_nftgen::default_model_path())?;
//! let gpu = GpuDevice::open_headless()?;
//! println!("painting on {}", gpu.adapter());
//! model.use_gpu(&gpu)?;
//! let art = model.generate(&GenerationRequest::new("a red sword", 7), &mut |_| Control::Continue)?;
//! assert_eq!(art.record.backend.as_str(), "wgpu");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub(crate) mod plan;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wgpu::util::DeviceExt;

pub use crate::error::GpuError;
use crate::model::sprite_q::SpriteQNet;
#[cfg(test)]
use plan::Args;
use plan::{ARGS_BYTES, Dispatch, Entry, KEY_AT, Layout, Params, Plan};
/// The wgpu this backend is built on (Bevy 0.19's), for sharing a device.
pub use wgpu;

/// The WGSL source of every kernel.
pub const KERNELS_WGSL: &str = include_str!("kernels.wgsl");

/// How long one step or one readback may take before the device counts as hung.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

struct DeviceInner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: String,
    software: bool,
    layout: wgpu::BindGroupLayout,
    pipelines: Vec<wgpu::ComputePipeline>,
    /// Alignment of dynamic uniform offsets.
    align: u64,
}

/// A wgpu device and queue with the art kernels compiled on it. Cheap to clone; share one per
/// GPU (a game passes Bevy's own device to [`GpuDevice::from_wgpu`]).
#[derive(Clone)]
pub struct GpuDevice {
    inner: Arc<DeviceInner>,
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDevice")
            .field("adapter", &self.inner.adapter)
            .finish()
    }
}

/// Runs `f` inside out-of-memory and validation error scopes and reports what they caught.
fn scoped<T>(
    device: &wgpu::Device,
    on_validation: impl FnOnce(String) -> GpuError,
    f: impl FnOnce() -> T,
) -> Result<T, GpuError> {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let out = f();
    let invalid = pollster::block_on(validation.pop());
    let out_of_memory = pollster::block_on(oom.pop());
    if let Some(e) = out_of_memory {
        return Err(GpuError::OutOfMemory {
            detail: e.to_string(),
        });
    }
    if let Some(e) = invalid {
        return Err(on_validation(e.to_string()));
    }
    Ok(out)
}

impl GpuDevice {
    /// Opens the first adapter wgpu finds (high performance preferred), with no window: for
    /// tools, servers and tests. A software rasterizer (Mesa's lavapipe) counts: it computes
    /// the same bits, slowly. `WGPU_BACKEND` and `WGPU_ADAPTER_NAME` choose another adapter.
    pub fn open_headless() -> Result<Self, GpuError> {
        Self::open(true)
    }

    /// As [`GpuDevice::open_headless`], but only a real GPU: a software rasterizer is refused
    /// ([`GpuError::NoAdapter`]), since the CPU backend's own kernels are faster than it.
    pub fn open_hardware() -> Result<Self, GpuError> {
        Self::open(false)
    }

    fn open(allow_software: bool) -> Result<Self, GpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
        }))
        .map_err(|e| GpuError::NoAdapter {
            detail: e.to_string(),
        })?;
        let info = adapter.get_info();
        let name = adapter_name(&info);
        if !allow_software && is_software_adapter(&info) {
            return Err(GpuError::NoAdapter {
                detail: format!(
                    "only a software rasterizer is present ({name}); the CPU kernels are faster"
                ),
            });
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("kiln art"),
            required_features: wgpu::Features::empty(),
            required_limits: wgpu::Limits::downlevel_defaults(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::Device {
            adapter: name,
            detail: e.to_string(),
        })?;
        Self::from_wgpu(device, queue, &info)
    }

    /// Uses a device the application already has (Bevy's `RenderDevice`, with its
    /// `RenderAdapterInfo`), compiling the art kernels on it.
    pub fn from_wgpu(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: &wgpu::AdapterInfo,
    ) -> Result<Self, GpuError> {
        let adapter = adapter_name(info);
        let software = is_software_adapter(info);
        let kernels = |detail: String| GpuError::Kernels {
            adapter: adapter.clone(),
            detail,
        };
        let (layout, pipelines) = scoped(&device, kernels, || {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("kiln art kernels"),
                source: wgpu::ShaderSource::Wgsl(KERNELS_WGSL.into()),
            });
            let storage = |binding, read_only| wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            };
            let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("kiln art bindings"),
                entries: &[
                    storage(0, true),
                    storage(1, false),
                    wgpu::BindGroupLayoutEntry {
                        binding: 2,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Buffer {
                            ty: wgpu::BufferBindingType::Uniform,
                            has_dynamic_offset: true,
                            min_binding_size: wgpu::BufferSize::new(ARGS_BYTES),
                        },
                        count: None,
                    },
                ],
            });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("kiln art"),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let pipelines = Entry::ALL
                .iter()
                .map(|e| {
                    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(e.name()),
                        layout: Some(&pipeline_layout),
                        module: &module,
                        entry_point: Some(e.name()),
                        compilation_options: Default::default(),
                        cache: None,
                    })
                })
                .collect::<Vec<_>>();
            (layout, pipelines)
        })?;
        let align = u64::from(device.limits().min_uniform_buffer_offset_alignment).max(ARGS_BYTES);
        tracing::info!(adapter = %adapter, "art kernels compiled on the GPU");
        Ok(Self {
            inner: Arc::new(DeviceInner {
                device,
                queue,
                adapter,
                software,
                layout,
                pipelines,
                align,
            }),
        })
    }

    /// The adapter's name, driver and type, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)`.
    pub fn adapter(&self) -> &str {
        &self.inner.adapter
    }

    /// Whether the adapter is a software rasterizer (Mesa's lavapipe, …): the same bits, slowly.
    pub fn is_software(&self) -> bool {
        self.inner.software
    }

    /// The wgpu device.
    pub fn wgpu_device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// A uniform buffer holding each dispatch's [`Args`] at the device's offset alignment.
    fn args_buffer(&self, dispatches: &[Dispatch]) -> wgpu::Buffer {
        let align = self.inner.align as usize;
        let mut bytes = vec![0u8; dispatches.len().max(1) * align];
        for (i, d) in dispatches.iter().enumerate() {
            bytes[i * align..][..ARGS_BYTES as usize].copy_from_slice(&d.args.bytes());
        }
        self.device()
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("kiln art dispatch args"),
                contents: &bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    fn bind_group(
        &self,
        params: &wgpu::Buffer,
        work: &wgpu::Buffer,
        args: &wgpu::Buffer,
    ) -> wgpu::BindGroup {
        self.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("kiln art"),
            layout: &self.inner.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: work.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: args,
                        offset: 0,
                        size: wgpu::BufferSize::new(ARGS_BYTES),
                    }),
                },
            ],
        })
    }

    /// Records `dispatches` into one compute pass of a new command buffer.
    fn encode(
        &self,
        bind_group: &wgpu::BindGroup,
        dispatches: &[Dispatch],
        first: usize,
    ) -> wgpu::CommandEncoder {
        let mut encoder = self
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("kiln art step"),
            });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("kiln art step"),
                timestamp_writes: None,
            });
            for (i, d) in dispatches.iter().enumerate() {
                pass.set_pipeline(&self.inner.pipelines[d.entry.index()]);
                let offset = ((first + i) as u64 * self.inner.align) as u32;
                pass.set_bind_group(0, bind_group, &[offset]);
                let [x, y, z] = d.groups;
                pass.dispatch_workgroups(x, y, z);
            }
        }
        encoder
    }

    /// Records and submits a command buffer (validation and out-of-memory errors become
    /// [`GpuError`]s, never the default handler's panic) and waits until the device has run it.
    fn submit_and_wait(
        &self,
        record: impl FnOnce() -> wgpu::CommandEncoder,
    ) -> Result<(), GpuError> {
        let index = self.submit(record)?;
        self.wait(index)
    }

    /// Records and submits a command buffer without waiting for it.
    fn submit(
        &self,
        record: impl FnOnce() -> wgpu::CommandEncoder,
    ) -> Result<wgpu::SubmissionIndex, GpuError> {
        scoped(
            self.device(),
            |detail| GpuError::Kernels {
                adapter: self.adapter().into(),
                detail,
            },
            || self.inner.queue.submit([record().finish()]),
        )
    }

    /// Waits until the device has run submission `index`.
    fn wait(&self, index: wgpu::SubmissionIndex) -> Result<(), GpuError> {
        self.device()
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: Some(STEP_TIMEOUT),
            })
            .map(|_| ())
            .map_err(|e| GpuError::DeviceLost {
                detail: e.to_string(),
            })
    }

    /// Copies `words` i32 values from `work` at word `at` back to the CPU.
    fn read(&self, work: &wgpu::Buffer, at: u32, words: usize) -> Result<Vec<i32>, GpuError> {
        let bytes = (words.max(1) * 4) as u64;
        let staging = self.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln art readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.submit_and_wait(|| {
            let mut encoder =
                self.device()
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("kiln art readback"),
                    });
            encoder.copy_buffer_to_buffer(work, u64::from(at) * 4, &staging, 0, bytes);
            encoder
        })?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device()
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(STEP_TIMEOUT),
            })
            .map_err(|e| GpuError::DeviceLost {
                detail: e.to_string(),
            })?;
        match rx.recv_timeout(STEP_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(GpuError::DeviceLost {
                    detail: format!("reading the result back: {e}"),
                });
            }
            Err(_) => {
                return Err(GpuError::DeviceLost {
                    detail: "the result was never mapped for reading".into(),
                });
            }
        }
        let out = {
            let view = staging.slice(..).get_mapped_range();
            view.chunks_exact(4)
                .take(words)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        staging.unmap();
        Ok(out)
    }

    /// Writes i32 values into `buffer` at word `at` (before the next submission).
    fn write(&self, buffer: &wgpu::Buffer, at: u32, values: &[i32]) -> Result<(), GpuError> {
        if values.is_empty() {
            return Ok(());
        }
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        scoped(
            self.device(),
            |detail| GpuError::DeviceLost { detail },
            || {
                self.inner
                    .queue
                    .write_buffer(buffer, u64::from(at) * 4, &bytes)
            },
        )
    }

    fn storage(&self, label: &str, words: usize, contents: Option<&[i32]>) -> wgpu::Buffer {
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC;
        match contents {
            Some(values) => {
                let mut bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                bytes.resize(words.max(1) * 4, 0);
                self.device()
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some(label),
                        contents: &bytes,
                        usage,
                    })
            }
            None => self.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: (words.max(1) * 4) as u64,
                usage,
                mapped_at_creation: false,
            }),
        }
    }

    /// Runs one entry point over `work` with `params`, for the kernel tests: uploads both,
    /// dispatches once and returns `work` as the kernel left it.
    #[cfg(test)]
    pub(crate) fn probe(
        &self,
        entry: Entry,
        args: Args,
        groups: [u32; 3],
        params: &[i32],
        work: &[i32],
    ) -> Result<Vec<i32>, GpuError> {
        let dispatch = [Dispatch {
            entry,
            args,
            groups,
        }];
        let (p, w, a) = scoped(
            self.device(),
            |detail| GpuError::Kernels {
                adapter: self.adapter().into(),
                detail,
            },
            || {
                (
                    self.storage("kiln probe params", params.len(), Some(params)),
                    self.storage("kiln probe work", work.len(), Some(work)),
                    self.args_buffer(&dispatch),
                )
            },
        )?;
        let bind_group = self.bind_group(&p, &w, &a);
        self.submit_and_wait(|| self.encode(&bind_group, &dispatch, 0))?;
        self.read(&w, 0, work.len())
    }
}

/// An adapter's name, backend and type, as logs and errors show it, e.g. `llvmpipe (LLVM 15.0.6,
/// 256 bits) (Vulkan, Cpu)`.
pub fn adapter_name(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}

/// Whether an adapter is a software rasterizer rather than a GPU.
pub fn is_software_adapter(info: &wgpu::AdapterInfo) -> bool {
    info.device_type == wgpu::DeviceType::Cpu
}

/// A step plan with its arguments on the device.
struct DevicePlan {
    plan: Plan,
    bind_group: wgpu::BindGroup,
}

/// A kiln-sprite-q network on the GPU: its weights uploaded once, its working memory sized for
/// the largest image it paints, and one plan per image size.
pub struct GpuSpriteQ {
    gpu: GpuDevice,
    params: wgpu::Buffer,
    work: wgpu::Buffer,
    offsets: Params,
    layout: Layout,
    /// Plans by size; also serialises runs, which share `work`.
    plans: Mutex<HashMap<(usize, usize), DevicePlan>>,
}

impl std::fmt::Debug for GpuSpriteQ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuSpriteQ")
            .field("adapter", &self.gpu.adapter())
            .field("params_words", &self.offsets.data.len())
            .field("work_words", &self.layout.len)
            .finish()
    }
}

impl GpuSpriteQ {
    /// Uploads `net` to `gpu`.
    pub fn upload(gpu: &GpuDevice, net: &SpriteQNet) -> Result<Self, GpuError> {
        let cfg = net.config();
        let tokens = cfg
            .sizes
            .iter()
            .map(|[w, h]| (*w as usize / cfg.patch) * (*h as usize / cfg.patch))
            .max()
            .unwrap_or(1);
        let offsets = Params::of(net);
        let layout = Layout::new(net, tokens);
        let (params, work) = scoped(
            gpu.device(),
            |detail| GpuError::OutOfMemory { detail },
            || {
                (
                    gpu.storage("kiln art model", offsets.data.len(), Some(&offsets.data)),
                    gpu.storage("kiln art work", layout.len, None),
                )
            },
        )?;
        tracing::info!(
            adapter = %gpu.adapter(),
            model = %cfg.name,
            weights_kib = offsets.data.len() * 4 / 1024,
            work_kib = layout.len * 4 / 1024,
            "art model uploaded to the GPU"
        );
        Ok(Self {
            gpu: gpu.clone(),
            params,
            work,
            offsets,
            layout,
            plans: Mutex::new(HashMap::new()),
        })
    }

    /// The device it runs on.
    pub fn device(&self) -> &GpuDevice {
        &self.gpu
    }

    fn plan_for<'a>(
        &self,
        plans: &'a mut HashMap<(usize, usize), DevicePlan>,
        net: &SpriteQNet,
        width: usize,
        height: usize,
    ) -> Result<&'a DevicePlan, GpuError> {
        let cfg = net.config();
        if !cfg.sizes.contains(&[width as u32, height as u32]) {
            return Err(GpuError::Unsupported {
                detail: format!("{width}×{height} is not a size `{}` paints", cfg.name),
            });
        }
        let key = (width, height);
        if let std::collections::hash_map::Entry::Vacant(slot) = plans.entry(key) {
            let plan = Plan::new(net, &self.offsets, &self.layout, width, height);
            // Inside error scopes: a device that cannot make the buffer or bind group (out of
            // memory, lost) is a typed error the caller falls back from, not a panic in wgpu's
            // uncaptured-error handler.
            let bind_group = scoped(
                self.gpu.device(),
                |detail| GpuError::Kernels {
                    adapter: self.gpu.adapter().into(),
                    detail,
                },
                || {
                    let args = self.gpu.args_buffer(&plan.dispatches);
                    self.gpu.bind_group(&self.params, &self.work, &args)
                },
            )?;
            slot.insert(DevicePlan { plan, bind_group });
        }
        Ok(&plans[&key])
    }

    /// One evaluation of the network (both rows) at timestep `t`: the same result as
    /// [`SpriteQNet::forward`], as two `[C, H, W]` images.
    pub fn forward(
        &self,
        net: &SpriteQNet,
        x: &[i32],
        width: usize,
        height: usize,
        t: usize,
        prompts: [&[i32]; 2],
    ) -> Result<[Vec<i32>; 2], GpuError> {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        let dp = self.plan_for(&mut plans, net, width, height)?;
        let l = &self.layout;
        self.gpu.write(&self.work, 0, &[t as i32])?;
        self.gpu.write(&self.work, l.x, x)?;
        self.gpu
            .write(&self.work, l.prompts, &[prompts[0], prompts[1]].concat())?;
        let network = &dp.plan.dispatches[..dp.plan.network];
        self.gpu
            .submit_and_wait(|| self.gpu.encode(&dp.bind_group, network, 0))?;
        let cfg = net.config();
        let pp = cfg.channels * cfg.patch * cfg.patch;
        let n = (width / cfg.patch) * (height / cfg.patch);
        let out = self.gpu.read(&self.work, l.out, 2 * n * pp)?;
        Ok([
            net.unpatchify(&out[..n * pp], width, height),
            net.unpatchify(&out[n * pp..], width, height),
        ])
    }

    /// Paints `job`: the initial noise, then per step the network and the update in one
    /// command buffer, then the pixels. `on_step(i)` may stop the run (returning `false`).
    /// Returns the RGBA8 pixels, or `None` when stopped.
    pub(crate) fn sample(
        &self,
        net: &SpriteQNet,
        job: &SampleJob<'_>,
        on_step: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Option<Vec<u8>>, GpuError> {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        let dp = self.plan_for(&mut plans, net, job.width, job.height)?;
        let l = &self.layout;
        let (step, all) = (dp.plan.step, &dp.plan.dispatches);
        let key: Vec<i32> = job.key[..4].iter().map(|&k| k as i32).collect();
        self.gpu.write(&self.work, KEY_AT, &key)?;
        self.gpu.write(
            &self.work,
            l.prompts,
            &[job.prompts[0], job.prompts[1]].concat(),
        )?;
        self.gpu
            .submit(|| self.gpu.encode(&dp.bind_group, &all[step..step + 1], step))?;
        // Step i + 1 is queued before step i is waited for, so the device never idles between
        // steps; each step is reported once it has run. (Its per-step values are written before
        // its own submission, which the queue orders after the step before.)
        let mut queued: Option<(usize, wgpu::SubmissionIndex)> = None;
        for (i, &(t, a, b)) in job.steps.iter().enumerate() {
            self.gpu
                .write(&self.work, 0, &[t as i32, a, b, job.guidance_q16])?;
            let index = self
                .gpu
                .submit(|| self.gpu.encode(&dp.bind_group, &all[..step], 0))?;
            if let Some((done, before)) = queued.replace((i, index)) {
                self.gpu.wait(before)?;
                if !on_step(done) {
                    return Ok(None);
                }
            }
        }
        if let Some((done, last)) = queued {
            self.gpu.wait(last)?;
            if !on_step(done) {
                return Ok(None);
            }
        }
        self.gpu
            .submit_and_wait(|| self.gpu.encode(&dp.bind_group, &all[step + 1..], step + 1))?;
        let words = self
            .gpu
            .read(&self.work, l.pixels, job.width * job.height)?;
        Ok(Some(words.iter().flat_map(|w| w.to_le_bytes()).collect()))
    }
}

/// One run of the sampler on the GPU.
pub(crate) struct SampleJob<'a> {
    pub width: usize,
    pub height: usize,
    /// The noise key (its first four words seed the initial sample).
    pub key: [u32; 8],
    /// The pooled prompts (negative, positive).
    pub prompts: [&'a [i32]; 2],
    pub guidance_q16: i32,
    /// Per step: timestep, A, B (Q30).
    pub steps: &'a [(usize, i32, i32)],
}

#[cfg(test)]
mod tests;
