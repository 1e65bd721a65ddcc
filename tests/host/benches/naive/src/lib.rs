//! The baseline the llm-tracer benchmarks compare against: an LLM tracing filter written the
//! straightforward way with the same proxy-wasm SDK.
//!
//! It pauses every traced request and response body until the end of the stream (the gateway
//! buffers it), reads it whole, parses it into a `serde_json::Value` (an event stream event by
//! event), and rebuilds the trace record as another `Value`, kept in a bounded in-memory queue.
//! Requests are traced when their path ends in `/chat/completions` (OpenAI Chat Completions,
//! streamed or not).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};
use serde_json::{json, Map, Value};

/// Records kept at most; the oldest is dropped beyond it.
const QUEUE_MAX: usize = 1000;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(NaiveRoot::default()) });
}}

type Queue = Rc<RefCell<VecDeque<Value>>>;

#[derive(Default)]
struct NaiveRoot {
    queue: Queue,
    traced_metric: Option<u32>,
}

impl Context for NaiveRoot {}

impl RootContext for NaiveRoot {
    fn on_configure(&mut self, _: usize) -> bool {
        self.traced_metric =
            hostcalls::define_metric(MetricType::Counter, "naive_traced_exchanges_total").ok();
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(NaiveHttp {
            queue: self.queue.clone(),
            traced_metric: self.traced_metric,
            traced: false,
            finished: false,
            start_ns: 0,
            first_byte_ns: None,
            path: String::new(),
            request_headers: Map::new(),
            request: Value::Null,
            status: Value::Null,
            event_stream: false,
        }))
    }
}

struct NaiveHttp {
    queue: Queue,
    traced_metric: Option<u32>,
    traced: bool,
    finished: bool,
    start_ns: u64,
    first_byte_ns: Option<u64>,
    path: String,
    request_headers: Map<String, Value>,
    request: Value,
    status: Value,
    event_stream: bool,
}

fn now_ns() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl NaiveHttp {
    /// Builds the record from the parsed request and response and queues it.
    fn finish(&mut self, response: Option<&[u8]>) {
        if !self.traced || self.finished {
            return;
        }
        self.finished = true;
        let (output, usage, model) = match response {
            Some(body) if self.event_stream => fold_stream(body),
            Some(body) => parse_whole(body),
            None => (Value::Null, Value::Null, Value::Null),
        };
        let mut params = Map::new();
        if let Value::Object(request) = &self.request {
            for (k, v) in request {
                if k != "messages" {
                    params.insert(k.clone(), v.clone());
                }
            }
        }
        let end_ns = now_ns();
        let record = json!({
            "name": "chat",
            "path": self.path,
            "start_ns": self.start_ns,
            "end_ns": end_ns,
            "ttft_ns": self.first_byte_ns.map(|t| t.saturating_sub(self.start_ns)),
            "status": self.status,
            "request_headers": self.request_headers,
            "request_model": self.request.get("model").cloned().unwrap_or(Value::Null),
            "response_model": model,
            "parameters": params,
            "input": {"messages": self.request.get("messages").cloned().unwrap_or(Value::Null)},
            "output": output,
            "usage": usage,
        });
        let mut queue = self.queue.borrow_mut();
        if queue.len() >= QUEUE_MAX {
            queue.pop_front();
        }
        queue.push_back(record);
        if let Some(id) = self.traced_metric {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }
}

/// A non-streamed `chat.completion`: its choices, usage and model.
fn parse_whole(body: &[u8]) -> (Value, Value, Value) {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => (
            json!({"choices": v.get("choices").cloned().unwrap_or(Value::Null)}),
            v.get("usage").cloned().unwrap_or(Value::Null),
            v.get("model").cloned().unwrap_or(Value::Null),
        ),
        Err(_) => (json!({"raw": text(body)}), Value::Null, Value::Null),
    }
}

