//! `env` hostcalls on host-held data: properties, shared key-value data, shared queues, metrics
//! and foreign functions (spec sections "Properties", "Shared Key-Value Store", "Shared
//! Queues", "Metrics", "Foreign function interface").
//!
//! Metrics, shared data and queues live in the host records, so they survive Kong recycling a
//! trapped instance (Kong keeps them in shared memory zones, hosts.md §4.6–§4.7).

use wasmtime::Caller;

use super::codec::{decode_path, dotted_path};
use super::memory::{check, read, return_bytes, write_u32, write_u64};
use super::{finish, Abi, Registrar, Status};
use crate::personality::PropQuery;
use crate::state::{HostState, Metric, MetricKind, MetricValue, Queue};

type C<'a> = Caller<'a, HostState>;

pub(super) fn register(r: &mut Registrar<'_>) {
    r.func(
        "env",
        "proxy_get_property",
        |mut c: C<'_>, pp: u32, pl: u32, ret: u32, ret_size: u32| {
            let res = read(&c, pp, pl)
                .and_then(|p| get_property(c.data(), &dotted_path(&decode_path(&p))))
                .and_then(|v| return_bytes(&mut c, &v, ret, ret_size));
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_set_property",
        |mut c: C<'_>, pp: u32, pl: u32, vp: u32, vl: u32| {
            let res = set_property(&mut c, (pp, pl), (vp, vl));
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_get_shared_data",
        |mut c: C<'_>, kp: u32, kl: u32, ret: u32, ret_size: u32, ret_cas: u32| {
            let res = get_shared(&mut c, (kp, kl), ret, ret_size, ret_cas);
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_set_shared_data",
        |mut c: C<'_>, kp: u32, kl: u32, vp: u32, vl: u32, cas: u32| {
            let res = set_shared(&mut c, (kp, kl), (vp, vl), cas);
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_register_shared_queue",
        |mut c: C<'_>, np: u32, nl: u32, ret: u32| {
            let res = register_queue(&mut c, (np, nl), ret);
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: C<'_>, vp: u32, vl: u32, np: u32, nl: u32, ret: u32| {
            let res = resolve_queue(&mut c, (vp, vl), (np, nl), ret);
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_enqueue_shared_queue",
        |mut c: C<'_>, id: u32, vp: u32, vl: u32| {
            let res = read(&c, vp, vl).and_then(|v| enqueue(c.data_mut(), id, v));
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_dequeue_shared_queue",
        |mut c: C<'_>, id: u32, ret: u32, ret_size: u32| {
            let res = dequeue(&mut c, id, ret, ret_size);
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_define_metric",
        |mut c: C<'_>, ty: u32, np: u32, nl: u32, ret: u32| {
            let res = define_metric(&mut c, ty, (np, nl), ret);
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_increment_metric",
        |mut c: C<'_>, id: u32, delta: i64| {
            let res = increment_metric(c.data_mut(), id, delta);
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_record_metric",
        |mut c: C<'_>, id: u32, value: u64| {
            let res = record_metric(c.data_mut(), id, value);
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_get_metric",
        |mut c: C<'_>, id: u32, ret: u32| {
            let res = get_metric(&mut c, id, ret);
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_call_foreign_function",
        |mut c: C<'_>, _np: u32, _nl: u32, _ap: u32, _al: u32, _ret: u32, _ret_size: u32| {
            // No foreign functions are registered on either host.
            let res = c
                .data()
                .nyi_check("proxy_call_foreign_function")
                .and(Err(Abi::Status(Status::NotFound)));
            finish(c.data_mut(), res)
        },
    );
}

fn get_property(st: &HostState, path: &str) -> Result<Vec<u8>, Abi> {
    let in_root = st.in_root_context();
    if in_root {
        if let Some(v) = st.vm.root_properties.get(path) {
            return Ok(v.clone());
        }
    }
    let q = PropQuery {
        path,
        phase: st.vm.phase,
        in_root,
        root_id: st.vm.root_id,
        stream: st.effective_stream_ref(),
        opts: &st.cfg.opts,
        now_ns: st.rec.clock.unix_ns(),
    };
    st.cfg
        .rules
        .property(&q)?
        .ok_or(Abi::Status(Status::NotFound))
}

