//! llama.cpp's backend, initialised once per process with its logging routed into `tracing`.
//!
//! Routes llama.cpp's and ggml's own logging into `tracing` under the target `kiln_npc::llama`,
//! one level lower than llama.cpp's (its errors at `debug`, its chatter at `trace`), so a game's
//! log stays quiet unless asked: `RUST_LOG=kiln_npc::llama=trace` shows everything.
//! Error lines are kept, so a failed load can say why.
#![allow(unsafe_code)] // The one place that hands llama.cpp a C callback.

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_void};
use std::sync::{Mutex, Once, OnceLock};

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_sys_2 as sys;

/// llama.cpp's backend, initialised once per process and never torn down.
pub(crate) fn backend() -> &'static LlamaBackend {
    static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        install();
        // `init` fails only if another library in this process initialised llama.cpp first; the
        // backend is then ready, and this value is only a proof of that.
        LlamaBackend::init().unwrap_or(LlamaBackend {})
    })
}

static INSTALL: Once = Once::new();
static ERRORS: Mutex<Vec<String>> = Mutex::new(Vec::new());

thread_local! {
    static PENDING: RefCell<(sys::ggml_log_level, String)> = const { RefCell::new((0, String::new())) };
}

/// Installs the callback once per process.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        // SAFETY: `callback` is a plain function that lives for the whole process and ignores
        // its user-data pointer, which we pass as null.
        unsafe {
            sys::llama_log_set(Some(callback), std::ptr::null_mut());
            sys::ggml_log_set(Some(callback), std::ptr::null_mut());
        }
    });
}

/// The error lines llama.cpp logged since [`clear_errors`], most specific first, joined by "; ".
pub(crate) fn take_errors() -> Option<String> {
    let lines = ERRORS.lock().ok().map(|mut e| std::mem::take(&mut *e))?;
    if lines.is_empty() {
        return None;
    }
    Some(lines.join("; "))
}

/// Forgets earlier errors so that the next [`take_errors`] reports only new ones.
pub(crate) fn clear_errors() {
    if let Ok(mut e) = ERRORS.lock() {
        e.clear();
    }
}

fn emit(level: sys::ggml_log_level, line: &str) {
    let line = line.trim_end();
    if line.is_empty() {
        return;
    }
    if level == sys::GGML_LOG_LEVEL_ERROR {
        tracing::debug!(target: "kiln_npc::llama", "error: {line}");
        if let Ok(mut e) = ERRORS.lock() {
            // Drop llama.cpp's `function_name: ` prefixes; keep a bounded number of lines.
            let text = match line.split_once(": ") {
                Some((func, rest)) if !func.contains(' ') => rest,
                _ => line,
            };
            if e.len() < 8 && !e.iter().any(|l| l == text) {
                e.push(text.to_string());
            }
        }
    } else if level == sys::GGML_LOG_LEVEL_WARN {
        tracing::debug!(target: "kiln_npc::llama", "{line}");
    } else {
        tracing::trace!(target: "kiln_npc::llama", "{line}");
    }
}

unsafe extern "C" fn callback(level: sys::ggml_log_level, text: *const c_char, _: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a valid NUL-terminated string that lives for this call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    // Never unwind into C: a failure to log is dropped.
    let _ = std::panic::catch_unwind(|| {
        PENDING.with(|p| {
            let Ok(mut p) = p.try_borrow_mut() else {
                return;
            };
            if level != sys::GGML_LOG_LEVEL_CONT {
                if !p.1.is_empty() {
                    let (l, s) = std::mem::take(&mut *p);
                    emit(l, &s);
                }
                p.0 = level;
            }
            p.1.push_str(&text);
            if p.1.ends_with('\n') {
                let (l, s) = std::mem::take(&mut *p);
                emit(l, &s);
                p.0 = l;
            }
        });
    });
}
