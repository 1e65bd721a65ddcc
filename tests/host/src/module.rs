//! [`WasmModule`]: a filter compiled once, shared by any number of hosts.
//!
//! Loading checks that the module is a proxy-wasm filter (it exports an ABI version marker) and
//! that every function it imports is implemented by this host, naming the first one that is not.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::{Config, Engine, ExternType, InstancePre, Linker, Module};

use crate::abi;
use crate::error::HostError;
use crate::state::HostState;

/// Environment variable naming the `.wasm` file [`WasmModule::default_build`] loads.
pub const WASM_ENV: &str = "LLM_TRACER_WASM";

/// A compiled filter. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct WasmModule {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    module: Module,
    pre: InstancePre<HostState>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for WasmModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmModule")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl WasmModule {
    /// Loads and compiles the module at `path`.
    ///
    /// # Errors
    /// [`HostError::Read`] when the file cannot be read, and the errors of
    /// [`WasmModule::from_bytes`].
    pub fn load(path: &Path) -> Result<Self, HostError> {
        let bytes = std::fs::read(path).map_err(|e| HostError::Read {
            path: path.to_path_buf(),
            kind: e.kind(),
        })?;
        Self::compile(&bytes, Some(path.to_path_buf()))
    }

    /// Compiles a module from Wasm binary or WAT text.
    ///
    /// # Errors
    /// [`HostError::Compile`] for invalid Wasm, [`HostError::UnsupportedAbi`] without an ABI
    /// marker export, [`HostError::UnknownImport`] / [`HostError::ImportSignature`] for imports
    /// this host does not provide.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, HostError> {
        Self::compile(bytes, None)
    }

    /// Loads the filter the workspace builds: `$LLM_TRACER_WASM` if set, else
    /// `<target dir>/wasm32-wasip1/release/llm_tracer.wasm` (`$CARGO_TARGET_DIR` or the
    /// workspace's `target/`).
    ///
    /// # Errors
    /// [`HostError::ModuleNotBuilt`] (whose message says how to build it) when the file does
    /// not exist; otherwise as [`WasmModule::load`].
    pub fn default_build() -> Result<Self, HostError> {
        let path = Self::default_path();
        if !path.exists() {
            return Err(HostError::ModuleNotBuilt { path });
        }
        Self::load(&path)
    }

    /// Where [`WasmModule::default_build`] looks: `$LLM_TRACER_WASM`, else the deployable
    /// `dist/llm_tracer.wasm` (`make wasm`: the compiler's output through `wasm-opt`) when it
    /// is at least as new as the compiler's output, else the compiler's output.
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os(WASM_ENV) {
            return PathBuf::from(p);
        }
        let compiled = Self::compiled_path();
        let dist = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("..")
            .join("dist")
            .join("llm_tracer.wasm");
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        match (modified(&dist), modified(&compiled)) {
            (Some(d), Some(c)) if d >= c => dist,
            (Some(_), None) => dist,
            _ => compiled,
        }
    }

    /// Where cargo puts the release `.wasm`.
    fn compiled_path() -> PathBuf {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("..")
                    .join("..")
                    .join("target")
            });
        target
            .join("wasm32-wasip1")
            .join("release")
            .join("llm_tracer.wasm")
    }

    /// The file it was loaded from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Every function import as `(module, name)`.
    pub fn imports(&self) -> Vec<(String, String)> {
        self.inner
            .module
            .imports()
            .map(|i| (i.module().to_string(), i.name().to_string()))
            .collect()
    }

    /// Every export name.
    pub fn exports(&self) -> Vec<String> {
        self.inner
            .module
            .exports()
            .map(|e| e.name().to_string())
            .collect()
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn pre(&self) -> &InstancePre<HostState> {
        &self.inner.pre
    }

    fn compile(bytes: &[u8], path: Option<PathBuf>) -> Result<Self, HostError> {
        let engine = Engine::new(&engine_config()).map_err(|e| HostError::Compile {
            message: e.to_string(),
        })?;
        let module = Module::new(&engine, bytes).map_err(|e| HostError::Compile {
            message: format!("{e:#}"),
        })?;
        let has_marker = module.exports().any(|e| {
            matches!(
                e.name(),
                "proxy_abi_version_0_2_1" | "proxy_abi_version_0_2_0"
            )
        });
        if !has_marker {
            return Err(HostError::UnsupportedAbi);
        }
        let mut linker = Linker::new(&engine);
        let implemented: BTreeSet<(String, String)> = abi::register_all(&mut linker);
        for import in module.imports() {
            let key = (import.module().to_string(), import.name().to_string());
            if !matches!(import.ty(), ExternType::Func(_)) || !implemented.contains(&key) {
                return Err(HostError::UnknownImport {
                    module: key.0,
                    name: key.1,
                });
            }
        }
        let pre = linker.instantiate_pre(&module).map_err(|e| {
            // Every name is implemented, so a failure here is a signature mismatch; find it.
            let message = format!("{e:#}");
            match module
                .imports()
                .find(|i| message.contains(&format!("{}::{}", i.module(), i.name())))
            {
                Some(i) => HostError::ImportSignature {
                    module: i.module().to_string(),
                    name: i.name().to_string(),
                },
                None => HostError::Instantiate { message },
            }
        })?;
        Ok(WasmModule {
            inner: Arc::new(Inner {
                engine,
                module,
                pre,
                path,
            }),
        })
    }
}

/// Environment variable that makes the engine write `/tmp/perf-<pid>.map` for the module's
/// compiled code (`LLM_TRACER_PERFMAP=1`), so `perf record` / `perf report` name the guest's
/// functions when profiling a bench.
pub const PERFMAP_ENV: &str = "LLM_TRACER_PERFMAP";

/// The engine's configuration: wasmtime's defaults, plus a perf map when asked for.
fn engine_config() -> Config {
    let mut config = Config::new();
    if std::env::var_os(PERFMAP_ENV).is_some_and(|v| v == "1") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}
