#!/usr/bin/env python3
"""Validate Envoy configurations against Envoy's v3 API types.

Usage: envoy_validate.py FILE...

Every YAML document of every FILE is examined:
  - a document with `static_resources` or `admin` is an Envoy Bootstrap;
  - a Kubernetes `EnvoyProxy` (Envoy Gateway) document contributes the Bootstrap fragment in
    `spec.bootstrap.value`;
  - any other document is reported as skipped.

Each Bootstrap is parsed with the `envoy-data-plane` package (betterproto2-generated Envoy v3
messages): unknown fields, wrong types, bad enum names, malformed durations and unregistered
`@type` URLs are errors. Every `google.protobuf.Any` is resolved through the package's type
registry, so `typed_config` values are checked as the message their `@type` names,
recursively: before parsing, the package module of every `@type` the document names is
imported, which registers its messages. The generated classes convert scalars leniently
(pydantic turns "yes" into true); a second pass holds scalars to protobuf's JSON mapping, as
Envoy's own parser does: bools are booleans, strings are strings, integers are integers or
decimal strings.

Prints one JSON object on stdout:
  {"documents": [{"file", "index", "kind", "clusters", "stats_tags", "wasm", "routes"}...],
   "skipped": [{"file", "index", "reason"}...],
   "errors": [{"file", "index", "error"}...],
   "registered_types": N}
where `wasm` lists each Wasm HTTP filter found (name, root_id, runtime, fail_open and its
`configuration`, unpacked from the Any), `routes` each route's cluster and timeouts, and
`registered_types` counts the messages in the registry.
Exits 0 when no document has an error, 1 otherwise, 2 when the package is missing.
"""

import importlib
import json
import sys

INSTALL_HINT = "python3 -m pip install -r tests/requirements.txt"

try:
    import betterproto2
    import yaml
    from envoy_data_plane.envoy.config.bootstrap.v3 import Bootstrap
    from envoy_data_plane.envoy.extensions.filters.http.wasm.v3 import Wasm
    from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import (
        HttpConnectionManager,
    )
    from envoy_data_plane.message_pool import default_message_pool
except ImportError as missing:  # pragma: no cover - exercised by the Rust test's message
    sys.stderr.write(f"envoy_validate.py: {missing}; install with: {INSTALL_HINT}\n")
    sys.exit(2)


def type_urls(node):
    """Every `@type` URL in a parsed YAML tree."""
    if isinstance(node, dict):
        url = node.get("@type")
        if isinstance(url, str):
            yield url
        for value in node.values():
            yield from type_urls(value)
    elif isinstance(node, list):
        for value in node:
            yield from type_urls(value)


def register_types(document):
    """Import the generated module of every message a document's `@type`s name.

    `type.googleapis.com/envoy.config.core.v3.Foo` lives in
    `envoy_data_plane.envoy.config.core.v3`; importing it registers its messages for `Any`
    resolution. An unknown package stays unregistered and fails the parse that needs it.
    """
    for url in set(type_urls(document)):
        package = url.rsplit("/", 1)[-1].rpartition(".")[0]
        try:
            importlib.import_module(f"envoy_data_plane.{package}")
        except ImportError:
            pass


INTEGER_TYPES = {
    betterproto2.TYPE_INT32,
    betterproto2.TYPE_INT64,
    betterproto2.TYPE_UINT32,
    betterproto2.TYPE_UINT64,
    betterproto2.TYPE_SINT32,
    betterproto2.TYPE_SINT64,
    betterproto2.TYPE_FIXED32,
    betterproto2.TYPE_FIXED64,
    betterproto2.TYPE_SFIXED32,
    betterproto2.TYPE_SFIXED64,
}


class StrictTypeError(ValueError):
    """A scalar whose JSON type protobuf's JSON mapping does not accept."""


def has_own_json_form(cls):
    """Well-known types (Duration, wrappers, Struct...) parse their JSON form themselves."""
    return cls.from_dict.__func__ is not betterproto2.Message.from_dict.__func__


def check_scalar(proto_type, value, path):
    """Raise StrictTypeError unless `value` is a JSON form protobuf accepts for `proto_type`."""
    if proto_type == betterproto2.TYPE_BOOL:
        ok = isinstance(value, bool)
    elif proto_type == betterproto2.TYPE_STRING:
        ok = isinstance(value, str)
    elif proto_type in INTEGER_TYPES:
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and value.lstrip("-").isdigit()
        )
    else:
        ok = True
    if not ok:
        raise StrictTypeError(f"{path}: {value!r} is not a valid {proto_type} value")


