//! The built-in scanners, with prefilters that let them skip ordinary text.
//!
//! Each scanner is a loop over *candidate* positions and an exact test at each. The tests and
//! the loops' state (the `resume` position after a match, the digit-group chains of card
//! numbers) are those of the plain byte-by-byte scanners, which the tests keep as a reference;
//! what changed is which positions are visited. A prefilter only drops positions where the
//! exact test cannot succeed, and a position that does not match never changes a loop's state,
//! so the matches are the same.
//!
//! The prefilters rest on the shape of each rule's matches:
//! - bearer tokens, API keys and JWTs are runs of "token" bytes (`[A-Za-z0-9._~+/=-]`) of at
//!   least [`BEARER_MIN`], [`API_KEY_MIN`] and [`JWT_MIN`] bytes; one pass finds the runs of
//!   ASCII from `+` up (a superset) that long, eight bytes at a time, and only those runs are
//!   looked at;
//! - card numbers lie in runs of digits, spaces and dashes of at least 13 bytes, IPv4
//!   addresses in runs of digits and dots of at least 7; one pass finds both;
//! - e-mail addresses contain an `@`, found eight bytes at a time.

use super::swar::{self, Class};
use super::Builtin;

/// Shortest match of a bearer token: the credential alone is 8 bytes or more.
const BEARER_MIN: usize = 8;
/// Shortest API key: `hf_` and 16 key characters.
const API_KEY_MIN: usize = 19;
/// Shortest JWT: a 10-byte header, a dot, a 2-byte payload, a dot.
const JWT_MIN: usize = 14;
/// Shortest card number: 13 digits.
const CARD_MIN: usize = 13;
/// Shortest dotted quad: `0.0.0.0`.
const IPV4_MIN: usize = 7;

/// Which built-ins one scan runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Enabled {
    pub email: bool,
    pub card: bool,
    pub bearer: bool,
    pub api_key: bool,
    pub jwt: bool,
    pub ipv4: bool,
}

impl Enabled {
    /// The set of `builtins`.
    pub fn of(builtins: &[Builtin]) -> Enabled {
        let mut on = Enabled::default();
        for b in builtins {
            match b {
                Builtin::Email => on.email = true,
                Builtin::CardNumber => on.card = true,
                Builtin::BearerToken => on.bearer = true,
                Builtin::ApiKey => on.api_key = true,
                Builtin::Jwt => on.jwt = true,
                Builtin::Ipv4 => on.ipv4 = true,
            }
        }
        on
    }

    /// Whether a rule whose matches can be arbitrarily long token runs is on.
    pub fn tokens(self) -> bool {
        self.bearer || self.api_key || self.jwt
    }
}

/// Runs the enabled scanners over `text`, reporting each match as `(rule, start, end)`.
/// Matches come grouped by prefilter, not sorted.
pub(super) fn scan(text: &[u8], on: Enabled, push: &mut impl FnMut(Builtin, usize, usize)) {
    if on.tokens() {
        scan_tokens(text, on, push);
    }
    if on.email {
        scan_emails(text, &mut |s, e| push(Builtin::Email, s, e));
    }
    if on.card || on.ipv4 {
        scan_numbers(text, on, push);
    }
}

// ---------------------------------------------------------------------------------------------
// Byte classes
// ---------------------------------------------------------------------------------------------

/// `[A-Za-z0-9_]`.
pub(super) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `[A-Za-z0-9_-]`: API-key tails and base64url.
pub(super) fn is_key_char(b: u8) -> bool {
    is_word(b) || b == b'-'
}

/// The token68 characters of a bearer credential.
pub(super) fn is_token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

/// Bytes a token rule's match can contain (token68, key characters, `=` padding): a text
/// cut just before any other byte cuts no such match.
pub(crate) fn is_token_byte(b: u8) -> bool {
    is_token68(b) || b == b'='
}

/// ASCII from `+` up (to DEL): every byte of a bearer token, API key or JWT is one. A wider
/// class than needed, tested with one addition per word.
struct Printable;

impl Class for Printable {
    #[inline(always)]
    fn mask(&self, word: u64) -> u64 {
        swar::ascii_at_least(word, b'+')
    }
    #[inline(always)]
    fn contains(&self, b: u8) -> bool {
        (b'+'..0x80).contains(&b)
    }
}

/// Digits, spaces, dashes and dots: the bytes of card numbers and dotted quads.
struct Numeric;

impl Class for Numeric {
    #[inline(always)]
    fn mask(&self, word: u64) -> u64 {
        swar::ascii_range(word, b'0', b'9')
            | swar::eq(word, b' ')
            | swar::eq(word, b'-')
            | swar::eq(word, b'.')
    }
    #[inline(always)]
    fn contains(&self, b: u8) -> bool {
        is_card_byte(b) || b == b'.'
    }
}

