//! `llm-tracer-host`: runs the llm-tracer filter on the project's proxy-wasm host.
//!
//! * `demo` (the default): the filter in a local gateway between a mock OpenAI upstream and a
//!   local Opik/Langfuse collector; prints what each backend received.
//! * `replay`: replays a HAR file through the filter and prints one JSON line per entry.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use llm_tracer_host::demo::{self, DemoOptions};
use llm_tracer_host::har::{self, ChunkMode, ReplayOptions};
use llm_tracer_host::{Personality, WasmModule};

const USAGE: &str = "\
llm-tracer-host: run the llm-tracer proxy-wasm filter as Kong or Envoy would

USAGE:
    llm-tracer-host [demo] [--personality kong|envoy]
    llm-tracer-host replay --config CFG --personality kong|envoy [--chunk N|random] FILE.har
    llm-tracer-host help

COMMANDS:
    demo     Start a mock OpenAI upstream, a local Opik + Langfuse collector and a gateway
             running the filter (Kong by default); send six chat completions through it and
             print what each backend received. Exits non-zero when a request lacks a trace
             or a payload is invalid.
    replay   Run every entry of a HAR 1.2 file through the filter configured by CFG (a JSON
             filter configuration). Exports go to a local collector, never to the configured
             backends. Prints one JSON line per entry; exits non-zero when the client or the
             upstream got different bytes, or the filter trapped.

OPTIONS:
    --personality kong|envoy   Gateway to emulate.
    --config CFG               Filter configuration file (replay).
    --chunk N|random           Cut response bodies into N-byte chunks, or random 1-64 byte
                               chunks seeded by the entry index (replay; default: whole).

The filter is loaded from $LLM_TRACER_WASM, else target/wasm32-wasip1/release/llm_tracer.wasm
(build it with `cargo build --release --target wasm32-wasip1 -p llm-tracer`).";

/// A parsed command line.
#[derive(Debug)]
enum Command {
    Help,
    Demo(DemoOptions),
    Replay {
        config: PathBuf,
        options: ReplayOptions,
    },
}

fn personality(value: &str) -> anyhow::Result<Personality> {
    match value.to_ascii_lowercase().as_str() {
        "kong" => Ok(Personality::Kong),
        "envoy" => Ok(Personality::Envoy),
        other => bail!("--personality must be kong or envoy, not {other:?}"),
    }
}

/// Takes the value of option `name`, given as `--name value` or `--name=value`.
fn option_value(
    arg: &str,
    name: &str,
    rest: &mut impl Iterator<Item = String>,
) -> anyhow::Result<Option<String>> {
    if arg == name {
        return rest
            .next()
            .map(Some)
            .ok_or_else(|| anyhow!("{name} needs a value"));
    }
    Ok(arg
        .strip_prefix(name)
        .and_then(|v| v.strip_prefix('='))
        .map(str::to_string))
}

fn parse_args(args: impl IntoIterator<Item = String>) -> anyhow::Result<Command> {
    let mut args = args.into_iter().peekable();
    let command = match args.peek().map(String::as_str) {
        Some("help" | "--help" | "-h") => return Ok(Command::Help),
        Some("demo") | Some("replay") => args.next().unwrap_or_default(),
        Some(other) if !other.starts_with('-') => bail!("unknown command {other:?}"),
        _ => "demo".to_string(),
    };
    let mut personality_opt = None;
    let mut config = None;
    let mut chunk = ChunkMode::Whole;
    let mut files = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(Command::Help);
        } else if let Some(v) = option_value(&arg, "--personality", &mut args)? {
            personality_opt = Some(personality(&v)?);
        } else if let Some(v) = option_value(&arg, "--config", &mut args)? {
            config = Some(PathBuf::from(v));
        } else if let Some(v) = option_value(&arg, "--chunk", &mut args)? {
            chunk = ChunkMode::parse(&v)?;
        } else if arg.starts_with('-') {
            bail!("unknown option {arg:?}");
        } else {
            files.push(PathBuf::from(arg));
        }
    }
    if command == "demo" {
        if config.is_some() || chunk != ChunkMode::Whole || !files.is_empty() {
            bail!("demo takes only --personality");
        }
        return Ok(Command::Demo(DemoOptions {
            personality: personality_opt.unwrap_or(Personality::Kong),
        }));
    }
    let config = config.ok_or_else(|| anyhow!("replay needs --config CFG"))?;
    let personality = personality_opt.ok_or_else(|| anyhow!("replay needs --personality"))?;
    let har = match files.as_slice() {
        [one] => one.clone(),
        [] => bail!("replay needs a HAR file"),
        _ => bail!("replay takes one HAR file"),
    };
    Ok(Command::Replay {
        config,
        options: ReplayOptions {
            config: Vec::new(),
            personality,
            chunk,
            har,
        },
    })
}

