//! What an exchange cost: a dated table of list prices, resolution of the model names that
//! providers, clouds and gateways send to an entry of that table, prices from configuration,
//! and the cost of a [`Usage`] at a [`Price`]. No host calls.
//!
//! # The built-in table
//!
//! Prices are in USD per 1M tokens: the standard (pay-as-you-go, non-batch, global) list price
//! each provider published, as of [`PRICES_AS_OF`] (2026-11-28). A model that has since been
//! retired keeps the last price it was sold at, since traces of it still arrive. The same list
//! price is used whichever cloud serves a model (Bedrock, Vertex AI and Azure sell Claude,
//! Gemini and GPT models at the providers' list prices, before any regional premium).
//!
//! Each entry has an input price, an output price and, where the provider publishes them, a
//! cached-input (cache read) price, a cache-write price (Anthropic's cache creation; the
//! 5-minute rate, since [`Usage`] does not tell 5-minute from 1-hour writes) and a reasoning
//! price (only where thinking tokens are billed apart from output; no built-in model does so:
//! OpenAI, Anthropic, Google and DeepSeek bill them as output).
//!
//! Some prices are tiered; the table holds the base tier, so long prompts are under-priced:
//!
//! | Model | Base tier (used) | Higher tier (not applied) |
//! |---|---|---|
//! | Gemini 2.5 Pro | prompts ≤ 200k tokens: 1.25 / 10.00, cached 0.125 | > 200k: 2.50 / 15.00, cached 0.25 |
//! | Gemini 1.5 Pro, 1.5 Flash, 1.5 Flash-8B | prompts ≤ 128k tokens | > 128k: twice the rates |
//! | Claude Sonnet 4 and 4.5 | prompts ≤ 200k tokens: 3 / 15 | > 200k (1M context): 6 / 22.50 |
//! | Gemini 2.x | text, image and video input | audio input is dearer |
//! | Anthropic prompt caching | 5-minute cache writes (1.25 × input) | 1-hour writes (2 × input) |
//!
//! Entries worth knowing: `mistral-large`, `mistral-medium` and `mistral-small` are what the
//! `-latest` aliases serve (Mistral Large 3, Medium 3.5, Small 4), while the dated
//! `mistral-large-2407`/`-2411` and `mistral-medium-2505`/`-2508` keep their own, older prices;
//! `gpt-4o-2024-05-13` keeps its launch price; `deepseek-chat` and `deepseek-reasoner`, retired
//! on 2026-07-24, keep the DeepSeek-V4-Flash price they were billed at last. Variants that cost
//! more or less than their family (`o1-mini`, `o1-pro`, `o3-pro`, `gpt-5-pro`,
//! `claude-opus-4-5` and later, `gemini-1.5-flash-8b`) have entries of their own so that the
//! prefix match below does not price them as the family.
//!
//! # Model-name resolution
//!
//! [`PriceTable::lookup`] lowercases and trims the name, then tries in order:
//!
//! 1. the name as given ([`MatchKind::Exact`]);
//! 2. the name without its path, vendor and region prefixes (`openai/`, `models/`,
//!    `publishers/google/models/`, an ARN's `…/`, Bedrock's `us.anthropic.`), without a Vertex
//!    `@20241022` version, with Azure's `gpt-35-` read as `gpt-3.5-` and dots in Claude names
//!    read as dashes (`claude-3.5-sonnet`); then the same name after each removal of a trailing
//!    date or version: `-2024-08-06`, `-20241022`, `-v2:0`, `-v2`, `-001`, `-2411`, `-0125`,
//!    `-latest`, `-preview`/`-exp` and the numbers after them ([`MatchKind::Normalized`]);
//! 3. the longest entry that the name of step 2 starts with, followed by a `-`: `gpt-4o-mini-eu`
//!    is `gpt-4o-mini`, never `gpt-4o`; `gpt-5.1` is not `gpt-5` ([`MatchKind::Prefix`]).
//!
//! At every step a configured entry wins over a built-in one. A prefix match is a guess: a
//! variant priced apart from its family (`gpt-4o-realtime-preview`, `o4-mini-deep-research`)
//! gets the family's price unless configured. Names longer than [`MAX_MODEL_NAME_LEN`] bytes
//! are not looked up. Resolution never panics.
//!
//! # Configured prices
//!
//! The configuration key `pricing` maps model names to prices, which override built-in entries
//! of the same name and add new ones; their names go through the same resolution, so a dated
//! name of a configured model resolves to it:
//!
//! ```json
//! {"pricing": {
//!     "gpt-4o": {"input": 2.25, "output": 9.0, "cached_input": 1.1},
//!     "acme-llm": {"input": 0.5, "output": 1.5, "reasoning": 4.0}
//! }}
//! ```
//!
//! `input` and `output` are required; `cached_input`, `cache_write` and `reasoning` are optional
//! and fall back as [`cost`] describes. Names are case-insensitive.

use crate::config::ConfigError;
use crate::memo::LastKey;
use crate::record::Usage;
use serde_json::{Map, Value};

/// The date (ISO 8601) whose published list prices the built-in table holds.
pub const PRICES_AS_OF: &str = "2026-11-28";

/// The highest price configuration may set, in USD per 1M tokens; it keeps every cost finite.
pub const MAX_PRICE: f64 = 1_000_000.0;

/// Model names longer than this many bytes resolve to nothing.
pub const MAX_MODEL_NAME_LEN: usize = 256;

/// Prices of one model, in USD per 1M tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Price {
    /// Input (prompt) tokens not served from or written to a cache.
    pub input: f64,
    /// Output (completion) tokens.
    pub output: f64,
    /// Input tokens read from the provider's cache; `None` means the input price.
    pub cached_input: Option<f64>,
    /// Input tokens written to the provider's cache; `None` means the input price.
    pub cache_write: Option<f64>,
    /// Reasoning tokens; `None` means the output price.
    pub reasoning: Option<f64>,
}

/// A named price, as configuration gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceEntry {
    /// Model name, lowercased.
    pub name: String,
    /// Its price.
    pub price: Price,
}

/// Where a resolved price comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceSource {
    /// The built-in table.
    BuiltIn,
    /// The `pricing` configuration.
    Configured,
}

