//! Route registration that documents itself: every route of the API is added through an
//! [`ApiRouter`] together with its [`Operation`], and the OpenAPI 3.1 document served at
//! `GET /openapi.json` is built from those operations. A route cannot be served without
//! being documented, so the document cannot drift from the router.
//!
//! Schemas come from `schemars` (JSON Schema 2020-12, the dialect of OpenAPI 3.1), with
//! definitions under `#/components/schemas/` (see `docs/adr/0003-openapi-from-schemars.md`).

use std::collections::{BTreeMap, BTreeSet};

use axum::http::Method;
use axum::routing::MethodRouter;
use axum::Router;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{json, Map, Value};

use super::errors;
use super::principal::Role;

use super::AppState;
/// The schemars this API documents with, for crates that describe route types without
/// depending on it themselves: `use api::http::openapi::schemars::{self, JsonSchema};`.
pub use schemars;

/// Generates the schema of one type into a generator (a `$ref` for named types).
type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// The top-level properties of `T`'s schema, as query parameters.
type QueryFn = fn() -> Vec<QueryParam>;

/// One query parameter derived from a struct field.
#[derive(Debug, Clone)]
struct QueryParam {
    name: String,
    required: bool,
    schema: Value,
    description: Option<String>,
}

fn query_of<T: JsonSchema>() -> Vec<QueryParam> {
    // Query strings are flat: inline every subschema so each parameter stands alone.
    let generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .for_deserialize()
        .into_generator();
    let root = generator.into_root_schema_for::<T>();
    let required: BTreeSet<String> = root
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let Some(properties) = root.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, schema)| {
            let mut schema = schema.clone();
            let description = schema
                .as_object_mut()
                .and_then(|s| s.remove("description"))
                .and_then(|d| d.as_str().map(str::to_owned));
            QueryParam {
                name: name.clone(),
                required: required.contains(name),
                schema,
                description,
            }
        })
        .collect()
}

/// One documented route: method, path and everything a client needs to call it.
#[derive(Debug, Clone)]
pub struct Operation {
    method: Method,
    path: &'static str,
    summary: Option<&'static str>,
    description: Option<&'static str>,
    tags: Vec<&'static str>,
    roles: Vec<Role>,
    command: bool,
    body: Option<SchemaFn>,
    replies: Vec<(u16, Option<SchemaFn>)>,
    query: Option<QueryFn>,
    path_params: Vec<(&'static str, &'static str)>,
    problems: Vec<&'static str>,
}

