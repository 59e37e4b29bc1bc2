//! The HTTP platform over a real port: JWT authentication and roles, the admin token,
//! RS/ES key configurations, rate limits, body and time limits, request ids and
//! `/metrics`. Every test runs on both backends.

use std::time::Duration;

use api::http::auth::AdminTokens;
use api::http::limits::{Limits, RateLimit};
use api::http::metrics::MetricsConfig;
use api::http::principal::{AdminRole, Caller, CustomerOrStaff, Role, Service, Staff};
use api::http::{ApiRouter, Auth, Operation};
use api::token::{sign_hs256, Claims, DEFAULT_AUDIENCE, DEFAULT_ISSUER};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Value};
use tests::server::{TestResponse, TestServer, TEST_JWT_SECRET};
use tests::BackendKind;

const BACKENDS: [BackendKind; 2] = [BackendKind::Sqlite, BackendKind::Postgres];
const HOUR: Duration = Duration::from_secs(3_600);
const ADMIN_TOKEN: &str = "operator-admin-token-0123456789";

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/jwt")
        .join(name)
}

async fn who(principal: api::http::principal::Principal) -> Json<Value> {
    Json(json!({ "sub": principal.subject, "role": principal.role.as_str() }))
}

/// One route per role extractor, a POST that reads a body, and a slow route.
fn probe_routes() -> ApiRouter {
    ApiRouter::new()
        .route(
            Operation::get("/probe/caller").roles(&[Role::Customer]),
            axum::routing::get(|Caller(p): Caller| who(p)),
        )
        .route(
            Operation::get("/probe/customer").roles(&[Role::Customer, Role::Staff]),
            axum::routing::get(|CustomerOrStaff(p): CustomerOrStaff| who(p)),
        )
        .route(
            Operation::get("/probe/staff").roles(&[Role::Staff]),
            axum::routing::get(|Staff(p): Staff| who(p)),
        )
        .route(
            Operation::get("/probe/admin").roles(&[Role::Admin]),
            axum::routing::get(|AdminRole(p): AdminRole| who(p)),
        )
        .route(
            Operation::get("/probe/service").roles(&[Role::Service]),
            axum::routing::get(|Service(p): Service| who(p)),
        )
        .route(
            Operation::post("/probe/echo").body::<Value>(),
            axum::routing::post(|body: String| async move { body.len().to_string() }),
        )
        .route(
            Operation::get("/probe/slow"),
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
}

async fn start(
    kind: BackendKind,
    configure: impl FnOnce(api::http::AppState) -> api::http::AppState,
) -> Option<TestServer> {
    TestServer::start_with_routes(kind, configure, probe_routes()).await
}

fn assert_unauthenticated(r: &TestResponse, challenge: &str, why: &str) {
    assert_eq!(r.status, 401, "{why}: {}", r.text);
    assert_eq!(r.body["code"], "unauthenticated", "{why}: {}", r.text);
    assert_eq!(r.header("www-authenticate"), Some(challenge), "{why}");
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{why}"
    );
}

fn claims(role: Role, sub: &str) -> Claims {
    Claims::new(role, sub, HOUR, Utc::now())
}

#[tokio::test]
async fn every_role_is_admitted_where_it_belongs() {
    for kind in BACKENDS {
        let Some(server) = start(kind, |s| s).await else {
            return;
        };
        let (customer_id, customer) = server.new_customer();
        let staff = server.staff();
        let admin = server.admin();
        let service = server.service();

        let r = server.get("/probe/caller", Some(&customer)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.body,
            json!({"sub": customer_id.to_string(), "role": "customer"})
        );

        // (route, token, expected status)
        let cases = [
            ("/probe/customer", &customer, 200),
            ("/probe/customer", &staff, 200),
            ("/probe/customer", &admin, 200),
            ("/probe/customer", &service, 403),
            ("/probe/staff", &customer, 403),
            ("/probe/staff", &staff, 200),
            ("/probe/staff", &admin, 200),
            ("/probe/staff", &service, 403),
            ("/probe/admin", &staff, 403),
            ("/probe/admin", &admin, 200),
            ("/probe/service", &service, 200),
            ("/probe/service", &admin, 200),
            ("/probe/service", &customer, 403),
        ];
        for (path, token, status) in cases {
            let r = server.get(path, Some(token)).await;
            assert_eq!(r.status, status, "{kind:?} {path}: {}", r.text);
            if status == 403 {
                assert_eq!(r.body["code"], "forbidden");
                assert!(r.header("www-authenticate").is_none());
            }
        }
        let r = server.get("/probe/staff", Some(&staff)).await;
        assert_eq!(r.body, json!({"sub": "staff-test", "role": "staff"}));
    }
}