/// How a model name reached its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// The name, lowercased and trimmed, is the entry's name.
    Exact,
    /// The name is the entry's name once prefixes and dates or versions are removed.
    Normalized,
    /// The entry's name, followed by `-`, starts the normalized name.
    Prefix,
}

/// The entry a model name resolved to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolved<'a> {
    /// Name of the entry that matched.
    pub name: &'a str,
    /// Built-in or configured.
    pub source: PriceSource,
    /// How the model name reached the entry.
    pub matched: MatchKind,
    /// The entry's price.
    pub price: Price,
}

/// Cost of one exchange in USD, by kind of token.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Cost {
    /// Input tokens neither read from nor written to a cache.
    pub input: f64,
    /// Output tokens that are not reasoning tokens.
    pub output: f64,
    /// Input tokens read from a cache.
    pub cache_read: f64,
    /// Input tokens written to a cache.
    pub cache_write: f64,
    /// Reasoning tokens.
    pub reasoning: f64,
    /// The sum of the five parts.
    pub total: f64,
}

/// The last model name a [`PriceTable`] resolved, and to what (see
/// [`PriceTable::lookup_memo`]). Only valid with the table that filled it. A name too long to
/// have a price ([`MAX_MODEL_NAME_LEN`]) is not kept: it can be as long as a body.
#[derive(Debug)]
pub struct PriceMemo {
    last: LastKey<Option<Found>>,
}

impl Default for PriceMemo {
    fn default() -> Self {
        PriceMemo {
            last: LastKey::new(MAX_MODEL_NAME_LEN),
        }
    }
}

/// A [`Resolved`] kept in a [`PriceMemo`].
#[derive(Debug)]
struct Found {
    name: String,
    source: PriceSource,
    matched: MatchKind,
    price: Price,
}

/// Built-in prices, with configured prices taking precedence. `Default` holds the built-in
/// table only.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PriceTable {
    configured: Vec<PriceEntry>,
}

impl PriceTable {
    /// The built-in table extended and overridden by `configured` (names are lowercased and
    /// trimmed; when two entries share a name, the first wins).
    pub fn new(configured: Vec<PriceEntry>) -> Self {
        let configured = configured
            .into_iter()
            .map(|entry| PriceEntry {
                name: entry.name.trim().to_ascii_lowercase(),
                price: entry.price,
            })
            .collect();
        PriceTable { configured }
    }

    /// The entry `model` resolves to (see the module documentation), or `None` when no entry
    /// fits.
    pub fn lookup(&self, model: &str) -> Option<Resolved<'_>> {
        let raw = model.trim();
        if raw.is_empty() || raw.len() > MAX_MODEL_NAME_LEN {
            return None;
        }
        let raw = raw.to_ascii_lowercase();
        if let Some(found) = self.exact(&raw, MatchKind::Exact) {
            return Some(found);
        }
        let base = base_name(&raw);
        let mut name = base.as_str();
        loop {
            if let Some(found) = self.exact(name, MatchKind::Normalized) {
                return Some(found);
            }
            match strip_version(name) {
                Some(shorter) => name = shorter,
                None => break,
            }
        }
        self.longest_prefix(&base)
    }

    /// [`PriceTable::lookup`], remembering the last model name in `memo`: a gateway route
    /// mostly serves one model, and its name is then resolved once, not on every exchange.
    pub fn lookup_memo<'m>(&self, model: &str, memo: &'m mut PriceMemo) -> Option<Resolved<'m>> {
        let found = memo.last.get(model, |model| {
            self.lookup(model).map(|r| Found {
                name: r.name.to_string(),
                source: r.source,
                matched: r.matched,
                price: r.price,
            })
        });
        found.as_ref().map(|f| Resolved {
            name: &f.name,
            source: f.source,
            matched: f.matched,
            price: f.price,
        })
    }

    fn exact(&self, name: &str, matched: MatchKind) -> Option<Resolved<'_>> {
        if let Some(entry) = self.configured.iter().find(|e| e.name == name) {
            return Some(Resolved {
                name: &entry.name,
                source: PriceSource::Configured,
                matched,
                price: entry.price,
            });
        }
        BUILT_IN
            .iter()
            .find(|row| row.name == name)
            .map(|row| row.resolved(matched))
    }

    fn longest_prefix(&self, name: &str) -> Option<Resolved<'_>> {
        let configured = self
            .configured
            .iter()
            .filter(|e| starts_family(name, &e.name))
            .map(|e| Resolved {
                name: &e.name,
                source: PriceSource::Configured,
                matched: MatchKind::Prefix,
                price: e.price,
            });
        let built_in = BUILT_IN
            .iter()
            .filter(|row| starts_family(name, row.name))
            .map(|row| row.resolved(MatchKind::Prefix));
        // Configured entries come first and win ties.
        configured
            .chain(built_in)
            .fold(None, |best, candidate| match best {
                Some(b) if b.name.len() >= candidate.name.len() => Some(b),
                _ => Some(candidate),
            })
    }
}

/// Whether `family`, followed by `-`, starts `name`.
fn starts_family(name: &str, family: &str) -> bool {
    !family.is_empty()
        && name
            .strip_prefix(family)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// The model name without path, vendor and region prefixes and Vertex `@` versions, with
/// provider spellings aligned to the table's.
fn base_name(raw: &str) -> String {
    let last = raw.rsplit('/').next().unwrap_or(raw);
    let mut name = last.split('@').next().unwrap_or(last);
    // Bedrock: `us.anthropic.claude-…`, `mistral.mistral-large-…`. Segments with digits
    // (`gpt-4.1`, `gemini-2.5-pro`) are part of the model name.
    while let Some((head, rest)) = name.split_once('.') {
        let is_prefix = !head.is_empty()
            && !rest.is_empty()
            && head
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'_');
        if !is_prefix {
            break;
        }
        name = rest;
    }
    if let Some(rest) = name.strip_prefix("gpt-35-") {
        return format!("gpt-3.5-{rest}");
    }
    if name.starts_with("claude") {
        return name.replace('.', "-");
    }
    name.to_string()
}