/// Digits, spaces and dashes: the bytes of a card number.
fn is_card_byte(b: u8) -> bool {
    b.is_ascii_digit() || b == b' ' || b == b'-'
}

/// Digits and dots: the bytes of a dotted quad.
fn is_dotted_digit(b: u8) -> bool {
    b.is_ascii_digit() || b == b'.'
}

/// Per-byte flags of the API-key and JWT scan.
const KEY: u8 = 1;
const DOT: u8 = 2;
const KEY_TRIGGER: u8 = 4;
const JWT_TRIGGER: u8 = 8;

/// [`KEY`] for key characters, [`DOT`] for `.`, [`KEY_TRIGGER`] for the first letters of key
/// prefixes, [`JWT_TRIGGER`] for `e`.
const BYTE_FLAGS: [u8; 256] = byte_flags();

const fn byte_flags() -> [u8; 256] {
    let mut flags = [0u8; 256];
    let mut i = 0;
    while i < flags.len() {
        let b = i as u8;
        let mut f = 0;
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            f |= KEY;
        }
        if b == b'.' {
            f |= DOT;
        }
        if matches!(b, b's' | b'p' | b'g' | b'x' | b'h' | b'A') {
            f |= KEY_TRIGGER;
        }
        if b == b'e' {
            f |= JWT_TRIGGER;
        }
        flags[i] = f;
        i += 1;
    }
    flags
}

fn flags(b: u8) -> u8 {
    BYTE_FLAGS[usize::from(b)]
}

/// Whether the byte before `at` (if any) satisfies `pred`.
pub(super) fn before(text: &[u8], at: usize, pred: impl Fn(u8) -> bool) -> bool {
    at.checked_sub(1)
        .and_then(|i| text.get(i))
        .is_some_and(|&b| pred(b))
}

/// End of the run of bytes satisfying `pred` from `from`.
pub(super) fn run_end(text: &[u8], from: usize, pred: impl Fn(u8) -> bool) -> usize {
    from + text
        .get(from..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&b| pred(b))
        .count()
}

/// Start of the run of bytes satisfying `pred` that ends at `to`.
fn run_start(text: &[u8], to: usize, pred: impl Fn(u8) -> bool) -> usize {
    let mut at = to.min(text.len());
    while at > 0 && text.get(at - 1).is_some_and(|&b| pred(b)) {
        at -= 1;
    }
    at
}

/// Secrets look random: a digit, or both cases. Words (`sk-learn-tutorial`) do not.
fn looks_random(token: &[u8]) -> bool {
    let digit = token.iter().any(u8::is_ascii_digit);
    let lower = token.iter().any(u8::is_ascii_lowercase);
    let upper = token.iter().skip(1).any(u8::is_ascii_uppercase);
    digit || (lower && upper)
}

// ---------------------------------------------------------------------------------------------
// Bearer tokens, API keys and JWTs: one pass over long printable runs
// ---------------------------------------------------------------------------------------------

/// Where each token rule may match next (the end of its last match).
#[derive(Default)]
struct Resume {
    bearer: usize,
    api_key: usize,
    jwt: usize,
}

fn scan_tokens(text: &[u8], on: Enabled, push: &mut impl FnMut(Builtin, usize, usize)) {
    let min = [
        (on.bearer, BEARER_MIN),
        (on.api_key, API_KEY_MIN),
        (on.jwt, JWT_MIN),
    ]
    .iter()
    .filter(|(enabled, _)| *enabled)
    .map(|&(_, min)| min)
    .min()
    .unwrap_or(BEARER_MIN);
    let mut resume = Resume::default();
    swar::long_runs(text, min, &Printable, |start, end| {
        let len = end - start;
        if on.bearer && len >= BEARER_MIN && may_follow_bearer(text, start) {
            bearer_in_run(text, start, &mut resume.bearer, push);
        }
        let api_key = on.api_key && len >= API_KEY_MIN;
        let jwt = on.jwt && len >= JWT_MIN;
        if api_key || jwt {
            keys_in_run(text, start, end, (api_key, jwt), &mut resume, push);
        }
    });
}

/// Whether the run at `run` follows a blank that follows an `r` or another blank: the
/// quick test before looking for `bearer` (most words before a blank do not end in `r`).
fn may_follow_bearer(text: &[u8], run: usize) -> bool {
    let byte = |back: usize| run.checked_sub(back).and_then(|i| text.get(i)).copied();
    byte(1).is_some_and(is_blank) && byte(2).is_some_and(|b| b | 0x20 == b'r' || is_blank(b))
}