impl Operation {
    fn new(method: Method, path: &'static str) -> Self {
        Self {
            method,
            path,
            summary: None,
            description: None,
            tags: Vec::new(),
            roles: Vec::new(),
            command: false,
            body: None,
            replies: Vec::new(),
            query: None,
            path_params: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// A `GET` at `path` (axum 0.8 syntax, `/carts/{cart_id}`).
    pub fn get(path: &'static str) -> Self {
        Self::new(Method::GET, path)
    }

    /// A `POST` at `path`.
    pub fn post(path: &'static str) -> Self {
        Self::new(Method::POST, path)
    }

    /// A `PUT` at `path`.
    pub fn put(path: &'static str) -> Self {
        Self::new(Method::PUT, path)
    }

    /// A `PATCH` at `path`.
    pub fn patch(path: &'static str) -> Self {
        Self::new(Method::PATCH, path)
    }

    /// A `DELETE` at `path`.
    pub fn delete(path: &'static str) -> Self {
        Self::new(Method::DELETE, path)
    }

    /// One-line summary.
    pub fn summary(mut self, s: &'static str) -> Self {
        self.summary = Some(s);
        self
    }

    /// Longer description (CommonMark).
    pub fn description(mut self, s: &'static str) -> Self {
        self.description = Some(s);
        self
    }

    /// Groups the operation under tag `t` (may be called several times).
    pub fn tag(mut self, t: &'static str) -> Self {
        if !self.tags.contains(&t) {
            self.tags.push(t);
        }
        self
    }

    /// Roles admitted; empty/not called = public. Documents bearer security + 401/403.
    pub fn roles(mut self, roles: &[Role]) -> Self {
        for role in roles {
            if !self.roles.contains(role) {
                self.roles.push(*role);
            }
        }
        self
    }

    /// A command route: documents the `Idempotency-Key` and `If-Match` request headers,
    /// the `ETag` response header, and the problems every command can answer
    /// (412 `version_mismatch`, 422 `idempotency_key_reused`, 503 `contention`, 400 for
    /// malformed headers).
    pub fn command(mut self) -> Self {
        self.command = true;
        self
    }

    /// The request body (`application/json`).
    pub fn body<T: JsonSchema>(mut self) -> Self {
        self.body = Some(schema_of::<T>);
        self
    }

    /// A success response with status `status` and a JSON body of type `T`.
    pub fn reply<T: JsonSchema>(mut self, status: u16) -> Self {
        self.replies.push((status, Some(schema_of::<T>)));
        self
    }

    /// A success response with no body (e.g. `204 No Content`).
    pub fn reply_empty(mut self, status: u16) -> Self {
        self.replies.push((status, None));
        self
    }

    /// Query parameters: one per top-level property of `T`'s schema.
    pub fn query<T: JsonSchema>(mut self) -> Self {
        self.query = Some(query_of::<T>);
        self
    }

    /// A string path parameter (`{name}` in the path); its schema follows from its name
    /// (see [`path_schema`]). Parameters of the path not
    /// described here are still documented, without a description.
    pub fn path_param(mut self, name: &'static str, description: &'static str) -> Self {
        self.path_params.retain(|(n, _)| *n != name);
        self.path_params.push((name, description));
        self
    }

    /// Problem codes this operation can answer; codes of the problem table
    /// ([`errors::PROBLEM_CODES`]), whose status each response takes.
    pub fn problems(mut self, codes: &[&'static str]) -> Self {
        for code in codes {
            if !self.problems.contains(code) {
                self.problems.push(code);
            }
        }
        self
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path, in axum (and OpenAPI) template syntax.
    pub fn path(&self) -> &'static str {
        self.path
    }

    /// Whether this is a command route.
    pub fn is_command(&self) -> bool {
        self.command
    }

    /// Every problem code the operation documents, including those implied by its
    /// roles, body and command flag.
    pub fn problem_codes(&self) -> Vec<&'static str> {
        let mut codes: Vec<&'static str> = Vec::new();
        let mut add = |c: &'static str| {
            if !codes.contains(&c) {
                codes.push(c);
            }
        };
        if !self.roles.is_empty() {
            add("unauthenticated");
            add("forbidden");
            add("rate_limited");
        }
        if self.body.is_some() {
            for c in [
                "malformed_json",
                "invalid_body",
                "unsupported_media_type",
                "payload_too_large",
            ] {
                add(c);
            }
        }
        if self.command {
            for c in [
                "invalid_idempotency_key",
                "invalid_if_match",
                "idempotency_key_reused",
                "version_mismatch",
                "contention",
            ] {
                add(c);
            }
        }
        for c in &self.problems {
            add(c);
        }
        add("internal_error");
        codes
    }

    fn operation_id(&self) -> String {
        let mut id = self.method.as_str().to_ascii_lowercase();
        for segment in self.path.split('/').filter(|s| !s.is_empty()) {
            id.push('_');
            let segment = segment.trim_start_matches('{').trim_end_matches('}');
            id.extend(
                segment
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
            );
        }
        id
    }

    /// The names in `{…}` of the path, in order.
    fn path_names(&self) -> Vec<&'static str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|s| s.trim_start_matches('*'))
            .collect()
    }

