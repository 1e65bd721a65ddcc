//! `env` hostcalls on header maps (spec section "HTTP fields"): request/response headers and
//! trailers of the effective stream, and the headers of the callout response being delivered.
//!
//! Lookups compare names ignoring ASCII case, as both gateways do. Envoy stores names in
//! lowercase; Kong keeps the case it was given (personality rule).

use std::borrow::Cow;
use wasmtime::Caller;

use super::codec::{self, Pair};
use super::memory::{read, return_bytes, write_u32};
use super::{finish, Abi, Registrar, Status};
use crate::state::{find_pair, HostState};

type C<'a> = Caller<'a, HostState>;

pub(super) fn register(r: &mut Registrar<'_>) {
    r.func(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: C<'_>, ty: u32, ret: u32, ret_size: u32| {
            let res = map_pairs(c.data(), ty)
                .map(|pairs| codec::encode_map(marshalled(c.data(), &pairs)))
                .and_then(|bytes| return_bytes(&mut c, &bytes, ret, ret_size));
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_get_header_map_size",
        |mut c: C<'_>, ty: u32, ret_size: u32| {
            let res = map_pairs(c.data(), ty)
                .map(|pairs| codec::encode_map(marshalled(c.data(), &pairs)).len())
                .and_then(|n| write_u32(&mut c, ret_size, u32::try_from(n).unwrap_or(u32::MAX)));
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: C<'_>, ty: u32, ptr: u32, len: u32| {
            let res = set_pairs(&mut c, ty, ptr, len);
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_get_header_map_value",
        |mut c: C<'_>, ty: u32, kp: u32, kl: u32, ret: u32, ret_size: u32| {
            let res = read(&c, kp, kl)
                .and_then(|key| map_value(c.data(), ty, &key))
                .and_then(|v| return_bytes(&mut c, &v, ret, ret_size));
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_add_header_map_value",
        |mut c: C<'_>, ty: u32, kp: u32, kl: u32, vp: u32, vl: u32| {
            let res = edit(&mut c, ty, (kp, kl), Some((vp, vl)), Edit::Add);
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_replace_header_map_value",
        |mut c: C<'_>, ty: u32, kp: u32, kl: u32, vp: u32, vl: u32| {
            let res = edit(&mut c, ty, (kp, kl), Some((vp, vl)), Edit::Replace);
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_remove_header_map_value",
        |mut c: C<'_>, ty: u32, kp: u32, kl: u32| {
            let res = edit(&mut c, ty, (kp, kl), None, Edit::Remove);
            finish(c.data_mut(), res)
        },
    );
}

#[derive(Clone, Copy)]
enum Edit {
    Add,
    Replace,
    Remove,
}

/// All pairs of map `ty` as the guest may read them.
/// The pairs of a map the host hands over whole: all of them, or as many as the personality
/// marshals.
fn marshalled<'a>(st: &HostState, pairs: &'a [Pair]) -> &'a [Pair] {
    match st.cfg.rules.max_map_pairs() {
        Some(max) if pairs.len() > max => &pairs[..max],
        _ => pairs,
    }
}

/// Map `ty`, borrowed where the host holds it (as a gateway reads its own header table: a
/// lookup copies out the one value asked for, not the map).
fn map_pairs(st: &HostState, ty: u32) -> Result<Cow<'_, [Pair]>, Abi> {
    match ty {
        0..=3 => {
            let s = st.effective_stream_ref().ok_or(Status::BadArgument)?;
            Ok(Cow::Borrowed(match ty {
                0 => &s.request_headers,
                1 => &s.request_trailers,
                2 => &s.response_headers,
                _ => &s.response_trailers,
            }))
        }
        // gRPC metadata and call trailers: this host never has any.
        4 | 5 | 7 => Ok(Cow::Borrowed(&[])),
        6 => Ok(Cow::Owned(match &st.vm.call_response {
            Some(r) => st.cfg.rules.call_response_pairs(&r.outcome),
            None => Vec::new(),
        })),
        _ => Err(Abi::Status(Status::BadArgument)),
    }
}

fn map_value(st: &HostState, ty: u32, key: &[u8]) -> Result<Vec<u8>, Abi> {
    match ty {
        6 => match &st.vm.call_response {
            Some(r) => st.cfg.rules.call_response_value(&r.outcome, key),
            None => Err(Abi::Status(Status::NotFound)),
        },
        _ => {
            let pairs = map_pairs(st, ty)?;
            find_pair(&pairs, key)
                .map(<[u8]>::to_vec)
                .ok_or(Abi::Status(Status::NotFound))
        }
    }
}

/// The writable map `ty` of the effective stream (request/response headers and trailers).
fn map_mut(st: &mut HostState, ty: u32) -> Result<&mut Vec<Pair>, Abi> {
    match ty {
        0..=3 => {
            let s = st.effective_stream().ok_or(Status::BadArgument)?;
            Ok(match ty {
                0 => &mut s.request_headers,
                1 => &mut s.request_trailers,
                2 => &mut s.response_headers,
                _ => &mut s.response_trailers,
            })
        }
        4..=7 => Err(Abi::Status(Status::BadArgument)),
        _ => Err(Abi::Status(Status::BadArgument)),
    }
}

fn set_pairs(c: &mut C<'_>, ty: u32, ptr: u32, len: u32) -> Result<(), Abi> {
    let raw = read(c, ptr, len)?;
    let mut pairs = codec::decode_map(&raw).map_err(|_| Status::BadArgument)?;
    let st = c.data_mut();
    if st.cfg.rules.lowercase_header_names() {
        for (k, _) in &mut pairs {
            k.make_ascii_lowercase();
        }
    }
    *map_mut(st, ty)? = pairs;
    Ok(())
}

fn edit(
    c: &mut C<'_>,
    ty: u32,
    key: (u32, u32),
    value: Option<(u32, u32)>,
    op: Edit,
) -> Result<(), Abi> {
    let mut key = read(c, key.0, key.1)?;
    let value = match value {
        Some((p, l)) => read(c, p, l)?,
        None => Vec::new(),
    };
    let st = c.data_mut();
    if st.cfg.rules.lowercase_header_names() {
        key.make_ascii_lowercase();
    }
    let map = map_mut(st, ty)?;
    match op {
        Edit::Add => map.push((key, value)),
        Edit::Replace => {
            let mut first = true;
            map.retain_mut(|(k, v)| {
                if !k.eq_ignore_ascii_case(&key) {
                    return true;
                }
                if first {
                    first = false;
                    *v = value.clone();
                    true
                } else {
                    false
                }
            });
            if first {
                map.push((key, value));
            }
        }
        Edit::Remove => map.retain(|(k, _)| !k.eq_ignore_ascii_case(&key)),
    }
    Ok(())
}
