//! Compute device selection with a runtime fallback to the CPU.

use candle_core::Device;

use crate::provenance::record::Backend;

/// Where to run diffusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DevicePreference {
    /// The CPU: the reference, bit-exact path. The default.
    #[default]
    Cpu,
    /// A GPU if the crate was built with `cuda` or `metal` and one is usable, else the CPU.
    BestAvailable,
}

/// Opens the device for `pref`, falling back to the CPU with a log line when a GPU is not usable.
pub fn select(pref: DevicePreference) -> (Device, Backend) {
    match pref {
        DevicePreference::Cpu => (Device::Cpu, Backend::Cpu),
        DevicePreference::BestAvailable => gpu().unwrap_or_else(|reason| {
            tracing::info!(%reason, "no usable GPU: running diffusion on the CPU");
            (Device::Cpu, Backend::Cpu)
        }),
    }
}

#[allow(unreachable_code)]
fn gpu() -> Result<(Device, Backend), String> {
    #[cfg(feature = "cuda")]
    {
        match Device::new_cuda(0) {
            Ok(d) => return Ok((d, Backend::Cuda)),
            Err(e) => tracing::warn!(error = %e, "CUDA device 0 failed to open"),
        }
    }
    #[cfg(feature = "metal")]
    {
        match Device::new_metal(0) {
            Ok(d) => return Ok((d, Backend::Metal)),
            Err(e) => tracing::warn!(error = %e, "Metal device 0 failed to open"),
        }
    }
    Err("built without the `cuda` and `metal` features, or no device opened".into())
}