    fn to_openapi(&self, requests: &mut SchemaGenerator, responses: &mut SchemaGenerator) -> Value {
        let mut op = Map::new();
        op.insert("operationId".into(), json!(self.operation_id()));
        if let Some(s) = self.summary {
            op.insert("summary".into(), json!(s));
        }
        if let Some(d) = self.description {
            op.insert("description".into(), json!(d));
        }
        if !self.tags.is_empty() {
            op.insert("tags".into(), json!(self.tags));
        }

        let mut parameters = Vec::new();
        for name in self.path_names() {
            let description = self
                .path_params
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, d)| *d);
            let mut p = json!({
                "name": name,
                "in": "path",
                "required": true,
                "schema": path_schema(name),
            });
            if let Some(d) = description {
                p["description"] = json!(d);
            }
            parameters.push(p);
        }
        if let Some(query) = self.query {
            for q in query() {
                let mut p = json!({
                    "name": q.name,
                    "in": "query",
                    "required": q.required,
                    "schema": q.schema,
                });
                if let Some(d) = q.description {
                    p["description"] = json!(d);
                }
                parameters.push(p);
            }
        }
        if self.command {
            parameters.push(json!({ "$ref": "#/components/parameters/IdempotencyKey" }));
            parameters.push(json!({ "$ref": "#/components/parameters/IfMatch" }));
        }
        if !parameters.is_empty() {
            op.insert("parameters".into(), Value::Array(parameters));
        }

        if let Some(body) = self.body {
            op.insert(
                "requestBody".into(),
                json!({
                    "required": true,
                    "content": { "application/json": { "schema": body(requests) } },
                }),
            );
        }

        let mut answers = Map::new();
        let replies = if self.replies.is_empty() {
            vec![(200, None)]
        } else {
            self.replies.clone()
        };
        for (status, schema) in replies {
            let mut r = json!({ "description": reason(status) });
            if let Some(schema) = schema {
                r["content"] = json!({ "application/json": { "schema": schema(responses) } });
            }
            if self.command && (200..300).contains(&status) {
                r["headers"] = json!({
                    "ETag": { "$ref": "#/components/headers/ETag" },
                    "Idempotent-Replayed": { "$ref": "#/components/headers/IdempotentReplayed" },
                });
            }
            answers.insert(status.to_string(), r);
        }
        let mut by_status: BTreeMap<u16, Vec<&'static str>> = BTreeMap::new();
        for code in self.problem_codes() {
            let status = errors::row(code).map_or_else(
                || {
                    tracing::warn!(code, path = self.path, "problem code not in the table");
                    400
                },
                |row| row.status,
            );
            by_status.entry(status).or_default().push(code);
        }
        for (status, codes) in by_status {
            let titles: Vec<String> = codes
                .iter()
                .map(|c| match errors::row(c) {
                    Some(row) => format!("`{c}` ({})", row.title),
                    None => format!("`{c}`"),
                })
                .collect();
            let mut r = json!({
                "description": format!("{}: {}", reason(status), titles.join(", ")),
                "content": {
                    "application/problem+json": {
                        "schema": { "$ref": "#/components/schemas/Problem" }
                    }
                },
                "x-problem-codes": codes,
            });
            if status == 503 || status == 429 {
                r["headers"] =
                    json!({ "Retry-After": { "$ref": "#/components/headers/RetryAfter" } });
            }
            if status == 412 {
                r["headers"] = json!({ "ETag": { "$ref": "#/components/headers/ETag" } });
            }
            answers.insert(status.to_string(), r);
        }
        op.insert("responses".into(), Value::Object(answers));

        if self.roles.is_empty() {
            op.insert("security".into(), json!([]));
        } else {
            op.insert("security".into(), json!([{ "bearer": [] }]));
            let roles: Vec<&str> = self.roles.iter().map(|r| r.as_str()).collect();
            op.insert("x-roles".into(), json!(roles));
        }
        Value::Object(op)
    }
}

fn reason(status: u16) -> &'static str {
    axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Response")
}

/// An axum router whose every route carries its documentation.
#[derive(Debug, Default)]
pub struct ApiRouter {
    router: Router<AppState>,
    operations: Vec<Operation>,
    /// Plain routers merged in without documentation (see the `From` impl).
    undocumented: usize,
}

/// Transitional: a plain axum router merged into an [`ApiRouter`] serves its routes but
/// documents none of them. [`ApiRouter::undocumented`] counts such merges and the HTTP
/// contract test requires zero, so every area converts to [`Operation`]s.
impl From<Router<AppState>> for ApiRouter {
    fn from(router: Router<AppState>) -> Self {
        Self {
            router,
            operations: Vec::new(),
            undocumented: 1,
        }
    }
}

