//! Seeing and steering sagas, on both backends: every step the runner performs is logged
//! with its trigger, commands and outcomes, calls and replies; a step repeated after a
//! crash is logged once, its commands `already_done`; the staff routes list (by state,
//! phase, stuck), show, retry and cancel; a saga in one phase past the threshold shows as
//! stuck only once the manual clock gets there.

use aggregates::order::OrderStatus;
use aggregates::OrderId;
use infra::clock::Clock;
use infra::saga::steps::{self, CommandOutcome, StepRow};
use sagas::checkout::{CheckoutSaga, Phase};
use sagas::ports::test_payment;
use sagas::ProcessManager;
use serde_json::Value;
use tests::api::assert_problem;
use tests::on_both_backends;
use tests::saga::{Basket, Engine};
use tests::server::TestServer;
use tests::BackendKind;
use uuid::Uuid;

on_both_backends!(
    steps_are_logged_with_their_commands_and_outcomes,
    a_repeated_step_is_logged_once_with_its_commands_already_done,
    staff_see_and_steer_a_stuck_saga,
);

/// The order id `Engine::check_out` places.
fn fixed_order() -> OrderId {
    OrderId::from_uuid(Uuid::from_u128(0x0D))
}

async fn steps_of(engine: &Engine, id: OrderId) -> Vec<StepRow> {
    steps::steps_of(
        engine.store.db(),
        CheckoutSaga::NAME,
        &id.to_string(),
        steps::KEEP_PER_SAGA,
    )
    .await
    .unwrap()
}

async fn confirmed(engine: &Engine, id: OrderId) {
    engine
        .wait("the saga confirmed the order", || async {
            engine
                .saga(id)
                .await
                .is_some_and(|s| s.phase == Phase::Confirmed)
        })
        .await;
}

/// The logged step triggered by event type `name`.
fn step<'a>(steps: &'a [StepRow], name: &str) -> &'a StepRow {
    steps
        .iter()
        .find(|s| s.trigger.name == name)
        .unwrap_or_else(|| panic!("no step for {name}: {steps:#?}"))
}

async fn steps_are_logged_with_their_commands_and_outcomes(kind: BackendKind) {
    let Some(engine) = Engine::start(kind, false).await else {
        return;
    };
    engine.seed().await;
    engine.held.lock().unwrap().insert(fixed_order());
    let id = engine.check_out(test_payment::SUCCEEDS).await;
    confirmed(&engine, id).await;
    let steps = steps_of(&engine, id).await;

    // Every step stored, each at the next saga version, in log order.
    assert!(steps
        .iter()
        .all(|s| s.outcome == "stored" && s.error.is_none()));
    let versions: Vec<i64> = steps.iter().map(|s| s.saga_version.unwrap()).collect();
    assert_eq!(versions, (1..=versions.len() as i64).collect::<Vec<_>>());

    let placed = step(&steps, "OrderPlaced");
    assert_eq!(placed.trigger.kind, "event");
    assert_eq!(placed.phase_after.as_deref(), Some("Reserving"));
    let reserves: Vec<_> = placed
        .commands
        .iter()
        .filter(|c| c.command == "ReserveStock")
        .collect();
    assert_eq!(reserves.len(), 2, "{placed:#?}");
    for c in reserves {
        assert_eq!(c.stream_type, "stock");
        assert!(
            matches!(c.outcome, CommandOutcome::Appended { version, position } if version > 1 && position > 0),
            "{c:?}"
        );
    }

    // The authorization: a call to the provider with its reply, then the command.
    let authorize = steps
        .iter()
        .find(|s| s.calls.iter().any(|c| c.request.starts_with("Authorize")))
        .expect("a step authorized the payment");
    let call = &authorize.calls[0];
    assert_eq!(call.party, "payment");
    assert!(
        call.reply.as_deref().unwrap_or("").contains("Authorized"),
        "{call:?}"
    );
    assert!(authorize
        .commands
        .iter()
        .any(|c| c.command == "AuthorizePayment"
            && matches!(c.outcome, CommandOutcome::Appended { .. })));
    let last = steps.last().unwrap();
    assert_eq!(last.phase_after.as_deref(), Some("Confirmed"));
    engine.stop().await;
}