#[tokio::test]
async fn tokens_that_do_not_verify_are_401_invalid_token() {
    for kind in BACKENDS {
        let Some(server) = start(kind, |s| s).await else {
            return;
        };
        let staff = |c: Claims| sign_hs256(TEST_JWT_SECRET, &c).unwrap();
        let now = Utc::now().timestamp();

        let mut expired = claims(Role::Staff, "s");
        (expired.iat, expired.nbf, expired.exp) = (now - 7_200, now - 7_200, now - 3_600);
        let mut early = claims(Role::Staff, "s");
        early.nbf = now + 3_600;
        let mut issuer = claims(Role::Staff, "s");
        issuer.iss = "someone-else".into();
        let mut audience = claims(Role::Staff, "s");
        audience.aud = "another-api".into();
        let other_secret = sign_hs256(
            b"another-secret-0123456789abcdef-xyz",
            &claims(Role::Staff, "s"),
        )
        .unwrap();
        // A customer whose subject is not a customer id, signed around `sign_hs256`'s check.
        let not_uuid = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &Claims {
                role: Role::Customer,
                ..claims(Role::Staff, "alice")
            },
            &jsonwebtoken::EncodingKey::from_secret(TEST_JWT_SECRET),
        )
        .unwrap();
        let unknown_role = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"sub": "x", "role": "root", "exp": now + 60, "iss": DEFAULT_ISSUER, "aud": DEFAULT_AUDIENCE}),
            &jsonwebtoken::EncodingKey::from_secret(TEST_JWT_SECRET),
        )
        .unwrap();
        let no_exp = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"sub": "x", "role": "staff", "iss": DEFAULT_ISSUER, "aud": DEFAULT_AUDIENCE}),
            &jsonwebtoken::EncodingKey::from_secret(TEST_JWT_SECRET),
        )
        .unwrap();

        let cases = [
            ("expired", staff(expired), "expired"),
            ("not yet valid", staff(early), "not valid yet"),
            ("wrong issuer", staff(issuer), "issuer"),
            ("wrong audience", staff(audience), "audience"),
            ("wrong signature", other_secret, "signature"),
            ("garbage", "not.a.jwt".to_string(), "not a JWT"),
            ("customer without a UUID", not_uuid, "UUID"),
            ("unknown role", unknown_role, "malformed"),
            ("no exp", no_exp, "exp"),
        ];
        for (why, token, detail) in cases {
            let r = server.get("/probe/caller", Some(&token)).await;
            assert_unauthenticated(&r, "Bearer error=\"invalid_token\"", why);
            let text = r.body["detail"].as_str().unwrap_or_default();
            assert!(text.contains(detail), "{why}: detail {text:?}");
        }

        let r = server.get("/probe/caller", None).await;
        assert_unauthenticated(&r, "Bearer", "no credential");
        let r = server
            .request(
                reqwest::Method::GET,
                "/probe/caller",
                None,
                None,
                &[("authorization", "Basic YTpi")],
            )
            .await;
        assert_unauthenticated(&r, "Bearer error=\"invalid_token\"", "basic credential");
    }
}