/// `name` without its last date or version suffix, if it has one.
fn strip_version(name: &str) -> Option<&str> {
    let (head, last) = name.rsplit_once('-')?;
    let dated = is_digits(last) && matches!(last.len(), 3 | 4 | 8);
    if last == "latest" || dated || is_version_tag(last) {
        return Some(head);
    }
    strip_date(name).or_else(|| strip_preview(name))
}

/// `name` without a trailing `-YYYY-MM-DD`.
fn strip_date(name: &str) -> Option<&str> {
    let (rest, day) = name.rsplit_once('-')?;
    let (rest, month) = rest.rsplit_once('-')?;
    let (head, year) = rest.rsplit_once('-')?;
    let date = [(year, 4), (month, 2), (day, 2)]
        .iter()
        .all(|(part, len)| part.len() == *len && is_digits(part));
    date.then_some(head)
}

/// `name` without a trailing `-preview` or `-exp` and the numbers after it
/// (`-preview-05-06`, `-preview-09-2025`, `-exp-0827`).
fn strip_preview(name: &str) -> Option<&str> {
    let mut rest = name;
    loop {
        let (head, segment) = rest.rsplit_once('-')?;
        if segment == "preview" || segment == "exp" {
            return Some(head);
        }
        if !is_digits(segment) {
            return None;
        }
        rest = head;
    }
}

