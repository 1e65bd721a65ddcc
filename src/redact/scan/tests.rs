//! The fast scanners against the byte-by-byte scanners they replace.

use super::*;
use proptest::prelude::*;

/// The scanners as they were before the prefilters: every trigger byte is visited. Kept
/// verbatim as the reference the fast scanners must agree with.
mod reference {
    /// `[A-Za-z0-9_]`.
    fn is_word(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'_'
    }

    /// `[A-Za-z0-9_-]`: API-key tails and base64url.
    fn is_key_char(b: u8) -> bool {
        is_word(b) || b == b'-'
    }

    /// Whether the byte before `at` (if any) satisfies `pred`.
    fn before(text: &[u8], at: usize, pred: impl Fn(u8) -> bool) -> bool {
        at.checked_sub(1)
            .and_then(|i| text.get(i))
            .is_some_and(|&b| pred(b))
    }

    /// End of the run of bytes satisfying `pred` from `from`.
    fn run_end(text: &[u8], from: usize, pred: impl Fn(u8) -> bool) -> usize {
        from + text
            .get(from..)
            .unwrap_or_default()
            .iter()
            .take_while(|&&b| pred(b))
            .count()
    }

    /// Secrets look random: a digit, or both cases. Words (`sk-learn-tutorial`) do not.
    fn looks_random(token: &[u8]) -> bool {
        let digit = token.iter().any(u8::is_ascii_digit);
        let lower = token.iter().any(u8::is_ascii_lowercase);
        let upper = token.iter().skip(1).any(u8::is_ascii_uppercase);
        digit || (lower && upper)
    }