#[tokio::test]
async fn the_admin_token_is_an_admin_principal() {
    for kind in BACKENDS {
        let Some(server) = start(kind, |s| {
            s.with_admin_tokens(AdminTokens::new([ADMIN_TOKEN]).unwrap())
        })
        .await
        else {
            return;
        };
        let r = server.get("/probe/admin", Some(ADMIN_TOKEN)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body, json!({"sub": "admin-token", "role": "admin"}));
        // The webhook admin API takes admin JWTs as well as the admin token.
        assert_eq!(
            server
                .get("/admin/webhooks", Some(ADMIN_TOKEN))
                .await
                .status,
            200
        );
        assert_eq!(
            server
                .get("/admin/webhooks", Some(&server.admin()))
                .await
                .status,
            200
        );
        let r = server.get("/admin/webhooks", Some(&server.staff())).await;
        assert_eq!(r.status, 403, "{}", r.text);
        let r = server
            .get("/probe/admin", Some("operator-admin-token-wrong-one"))
            .await;
        assert_unauthenticated(&r, "Bearer error=\"invalid_token\"", "wrong admin token");
    }
}

fn es256_token(claims: &Claims, kid: Option<&str>) -> String {
    let pem = std::fs::read(fixture("es256-private.pem")).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn es256_tokens_verify_with_a_public_key_or_a_jwks() {
    let public_key = Auth::default()
        .with_public_key_file(&fixture("es256-public.pem"))
        .unwrap();
    let jwks = Auth::default()
        .with_jwks_file(&fixture("es256.jwks.json"))
        .unwrap();
    for kind in BACKENDS {
        for (name, auth) in [("public key", public_key.clone()), ("jwks", jwks.clone())] {
            let Some(server) = start(kind, |s| s.with_auth(auth)).await else {
                return;
            };
            let token = es256_token(&claims(Role::Staff, "idp-user"), Some("test-es256"));
            let r = server.get("/probe/staff", Some(&token)).await;
            assert_eq!(r.status, 200, "{name}: {}", r.text);
            assert_eq!(r.body, json!({"sub": "idp-user", "role": "staff"}));

            // A development HS256 token means nothing to a server verifying ES256.
            let r = server.get("/probe/staff", Some(&server.staff())).await;
            assert_unauthenticated(&r, "Bearer error=\"invalid_token\"", name);

            let mut expired = claims(Role::Staff, "idp-user");
            expired.exp = Utc::now().timestamp() - 3_600;
            let r = server
                .get(
                    "/probe/staff",
                    Some(&es256_token(&expired, Some("test-es256"))),
                )
                .await;
            assert_unauthenticated(&r, "Bearer error=\"invalid_token\"", name);
        }
        // A JWKS picks keys by kid: an unknown kid does not verify.
        let Some(server) = start(kind, |s| s.with_auth(jwks.clone())).await else {
            return;
        };
        let token = es256_token(&claims(Role::Staff, "idp-user"), Some("rotated-away"));
        let r = server.get("/probe/staff", Some(&token)).await;
        assert_unauthenticated(&r, "Bearer error=\"invalid_token\"", "unknown kid");
    }
    // Without a `kid`, every key of the algorithm is tried: the signing key need not
    // come first.
    let listed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("es256.jwks.json")).unwrap()).unwrap();
    let mut keys = vec![json!({
        "kty": "EC", "crv": "P-256", "kid": "other",
        "x": "NysLTszQ2XA0cjZ4sOAwksDnZHAIWJSeg8WOL-EH5aU",
        "y": "x52E8n4vNXCJb_-KvCAjE-zfGQrD1ZD5G2i-9SdiFNo"
    })];
    keys.extend(listed["keys"].as_array().unwrap().iter().cloned());
    let two = Auth::default()
        .with_jwks_json(&json!({ "keys": keys }).to_string())
        .unwrap();
    let Some(server) = start(BackendKind::Sqlite, |s| s.with_auth(two)).await else {
        return;
    };
    let token = es256_token(&claims(Role::Staff, "idp-user"), None);
    let r = server.get("/probe/staff", Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = es256_token(&claims(Role::Staff, "idp-user"), Some("other"));
    let r = server.get("/probe/staff", Some(&token)).await;
    assert_unauthenticated(
        &r,
        "Bearer error=\"invalid_token\"",
        "signed by another key",
    );
    assert!(Auth::default().with_jwks_json(r#"{"keys": []}"#).is_err());
    assert!(Auth::default().with_public_key_pem(b"not a key").is_err());
}

#[tokio::test]
async fn rs256_tokens_verify_with_a_public_key() {
    let auth = Auth::default()
        .with_public_key_file(&fixture("rs256-public.pem"))
        .unwrap();
    let pem = std::fs::read(fixture("rs256-private.pem")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
    let sign = |claims: &Claims| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            claims,
            &key,
        )
        .unwrap()
    };
    for kind in BACKENDS {
        let Some(server) = start(kind, |s| s.with_auth(auth.clone())).await else {
            return;
        };
        let (customer_id, _) = server.new_customer();
        let token = sign(&claims(Role::Customer, &customer_id.to_string()));
        let r = server.get("/probe/customer", Some(&token)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["sub"], customer_id.to_string());
        let mut audience = claims(Role::Staff, "s");
        audience.aud = "another-api".into();
        let r = server.get("/probe/staff", Some(&sign(&audience))).await;
        assert_unauthenticated(&r, "Bearer error=\"invalid_token\"", "RS256 wrong audience");
        // An ES256 token is refused by an RSA key.
        let es = es256_token(&claims(Role::Staff, "s"), None);
        let r = server.get("/probe/staff", Some(&es)).await;
        assert_unauthenticated(&r, "Bearer error=\"invalid_token\"", "ES256 on an RSA key");
    }
}

#[tokio::test]
async fn a_burst_beyond_the_subject_rate_is_429_with_retry_after() {
    for kind in BACKENDS {
        let Some(server) = start(kind, |s| {
            s.with_limits(Limits {
                per_subject: RateLimit {
                    per_second: 1,
                    burst: 3,
                },
                per_address: RateLimit::OFF,
                ..Limits::default()
            })
        })
        .await
        else {
            return;
        };
        let (_, alice) = server.new_customer();
        let (_, bob) = server.new_customer();
        // The burst passes; then, however slowly the requests go (the bucket refills at
        // one per second), a refusal comes well before 20.
        for _ in 0..3 {
            let r = server.get("/probe/caller", Some(&alice)).await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
        let r = first_refusal(&server, Some(&alice)).await;
        assert_eq!(r.body["code"], "rate_limited");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry), "Retry-After {retry}");
        // Another subject has its own budget.
        assert_eq!(server.get("/probe/caller", Some(&bob)).await.status, 200);
        // Unauthenticated requests are not counted against any subject.
        assert_eq!(server.get("/probe/caller", None).await.status, 401);
    }
}