/// A bearer credential is the start of a printable run preceded by `bearer` and blanks, so
/// the `b` of the only candidate is found walking back from the run.
#[inline(never)]
fn bearer_in_run(
    text: &[u8],
    run: usize,
    resume: &mut usize,
    push: &mut impl FnMut(Builtin, usize, usize),
) {
    if !before(text, run, is_blank) {
        return;
    }
    let blanks = run_start(text, run, is_blank);
    if !before(text, blanks, |b| b | 0x20 == b'r') {
        return;
    }
    let Some(at) = blanks.checked_sub(6) else {
        return;
    };
    if at < *resume {
        return;
    }
    if let Some((start, end)) = bearer_at(text, at) {
        push(Builtin::BearerToken, start, end);
        *resume = end;
    }
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The credential of `bearer` at `at`, as `(start, end)`, if one follows.
fn bearer_at(text: &[u8], at: usize) -> Option<(usize, usize)> {
    if before(text, at, is_word) {
        return None;
    }
    let word = text.get(at..at + 6)?;
    if !word.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = run_end(text, at + 6, is_blank);
    if token == at + 6 {
        return None;
    }
    let body = run_end(text, token, is_token68);
    let end = run_end(text, body, |b| b == b'=');
    let secret = text.get(token..body)?;
    (secret.len() >= 8 && looks_random(secret)).then_some((token, end))
}

/// API keys and JWTs starting in the run `start..end`: both start with a trigger letter that
/// follows no key character, which one table lookup a byte tells.
#[inline(never)]
fn keys_in_run(
    text: &[u8],
    start: usize,
    end: usize,
    (api_key, jwt): (bool, bool),
    resume: &mut Resume,
    push: &mut impl FnMut(Builtin, usize, usize),
) {
    let run = text.get(start..end).unwrap_or_default();
    let mut prev = start
        .checked_sub(1)
        .and_then(|i| text.get(i))
        .map_or(0, |&b| flags(b));
    for (i, &b) in run.iter().enumerate() {
        let here = flags(b);
        // All ones after a byte that is no key character, else zero: no branch on it, as
        // key characters and punctuation alternate unpredictably in URLs.
        let after_non_key = (prev & KEY).wrapping_sub(1);
        if here & after_non_key & (KEY_TRIGGER | JWT_TRIGGER) != 0 {
            let at = start + i;
            if api_key && here & KEY_TRIGGER != 0 && at >= resume.api_key {
                if let Some(key_end) = api_key_end(text, at) {
                    push(Builtin::ApiKey, at, key_end);
                    resume.api_key = key_end;
                }
            }
            if jwt && here & JWT_TRIGGER != 0 && prev & DOT == 0 && at >= resume.jwt {
                if let Some(jwt_end) = jwt_at(text, at) {
                    push(Builtin::Jwt, at, jwt_end);
                    resume.jwt = jwt_end;
                }
            }
        }
        prev = here;
    }
}

/// Key prefixes followed by at least 16 key characters; longer prefixes first.
const KEY_PREFIXES: [&[u8]; 11] = [
    b"sk-proj-",
    b"sk-ant-",
    b"sk-lf-",
    b"pk-lf-",
    b"github_pat_",
    b"ghp_",
    b"gho_",
    b"xoxb-",
    b"xoxp-",
    b"hf_",
    b"sk-",
];

/// End of the API key starting at `at`, if one does.
fn api_key_end(text: &[u8], at: usize) -> Option<usize> {
    let rest = text.get(at..)?;
    // Most words start with a trigger letter but no key prefix: reject them on two bytes
    // before measuring the word.
    if !matches!(
        rest.get(..2),
        Some(b"sk" | b"pk" | b"gh" | b"gi" | b"xo" | b"hf" | b"AK" | b"AI")
    ) {
        return None;
    }
    let end = run_end(text, at, is_key_char);
    let fixed = |prefix: &[u8], tail: usize, class: fn(u8) -> bool| {
        let body = rest.get(prefix.len()..prefix.len() + tail)?;
        let exact = rest.starts_with(prefix)
            && body.iter().all(|&b| class(b))
            && end == at + prefix.len() + tail;
        exact.then_some(end)
    };
    if rest.starts_with(b"AKIA") {
        return fixed(b"AKIA", 16, |b| {
            b.is_ascii_uppercase() || b.is_ascii_digit()
        });
    }
    if rest.starts_with(b"AIza") {
        return fixed(b"AIza", 35, is_key_char);
    }
    KEY_PREFIXES.iter().find_map(|prefix| {
        let tail = text.get(at + prefix.len()..end)?;
        let key = rest.starts_with(prefix) && tail.len() >= 16 && looks_random(tail);
        key.then_some(end)
    })
}

/// End of a JWT (or JWE) at `at`: `eyJ`, a header of 10+ characters, a payload of 2+, then a
/// possibly empty signature and any further segments.
fn jwt_at(text: &[u8], at: usize) -> Option<usize> {
    if text.get(at..at + 3) != Some(b"eyJ".as_slice()) {
        return None;
    }
    let header = run_end(text, at, is_key_char);
    if header - at < 10 || text.get(header) != Some(&b'.') {
        return None;
    }
    let payload = run_end(text, header + 1, is_key_char);
    if payload - (header + 1) < 2 || text.get(payload) != Some(&b'.') {
        return None;
    }
    let mut end = run_end(text, payload + 1, is_key_char);
    while text.get(end) == Some(&b'.') && text.get(end + 1).is_some_and(|&b| is_key_char(b)) {
        end = run_end(text, end + 1, is_key_char);
    }
    Some(end)
}

// ---------------------------------------------------------------------------------------------
// E-mail addresses
// ---------------------------------------------------------------------------------------------

fn is_email_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// Characters of a URL's userinfo (`user:pass`), which end where `scheme://` is.
fn is_userinfo_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:".contains(&b)
}