impl ApiRouter {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` (e.g. `axum::routing::post(add_item)`) at `op`'s method and
    /// path and documents it. Same path, several methods: call `route` once per method.
    pub fn route(mut self, op: Operation, handler: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(op.path, handler);
        self.operations.push(op);
        self
    }

    /// Adds every route of `other`.
    pub fn merge(mut self, other: impl Into<ApiRouter>) -> Self {
        let other = other.into();
        self.router = self.router.merge(other.router);
        self.operations.extend(other.operations);
        self.undocumented += other.undocumented;
        self
    }

    /// How many plain (undocumented) axum routers were merged in; should be zero.
    pub fn undocumented(&self) -> usize {
        self.undocumented
    }

    /// Applies `f` to the inner router (for layers), keeping the documentation.
    pub fn map_router(mut self, f: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Self {
        self.router = f(self.router);
        self
    }

    /// The documented operations.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// The router and its OpenAPI document.
    pub fn into_parts(self) -> (Router<AppState>, Value) {
        let document = document(&self.operations);
        (self.router, document)
    }
}

/// Merges request and response schema definitions. The two generators describe the same
/// Rust type differently when serde attributes differ by direction (defaults, skipped
/// fields); such a type keeps its request shape under its name and its response shape
/// under `<Name>Output`, and response refs are rewritten to match.
fn merge_definitions(
    requests: Map<String, Value>,
    responses: Map<String, Value>,
    paths: &mut Map<String, Value>,
    response_refs: &[(String, String, String)],
) -> Map<String, Value> {
    // A response schema that differs from the request schema of the same name is
    // renamed; once renamed, schemas referring to it differ too, so repeat until stable.
    let mut renamed: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let before = renamed.len();
        for (name, schema) in &responses {
            if renamed.contains_key(name) {
                continue;
            }
            let Some(request) = requests.get(name) else {
                continue;
            };
            let mut schema = schema.clone();
            rewrite_refs(&mut schema, &renamed);
            if *request != schema {
                let mut target = format!("{name}Output");
                while requests.contains_key(&target) || responses.contains_key(&target) {
                    target.push('_');
                }
                renamed.insert(name.clone(), target);
            }
        }
        if renamed.len() == before {
            break;
        }
    }
    let mut all = requests;
    for (name, mut schema) in responses {
        rewrite_refs(&mut schema, &renamed);
        let name = renamed.get(&name).cloned().unwrap_or(name);
        all.entry(name).or_insert(schema);
    }
    for (path, method, status) in response_refs {
        if let Some(schema) = paths
            .get_mut(path)
            .and_then(|p| p.get_mut(method))
            .and_then(|o| o.get_mut("responses"))
            .and_then(|r| r.get_mut(status))
            .and_then(|r| r.get_mut("content"))
            .and_then(|c| c.get_mut("application/json"))
            .and_then(|c| c.get_mut("schema"))
        {
            rewrite_refs(schema, &renamed);
        }
    }
    all
}

fn rewrite_refs(value: &mut Value, renamed: &BTreeMap<String, String>) {
    if renamed.is_empty() {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref") {
                if let Some(name) = r.strip_prefix(COMPONENTS) {
                    if let Some(new) = renamed.get(name) {
                        *r = format!("{COMPONENTS}{new}");
                    }
                }
            }
            for v in map.values_mut() {
                rewrite_refs(v, renamed);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, renamed)),
        _ => {}
    }
}

const COMPONENTS: &str = "#/components/schemas/";

fn generator(serialize: bool) -> SchemaGenerator {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    });
    if serialize {
        settings.for_serialize().into_generator()
    } else {
        settings.for_deserialize().into_generator()
    }
}

/// The schema of a path parameter, by the engine's naming convention: ids (`…_id`, `id`)
/// are UUIDs, `sku` a SKU, `code` a coupon code, `currency` an ISO 4217 code. A precise
/// schema lets clients and property-based testers build valid paths.
pub fn path_schema(name: &str) -> Value {
    match name {
        "sku" => json!({ "type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$" }),
        "code" => json!({ "type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$" }),
        "currency" => json!({ "type": "string", "pattern": "^[A-Z]{3}$" }),
        n if n == "id" || n.ends_with("_id") => json!({ "type": "string", "format": "uuid" }),
        _ => json!({ "type": "string" }),
    }
}

/// The OpenAPI 3.1 document of `operations`.
pub fn document(operations: &[Operation]) -> Value {
    let mut requests = generator(false);
    let mut responses = generator(true);
    let mut paths = Map::new();
    let mut response_refs = Vec::new();
    let mut tags = BTreeSet::new();
    for op in operations {
        let method = op.method.as_str().to_ascii_lowercase();
        let value = op.to_openapi(&mut requests, &mut responses);
        for (status, schema) in &op.replies {
            if schema.is_some() {
                response_refs.push((op.path.to_string(), method.clone(), status.to_string()));
            }
        }
        tags.extend(op.tags.iter().copied());
        let item = paths
            .entry(op.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(method, value);
        }
    }
    let mut schemas = merge_definitions(
        requests.take_definitions(true),
        responses.take_definitions(true),
        &mut paths,
        &response_refs,
    );
    schemas.insert("Problem".into(), problem_schema());
    let tags: Vec<Value> = tags.into_iter().map(|t| json!({ "name": t })).collect();
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "commerce",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Event-sourced commerce engine. Commands answer `{stream, version, position}` with `ETag: \"<version>\"`; send `If-Match` to require a version and `Idempotency-Key` to make a retry safe. Every error is `application/problem+json` with a stable `code`.",
        },
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
            },
            "parameters": {
                "IdempotencyKey": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": false,
                    "description": "Makes the command safe to retry: the same key with the same request answers the first response again (with `Idempotent-Replayed: true`); the same key with another request answers 422 `idempotency_key_reused`.",
                    "schema": { "type": "string", "minLength": 1, "maxLength": super::command::MAX_IDEMPOTENCY_KEY, "pattern": "^[!-~]+$" },
                },
                "IfMatch": {
                    "name": "If-Match",
                    "in": "header",
                    "required": false,
                    "description": "The stream version the command expects, as returned in `ETag` (`\"3\"`); another version answers 412 `version_mismatch`.",
                    "schema": { "type": "string", "pattern": "^(W/)?\"?[0-9]+\"?$" },
                },
            },
            "headers": {
                "ETag": {
                    "description": "The stream's version, quoted: send it back as `If-Match`.",
                    "schema": { "type": "string" },
                },
                "IdempotentReplayed": {
                    "description": "`true` when this is the kept response to an earlier request with the same `Idempotency-Key`.",
                    "schema": { "type": "string", "enum": ["true"] },
                },
                "RetryAfter": {
                    "description": "Seconds to wait before retrying.",
                    "schema": { "type": "integer", "minimum": 0 },
                },
            },
        },
    })
}