#[tokio::test]
async fn a_burst_beyond_the_address_rate_is_429_for_everyone() {
    for kind in BACKENDS {
        let Some(server) = start(kind, |s| {
            s.with_limits(Limits {
                per_subject: RateLimit::OFF,
                per_address: RateLimit {
                    per_second: 1,
                    burst: 2,
                },
                ..Limits::default()
            })
        })
        .await
        else {
            return;
        };
        assert_eq!(server.get("/health/live", None).await.status, 200);
        assert_eq!(server.get("/probe/caller", None).await.status, 401);
        // Authenticated or not, the address's budget is spent.
        let r = first_refusal(&server, Some(&server.staff())).await;
        assert_eq!(r.body["code"], "rate_limited");
        assert!(r.header("retry-after").is_some());
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_and_slow_requests_time_out() {
    for kind in BACKENDS {
        let Some(server) = start(kind, |s| {
            s.with_limits(Limits {
                max_body_bytes: 1_024,
                request_timeout: Duration::from_secs(1),
                ..Limits::default()
            })
        })
        .await
        else {
            return;
        };
        let small = server
            .send(
                reqwest::Method::POST,
                "/probe/echo",
                None,
                Some(vec![b' '; 1_000]),
                &[],
            )
            .await;
        assert_eq!(small.status, 200, "{}", small.text);
        assert_eq!(small.text, "1000");
        let large = server
            .send(
                reqwest::Method::POST,
                "/probe/echo",
                None,
                Some(vec![b' '; 2_000]),
                &[],
            )
            .await;
        assert_eq!(large.status, 413, "{}", large.text);
        assert_eq!(large.body["code"], "payload_too_large");

        let slow = server.get("/probe/slow", None).await;
        assert_eq!(slow.status, 503, "{}", slow.text);
        assert_eq!(slow.body["code"], "request_timeout");
    }
}

#[tokio::test]
async fn request_ids_are_echoed_and_generated() {
    for kind in BACKENDS {
        let Some(server) = start(kind, |s| s).await else {
            return;
        };
        let r = server
            .request(
                reqwest::Method::GET,
                "/health/live",
                None,
                None,
                &[("x-request-id", "req-42")],
            )
            .await;
        assert_eq!(r.header("x-request-id"), Some("req-42"));
        let r = server.get("/health/live", None).await;
        let generated = r.header("x-request-id").unwrap();
        assert!(uuid::Uuid::try_parse(generated).is_ok(), "{generated}");
        let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let r = server
            .request(
                reqwest::Method::GET,
                "/probe/caller",
                None,
                None,
                &[("traceparent", trace)],
            )
            .await;
        assert_eq!(
            r.header("x-request-id"),
            Some("4bf92f35-77b3-4da6-a3ce-929d0e0e4736")
        );
        // The problem's trace id is the same correlation id.
        assert_eq!(r.body["trace_id"], "4bf92f35-77b3-4da6-a3ce-929d0e0e4736");
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    for kind in BACKENDS {
        let Some(server) = start(kind, |s| s).await else {
            return;
        };
        let staff = server.staff();
        for _ in 0..3 {
            assert_eq!(server.get("/probe/staff", Some(&staff)).await.status, 200);
        }
        assert_eq!(server.get("/probe/staff", None).await.status, 401);
        let r = server.get("/metrics", None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.header("content-type").unwrap().starts_with("text/plain"));
        // Other tests in this process share the recorder: look for at least our counts.
        let count = |line_start: &str| -> u64 {
            r.text
                .lines()
                .find(|l| l.starts_with(line_start))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        assert!(
            count(r#"http_requests_total{method="GET",route="/probe/staff",status="200"}"#) >= 3,
            "{}",
            r.text
        );
        assert!(
            count(r#"http_requests_total{method="GET",route="/probe/staff",status="401"}"#) >= 1
        );
        assert!(r.text.contains(
            "http_request_duration_seconds_bucket{method=\"GET\",route=\"/probe/staff\""
        ));
    }
}

#[tokio::test]
async fn restricted_metrics_need_staff() {
    for kind in BACKENDS {
        let Some(server) = start(kind, |s| s.with_metrics(MetricsConfig { public: false })).await
        else {
            return;
        };
        let (_, customer) = server.new_customer();
        assert_eq!(server.get("/metrics", None).await.status, 401);
        let r = server.get("/metrics", Some(&customer)).await;
        assert_eq!(r.status, 403, "{}", r.text);
        assert_eq!(r.body["code"], "forbidden");
        assert_eq!(
            server.get("/metrics", Some(&server.staff())).await.status,
            200
        );
    }
}

#[tokio::test]
async fn idempotent_replays_are_counted() {
    for kind in BACKENDS {
        let Some(server) = start(kind, |s| s).await else {
            return;
        };
        let replays = |text: &str| -> u64 {
            text.lines()
                .find(|l| l.starts_with("commerce_idempotent_replays_total "))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let before = replays(&server.get("/metrics", None).await.text);
        let staff = server.staff();
        let key = format!("replay-{}", uuid::Uuid::now_v7());
        let headers = [("idempotency-key", key.as_str())];
        let first = server
            .post_with_headers("/probe/echo", Some(&staff), Some(json!({"a": 1})), &headers)
            .await;
        assert_eq!(first.status, 200, "{}", first.text);
        let second = server
            .post_with_headers("/probe/echo", Some(&staff), Some(json!({"a": 1})), &headers)
            .await;
        assert_eq!(second.header("idempotent-replayed"), Some("true"));
        assert_eq!(second.text, first.text);
        let after = replays(&server.get("/metrics", None).await.text);
        assert!(after > before, "replays {before} -> {after}");
    }
}

#[tokio::test]
async fn lag_and_dead_letter_gauges_follow_the_tables() {
    use infra::store::{NewEvent, StreamRef};
    for kind in BACKENDS {
        let Some(server) = start(kind, |s| s).await else {
            return;
        };
        let store = &server.store;
        let stream = StreamRef::new("probe", "gauges");
        for version in 0..5 {
            let event = NewEvent {
                event_id: uuid::Uuid::now_v7(),
                event_type: "Probed".into(),
                schema_version: 1,
                payload: json!({ "n": version }),
                metadata: Default::default(),
            };
            store
                .append(&stream, version, vec![event], None)
                .await
                .unwrap();
        }
        // The head is gap-safe: a transaction elsewhere in the cluster may hold it back
        // for a moment after the appends.
        let head = tests::eventually(Duration::from_secs(10), || async {
            let head = store.head_position().await.unwrap();
            (head >= 5).then_some(head)
        })
        .await
        .expect("the appends become visible");
        // Unique names: the recorder is shared by every test of this process.
        let tag = uuid::Uuid::now_v7().simple().to_string();
        let consumer = format!("gauge-consumer-{tag}");
        let relay = format!("gauge-relay-{tag}");
        let now = Utc::now();
        infra::on_db!(store.db(), pool => {
            sqlx::query(
                "INSERT INTO consumers (name, ordered, start_position, position, updated_at) \
                 VALUES ($1, true, 0, $2, $3)",
            )
            .bind(&consumer)
            .bind(head - 3)
            .bind(now)
            .execute(pool)
            .await
            .unwrap();
            sqlx::query("INSERT INTO relay_checkpoints (name, position, updated_at) VALUES ($1, $2, $3)")
                .bind(&relay)
                .bind(head - 4)
                .bind(now)
                .execute(pool)
                .await
                .unwrap();
            for status in ["dead", "retry", "resolved", "discarded", "parked"] {
                sqlx::query(
                    "INSERT INTO dead_letters (consumer, status, event_id, position, stream_type, \
                     stream_id, version, event_type, envelope, attempts, created_at, updated_at) \
                     VALUES ($1, $2, $3, 1, 'probe', 'gauges', 1, 'Probed', '{}', 1, $4, $4)",
                )
                .bind(&consumer)
                .bind(status)
                .bind(uuid::Uuid::now_v7())
                .bind(now)
                .execute(pool)
                .await
                .unwrap();
            }
        });
        // The head is the gap-safe head: another transaction in the cluster can hold it
        // back for a moment, so compare with the head read around each refresh.
        let settled = tests::eventually(Duration::from_secs(10), || async {
            let before = store.head_position().await.unwrap();
            api::engine::refresh_gauges(store).await.unwrap();
            let after = store.head_position().await.unwrap();
            let text = server.get("/metrics", None).await.text;
            let consumer_lag = gauge(&text, "commerce_consumer_lag_events", "consumer", &consumer)?;
            let relay_lag = gauge(&text, "commerce_relay_lag_events", "relay", &relay)?;
            (before == after
                && consumer_lag == (after - (head - 3)) as f64
                && relay_lag == (after - (head - 4)) as f64)
                .then_some(text)
        })
        .await;
        let text = settled.expect("the lag gauges follow the head and the checkpoints");
        // `dead` and `retry` are open; resolved, discarded and parked are not.
        assert_eq!(
            gauge(&text, "commerce_dead_letters_open", "consumer", &consumer),
            Some(2.0)
        );
    }
}

/// The value of gauge `name{label="value"}` in a Prometheus text rendering.
fn gauge(text: &str, name: &str, label: &str, value: &str) -> Option<f64> {
    let start = format!("{name}{{{label}=\"{value}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(start.as_str()))
        .and_then(|n| n.parse().ok())
}

/// Sends `GET /probe/caller` until one is refused with 429 (at most 20 tries).
async fn first_refusal(server: &TestServer, token: Option<&str>) -> TestResponse {
    for _ in 0..20 {
        let r = server.get("/probe/caller", token).await;
        if r.status == 429 {
            return r;
        }
        assert!(r.status == 200 || r.status == 401, "{}", r.text);
    }
    panic!("20 requests in a row were let in");
}