fn run(command: Command) -> anyhow::Result<bool> {
    match command {
        Command::Help => {
            println!("{USAGE}");
            Ok(true)
        }
        Command::Demo(options) => {
            let stdout = io::stdout();
            let report = demo::run(options, &mut stdout.lock())?;
            Ok(report.success)
        }
        Command::Replay {
            config,
            mut options,
        } => {
            options.config = std::fs::read(&config)
                .with_context(|| format!("cannot read {}", config.display()))?;
            let module = WasmModule::default_build()?;
            let stdout = io::stdout();
            let summary = har::replay(&module, &options, &mut stdout.lock())?;
            if let Some(why) = &summary.validation_unavailable {
                eprintln!("note: exports were not validated: {why}");
            }
            let failures = summary.failures();
            eprintln!(
                "replayed {} entries as {}: {}",
                summary.entries.len(),
                options.personality,
                if failures == 0 {
                    "traffic unchanged, no trap".to_string()
                } else {
                    format!("{failures} changed the traffic or trapped")
                }
            );
            Ok(failures == 0)
        }
    }
}

fn main() -> ExitCode {
    let command = match parse_args(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            let broken_pipe = e
                .chain()
                .filter_map(|c| c.downcast_ref::<io::Error>())
                .any(|io| io.kind() == io::ErrorKind::BrokenPipe);
            if !broken_pipe {
                let _ = io::stdout().flush();
                eprintln!("error: {e:#}");
            }
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Command> {
        parse_args(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn demo_is_the_default() {
        let Ok(Command::Demo(o)) = parse(&[]) else {
            panic!("demo expected");
        };
        assert_eq!(o.personality, Personality::Kong);
        let Ok(Command::Demo(o)) = parse(&["--personality=envoy"]) else {
            panic!("demo expected");
        };
        assert_eq!(o.personality, Personality::Envoy);
        assert!(matches!(parse(&["demo", "--help"]), Ok(Command::Help)));
        assert!(parse(&["demo", "x.har"]).is_err());
        assert!(parse(&["serve"]).is_err());
    }

    #[test]
    fn replay_arguments() {
        let Ok(Command::Replay { config, options }) = parse(&[
            "replay",
            "--config",
            "cfg.json",
            "--personality",
            "Envoy",
            "--chunk=random",
            "t.har",
        ]) else {
            panic!("replay expected");
        };
        assert_eq!(config, PathBuf::from("cfg.json"));
        assert_eq!(options.personality, Personality::Envoy);
        assert_eq!(options.chunk, ChunkMode::Random);
        assert_eq!(options.har, PathBuf::from("t.har"));
        assert!(parse(&["replay", "--personality", "kong", "t.har"]).is_err());
        assert!(parse(&["replay", "--config", "c", "t.har"]).is_err());
        assert!(parse(&["replay", "--config", "c", "--personality", "kong"]).is_err());
        assert!(parse(&[
            "replay",
            "--config",
            "c",
            "--personality",
            "kong",
            "--chunk",
            "0",
            "t"
        ])
        .is_err());
        assert!(parse(&["replay", "--config"]).is_err());
    }
}