/// The `Problem` schema: RFC 9457 fields plus the stable `code`, whose enum is every code
/// of the problem table.
fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "An RFC 9457 problem.",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": { "type": "string", "description": "URI naming the problem type." },
            "title": { "type": "string" },
            "status": { "type": "integer", "minimum": 400, "maximum": 599 },
            "detail": { "type": "string" },
            "instance": { "type": "string", "description": "The request path." },
            "code": {
                "type": "string",
                "description": "Stable machine-readable code.",
                "enum": errors::PROBLEM_CODES,
            },
            "trace_id": { "type": "string", "description": "The request's correlation id, as in the logs." },
            "current_version": { "type": "integer", "description": "With `version_mismatch`: the stream's version now." },
        },
    })
}

impl ApiRouter {
    /// The finished router: every route, `GET /openapi.json` serving the document of all
    /// of them (itself included), and problem answers for unknown routes and methods.
    pub fn finish(mut self) -> Router<AppState> {
        // Documented before the document is built so that it describes itself.
        self.operations.push(
            Operation::get("/openapi.json")
                .summary("This OpenAPI 3.1 document")
                .tag("meta")
                .reply::<serde_json::Value>(200),
        );
        let this = self;
        let document = std::sync::Arc::new(document(&this.operations).to_string());
        let router = this.router.route(
            "/openapi.json",
            axum::routing::get(move || {
                let document = document.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        document.as_str().to_owned(),
                    )
                }
            }),
        );
        router
            .fallback(|| async {
                errors::row::ROUTE_NOT_FOUND.problem("no route matches this path")
            })
            .method_not_allowed_fallback(|| async {
                errors::row::METHOD_NOT_ALLOWED.problem("this path does not accept this method")
            })
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    /// Reads with a default, writes always: its two schemas differ in `required`.
    #[derive(Serialize, Deserialize, JsonSchema)]
    #[allow(dead_code)] // only its schema is used
    struct Shape {
        #[serde(default)]
        size: u32,
    }

    /// The same shape both ways.
    #[derive(Serialize, Deserialize, JsonSchema)]
    #[allow(dead_code)] // only its schema is used
    struct Plain {
        name: String,
    }

    fn doc(ops: Vec<Operation>) -> Value {
        document(&ops)
    }

    #[test]
    fn a_type_read_and_written_differently_gets_an_output_schema_and_refs_follow() {
        let d = doc(vec![Operation::post("/shapes")
            .body::<Shape>()
            .reply::<Vec<Shape>>(200)
            .reply::<Plain>(201)]);
        let op = &d["paths"]["/shapes"]["post"];
        assert_eq!(
            op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Shape"
        );
        assert_eq!(
            op["responses"]["200"]["content"]["application/json"]["schema"]["items"]["$ref"],
            "#/components/schemas/ShapeOutput"
        );
        assert_eq!(
            op["responses"]["201"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Plain"
        );
        let schemas = &d["components"]["schemas"];
        assert!(schemas["Shape"]["required"].is_null());
        assert_eq!(schemas["ShapeOutput"]["required"], json!(["size"]));
        assert!(schemas.get("PlainOutput").is_none());
    }

    /// The same text both ways, but it holds a [`Shape`].
    #[derive(Serialize, Deserialize, JsonSchema)]
    #[allow(dead_code)] // only its schema is used
    struct Holder {
        shape: Shape,
    }

    #[test]
    fn a_type_holding_a_renamed_one_is_renamed_too() {
        let d = doc(vec![Operation::post("/holders")
            .body::<Holder>()
            .reply::<Holder>(200)]);
        let schemas = &d["components"]["schemas"];
        assert_eq!(
            schemas["Holder"]["properties"]["shape"]["$ref"],
            "#/components/schemas/Shape"
        );
        assert_eq!(
            schemas["HolderOutput"]["properties"]["shape"]["$ref"],
            "#/components/schemas/ShapeOutput"
        );
        assert_eq!(
            d["paths"]["/holders"]["post"]["responses"]["200"]["content"]["application/json"]
                ["schema"]["$ref"],
            "#/components/schemas/HolderOutput"
        );
    }

    #[test]
    fn path_parameters_are_documented_even_without_a_description() {
        let d = doc(vec![Operation::get("/carts/{cart_id}/items/{sku}")
            .path_param("sku", "The SKU.")
            .tag("carts")]);
        let op = &d["paths"]["/carts/{cart_id}/items/{sku}"]["get"];
        assert_eq!(op["operationId"], "get_carts_cart_id_items_sku");
        let params = op["parameters"].as_array().unwrap();
        assert_eq!(params.len(), 2);
        assert_eq!(params[0]["name"], "cart_id");
        assert!(params[0]["description"].is_null());
        assert_eq!(params[1]["description"], "The SKU.");
        assert!(params.iter().all(|p| p["required"] == true));
        assert_eq!(d["tags"], json!([{ "name": "carts" }]));
    }

    #[test]
    fn roles_and_commands_document_security_headers_and_problems() {
        let d = doc(vec![
            Operation::post("/things").roles(&[Role::Staff]).command(),
            Operation::get("/open"),
        ]);
        let op = &d["paths"]["/things"]["post"];
        assert_eq!(op["security"], json!([{ "bearer": [] }]));
        assert_eq!(op["x-roles"], json!(["staff"]));
        for status in ["401", "403", "412", "422", "429", "500", "503"] {
            assert!(op["responses"][status].is_object(), "{status}");
        }
        assert_eq!(
            op["responses"]["412"]["x-problem-codes"],
            json!(["version_mismatch"])
        );
        let headers = &op["responses"]["200"]["headers"];
        assert_eq!(headers["ETag"]["$ref"], "#/components/headers/ETag");
        assert_eq!(
            headers["Idempotent-Replayed"]["$ref"],
            "#/components/headers/IdempotentReplayed"
        );
        let open = &d["paths"]["/open"]["get"];
        assert_eq!(open["security"], json!([]));
        assert!(open["responses"]["401"].is_null());
        assert!(open["responses"]["200"].is_object());
    }
}