async fn a_repeated_step_is_logged_once_with_its_commands_already_done(kind: BackendKind) {
    // Every step loses its save and ack once after its commands ran.
    let Some(engine) = Engine::start(kind, true).await else {
        return;
    };
    engine.seed().await;
    engine.held.lock().unwrap().insert(fixed_order());
    let id = engine.check_out(test_payment::SUCCEEDS).await;
    confirmed(&engine, id).await;
    assert!(engine.crashes.load(std::sync::atomic::Ordering::SeqCst) > 0);
    let steps = steps_of(&engine, id).await;
    let mut triggers: Vec<Uuid> = steps.iter().map(|s| s.trigger.id).collect();
    let logged = triggers.len();
    triggers.dedup();
    assert_eq!(triggers.len(), logged, "a repeated step was logged twice");
    let placed = step(&steps, "OrderPlaced");
    let reserves: Vec<_> = placed
        .commands
        .iter()
        .filter(|c| c.command == "ReserveStock")
        .collect();
    assert_eq!(reserves.len(), 2);
    for c in reserves {
        assert!(
            matches!(c.outcome, CommandOutcome::AlreadyDone { .. }),
            "the first run appended, the logged one found it done: {c:?}"
        );
    }
    engine.stop().await;
}

fn find(list: &Value, id: OrderId) -> Option<&Value> {
    list["sagas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["saga_id"] == id.to_string())
}

async fn staff_see_and_steer_a_stuck_saga(kind: BackendKind) {
    let Some(engine) = Engine::start(kind, false).await else {
        return;
    };
    engine.seed().await;
    let server = TestServer::serve(engine.store.clone(), |s| s).await;
    let staff = server.staff();
    let (_, customer) = server.new_customer();
    // Its shipments are never picked: the saga waits in `Confirmed` with no timer.
    engine.held.lock().unwrap().insert(fixed_order());
    let id = engine.check_out(test_payment::SUCCEEDS).await;
    confirmed(&engine, id).await;
    let path = format!("/admin/sagas/checkout/{id}");

    // Customers may not look.
    for r in [
        server.get("/admin/sagas", Some(&customer)).await,
        server.get(&path, Some(&customer)).await,
        server
            .post(&format!("{path}/cancel"), Some(&customer), None)
            .await,
    ] {
        assert_problem(&r, 403, "forbidden");
    }

    let r = server.get("/admin/sagas", Some(&staff)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let line = find(&r.body, id).expect("listed").clone();
    assert_eq!(line["status"], "active");
    assert_eq!(line["phase"], "Confirmed");
    assert_eq!(line["stuck"], false);
    let r = server.get("/admin/sagas?stuck=true", Some(&staff)).await;
    assert!(find(&r.body, id).is_none(), "not stuck yet: {}", r.text);
    let r = server.get("/admin/sagas?phase=Paying", Some(&staff)).await;
    assert!(find(&r.body, id).is_none());
    let r = server
        .get("/admin/sagas?status=finished", Some(&staff))
        .await;
    assert!(find(&r.body, id).is_none());

    // Past the threshold (15 minutes by default) by the manual clock: stuck.
    engine.clock.advance(chrono::Duration::minutes(16));
    let r = server.get("/admin/sagas?stuck=true", Some(&staff)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let line = find(&r.body, id).expect("stuck").clone();
    assert_eq!(line["stuck"], true);
    assert!(line["seconds_in_phase"].as_i64().unwrap() >= 16 * 60);
    let r = server
        .get("/admin/sagas?stuck=true&stuck_after=3600", Some(&staff))
        .await;
    assert!(find(&r.body, id).is_none(), "not for an hour's threshold");

    // One saga in full.
    let r = server.get(&path, Some(&staff)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"]["phase"], "Confirmed");
    assert_eq!(r.body["stuck"], true);
    let steps = r.body["steps"].as_array().unwrap();
    assert!(steps.iter().any(|s| s["trigger_name"] == "OrderPlaced"
        && s["commands"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["command"] == "ReserveStock" && c["outcome"] == "appended")));

    // Unknown sagas and bad input.
    let other = Uuid::now_v7();
    for r in [
        server
            .get(&format!("/admin/sagas/checkout/{other}"), Some(&staff))
            .await,
        server
            .get(&format!("/admin/sagas/nonesuch/{id}"), Some(&staff))
            .await,
        server
            .post(
                &format!("/admin/sagas/checkout/{other}/retry"),
                Some(&staff),
                None,
            )
            .await,
        server
            .post(
                &format!("/admin/sagas/checkout/{other}/cancel"),
                Some(&staff),
                None,
            )
            .await,
        server
            .post(&format!("{path}/retry?timer=nonesuch"), Some(&staff), None)
            .await,
    ] {
        assert_problem(&r, 404, "not_found");
    }
    assert_problem(
        &server
            .get("/admin/sagas/checkout/not-a-uuid", Some(&staff))
            .await,
        400,
        "invalid_id",
    );
    for query in ["limit=0", "after=zz", "stuck_after=0", "status=stuck"] {
        let r = server
            .get(&format!("/admin/sagas?{query}"), Some(&staff))
            .await;
        assert_problem(&r, 400, "invalid_query");
    }

    // Nothing failed and no timer is due: a retry has nothing to do.
    let r = server
        .post(&format!("{path}/retry"), Some(&staff), None)
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["retried"], false);

    // A second order waits for 3-D Secure: retry brings its status poll forward.
    let waiting = Basket::new(&[("MUG", 1, 1_000)], test_payment::THREE_D_SECURE);
    let waiting = engine.check_out_basket(&waiting).await;
    engine
        .wait("the saga polls the 3-D Secure payment", || async {
            infra::saga::store::timers_of(
                engine.store.db(),
                CheckoutSaga::NAME,
                &waiting.to_string(),
            )
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == "payment-status")
        })
        .await;
    let polls = |steps: &[StepRow]| {
        steps
            .iter()
            .filter(|s| s.trigger.kind == "timer" && s.trigger.name == "payment-status")
            .count()
    };
    assert_eq!(polls(&steps_of(&engine, waiting).await), 0);
    let r = server
        .post(
            &format!("/admin/sagas/checkout/{waiting}/retry?timer=payment-status"),
            Some(&staff),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["retried"], true);
    assert_eq!(r.body["timers"], serde_json::json!(["payment-status"]));
    engine
        .wait("the status poll ran", || async {
            polls(&steps_of(&engine, waiting).await) == 1
        })
        .await;

    // Cancel the stuck order: the saga compensates as for any cancellation.
    let r = server
        .post(&format!("{path}/cancel"), Some(&staff), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["stream"], format!("order/{id}"));
    engine
        .wait("the saga compensated the cancellation", || async {
            engine.order(id).await.status == OrderStatus::Cancelled
                && engine
                    .saga(id)
                    .await
                    .is_some_and(|s| s.phase == Phase::Cancelled)
                && engine.stock("TEE").await.reserved == 0
        })
        .await;
    let steps = steps_of(&engine, id).await;
    let cancelled = step(&steps, "OrderCancelled");
    assert_eq!(cancelled.phase_after.as_deref(), Some("Cancelled"));
    let r = server.get("/admin/sagas?stuck=true", Some(&staff)).await;
    assert!(find(&r.body, id).is_none(), "cancelled is not stuck");
    // The clock did not move for the status poll's order: it is not stuck.
    assert!(find(&r.body, waiting).is_none());
    assert_eq!(
        engine.store.clock().now(),
        engine.clock.now(),
        "one clock throughout"
    );
    engine.stop().await;
}

/// `commerce worker PART` parses its part and runs only against PostgreSQL: the embedded
/// deployment (SQLite) is one process, `commerce serve` (one writer, one timer worker);
/// the relay also needs NATS. Refusals are configuration errors (exit 2) before
/// anything is opened.
#[tokio::test]
async fn workers_run_one_part_against_postgresql_only() {
    use api::cli::{Cli, Command};
    use api::worker::{self, Part, WorkerArgs};
    use clap::Parser;

    fn parse(argv: &[&str]) -> WorkerArgs {
        let mut all = vec!["commerce", "worker"];
        all.extend_from_slice(argv);
        match Cli::try_parse_from(all).unwrap().command {
            Some(Command::Worker(args)) => *args,
            other => panic!("not worker: {other:?}"),
        }
    }

    let pg = "postgres://app@db.invalid/shop";
    for (part, expected) in [
        ("sagas", Part::Sagas),
        ("timers", Part::Timers),
        ("projections", Part::Projections),
    ] {
        let args = parse(&[part, "--database-url", pg]);
        assert_eq!(args.part, expected);
        worker::check(&args).unwrap();
        let embedded = parse(&[part, "--database-url", "sqlite:/tmp/never-opened.db"]);
        let err = worker::run(embedded).await.unwrap_err();
        assert_eq!(err.code, 2);
        assert!(err.message.contains("commerce serve"), "{}", err.message);
    }
    let relay = parse(&["relay", "--database-url", pg]);
    assert!(worker::check(&relay)
        .unwrap_err()
        .message
        .contains("--nats-url"));
    let relay = parse(&[
        "relay",
        "--database-url",
        pg,
        "--nats-url",
        "nats://127.0.0.1:4222",
    ]);
    worker::check(&relay).unwrap();
    assert!(!std::path::Path::new("/tmp/never-opened.db").exists());
    assert!(Cli::try_parse_from(["commerce", "worker", "api"]).is_err());
    let sagas = Cli::try_parse_from([
        "commerce",
        "sagas",
        "list",
        "--stuck",
        "--saga-stuck-after",
        "1h",
        "--json",
    ])
    .unwrap();
    let Some(Command::Sagas(api::sagas::SagasCommand::List(list))) = sagas.command else {
        panic!("not sagas list");
    };
    assert!(list.stuck && list.json);
    assert_eq!(
        list.stuck_after.saga_stuck_after,
        std::time::Duration::from_secs(3600)
    );
    assert!(Cli::try_parse_from(["commerce", "worker"]).is_err());
}