fn scan_emails(text: &[u8], push: &mut impl FnMut(usize, usize)) {
    swar::each_byte(text, b'@', |at| {
        let found = email_local_start(text, at)
            .and_then(|start| Some((start, email_domain_end(text, at + 1)?)));
        match found {
            Some((start, end)) => {
                push(start, end);
                Some(end)
            }
            None => Some(at + 1),
        }
    });
}

/// Start of the local part ending before the `@` at `at`, when it is one (1–64 characters,
/// not starting or ending with a dot, not a URL's login).
fn email_local_start(text: &[u8], at: usize) -> Option<usize> {
    let mut start = run_start(text, at, is_email_local);
    while start < at && text.get(start) == Some(&b'.') {
        start += 1;
    }
    let len = at.saturating_sub(start);
    if len == 0 || len > 64 || before(text, at, |b| b == b'.') {
        return None;
    }
    let login = run_start(text, start, is_userinfo_char);
    let in_url = login >= 3 && text.get(login - 3..login) == Some(b"://".as_slice());
    (!in_url).then_some(start)
}

/// End of the domain starting at `from`: at least two valid labels, the last alphabetic and
/// two or more letters long. A trailing dot (end of sentence) is left out.
fn email_domain_end(text: &[u8], from: usize) -> Option<usize> {
    let run = text.get(from..run_end(text, from, is_domain_char))?;
    let mut best = None;
    let mut offset = 0;
    for (n, label) in run.split(|&b| b == b'.').enumerate() {
        let valid = !label.is_empty()
            && label.len() <= 63
            && label.first() != Some(&b'-')
            && label.last() != Some(&b'-');
        if !valid || offset + label.len() > 253 {
            break;
        }
        offset += label.len();
        if n >= 1 && label.len() >= 2 && label.iter().all(u8::is_ascii_alphabetic) {
            best = Some(from + offset);
        }
        offset += 1;
    }
    best
}

// ---------------------------------------------------------------------------------------------
// Card numbers and IPv4 addresses
// ---------------------------------------------------------------------------------------------

/// Card numbers and dotted quads: one pass finds the long runs of digits, spaces, dashes and
/// dots, which are then split into the runs each rule looks at.
fn scan_numbers(text: &[u8], on: Enabled, push: &mut impl FnMut(Builtin, usize, usize)) {
    let min = if on.ipv4 { IPV4_MIN } else { CARD_MIN };
    swar::long_runs(text, min, &Numeric, |start, end| {
        if on.card {
            each_sub_run(text, start, end, is_card_byte, CARD_MIN, |s, e| {
                cards_in_run(text, s, e, &mut |cs, ce| push(Builtin::CardNumber, cs, ce));
            });
        }
        if on.ipv4 {
            each_sub_run(text, start, end, is_dotted_digit, IPV4_MIN, |s, e| {
                if let Some((ip, ip_end)) = ipv4_in_run(text, s, e) {
                    push(Builtin::Ipv4, ip, ip_end);
                }
            });
        }
    });
}

