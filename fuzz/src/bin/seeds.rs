//! The seed corpus tool.
//!
//! * `seeds write <dir>`: writes the seeds made from `tests/fixtures` to `<dir>/<target>/`,
//!   where `cargo fuzz run <target>` finds them (`fuzz/corpus/<target>`).
//! * `seeds replay [<dir>…]`: runs every seed, and every file under `<dir>/<target>/`, through
//!   its target's harness — the same functions the fuzz targets call — and reports per target.
//!   Needs no nightly toolchain; a failing input is named and the exit status is 1.

use llm_tracer_fuzz::seeds::{self, Seed};
use llm_tracer_fuzz::TARGETS;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.split_first() {
        Some((cmd, [dir])) if cmd == "write" => write(Path::new(dir)),
        Some((cmd, dirs)) if cmd == "replay" => replay(dirs),
        _ => Err("usage: seeds write <dir> | seeds replay [<corpus dir>…]".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("seeds: {message}");
            ExitCode::FAILURE
        }
    }
}

fn generated() -> Result<Vec<Seed>, String> {
    seeds::all(&seeds::fixtures_dir()).map_err(|e| e.to_string())
}

fn write(dir: &Path) -> Result<(), String> {
    let seeds = generated()?;
    for s in &seeds {
        let target_dir = dir.join(s.target);
        std::fs::create_dir_all(&target_dir)
            .and_then(|()| std::fs::write(target_dir.join(&s.name), &s.data))
            .map_err(|e| format!("{}: {e}", target_dir.display()))?;
    }
    println!("wrote {} seeds under {}", seeds.len(), dir.display());
    Ok(())
}

/// Files under `<dir>/<target>/` of every given corpus directory.
fn corpus_files(dirs: &[String], target: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(Path::new(d).join(target)).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(dirs: &[String]) -> Result<(), String> {
    let seeds = generated()?;
    // Report failures ourselves, with the input's name, instead of the default hook's output.
    panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    for (target, harness) in TARGETS {
        let mut inputs: Vec<(String, Vec<u8>)> = seeds
            .iter()
            .filter(|s| s.target == target)
            .map(|s| (s.name.clone(), s.data.clone()))
            .collect();
        for path in corpus_files(dirs, target) {
            let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            inputs.push((path.display().to_string(), data));
        }
        for (name, data) in &inputs {
            if let Err(cause) = panic::catch_unwind(AssertUnwindSafe(|| harness(data))) {
                let message = cause
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| cause.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{target}: {name}: {message}"));
            }
        }
        println!("{target}: {} inputs replayed", inputs.len());
    }
    let _ = panic::take_hook();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} failing inputs:\n{}",
            failures.len(),
            failures.join("\n")
        ))
    }
}