    /// Positions of the bytes satisfying `pred`.
    fn positions(text: &[u8], pred: fn(u8) -> bool) -> impl Iterator<Item = usize> + '_ {
        text.iter()
            .enumerate()
            .filter(move |(_, &b)| pred(b))
            .map(|(i, _)| i)
    }

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

    pub(super) fn scan_emails(text: &[u8], push: &mut impl FnMut(usize, usize)) {
        let mut resume = 0;
        for at in positions(text, |b| b == b'@') {
            if at < resume {
                continue;
            }
            let Some(start) = email_local_start(text, at) else {
                continue;
            };
            if let Some(end) = email_domain_end(text, at + 1) {
                push(start, end);
                resume = end;
            }
        }
    }

    /// Start of the local part ending before the `@` at `at`, when it is one (1–64 characters,
    /// not starting or ending with a dot, not a URL's login).
    fn email_local_start(text: &[u8], at: usize) -> Option<usize> {
        let mut start = at;
        while before(text, start, is_email_local) {
            start -= 1;
        }
        while text.get(start) == Some(&b'.') {
            start += 1;
        }
        let len = at.saturating_sub(start);
        if len == 0 || len > 64 || before(text, at, |b| b == b'.') {
            return None;
        }
        let mut login = start;
        while before(text, login, is_userinfo_char) {
            login -= 1;
        }
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

    pub(super) fn scan_cards(text: &[u8], push: &mut impl FnMut(usize, usize)) {
        let mut i = 0;
        while let Some(off) = text
            .get(i..)
            .and_then(|t| t.iter().position(u8::is_ascii_digit))
        {
            let first = i + off;
            let mut group = first;
            loop {
                let after = match card_window(text, group, group == first) {
                    Some(end) => {
                        push(group, end);
                        end
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
    fn luhn(digits: &[u8]) -> bool {
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

    fn is_token68(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
    }

    pub(super) fn scan_bearer(text: &[u8], push: &mut impl FnMut(usize, usize)) {
        let mut resume = 0;
        for at in positions(text, |b| b == b'b' || b == b'B') {
            if at < resume || before(text, at, is_word) {
                continue;
            }
            let is_word_bearer = text
                .get(at..at + 6)
                .is_some_and(|w| w.eq_ignore_ascii_case(b"bearer"));
            if !is_word_bearer {
                continue;
            }
            let token = run_end(text, at + 6, |b| b == b' ' || b == b'\t');
            if token == at + 6 {
                continue;
            }
            let body = run_end(text, token, is_token68);
            let end = run_end(text, body, |b| b == b'=');
            let Some(secret) = text.get(token..body) else {
                continue;
            };
            if secret.len() >= 8 && looks_random(secret) {
                push(token, end);
                resume = end;
            }
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

    pub(super) fn scan_api_keys(text: &[u8], push: &mut impl FnMut(usize, usize)) {
        let mut resume = 0;
        let trigger = |b| matches!(b, b's' | b'p' | b'g' | b'x' | b'h' | b'A');
        for at in positions(text, trigger) {
            if at < resume || before(text, at, is_key_char) {
                continue;
            }
            if let Some(end) = api_key_end(text, at) {
                push(at, end);
                resume = end;
            }
        }
    }

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

    pub(super) fn scan_jwts(text: &[u8], push: &mut impl FnMut(usize, usize)) {
        let mut resume = 0;
        for at in positions(text, |b| b == b'e') {
            if at < resume || before(text, at, |b| is_key_char(b) || b == b'.') {
                continue;
            }
            if text.get(at..at + 3) != Some(b"eyJ".as_slice()) {
                continue;
            }
            if let Some(end) = jwt_end(text, at) {
                push(at, end);
                resume = end;
            }
        }
    }

    /// End of a JWT (or JWE) at `at`: a header of 10+ characters, a payload of 2+, then a
    /// possibly empty signature and any further segments.
    fn jwt_end(text: &[u8], at: usize) -> Option<usize> {
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

    pub(super) fn scan_ipv4(text: &[u8], push: &mut impl FnMut(usize, usize)) {
        let mut i = 0;
        while let Some(off) = text
            .get(i..)
            .and_then(|t| t.iter().position(u8::is_ascii_digit))
        {
            let start = i + off;
            let run = run_end(text, start, |b| b.is_ascii_digit() || b == b'.');
            let clean_start = !before(text, start, |b| is_word(b) || b == b'.');
            if let Some(end) = ipv4_end(text, start).filter(|_| clean_start) {
                push(start, end);
            }
            i = run.max(start + 1);
        }
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
}

type Found = Vec<(&'static str, usize, usize)>;

/// What the fast scanners find with `builtins` on, sorted.
fn fast(text: &[u8], builtins: &[Builtin]) -> Found {
    let mut found = Vec::new();
    scan(text, Enabled::of(builtins), &mut |b, s, e| {
        found.push((b.name(), s, e))
    });
    found.sort_unstable();
    found
}

/// What the reference scanners find with `builtins` on, sorted.
fn slow(text: &[u8], builtins: &[Builtin]) -> Found {
    let mut found = Vec::new();
    for &b in builtins {
        let mut push = |s, e| found.push((b.name(), s, e));
        match b {
            Builtin::Email => reference::scan_emails(text, &mut push),
            Builtin::CardNumber => reference::scan_cards(text, &mut push),
            Builtin::BearerToken => reference::scan_bearer(text, &mut push),
            Builtin::ApiKey => reference::scan_api_keys(text, &mut push),
            Builtin::Jwt => reference::scan_jwts(text, &mut push),
            Builtin::Ipv4 => reference::scan_ipv4(text, &mut push),
        }
    }
    found.sort_unstable();
    found
}

fn agree(text: &str, builtins: &[Builtin]) -> Found {
    let found = fast(text.as_bytes(), builtins);
    assert_eq!(found, slow(text.as_bytes(), builtins), "text: {text:?}");
    found
}

/// One secret of each built-in (key-shaped values assembled so that no credential pattern
/// sits in the source).
fn samples() -> Vec<(Builtin, String)> {
    vec![
        (Builtin::Email, "jane.doe+x@mail.example.org".into()),
        (Builtin::CardNumber, "4111 1111 1111 1111".into()),
        (Builtin::CardNumber, "378282246310005".into()),
        (Builtin::BearerToken, "Bearer abcDEF123456".into()),
        (Builtin::BearerToken, "bearer \t a.b-c_d~e+f/g1==".into()),
        (
            Builtin::ApiKey,
            concat!("sk-", "proj-", "Ab3dEf6hIj9kLm2nOp5qRs8t").into(),
        ),
        (
            Builtin::ApiKey,
            concat!("hf", "_", "AbCdEfGhIjKlMnOp").into(),
        ),
        (Builtin::ApiKey, concat!("AKIA", "IOSFODNN7EXAMPLE").into()),
        (
            Builtin::ApiKey,
            concat!("AIza", "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q").into(),
        ),
        (Builtin::Jwt, "eyJhbGciOi.eyJ.".into()),
        (
            Builtin::Jwt,
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln-_x.more".into(),
        ),
        (Builtin::Ipv4, "0.0.0.0".into()),
        (Builtin::Ipv4, "192.168.100.254".into()),
    ]
}

/// Every sample, at every offset of the first two words (so that it starts and ends at every
/// position of a word), after and before ASCII and non-ASCII text, and at both ends.
#[test]
fn matches_at_every_word_offset_and_at_the_ends() {
    for (builtin, secret) in samples() {
        for pad in 0..17 {
            for (left, right) in [(" ", " "), ("é ", " €"), ("\n", "\""), ("", "")] {
                let text = format!("{}{left}{secret}{right}", "x".repeat(pad));
                let found = agree(&text, &Builtin::ALL);
                // Glued to a preceding letter, a secret is no longer one.
                let separated = pad == 0 || !left.is_empty();
                assert!(
                    !separated || found.iter().any(|&(name, _, _)| name == builtin.name()),
                    "{text:?}: {found:?}"
                );
                let alone = format!("{secret}{right}{}", "é".repeat(pad));
                assert!(!agree(&alone, &[builtin]).is_empty(), "{alone:?}");
            }
        }
    }
}

/// Texts shorter than a rule's shortest match, and near misses one byte short.
#[test]
fn short_texts_and_near_misses() {
    let texts = [
        "",
        "e",
        "@",
        "a@b.co",
        "Bearer abc1234",
        "1.2.3.4",
        "1.2.3",
        "eyJhbGciO.eyJ.",
        concat!("hf", "_", "AbCdEfGhIjKlMnO"),
        "411111111111",
        "x",
        "é€",
    ];
    for text in texts {
        agree(text, &Builtin::ALL);
        for b in Builtin::ALL {
            agree(text, &[b]);
        }
    }
    assert_eq!(agree("a@b.co", &[Builtin::Email]).len(), 1);
    assert_eq!(agree("1.2.3.4", &[Builtin::Ipv4]).len(), 1);
    assert!(agree("Bearer abc1234", &[Builtin::BearerToken]).is_empty());
}

/// Lone `bearer` words with the credential far away, tokens glued to others, runs of
/// blanks: the bearer prefilter walks back from the credential.
#[test]
fn bearer_candidates_are_found_from_the_credential() {
    let texts = [
        format!("Bearer{}abcDEF123456", " ".repeat(40)),
        "xBearer abcDEF123456".to_string(),
        "-Bearer abcDEF123456".to_string(),
        "Bearer abcdefgh1.bearer xyz12345678".to_string(),
        "Bearer Bearer abcDEF123456".to_string(),
        "bearer\t\t\tABCDEFGHIJKLmnop".to_string(),
        "Bearer ,abcDEF123456".to_string(),
        "é Bearer abcDEF123456é".to_string(),
    ];
    for text in &texts {
        agree(text, &[Builtin::BearerToken]);
        agree(text, &Builtin::ALL);
    }
}

/// Fragments that make every rule's triggers and near matches likely.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9]{1,12}",
        1 => Just("Bearer ".to_string()),
        1 => Just("bearer\t".to_string()),
        1 => Just("sk-".to_string()),
        1 => Just("sk-proj-".to_string()),
        1 => Just(concat!("gh", "p_").to_string()),
        1 => Just("AKIA".to_string()),
        1 => Just("AIza".to_string()),
        1 => Just("hf_".to_string()),
        1 => Just("eyJ".to_string()),
        1 => Just("eyJhbGciOiJ".to_string()),
        1 => Just("://".to_string()),
        1 => Just("4111 1111 1111 1111".to_string()),
        1 => Just("4111111111111111".to_string()),
        1 => Just("5555-5555-5555-4444".to_string()),
        1 => "[0-9]{1,4}",
        1 => "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        1 => "[a-z]{1,5}@[a-z]{1,5}\\.[a-z]{2,3}",
        3 => "[ .@_=/+~:,-]",
        1 => "[\t\n\"é€]",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The prefiltered scanners find exactly what the byte-by-byte scanners find.
    #[test]
    fn fast_scanners_agree_with_the_reference(
        parts in proptest::collection::vec(fragment(), 0..40),
        which in proptest::collection::vec(any::<bool>(), 6),
    ) {
        let text = parts.concat();
        let builtins: Vec<Builtin> = Builtin::ALL
            .into_iter()
            .zip(&which)
            .filter(|(_, on)| **on)
            .map(|(b, _)| b)
            .collect();
        prop_assert_eq!(fast(text.as_bytes(), &builtins), slow(text.as_bytes(), &builtins));
        prop_assert_eq!(
            fast(text.as_bytes(), &Builtin::ALL),
            slow(text.as_bytes(), &Builtin::ALL)
        );
    }

    /// Arbitrary bytes, not only text: no panic, same matches.
    #[test]
    fn fast_scanners_agree_on_any_bytes(
        bytes in proptest::collection::vec(
            prop_oneof![any::<u8>(), Just(b' '), Just(b'.'), Just(b'1'), Just(b'e')], 0..120),
    ) {
        prop_assert_eq!(fast(&bytes, &Builtin::ALL), slow(&bytes, &Builtin::ALL));
    }
}

/// Redaction as it was before the prefilters: the reference scanners in configuration
/// order, literals by `match_indices`, a stable sort and merge, then the same passes.
fn reference_redact(r: &crate::redact::Redactor, text: &str) -> Option<String> {
    type Spans = Vec<(usize, usize, &'static str)>;
    let find = |text: &str| -> Spans {
        let mut spans: Spans = Vec::new();
        for &b in &r.builtins {
            let found = slow(text.as_bytes(), &[b]);
            spans.extend(found.into_iter().map(|(name, s, e)| (s, e, name)));
        }
        for literal in &r.literals {
            spans.extend(
                text.match_indices(literal.as_str())
                    .map(|(at, m)| (at, at + m.len(), "literal")),
            );
        }
        spans.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
        let mut merged: Spans = Vec::new();
        for span in spans {
            match merged.last_mut() {
                Some(last) if span.0 < last.1 => last.1 = last.1.max(span.1),
                _ => merged.push(span),
            }
        }
        merged
    };
    let replace = |text: &str, spans: &Spans| {
        let mut out = String::new();
        let mut copied = 0;
        for &(start, end, kind) in spans {
            out.push_str(&text[copied..start]);
            out.push_str(&r.replacement.replace("{kind}", kind));
            copied = end;
        }
        out.push_str(&text[copied..]);
        out
    };
    let spans = find(text);
    if spans.is_empty() {
        return None;
    }
    let mut out = replace(text, &spans);
    for _ in 1..crate::redact::MAX_PASSES {
        let spans = find(&out);
        if spans.is_empty() {
            break;
        }
        out = replace(&out, &spans);
    }
    Some(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Whole redactions agree with the reference: spans, merging, rule names, passes.
    #[test]
    fn redaction_agrees_with_the_reference(
        parts in proptest::collection::vec(
            prop_oneof![4 => fragment(), 1 => Just("Zq9".to_string()), 1 => Just("ab".to_string())],
            0..30,
        ),
        which in proptest::collection::vec(any::<bool>(), 6),
        order in any::<bool>(),
    ) {
        let mut builtins: Vec<&str> = Builtin::ALL
            .into_iter()
            .zip(&which)
            .filter(|(_, on)| **on)
            .map(|(b, _)| b.name())
            .collect();
        if order {
            builtins.reverse();
        }
        let config = serde_json::json!({
            "builtin": builtins, "literals": ["Zq9", "ab", "1111"], "replacement": "<{kind}>"
        });
        let r = crate::redact::Redactor::from_config(Some(&config)).expect("valid");
        let text = parts.concat();
        prop_assert_eq!(r.redact(&text), reference_redact(&r, &text));
    }
}