fn set_property(c: &mut C<'_>, path: (u32, u32), value: (u32, u32)) -> Result<(), Abi> {
    let path = dotted_path(&decode_path(&read(c, path.0, path.1)?));
    let value = read(c, value.0, value.1)?;
    let st = c.data_mut();
    let in_root = st.in_root_context();
    st.cfg.rules.set_property(&path, in_root)?;
    if in_root {
        st.vm.root_properties.insert(path, value);
    } else {
        let s = st.effective_stream().ok_or(Status::NotFound)?;
        s.properties.insert(path, value);
    }
    Ok(())
}

fn get_shared(
    c: &mut C<'_>,
    key: (u32, u32),
    ret: u32,
    ret_size: u32,
    ret_cas: u32,
) -> Result<(), Abi> {
    let key = read(c, key.0, key.1)?;
    let st = c.data();
    st.cfg.rules.shared_key(&st.cfg.opts, &key)?;
    let (value, cas) = st
        .rec
        .shared_data
        .get(&key)
        .cloned()
        .ok_or(Status::NotFound)?;
    check(c, ret_cas, 4)?;
    return_bytes(c, &value, ret, ret_size)?;
    write_u32(c, ret_cas, cas)
}

fn set_shared(c: &mut C<'_>, key: (u32, u32), value: (u32, u32), cas: u32) -> Result<(), Abi> {
    let key = read(c, key.0, key.1)?;
    let value = read(c, value.0, value.1)?;
    let st = c.data_mut();
    st.cfg.rules.shared_key(&st.cfg.opts, &key)?;
    let current = st.rec.shared_data.get(&key).map(|(_, cas)| *cas);
    if cas != 0 && current != Some(cas) {
        return Err(Abi::Status(Status::CasMismatch));
    }
    let next = current.unwrap_or(0).wrapping_add(1).max(1);
    st.rec.shared_data.insert(key, (value, next));
    Ok(())
}

fn register_queue(c: &mut C<'_>, name: (u32, u32), ret: u32) -> Result<(), Abi> {
    let name = String::from_utf8_lossy(&read(c, name.0, name.1)?).into_owned();
    check(c, ret, 4)?;
    let st = c.data_mut();
    let capacity = st.cfg.rules.register_queue(&st.cfg.opts, &name)?;
    let owner = st.vm.effective_context;
    let index = match st.rec.queues.iter().position(|q| q.name == name) {
        Some(i) => i,
        None => {
            st.rec.queues.push(Queue {
                name,
                capacity,
                ..Queue::default()
            });
            st.rec.queues.len() - 1
        }
    };
    st.rec.queues[index].owner = owner;
    write_u32(c, ret, queue_id(index))
}

