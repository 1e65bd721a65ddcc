#!/usr/bin/env bash
# Attach llm_tracer to a Kong route through the Admin API.
#
#   kong/admin-api.sh chain         # Kong 3.5–3.9: a filter chain on the route, config object
#   kong/admin-api.sh chain_string  # Kong 3.4 (or no meta.json): config as a JSON string
#   kong/admin-api.sh service       # a filter chain on a whole service
#   kong/admin-api.sh plugin        # Kong 3.9: the filter as a plugin on the route (needs jq)
#   kong/admin-api.sh show          # what is attached to the route
#   kong/admin-api.sh remove        # detach the chain and the plugin (needs jq)
#
# Environment: KONG_ADMIN_URL (default http://localhost:8001), ROUTE (default openai-chat,
# the route of kong/kong.yml) and SERVICE (default openai). `chain` and `plugin` also set
# `response_buffering: false` on the route so SSE streams are not held in nginx's buffer.
# Kong must run with KONG_WASM=on and KONG_WASM_FILTERS_PATH holding llm_tracer.wasm and,
# on 3.5+, llm_tracer.meta.json (which lets `config` be a JSON object).
#
# Every JSON body below is checked by tests/packaging.rs: each filter `config` must be
# accepted by the filter's own parser.
set -euo pipefail

ADMIN="${KONG_ADMIN_URL:-http://localhost:8001}"
ROUTE="${ROUTE:-openai-chat}"
SERVICE="${SERVICE:-openai}"

post() {
  curl -sS --fail-with-body -X POST "$ADMIN$1" -H 'content-type: application/json' --data @-
  echo
}

# Kong 3.5–3.9: a filter chain entity attached to the route (one chain per route). Kong
# 3.5–3.7 lack the metric host calls: add "metrics": false to the config there.
chain() {
  post "/routes/$ROUTE/filter-chains" <<'JSON'
{
  "name": "llm-trace",
  "filters": [
    {
      "name": "llm_tracer",
      "enabled": true,
      "config": {
        "flush_interval_ms": 1000,
        "opik": {
          "endpoint": "http://10.0.0.5:5173/api",
          "project_name": "llm-gateway"
        },
        "langfuse": {
          "endpoint": "https://cloud.langfuse.com",
          "upstream": "cloud.langfuse.com:443",
          "public_key": "pk-lf-00000000-0000-0000-0000-000000000000",
          "secret_key": "sk-lf-00000000-0000-0000-0000-000000000000"
        }
      }
    }
  ]
}
JSON
}

# Kong 3.4, or any version without llm_tracer.meta.json: `config` is a JSON string, passed to
# the filter verbatim. Kong 3.4–3.7 lack the metric host calls: `metrics` must be false.
chain_string() {
  post "/routes/$ROUTE/filter-chains" <<'JSON'
{
  "name": "llm-trace",
  "filters": [
    {
      "name": "llm_tracer",
      "config": "{\"metrics\":false,\"opik\":{\"endpoint\":\"http://10.0.0.5:5173/api\",\"project_name\":\"llm-gateway\"}}"
    }
  ]
}
JSON
}

# A filter chain on a whole service: every route of the service is traced.
service() {
  post "/services/$SERVICE/filter-chains" <<'JSON'
{
  "name": "llm-trace-service",
  "filters": [
    {
      "name": "llm_tracer",
      "config": {
        "routes": [ { "path_suffix": "/chat/completions" }, { "path_suffix": "/responses" } ],
        "opik": { "endpoint": "http://10.0.0.5:5173/api", "project_name": "llm-gateway" }
      }
    }
  ]
}
JSON
}

# Kong 3.9: the filter configured through /plugins, scoped to the route (filters cannot be
# global or per-consumer). Needs jq.
plugin() {
  local route_id
  route_id=$(curl -sS --fail-with-body "$ADMIN/routes/$ROUTE" | jq -r .id)
  jq -n --arg route "$route_id" --argjson config "$(plugin_config)" \
    '{name: "llm_tracer", route: {id: $route}, config: $config}' | post /plugins
}

plugin_config() {
  cat <<'JSON'
{
  "flush_interval_ms": 1000,
  "opik": {
    "endpoint": "https://www.comet.com/opik/api",
    "upstream": "www.comet.com:443",
    "api_key": "YOUR_OPIK_API_KEY",
    "workspace": "your-workspace",
    "project_name": "llm-gateway"
  }
}
JSON
}

# SSE streams must not sit in nginx's proxy buffer.
unbuffer() {
  curl -sS --fail-with-body -X PATCH "$ADMIN/routes/$ROUTE" \
    -H 'content-type: application/json' --data '{"response_buffering": false}'
  echo
}

show() {
  curl -sS --fail-with-body "$ADMIN/routes/$ROUTE/filters/all"
  echo
  curl -sS --fail-with-body "$ADMIN/routes/$ROUTE/plugins"
  echo
}

# Needs jq.
remove() {
  curl -sS -X DELETE "$ADMIN/filter-chains/llm-trace"
  local id
  for id in $(curl -sS --fail-with-body "$ADMIN/routes/$ROUTE/plugins" |
    jq -r '.data[] | select(.name == "llm_tracer") | .id'); do
    curl -sS -X DELETE "$ADMIN/plugins/$id"
  done
}

case "${1:-}" in
  chain) unbuffer; chain ;;
  chain_string) unbuffer; chain_string ;;
  service) service ;;
  plugin) unbuffer; plugin ;;
  show) show ;;
  remove) remove ;;
  *) sed -n '2,9p' "$0"; exit 2 ;;
esac