/// `v2`, `v1:0`, `v1:0:200k`: Bedrock and Vertex model versions.
fn is_version_tag(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .and_then(|rest| rest.split(':').next())
        .is_some_and(is_digits)
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses the `pricing` configuration key: an object keyed by model name whose values are
/// objects with `input` and `output` (required) and `cached_input`, `cache_write` and
/// `reasoning` (optional), each a non-negative number of USD per 1M tokens. `null` means no
/// prices; a `null` optional price means the fallback.
///
/// # Errors
/// A [`ConfigError`] naming the offending key path (`pricing.my-model.input`): an unknown key,
/// a value of the wrong type, a missing `input` or `output`, a negative, non-finite or too
/// large price (over [`MAX_PRICE`]), a blank model name or two names that differ only in case.
pub fn parse_overrides(value: &Value) -> Result<Vec<PriceEntry>, ConfigError> {
    if value.is_null() {
        return Ok(Vec::new());
    }
    let models = value.as_object().ok_or_else(|| ConfigError::WrongType {
        path: "pricing".into(),
        expected: "an object keyed by model name",
    })?;
    let mut entries: Vec<PriceEntry> = Vec::with_capacity(models.len());
    for (model, spec) in models {
        let path = format!("pricing.{model}");
        let name = model.trim().to_ascii_lowercase();
        if name.is_empty() {
            return Err(ConfigError::Invalid {
                path: "pricing".into(),
                reason: "a model name is blank",
            });
        }
        if entries.iter().any(|e| e.name == name) {
            return Err(ConfigError::Invalid {
                path,
                reason: "another model has the same name (names are case-insensitive)",
            });
        }
        let price = parse_price(spec, &path)?;
        entries.push(PriceEntry { name, price });
    }
    Ok(entries)
}

const PRICE_KEYS: &[&str] = &[
    "input",
    "output",
    "cached_input",
    "cache_write",
    "reasoning",
];

fn parse_price(spec: &Value, path: &str) -> Result<Price, ConfigError> {
    let fields = spec.as_object().ok_or_else(|| ConfigError::WrongType {
        path: path.to_string(),
        expected: "an object with input and output prices",
    })?;
    if let Some(key) = fields.keys().find(|k| !PRICE_KEYS.contains(&k.as_str())) {
        return Err(ConfigError::UnknownKey {
            path: format!("{path}.{key}"),
        });
    }
    let required = |key: &str| {
        parse_rate(fields, path, key)?.ok_or_else(|| ConfigError::Missing {
            path: format!("{path}.{key}"),
        })
    };
    Ok(Price {
        input: required("input")?,
        output: required("output")?,
        cached_input: parse_rate(fields, path, "cached_input")?,
        cache_write: parse_rate(fields, path, "cache_write")?,
        reasoning: parse_rate(fields, path, "reasoning")?,
    })
}

fn parse_rate(
    fields: &Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<f64>, ConfigError> {
    let Some(value) = fields.get(key).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let path = || format!("{path}.{key}");
    let usd = value.as_f64().ok_or_else(|| ConfigError::WrongType {
        path: path(),
        expected: "a number (USD per 1M tokens)",
    })?;
    let reason = if !usd.is_finite() {
        "must be a finite number"
    } else if usd < 0.0 {
        "must not be negative"
    } else if usd > MAX_PRICE {
        "must be at most 1000000 (USD per 1M tokens)"
    } else {
        return Ok(Some(usd));
    };
    Err(ConfigError::Invalid {
        path: path(),
        reason,
    })
}

/// The cost of `usage` at `price`, or `None` when neither input nor output tokens are known.
///
/// Counts follow [`Usage`]: `input` includes cached and cache-creation tokens, `output`
/// includes reasoning tokens. The parts are:
///
/// - `input`: uncached input, `input − cached_input − cache_creation` (0 rather than
///   negative), at the input price;
/// - `cache_read`: `cached_input` at the cached-input price, else the input price;
/// - `cache_write`: `cache_creation` at the cache-write price, else the input price;
/// - `output`: `output − reasoning` (0 rather than negative) at the output price;
/// - `reasoning`: `reasoning` at the reasoning price, else the output price;
/// - `total`: their sum.
///
/// A count the provider did not report counts as 0. A rate that is not a finite, non-negative
/// number counts as 0, so no part is ever negative or NaN.
pub fn cost(usage: &Usage, price: &Price) -> Option<Cost> {
    if usage.input.is_none() && usage.output.is_none() {
        return None;
    }
    let cached = usage.cached_input.unwrap_or(0);
    let written = usage.cache_creation.unwrap_or(0);
    let uncached = usage
        .input
        .unwrap_or(0)
        .saturating_sub(cached)
        .saturating_sub(written);
    let reasoning = usage.reasoning.unwrap_or(0);
    let visible = usage.output.unwrap_or(0).saturating_sub(reasoning);

    let input_rate = rate(price.input);
    let output_rate = rate(price.output);
    let or = |specific: Option<f64>, fallback: f64| specific.map_or(fallback, rate);
    let mut parts = Cost {
        input: usd(uncached, input_rate),
        output: usd(visible, output_rate),
        cache_read: usd(cached, or(price.cached_input, input_rate)),
        cache_write: usd(written, or(price.cache_write, input_rate)),
        reasoning: usd(reasoning, or(price.reasoning, output_rate)),
        total: 0.0,
    };
    parts.total =
        parts.input + parts.output + parts.cache_read + parts.cache_write + parts.reasoning;
    Some(parts)
}

/// A rate fit for arithmetic: finite and non-negative, else 0.
fn rate(usd_per_million: f64) -> f64 {
    if usd_per_million.is_finite() && usd_per_million > 0.0 {
        usd_per_million
    } else {
        0.0
    }
}

fn usd(tokens: u64, usd_per_million: f64) -> f64 {
    tokens as f64 * usd_per_million / 1_000_000.0
}

/// A rate the provider does not publish.
const UNSET: u32 = u32::MAX;

/// One built-in entry. Rates are in millionths of a USD per 1M tokens, so every list price is
/// exact and a row takes 28 bytes on wasm32.
struct Row {
    name: &'static str,
    input: u32,
    output: u32,
    cached: u32,
    write: u32,
    reasoning: u32,
}

impl Row {
    fn price(&self) -> Price {
        let usd = |micros: u32| f64::from(micros) / 1_000_000.0;
        let optional = |micros: u32| (micros != UNSET).then(|| usd(micros));
        Price {
            input: usd(self.input),
            output: usd(self.output),
            cached_input: optional(self.cached),
            cache_write: optional(self.write),
            reasoning: optional(self.reasoning),
        }
    }

    fn resolved(&self, matched: MatchKind) -> Resolved<'static> {
        Resolved {
            name: self.name,
            source: PriceSource::BuiltIn,
            matched,
            price: self.price(),
        }
    }
}

/// USD to millionths of a USD, rounded.
const fn micros(usd: f64) -> u32 {
    (usd * 1_000_000.0 + 0.5) as u32
}

/// A model without cache pricing.
const fn plain(name: &'static str, input: f64, output: f64) -> Row {
    Row {
        name,
        input: micros(input),
        output: micros(output),
        cached: UNSET,
        write: UNSET,
        reasoning: UNSET,
    }
}

/// A model with a cached-input price and no cache-write price (OpenAI, Google, DeepSeek).
const fn cached(name: &'static str, input: f64, output: f64, cache_read: f64) -> Row {
    Row {
        cached: micros(cache_read),
        ..plain(name, input, output)
    }
}

/// A model with cache-read and 5-minute cache-write prices (Anthropic).
const fn caching(name: &'static str, input: f64, output: f64, read: f64, write: f64) -> Row {
    Row {
        cached: micros(read),
        write: micros(write),
        ..plain(name, input, output)
    }
}

/// USD per 1M tokens: input, output, cache read, cache write.
static BUILT_IN: &[Row] = &[
    // OpenAI.
    cached("gpt-4o", 2.50, 10.00, 1.25),
    plain("gpt-4o-2024-05-13", 5.00, 15.00),
    cached("gpt-4o-mini", 0.15, 0.60, 0.075),
    cached("gpt-4.1", 2.00, 8.00, 0.50),
    cached("gpt-4.1-mini", 0.40, 1.60, 0.10),
    cached("gpt-4.1-nano", 0.10, 0.40, 0.025),
    cached("o1", 15.00, 60.00, 7.50),
    cached("o1-mini", 1.10, 4.40, 0.55),
    plain("o1-pro", 150.00, 600.00),
    cached("o3", 2.00, 8.00, 0.50),
    cached("o3-mini", 1.10, 4.40, 0.55),
    plain("o3-pro", 20.00, 80.00),
    cached("o4-mini", 1.10, 4.40, 0.275),
    cached("gpt-5", 1.25, 10.00, 0.125),
    cached("gpt-5-mini", 0.25, 2.00, 0.025),
    cached("gpt-5-nano", 0.05, 0.40, 0.005),
    plain("gpt-5-pro", 15.00, 120.00),
    plain("gpt-3.5-turbo", 0.50, 1.50),
    plain("text-embedding-3-small", 0.02, 0.0),
    plain("text-embedding-3-large", 0.13, 0.0),
    plain("text-embedding-ada-002", 0.10, 0.0),
    // Anthropic.
    caching("claude-3-haiku", 0.25, 1.25, 0.03, 0.30),
    caching("claude-3-opus", 15.00, 75.00, 1.50, 18.75),
    caching("claude-3-5-haiku", 0.80, 4.00, 0.08, 1.00),
    caching("claude-3-5-sonnet", 3.00, 15.00, 0.30, 3.75),
    caching("claude-3-7-sonnet", 3.00, 15.00, 0.30, 3.75),
    caching("claude-sonnet-4", 3.00, 15.00, 0.30, 3.75),
    caching("claude-sonnet-4-5", 3.00, 15.00, 0.30, 3.75),
    caching("claude-haiku-4-5", 1.00, 5.00, 0.10, 1.25),
    caching("claude-opus-4", 15.00, 75.00, 1.50, 18.75),
    caching("claude-opus-4-1", 15.00, 75.00, 1.50, 18.75),
    caching("claude-opus-4-5", 5.00, 25.00, 0.50, 6.25),
    caching("claude-opus-4-6", 5.00, 25.00, 0.50, 6.25),
    caching("claude-opus-4-7", 5.00, 25.00, 0.50, 6.25),
    caching("claude-opus-4-8", 5.00, 25.00, 0.50, 6.25),
    // Google (base tiers, see the module documentation).
    cached("gemini-1.5-pro", 1.25, 5.00, 0.3125),
    cached("gemini-1.5-flash", 0.075, 0.30, 0.01875),
    cached("gemini-1.5-flash-8b", 0.0375, 0.15, 0.01),
    cached("gemini-2.0-flash", 0.10, 0.40, 0.025),
    plain("gemini-2.0-flash-lite", 0.075, 0.30),
    cached("gemini-2.5-pro", 1.25, 10.00, 0.125),
    cached("gemini-2.5-flash", 0.30, 2.50, 0.03),
    cached("gemini-2.5-flash-lite", 0.10, 0.40, 0.01),
    // Mistral: the undated names are what `-latest` serves.
    plain("mistral-large", 0.50, 1.50),
    plain("mistral-large-2407", 2.00, 6.00),
    plain("mistral-large-2411", 2.00, 6.00),
    plain("mistral-medium", 1.50, 7.50),
    plain("mistral-medium-2505", 0.40, 2.00),
    plain("mistral-medium-2508", 0.40, 2.00),
    plain("mistral-small", 0.10, 0.30),
    plain("codestral", 0.30, 0.90),
    plain("mistral-embed", 0.10, 0.0),
    // DeepSeek.
    cached("deepseek-chat", 0.14, 0.28, 0.0028),
    cached("deepseek-reasoner", 0.14, 0.28, 0.0028),
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() < 1e-12
    }

    fn assert_cost(actual: &Cost, expected: [f64; 6]) {
        let parts = [
            actual.input,
            actual.output,
            actual.cache_read,
            actual.cache_write,
            actual.reasoning,
            actual.total,
        ];
        for (i, (a, e)) in parts.iter().zip(expected).enumerate() {
            assert!(close(*a, e), "part {i}: {a} != {e} in {actual:?}");
        }
    }

    fn builtin(model: &str) -> Price {
        PriceTable::default()
            .lookup(model)
            .expect("built-in model")
            .price
    }

    fn usage(input: Option<u64>, output: Option<u64>) -> Usage {
        Usage {
            input,
            output,
            ..Usage::default()
        }
    }

    #[test]
    fn openai_cost_with_cached_input() {
        // gpt-4o: 2.50 in, 10.00 out, 1.25 cached, per 1M tokens.
        let u = Usage {
            cached_input: Some(4_000),
            ..usage(Some(10_000), Some(1_000))
        };
        let c = cost(&u, &builtin("gpt-4o-2024-08-06")).expect("cost");
        // uncached 10_000 − 4_000 = 6_000 × 2.50 / 1e6 = 0.015
        // cached    4_000 × 1.25 / 1e6 = 0.005
        // output    1_000 × 10.00 / 1e6 = 0.010
        // total     0.015 + 0.005 + 0.010 = 0.030
        assert_cost(&c, [0.015, 0.010, 0.005, 0.0, 0.0, 0.030]);
    }

    #[test]
    fn anthropic_cost_with_cache_reads_and_writes() {
        // claude-sonnet-4-5: 3.00 in, 15.00 out, 0.30 cache read, 3.75 cache write.
        let u = Usage {
            cached_input: Some(30_000),
            cache_creation: Some(10_000),
            ..usage(Some(50_000), Some(2_000))
        };
        let c = cost(&u, &builtin("claude-sonnet-4-5-20250929")).expect("cost");
        // uncached 50_000 − 30_000 − 10_000 = 10_000 × 3.00 / 1e6 = 0.0300
        // read     30_000 × 0.30 / 1e6 = 0.0090
        // write    10_000 × 3.75 / 1e6 = 0.0375
        // output    2_000 × 15.00 / 1e6 = 0.0300
        // total    0.0300 + 0.0090 + 0.0375 + 0.0300 = 0.1065
        assert_cost(&c, [0.03, 0.03, 0.009, 0.0375, 0.0, 0.1065]);
    }

    #[test]
    fn reasoning_priced_apart_when_given() {
        let price = Price {
            input: 1.0,
            output: 2.0,
            reasoning: Some(8.0),
            ..Price::default()
        };
        let u = Usage {
            reasoning: Some(600),
            ..usage(Some(500), Some(1_000))
        };
        let c = cost(&u, &price).expect("cost");
        // input      500 × 1 / 1e6 = 0.0005
        // visible    1_000 − 600 = 400 × 2 / 1e6 = 0.0008
        // reasoning  600 × 8 / 1e6 = 0.0048
        // total      0.0005 + 0.0008 + 0.0048 = 0.0061
        assert_cost(&c, [0.0005, 0.0008, 0.0, 0.0, 0.0048, 0.0061]);
    }

    #[test]
    fn missing_rates_fall_back_to_input_and_output() {
        let price = Price {
            input: 2.0,
            output: 4.0,
            ..Price::default()
        };
        let u = Usage {
            input: Some(1_000),
            cached_input: Some(100),
            cache_creation: Some(50),
            output: Some(500),
            reasoning: Some(300),
            total: None,
        };
        let c = cost(&u, &price).expect("cost");
        // uncached 1_000 − 100 − 50 = 850 × 2 / 1e6 = 0.0017
        // read     100 × 2 / 1e6 = 0.0002; write 50 × 2 / 1e6 = 0.0001
        // visible  500 − 300 = 200 × 4 / 1e6 = 0.0008; reasoning 300 × 4 / 1e6 = 0.0012
        // total    1_000 × 2 / 1e6 + 500 × 4 / 1e6 = 0.002 + 0.002 = 0.004
        assert_cost(&c, [0.0017, 0.0008, 0.0002, 0.0001, 0.0012, 0.004]);
    }

    #[test]
    fn inconsistent_counts_saturate() {
        // Cached and cache-creation counts larger than the input: nothing is left uncached,
        // and the cached tokens are still priced as reported.
        let u = Usage {
            cached_input: Some(80),
            cache_creation: Some(50),
            reasoning: Some(30),
            ..usage(Some(100), Some(10))
        };
        let price = Price {
            input: 10.0,
            output: 20.0,
            cached_input: Some(1.0),
            cache_write: Some(12.5),
            reasoning: None,
        };
        let c = cost(&u, &price).expect("cost");
        // uncached 100 − 80 − 50 → 0; read 80 × 1 / 1e6 = 0.00008
        // write    50 × 12.5 / 1e6 = 0.000625
        // visible  10 − 30 → 0; reasoning 30 × 20 / 1e6 = 0.0006
        // total    0.00008 + 0.000625 + 0.0006 = 0.001305
        assert_cost(&c, [0.0, 0.0, 0.00008, 0.000625, 0.0006, 0.001305]);
    }

    #[test]
    fn unknown_counts() {
        let price = builtin("gpt-4o-mini");
        assert_eq!(cost(&Usage::default(), &price), None);
        let only_cached = Usage {
            cached_input: Some(10),
            ..Usage::default()
        };
        assert_eq!(cost(&only_cached, &price), None);
        // gpt-4o-mini output 0.60: 2_000 × 0.60 / 1e6 = 0.0012
        let c = cost(&usage(None, Some(2_000)), &price).expect("output known");
        assert_cost(&c, [0.0, 0.0012, 0.0, 0.0, 0.0, 0.0012]);
        // Embeddings: input only. text-embedding-3-small 0.02: 1_000_000 × 0.02 / 1e6 = 0.02
        let e = cost(
            &usage(Some(1_000_000), None),
            &builtin("text-embedding-3-small"),
        )
        .expect("input known");
        assert_cost(&e, [0.02, 0.0, 0.0, 0.0, 0.0, 0.02]);
    }

    #[test]
    fn invalid_rates_count_as_zero() {
        let price = Price {
            input: f64::NAN,
            output: -3.0,
            cached_input: Some(f64::INFINITY),
            cache_write: None,
            reasoning: None,
        };
        let u = Usage {
            cached_input: Some(5),
            ..usage(Some(10), Some(10))
        };
        let c = cost(&u, &price).expect("cost");
        assert_cost(&c, [0.0; 6]);
    }

    #[test]
    fn resolution_table() {
        use MatchKind::{Exact, Normalized, Prefix};
        let cases: &[(&str, &str, MatchKind)] = &[
            ("gpt-4o", "gpt-4o", Exact),
            ("GPT-4o ", "gpt-4o", Exact),
            ("gpt-4o-2024-08-06", "gpt-4o", Normalized),
            ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13", Exact),
            ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", Normalized),
            ("openai/gpt-4o-mini", "gpt-4o-mini", Normalized),
            ("gpt-4o-mini-search-preview-2025-03-11", "gpt-4o-mini", Prefix),
            ("gpt-4.1-2025-04-14", "gpt-4.1", Normalized),
            ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano", Normalized),
            ("o1-preview", "o1", Normalized),
            ("o1-mini-2024-09-12", "o1-mini", Normalized),
            ("o3-mini-2025-01-31", "o3-mini", Normalized),
            ("o4-mini-2025-04-16", "o4-mini", Normalized),
            ("gpt-5-mini-2025-08-07", "gpt-5-mini", Normalized),
            ("gpt-5-chat-latest", "gpt-5", Prefix),
            ("gpt-3.5-turbo-0125", "gpt-3.5-turbo", Normalized),
            ("text-embedding-ada-002", "text-embedding-ada-002", Exact),
            // Azure deployments and model names.
            ("gpt-35-turbo", "gpt-3.5-turbo", Normalized),
            ("gpt-35-turbo-0125", "gpt-3.5-turbo", Normalized),
            ("azure/gpt-4.1-mini", "gpt-4.1-mini", Normalized),
            ("gpt-4o-mini-eastus", "gpt-4o-mini", Prefix),
            ("gpt-4o-prod", "gpt-4o", Prefix),
            // Anthropic, Bedrock, Vertex AI, OpenRouter.
            ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet", Normalized),
            ("claude-3-5-sonnet-latest", "claude-3-5-sonnet", Normalized),
            ("claude-opus-4-1-20250805", "claude-opus-4-1", Normalized),
            ("claude-opus-4-5-20251101", "claude-opus-4-5", Normalized),
            ("claude-opus-4-0", "claude-opus-4", Prefix),
            ("claude-haiku-4-5-20251001", "claude-haiku-4-5", Normalized),
            (
                "anthropic.claude-3-5-sonnet-20241022-v2:0",
                "claude-3-5-sonnet",
                Normalized,
            ),
            (
                "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
                "claude-3-7-sonnet",
                Normalized,
            ),
            (
                "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "claude-sonnet-4-5",
                Normalized,
            ),
            (
                "arn:aws:bedrock:us-east-1:111122223333:inference-profile/eu.anthropic.claude-3-haiku-20240307-v1:0:200k",
                "claude-3-haiku",
                Normalized,
            ),
            ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet", Normalized),
            ("claude-sonnet-4@20250514", "claude-sonnet-4", Normalized),
            (
                "projects/p/locations/us-east5/publishers/anthropic/models/claude-3-5-haiku@20241022",
                "claude-3-5-haiku",
                Normalized,
            ),
            ("anthropic/claude-3.5-sonnet", "claude-3-5-sonnet", Normalized),
            // Google.
            ("models/gemini-1.5-pro", "gemini-1.5-pro", Normalized),
            ("gemini-1.5-pro-002", "gemini-1.5-pro", Normalized),
            ("gemini-1.5-flash-8b-001", "gemini-1.5-flash-8b", Normalized),
            ("gemini-2.0-flash-001", "gemini-2.0-flash", Normalized),
            (
                "gemini-2.0-flash-lite-preview-02-05",
                "gemini-2.0-flash-lite",
                Normalized,
            ),
            (
                "publishers/google/models/gemini-2.5-pro-preview-05-06",
                "gemini-2.5-pro",
                Normalized,
            ),
            (
                "gemini-2.5-flash-preview-09-2025",
                "gemini-2.5-flash",
                Normalized,
            ),
            ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite", Exact),
            // Mistral and DeepSeek.
            ("mistral-large-latest", "mistral-large", Normalized),
            ("mistral-large-2411", "mistral-large-2411", Exact),
            ("mistral-large-2512", "mistral-large", Normalized),
            ("mistral.mistral-large-2407-v1:0", "mistral-large-2407", Normalized),
            ("mistral-medium-2508", "mistral-medium-2508", Exact),
            ("mistral-small-2506", "mistral-small", Normalized),
            ("codestral-2508", "codestral", Normalized),
            ("mistral-embed", "mistral-embed", Exact),
            ("deepseek/deepseek-reasoner", "deepseek-reasoner", Normalized),
        ];
        let table = PriceTable::default();
        for (model, name, matched) in cases {
            let found = table.lookup(model);
            let found = found.unwrap_or_else(|| panic!("{model} did not resolve"));
            assert_eq!((found.name, found.matched), (*name, *matched), "{model}");
            assert_eq!(found.source, PriceSource::BuiltIn, "{model}");
        }
    }

    #[test]
    fn unknown_names_resolve_to_nothing() {
        let table = PriceTable::default();
        for model in [
            "",
            "   ",
            "my-deployment",
            "llama3:8b",
            "qwen2.5-72b-instruct",
            "gpt-4o:free",
            "gpt-5.1",
            "gpt-4-0613",
            "chatgpt-4o-latest",
            "claude-2.1",
            "text-davinci-003",
            "ft:gpt-4o-mini-2024-07-18:acme::abc123",
            "amazon.nova-pro-v1:0",
            "meta.llama3-1-70b-instruct-v1:0",
            "gemini-exp-1206",
            "-latest",
            "latest",
            "a.b.c",
            "anthropic.",
            "/",
            "@",
            "models/",
        ] {
            assert_eq!(table.lookup(model), None, "{model:?}");
        }
        let long = format!("gpt-4o-{}", "x".repeat(MAX_MODEL_NAME_LEN));
        assert_eq!(table.lookup(&long), None);
    }

    #[test]
    fn family_prefix_needs_a_dash_and_prefers_the_longest() {
        let table = PriceTable::default();
        let mini = table.lookup("gpt-4o-mini-transcribe-x").expect("prefix");
        assert_eq!(mini.name, "gpt-4o-mini");
        assert_eq!(mini.price, builtin("gpt-4o-mini"));
        assert_ne!(mini.price, builtin("gpt-4o"));
        assert_eq!(table.lookup("gpt-4omni"), None);
        assert_eq!(table.lookup("o1x"), None);
    }

    #[test]
    fn built_in_table_is_consistent() {
        let table = PriceTable::default();
        for (i, row) in BUILT_IN.iter().enumerate() {
            assert_eq!(row.name, row.name.trim().to_ascii_lowercase());
            assert!(
                BUILT_IN[..i].iter().all(|other| other.name != row.name),
                "duplicate {}",
                row.name
            );
            let found = table.lookup(row.name).expect("own name");
            assert_eq!((found.name, found.matched), (row.name, MatchKind::Exact));
            let p = found.price;
            let rates = [Some(p.input), Some(p.output), p.cached_input, p.cache_write];
            for r in rates.into_iter().flatten() {
                assert!(
                    r.is_finite() && (0.0..=MAX_PRICE).contains(&r),
                    "{}",
                    row.name
                );
            }
            // A cache read never costs more than a plain input token.
            if let Some(read) = p.cached_input {
                assert!(read <= p.input, "{}", row.name);
            }
        }
        // Prices convert exactly: 0.0028 USD is 2_800 millionths.
        assert_eq!(builtin("deepseek-chat").cached_input, Some(0.0028));
        assert_eq!(builtin("gemini-1.5-flash").cached_input, Some(0.01875));
    }

    #[test]
    fn configured_prices_win_and_extend() {
        let gpt = Price {
            input: 2.25,
            output: 9.0,
            ..Price::default()
        };
        let acme = Price {
            input: 0.5,
            output: 1.5,
            reasoning: Some(4.0),
            ..Price::default()
        };
        let table = PriceTable::new(vec![
            PriceEntry {
                name: "gpt-4o".into(),
                price: gpt,
            },
            PriceEntry {
                name: " ACME-LLM ".into(),
                price: acme,
            },
        ]);
        for (model, name, price) in [
            ("gpt-4o", "gpt-4o", gpt),
            ("gpt-4o-2024-08-06", "gpt-4o", gpt),
            ("azure/gpt-4o", "gpt-4o", gpt),
            ("acme-llm", "acme-llm", acme),
            ("Acme-LLM-latest", "acme-llm", acme),
            ("vendor/acme-llm-v2", "acme-llm", acme),
            ("acme-llm-large", "acme-llm", acme),
        ] {
            let found = table.lookup(model).expect("resolves");
            assert_eq!(
                (found.name, found.source, found.price),
                (name, PriceSource::Configured, price),
                "{model}"
            );
        }
        // A configured family does not capture a more specific built-in entry.
        let mini = table.lookup("gpt-4o-mini-2024-07-18").expect("built-in");
        assert_eq!(
            (mini.name, mini.source),
            ("gpt-4o-mini", PriceSource::BuiltIn)
        );
        // Equal-length prefixes: the configured entry wins.
        let search = table.lookup("gpt-4o-search-preview").expect("prefix");
        assert_eq!(
            (search.name, search.source, search.matched),
            ("gpt-4o", PriceSource::Configured, MatchKind::Prefix)
        );
        // Without configuration the built-in price applies.
        let default = PriceTable::default();
        let builtin_gpt = default.lookup("gpt-4o").expect("built-in");
        assert_eq!(builtin_gpt.source, PriceSource::BuiltIn);
        assert_ne!(builtin_gpt.price, gpt);
    }

    #[test]
    fn configured_names_are_matched_as_written_first() {
        let special = Price {
            input: 7.0,
            output: 7.0,
            ..Price::default()
        };
        let table = PriceTable::new(vec![PriceEntry {
            name: "azure/my-gpt".into(),
            price: special,
        }]);
        let found = table.lookup("Azure/My-GPT").expect("exact");
        assert_eq!(
            (found.name, found.matched),
            ("azure/my-gpt", MatchKind::Exact)
        );
        assert_eq!(table.lookup("my-gpt"), None);
    }

    #[test]
    fn parse_valid_overrides() {
        let value = json!({
            "gpt-4o": {"input": 2.25, "output": 9, "cached_input": 1.1},
            "Acme-LLM": {"input": 0.5, "output": 1.5, "cached_input": null,
                         "cache_write": 0.6, "reasoning": 4},
            "free-model": {"input": 0, "output": 0, "reasoning": null}
        });
        let mut entries = parse_overrides(&value).expect("valid");
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["acme-llm", "free-model", "gpt-4o"]);
        assert_eq!(
            entries[0].price,
            Price {
                input: 0.5,
                output: 1.5,
                cached_input: None,
                cache_write: Some(0.6),
                reasoning: Some(4.0)
            }
        );
        assert_eq!(entries[1].price, Price::default());
        assert_eq!(entries[2].price.cached_input, Some(1.1));
        assert_eq!(parse_overrides(&Value::Null), Ok(Vec::new()));
        assert_eq!(parse_overrides(&json!({})), Ok(Vec::new()));

        let table = PriceTable::new(entries);
        let found = table.lookup("acme-llm-2025-01-01").expect("configured");
        assert_eq!(found.price.reasoning, Some(4.0));
    }

    #[test]
    fn override_errors_name_the_path() {
        let wrong_type = |path: &str| ConfigError::WrongType {
            path: path.into(),
            expected: "",
        };
        let cases = [
            (json!([1, 2]), wrong_type("pricing")),
            (json!("gpt-4o"), wrong_type("pricing")),
            (json!({"m": 2.5}), wrong_type("pricing.m")),
            (json!({"m": null}), wrong_type("pricing.m")),
            (
                json!({"m": {"input": "2.5", "output": 1}}),
                wrong_type("pricing.m.input"),
            ),
            (
                json!({"my-model": {"input": 1, "output": true}}),
                wrong_type("pricing.my-model.output"),
            ),
            (
                json!({"m": {"input": 1, "output": 1, "inptu": 1}}),
                ConfigError::UnknownKey {
                    path: "pricing.m.inptu".into(),
                },
            ),
            (
                json!({"my-model": {"output": 1}}),
                ConfigError::Missing {
                    path: "pricing.my-model.input".into(),
                },
            ),
            (
                json!({"m": {"input": 1, "output": null}}),
                ConfigError::Missing {
                    path: "pricing.m.output".into(),
                },
            ),
            (
                json!({"m": {"input": 1, "output": 1, "cached_input": -0.5}}),
                ConfigError::Invalid {
                    path: "pricing.m.cached_input".into(),
                    reason: "",
                },
            ),
            (
                json!({"gpt-4.1": {"input": 1, "output": 1, "reasoning": 1e7}}),
                ConfigError::Invalid {
                    path: "pricing.gpt-4.1.reasoning".into(),
                    reason: "",
                },
            ),
            (
                json!({" ": {"input": 1, "output": 1}}),
                ConfigError::Invalid {
                    path: "pricing".into(),
                    reason: "",
                },
            ),
        ];
        for (value, expected) in cases {
            let err = parse_overrides(&value).expect_err("invalid");
            assert_eq!(
                std::mem::discriminant(&err),
                std::mem::discriminant(&expected),
                "{value}: {err:?}"
            );
            assert_eq!(path_of(&err), path_of(&expected), "{value}");
        }
        let err = parse_overrides(&json!({"my-model": {"output": 1}})).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "configuration key `pricing.my-model.input` is required"
        );
    }

    #[test]
    fn names_differing_in_case_are_duplicates() {
        let value =
            json!({"GPT-4o": {"input": 1, "output": 1}, "gpt-4o": {"input": 2, "output": 2}});
        let err = parse_overrides(&value).expect_err("duplicate");
        let path = path_of(&err);
        assert!(
            matches!(err, ConfigError::Invalid { .. })
                && (path == "pricing.GPT-4o" || path == "pricing.gpt-4o"),
            "{err:?}"
        );
    }

    fn path_of(err: &ConfigError) -> &str {
        match err {
            ConfigError::UnknownKey { path }
            | ConfigError::WrongType { path, .. }
            | ConfigError::Invalid { path, .. }
            | ConfigError::Missing { path } => path,
            ConfigError::NotJson { .. } => "",
        }
    }

    fn any_usage() -> impl Strategy<Value = Usage> {
        let count = || proptest::option::of(any::<u64>());
        (count(), count(), count(), count(), count(), count()).prop_map(
            |(input, output, total, cached_input, cache_creation, reasoning)| Usage {
                input,
                output,
                total,
                cached_input,
                cache_creation,
                reasoning,
            },
        )
    }

    fn any_price() -> impl Strategy<Value = Price> {
        let rate = || any::<f64>();
        let optional = || proptest::option::of(any::<f64>());
        (rate(), rate(), optional(), optional(), optional()).prop_map(
            |(input, output, cached_input, cache_write, reasoning)| Price {
                input,
                output,
                cached_input,
                cache_write,
                reasoning,
            },
        )
    }

    fn assert_sane(c: &Cost) {
        let parts = [c.input, c.output, c.cache_read, c.cache_write, c.reasoning];
        for value in parts.iter().chain([&c.total]) {
            assert!(!value.is_nan() && *value >= 0.0, "{c:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn lookup_never_panics(
            free in any::<String>(),
            shaped in "[a-zA-Z0-9./@:_ -]{0,80}",
        ) {
            let table = PriceTable::new(vec![PriceEntry {
                name: "acme-llm".into(),
                price: Price { input: 1.0, output: 2.0, ..Price::default() },
            }]);
            for model in [free.as_str(), shaped.as_str()] {
                if let Some(found) = table.lookup(model) {
                    let known = found.name == "acme-llm"
                        || BUILT_IN.iter().any(|row| row.name == found.name);
                    prop_assert!(known, "{model:?} resolved to {:?}", found.name);
                    prop_assert!(found.price.input.is_finite() && found.price.input >= 0.0);
                }
            }
        }

        #[test]
        fn cost_is_never_negative_or_nan(u in any_usage(), price in any_price()) {
            let c = cost(&u, &price);
            prop_assert_eq!(c.is_some(), u.input.is_some() || u.output.is_some());
            if let Some(c) = c {
                assert_sane(&c);
            }
        }

        #[test]
        fn cost_at_built_in_prices_is_finite(u in any_usage(), row in 0..BUILT_IN.len()) {
            if let Some(c) = cost(&u, &BUILT_IN[row].price()) {
                assert_sane(&c);
                prop_assert!(c.total.is_finite());
                let sum = c.input + c.output + c.cache_read + c.cache_write + c.reasoning;
                prop_assert!((c.total - sum).abs() <= sum * 1e-12);
            }
        }
    }
}