fn queue_id(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

fn queue_index(st: &HostState, id: u32) -> Result<usize, Abi> {
    let i = usize::try_from(id).map_err(|_| Status::NotFound)?;
    if i == 0 || i > st.rec.queues.len() {
        return Err(Abi::Status(Status::NotFound));
    }
    Ok(i - 1)
}

fn resolve_queue(c: &mut C<'_>, vm_id: (u32, u32), name: (u32, u32), ret: u32) -> Result<(), Abi> {
    c.data().nyi_check("proxy_resolve_shared_queue")?;
    let vm_id = read(c, vm_id.0, vm_id.1)?;
    let name = read(c, name.0, name.1)?;
    let st = c.data();
    if !vm_id.is_empty() && vm_id != st.cfg.opts.vm_id.as_bytes() {
        return Err(Abi::Status(Status::NotFound));
    }
    let index = st
        .rec
        .queues
        .iter()
        .position(|q| q.name.as_bytes() == name.as_slice())
        .ok_or(Status::NotFound)?;
    write_u32(c, ret, queue_id(index))
}

fn enqueue(st: &mut HostState, id: u32, value: Vec<u8>) -> Result<(), Abi> {
    let i = queue_index(st, id)?;
    let rules = st.cfg.rules;
    let q = &mut st.rec.queues[i];
    if q.capacity.is_some_and(|cap| q.bytes + value.len() > cap) {
        return Err(rules.queue_full(&q.name));
    }
    q.bytes += value.len();
    q.items.push_back(value);
    let owner = q.owner;
    if rules.queue_ready_supported() {
        st.rec.queue_ready.push((owner, id));
    }
    Ok(())
}

fn dequeue(c: &mut C<'_>, id: u32, ret: u32, ret_size: u32) -> Result<(), Abi> {
    let i = queue_index(c.data(), id)?;
    check(c, ret, 4)?;
    check(c, ret_size, 4)?;
    let q = &mut c.data_mut().rec.queues[i];
    let item = q.items.pop_front().ok_or(Status::Empty)?;
    q.bytes = q.bytes.saturating_sub(item.len());
    return_bytes(c, &item, ret, ret_size)
}

fn define_metric(c: &mut C<'_>, ty: u32, name: (u32, u32), ret: u32) -> Result<(), Abi> {
    c.data().nyi_check("proxy_define_metric")?;
    let name = String::from_utf8_lossy(&read(c, name.0, name.1)?).into_owned();
    check(c, ret, 4)?;
    let st = c.data_mut();
    let kind = match ty {
        0 => MetricKind::Counter,
        1 => MetricKind::Gauge,
        2 => MetricKind::Histogram,
        _ => return Err(st.cfg.rules.bad_metric_type()),
    };
    let full = st.cfg.rules.metric_name(&st.cfg.opts, &name)?;
    // Defining the same name again returns the same metric (ngx_wa_metrics_define
    // de-duplicates by name, hosts.md §4.7; Envoy resolves the same stat).
    let index = match st.rec.metrics.iter().position(|m| m.name == full) {
        Some(i) if st.rec.metrics[i].kind == kind => i,
        Some(_) => return Err(Abi::Status(Status::BadArgument)),
        None => {
            let value = match kind {
                MetricKind::Counter => MetricValue::Counter(0),
                MetricKind::Gauge => MetricValue::Gauge(0),
                MetricKind::Histogram => MetricValue::Histogram(Vec::new()),
            };
            st.rec.metrics.push(Metric {
                name: full,
                kind,
                value,
            });
            st.rec.metrics.len() - 1
        }
    };
    write_u32(c, ret, u32::try_from(index + 1).unwrap_or(u32::MAX))
}

fn metric_mut(st: &mut HostState, id: u32) -> Result<&mut Metric, Abi> {
    let i = usize::try_from(id).map_err(|_| Status::NotFound)?;
    if i == 0 {
        return Err(Abi::Status(Status::NotFound));
    }
    st.rec
        .metrics
        .get_mut(i - 1)
        .ok_or(Abi::Status(Status::NotFound))
}

fn increment_metric(st: &mut HostState, id: u32, delta: i64) -> Result<(), Abi> {
    st.nyi_check("proxy_increment_metric")?;
    let m = metric_mut(st, id)?;
    match &mut m.value {
        MetricValue::Counter(v) => {
            // Spec: BAD_ARGUMENT "when requested delta cannot be applied (e.g. trying to
            // decrement counter)".
            let d = u64::try_from(delta).map_err(|_| Status::BadArgument)?;
            *v = v.saturating_add(d);
        }
        MetricValue::Gauge(v) => *v = v.saturating_add(delta),
        MetricValue::Histogram(_) => return Err(Abi::Status(Status::BadArgument)),
    }
    Ok(())
}

fn record_metric(st: &mut HostState, id: u32, value: u64) -> Result<(), Abi> {
    st.nyi_check("proxy_record_metric")?;
    let m = metric_mut(st, id)?;
    match &mut m.value {
        MetricValue::Counter(v) => *v = value,
        MetricValue::Gauge(v) => *v = i64::try_from(value).unwrap_or(i64::MAX),
        MetricValue::Histogram(values) => values.push(value),
    }
    Ok(())
}

fn get_metric(c: &mut C<'_>, id: u32, ret: u32) -> Result<(), Abi> {
    c.data().nyi_check("proxy_get_metric")?;
    let value = match &metric_mut(c.data_mut(), id)?.value {
        MetricValue::Counter(v) => *v,
        // Two's complement, as a u64 out-parameter carries a negative Envoy gauge.
        MetricValue::Gauge(v) => *v as u64,
        MetricValue::Histogram(_) => return Err(Abi::Status(Status::BadArgument)),
    };
    write_u64(c, ret, value)
}