def check_strict(cls, mapping, path):
    """Walk `mapping` along message class `cls`, checking scalar JSON types."""
    if not isinstance(mapping, dict):
        return  # the generated parser already rejected or converted it
    if cls is default_message_pool.url_to_type.get("type.googleapis.com/google.protobuf.Any"):
        inner = default_message_pool.url_to_type.get(mapping.get("@type"))
        if inner is not None and not has_own_json_form(inner):
            body = {k: v for k, v in mapping.items() if k != "@type"}
            check_strict(inner, body, f"{path}<{inner.__name__}>")
        return
    if has_own_json_form(cls):
        return
    meta = cls._betterproto
    for key, value in mapping.items():
        name = betterproto2.casing.safe_snake_case(key)
        field = meta.meta_by_field_name.get(name)
        if field is None or value is None:
            continue
        field_path = f"{path}.{key}"
        items = value if field.repeated and isinstance(value, list) else [value]
        if field.proto_type == betterproto2.TYPE_MESSAGE:
            target = field.unwrap() if field.unwrap else meta.cls_by_field[name]
            for index, item in enumerate(items):
                check_strict(
                    target, item, f"{field_path}[{index}]" if field.repeated else field_path
                )
        elif field.proto_type == betterproto2.TYPE_MAP:
            value_meta = field.map_meta[1]
            value_cls = meta.cls_by_field.get(f"{name}.value")
            for map_key, map_value in value.items() if isinstance(value, dict) else []:
                entry_path = f"{field_path}[{map_key}]"
                if value_meta.proto_type == betterproto2.TYPE_MESSAGE and value_cls is not None:
                    check_strict(value_cls, map_value, entry_path)
                else:
                    check_scalar(value_meta.proto_type, map_value, entry_path)
        else:
            for item in items:
                check_scalar(field.proto_type, item, field_path)


def unpack(any_value):
    """The message inside an `Any`, or None when it is empty."""
    return any_value.unpack() if any_value is not None else None


def duration_text(value):
    """A protobuf Duration field (a timedelta) as Envoy's JSON form, or None."""
    if value is None:
        return None
    return f"{value.total_seconds():g}s"


def wasm_filters(hcm):
    """The Wasm HTTP filters of a connection manager, with their configuration string."""
    found = []
    for http_filter in hcm.http_filters:
        message = unpack(http_filter.typed_config)
        if not isinstance(message, Wasm) or message.config is None:
            continue
        plugin = message.config
        configuration = unpack(plugin.configuration)
        vm = plugin.vm_config
        found.append(
            {
                "filter": http_filter.name,
                "name": plugin.name,
                "root_id": plugin.root_id,
                "runtime": vm.runtime if vm is not None else "",
                "fail_open": bool(plugin.fail_open),
                "configuration": getattr(configuration, "value", None),
            }
        )
    return found


def routes_of(hcm):
    """Each route of an inline route configuration: its cluster and timeouts."""
    out = []
    if hcm.route_config is None:
        return out
    for host in hcm.route_config.virtual_hosts:
        for route in host.routes:
            action = route.route
            if action is None:
                continue
            out.append(
                {
                    "virtual_host": host.name,
                    "cluster": action.cluster,
                    "timeout": duration_text(action.timeout),
                    "idle_timeout": duration_text(action.idle_timeout),
                }
            )
    return out


def summarize(bootstrap):
    """What the Rust test checks beyond type validity."""
    summary = {"clusters": [], "stats_tags": [], "wasm": [], "routes": []}
    resources = bootstrap.static_resources
    if resources is not None:
        summary["clusters"] = [cluster.name for cluster in resources.clusters]
        for listener in resources.listeners:
            for chain in listener.filter_chains:
                for network_filter in chain.filters:
                    hcm = unpack(network_filter.typed_config)
                    if isinstance(hcm, HttpConnectionManager):
                        summary["wasm"].extend(wasm_filters(hcm))
                        summary["routes"].extend(routes_of(hcm))
    if bootstrap.stats_config is not None:
        summary["stats_tags"] = [
            {"tag_name": tag.tag_name, "regex": tag.regex}
            for tag in bootstrap.stats_config.stats_tags
        ]
    return summary


def bootstrap_source(document):
    """(kind, bootstrap mapping) for a document that holds one, else (None, reason)."""
    if not isinstance(document, dict):
        return None, "not a mapping"
    if "static_resources" in document or "admin" in document:
        return "Bootstrap", document
    if document.get("kind") == "EnvoyProxy":
        bootstrap = (document.get("spec") or {}).get("bootstrap") or {}
        value = bootstrap.get("value")
        if isinstance(value, str):
            return "EnvoyProxy.spec.bootstrap", yaml.safe_load(value)
        return None, "EnvoyProxy without spec.bootstrap.value"
    return None, f"kind {document.get('kind')!r} is not an Envoy configuration"


def validate_file(path, report):
    """Validate every Envoy configuration in one YAML file, adding the outcome to `report`."""
    try:
        with open(path, encoding="utf-8") as handle:
            documents = list(yaml.safe_load_all(handle))
    except (OSError, yaml.YAMLError) as error:
        report["errors"].append({"file": path, "index": None, "error": str(error)})
        return
    for index, document in enumerate(documents):
        if document is None:
            continue
        kind, source = bootstrap_source(document)
        if kind is None:
            report["skipped"].append({"file": path, "index": index, "reason": source})
            continue
        try:
            register_types(source)
            bootstrap = Bootstrap.from_dict(source)
            check_strict(Bootstrap, source, "Bootstrap")
            entry = {"file": path, "index": index, "kind": kind}
            entry.update(summarize(bootstrap))
            report["documents"].append(entry)
        # What the generated parser raises on bad input (pydantic's errors are ValueErrors).
        except (KeyError, ValueError, TypeError, AttributeError) as error:
            report["errors"].append(
                {"file": path, "index": index, "error": f"{type(error).__name__}: {error}"}
            )


def main(paths):
    """Validate `paths`, print the report, and return the exit status."""
    if not paths:
        sys.stderr.write("usage: envoy_validate.py FILE...\n")
        return 2
    report = {"documents": [], "skipped": [], "errors": []}
    for path in paths:
        validate_file(path, report)
    report["registered_types"] = len(default_message_pool.url_to_type)
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