/// The maximal runs of `pred` bytes inside `start..end` that are at least `min` long.
fn each_sub_run(
    text: &[u8],
    start: usize,
    end: usize,
    pred: fn(u8) -> bool,
    min: usize,
    mut f: impl FnMut(usize, usize),
) {
    let mut at = start;
    while at < end {
        let run = run_end(text, at, pred).min(end);
        if run - at >= min {
            f(at, run);
        }
        at = run + 1;
    }
}

/// Card numbers are chains of digit groups joined by single spaces or dashes: every chain lies
/// inside one run of digits, spaces and dashes, so the chains of each long run are walked as
/// a byte-by-byte scan would walk them.
fn cards_in_run(text: &[u8], start: usize, end: usize, push: &mut impl FnMut(usize, usize)) {
    let mut i = start;
    while let Some(off) = text
        .get(i..end)
        .and_then(|t| t.iter().position(u8::is_ascii_digit))
    {
        let first = i + off;
        let mut group = first;
        loop {
            let after = match card_window(text, group, group == first) {
                Some(card_end) => {
                    push(group, card_end);
                    card_end
                }
                None => run_end(text, group, |b| b.is_ascii_digit()),
            };
            match next_digit_group(text, after) {
                Some(next) => group = next,
                None => {
                    i = after;
                    break;
                }
            }
        }
    }
}

/// The next digit group after a group ending at `end`, when a single space or dash joins them.
fn next_digit_group(text: &[u8], end: usize) -> Option<usize> {
    let joined = matches!(text.get(end), Some(b' ' | b'-'))
        && text.get(end + 1).is_some_and(u8::is_ascii_digit);
    joined.then_some(end + 1)
}

/// End of the longest card number starting at the digit group at `start`: whole groups,
/// 13–19 digits, either one group or groups of 3–6 digits, Luhn-valid, not glued to letters.
fn card_window(text: &[u8], start: usize, opens_sequence: bool) -> Option<usize> {
    if opens_sequence && before(text, start, is_word) {
        return None;
    }
    if !matches!(text.get(start), Some(b'2'..=b'6')) {
        return None;
    }
    let mut digits = [0u8; 19];
    let (mut count, mut groups, mut all_short) = (0usize, 0usize, true);
    let mut best = None;
    let mut at = start;
    loop {
        let end = run_end(text, at, |b| b.is_ascii_digit());
        let group = text.get(at..end).unwrap_or_default();
        let Some(slots) = digits.get_mut(count..count + group.len()) else {
            return best;
        };
        for (slot, b) in slots.iter_mut().zip(group) {
            *slot = b - b'0';
        }
        count += group.len();
        groups += 1;
        all_short &= (3..=6).contains(&group.len());
        let clean_end = !text.get(end).is_some_and(|&b| is_word(b));
        if count >= 13 && (groups == 1 || all_short) && clean_end && luhn(&digits[..count]) {
            best = Some(end);
        }
        match next_digit_group(text, end) {
            Some(next) => at = next,
            None => return best,
        }
    }
}

/// The Luhn checksum over digit values (0–9).
pub(super) fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            match (i % 2 == 1, d * 2) {
                (false, _) => d,
                (true, doubled) if doubled > 9 => doubled - 9,
                (true, doubled) => doubled,
            }
        })
        .sum();
    sum % 10 == 0
}

/// A dotted quad is tested only at the first digit of a run of digits and dots (a scan by
/// bytes moves past the run after testing there), and such a run is at least 7 bytes long.
fn ipv4_in_run(text: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    let at = start + text.get(start..end)?.iter().position(u8::is_ascii_digit)?;
    let clean_start = !before(text, at, |b| is_word(b) || b == b'.');
    let ip_end = ipv4_end(text, at).filter(|_| clean_start)?;
    Some((at, ip_end))
}

/// End of a dotted quad at `start` (octets 0–255 without leading zeros) that is not part of
/// a longer dotted number or word.
fn ipv4_end(text: &[u8], start: usize) -> Option<usize> {
    let mut at = start;
    for octet in 0..4 {
        if octet > 0 {
            if text.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
        let end = run_end(text, at, |b| b.is_ascii_digit());
        let digits = text.get(at..end)?;
        let value = digits.iter().try_fold(0u32, |v, &d| {
            (v < 256).then(|| v * 10 + u32::from(d - b'0'))
        })?;
        let leading_zero = digits.len() > 1 && digits.first() == Some(&b'0');
        if digits.is_empty() || digits.len() > 3 || value > 255 || leading_zero {
            return None;
        }
        at = end;
    }
    let glued = text.get(at).is_some_and(|&b| is_word(b))
        || (text.get(at) == Some(&b'.') && text.get(at + 1).is_some_and(u8::is_ascii_digit));
    (!glued).then_some(at)
}

#[cfg(test)]
mod tests;