/// A `chat.completion.chunk` event stream folded into one message: content, tool calls merged
/// by index, finish reason, usage and model.
fn fold_stream(body: &[u8]) -> (Value, Value, Value) {
    let mut content = String::new();
    let mut tool_calls: Vec<Value> = Vec::new();
    let mut finish_reason = Value::Null;
    let mut usage = Value::Null;
    let mut model = Value::Null;
    for line in text(body).lines() {
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let data = data.trim();
        if data == "[DONE]" {
            continue;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        if let Some(m) = chunk.get("model") {
            model = m.clone();
        }
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            usage = u.clone();
        }
        let choices = chunk.get("choices").and_then(Value::as_array);
        for choice in choices.into_iter().flatten() {
            if let Some(r) = choice.get("finish_reason").filter(|r| !r.is_null()) {
                finish_reason = r.clone();
            }
            let Some(delta) = choice.get("delta") else {
                continue;
            };
            if let Some(c) = delta.get("content").and_then(Value::as_str) {
                content.push_str(c);
            }
            let calls = delta.get("tool_calls").and_then(Value::as_array);
            for call in calls.into_iter().flatten() {
                merge_tool_call(&mut tool_calls, call);
            }
        }
    }
    let mut message = json!({"role": "assistant", "content": content});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let output =
        json!({"choices": [{"index": 0, "message": message, "finish_reason": finish_reason}]});
    (output, usage, model)
}

/// Adds one streamed tool-call delta to the call with the same index.
fn merge_tool_call(calls: &mut Vec<Value>, delta: &Value) {
    let index = delta
        .get("index")
        .and_then(Value::as_u64)
        .and_then(|i| usize::try_from(i).ok())
        .unwrap_or(0)
        .min(1024);
    while calls.len() <= index {
        calls.push(
            json!({"id": null, "type": "function", "function": {"name": null, "arguments": ""}}),
        );
    }
    let call = &mut calls[index];
    if let Some(id) = delta.get("id").filter(|v| !v.is_null()) {
        call["id"] = id.clone();
    }
    if let Some(f) = delta.get("function") {
        if let Some(name) = f.get("name").filter(|v| !v.is_null()) {
            call["function"]["name"] = name.clone();
        }
        if let Some(piece) = f.get("arguments").and_then(Value::as_str) {
            let mut args = call["function"]["arguments"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            args.push_str(piece);
            call["function"]["arguments"] = Value::String(args);
        }
    }
}

impl Context for NaiveHttp {
    fn on_done(&mut self) -> bool {
        self.finish(None);
        true
    }
}

impl HttpContext for NaiveHttp {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let path = self
            .get_http_request_header_bytes(":path")
            .map(|p| text(&p))
            .unwrap_or_default();
        let route = path.split('?').next().unwrap_or_default();
        self.traced = route.ends_with("/chat/completions");
        if !self.traced {
            return Action::Continue;
        }
        self.start_ns = now_ns();
        self.path = path;
        for (name, value) in self.get_http_request_headers_bytes() {
            self.request_headers
                .insert(name, Value::String(text(&value)));
        }
        self.set_http_request_header("accept-encoding", Some("identity"));
        Action::Continue
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if !self.traced {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self.get_http_request_body(0, size).unwrap_or_default();
        self.request = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if !self.traced {
            return Action::Continue;
        }
        self.status = self
            .get_http_response_header_bytes(":status")
            .and_then(|s| text(&s).trim().parse::<u16>().ok())
            .map_or(Value::Null, Value::from);
        self.event_stream = self
            .get_http_response_header_bytes("content-type")
            .is_some_and(|t| text(&t).starts_with("text/event-stream"));
        if end_of_stream {
            self.finish(None);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if !self.traced {
            return Action::Continue;
        }
        if self.first_byte_ns.is_none() && size > 0 {
            self.first_byte_ns = Some(now_ns());
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self.get_http_response_body(0, size).unwrap_or_default();
        self.finish(Some(&body));
        Action::Continue
    }
}
