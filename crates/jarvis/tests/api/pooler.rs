//! Two `jarvis serve` processes behind a real PgBouncer (the Debian package) in transaction
//! mode: `DATABASE_URL` reaches PgBouncer, `JARVIS_LISTEN_DATABASE_URL` PostgreSQL itself,
//! `JARVIS_DATABASE_POOLER=pgbouncer`. PgBouncer gets few server connections and hands them out
//! round robin, so any statement that relied on the session of the one before it (a named
//! prepared statement, a `SET`, a `LISTEN`, an advisory lock) would reach another session.
//!
//! The multi-instance cases of the suite, through it: tasks submitted on one instance run on
//! the other (one history record per attempt, and a submitter waiting with `?wait=true` hears
//! of the settlement), a breaker forced open on one is seen on the other, and a schedule ticks
//! once per period across both.
//!
//! PgBouncer must be installed (`apt-get install pgbouncer`; `scripts/test.sh` installs it):
//! without it the test fails, saying so.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::agent::{Behaviour, TestAgent};
use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(30);

/// A PgBouncer in transaction mode in front of the test PostgreSQL, on a port of its own, with
/// its own configuration and auth file in a temporary directory. Killed when dropped.
struct PgBouncer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// The `pgbouncer` executable: on PATH, else where Debian puts it (`/usr/sbin`, which is not
/// on an ordinary user's PATH).
fn pgbouncer_bin() -> PathBuf {
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("pgbouncer");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let debian = PathBuf::from("/usr/sbin/pgbouncer");
    if debian.is_file() {
        return debian;
    }
    panic!(
        "pgbouncer is required for this test and was not found on PATH or at \
         /usr/sbin/pgbouncer: install the Debian package (`apt-get install pgbouncer`; \
         scripts/test.sh and scripts/ensure-tools.sh install it when missing)"
    );
}

impl PgBouncer {
    async fn start() -> PgBouncer {
        let bin = pgbouncer_bin();
        let admin = url::Url::parse(&pg_admin_url()).unwrap();
        let host = admin.host_str().unwrap_or("127.0.0.1").to_string();
        let pg_port = admin.port().unwrap_or(5432);
        let user = admin.username().to_string();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let ini = dir.path().join("pgbouncer.ini");
        let users = dir.path().join("users.txt");
        // Trust, as the test PostgreSQL does; PgBouncer logs in as the client's user.
        std::fs::write(&users, format!("\"{user}\" \"\"\n")).unwrap();
        std::fs::write(
            &ini,
            format!(
                "[databases]\n\
                 * = host={host} port={pg_port}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {users}\n\
                 pool_mode = transaction\n\
                 default_pool_size = 4\n\
                 max_client_conn = 500\n\
                 server_round_robin = 1\n\
                 server_reset_query =\n",
                users = users.display(),
            ),
        )
        .unwrap();
        let mut cmd = Command::new(&bin);
        // PgBouncer refuses to run as root; it switches to this user (which must read the
        // directory) when started as root.
        if is_root() {
            use std::os::unix::fs::PermissionsExt;
            for p in [dir.path(), ini.as_path(), users.as_path()] {
                let mode = if p.is_dir() { 0o755 } else { 0o644 };
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            cmd.args(["-u", "postgres"]);
        }
        let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = cmd
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let bouncer = PgBouncer { child, port, dir };
        // Ready when a simple query goes through (no startup parameter PgBouncer does not know).
        let url = bouncer.url("postgres");
        let ready = poll(Duration::from_secs(10), || async {
            use sqlx::ConnectOptions;
            let options: sqlx::postgres::PgConnectOptions = url.parse().ok()?;
            let mut conn = options.extra_float_digits(None).connect().await.ok()?;
            sqlx::raw_sql("SELECT 1").execute(&mut conn).await.ok()?;
            Some(())
        })
        .await;
        if ready.is_none() {
            panic!("pgbouncer did not start: {}", bouncer.log());
        }
        bouncer
    }

    /// The URL of `database` through this PgBouncer.
    fn url(&self, database: &str) -> String {
        let mut url = url::Url::parse(&pg_admin_url()).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.port)).unwrap();
        url.set_path(database);
        url.to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_behind_pgbouncer_in_transaction_mode() {
    let bouncer = PgBouncer::start().await;
    let service = FakeService::start(Mode::Ok).await;
    let agent = TestAgent::start(Behaviour::Succeed).await;
    let mut env = TestEnv::new(Backend::Postgres).await;
    let db = env.db.as_ref().unwrap();
    let (direct, pooled) = (db.url.clone(), bouncer.url(&db.name));
    env.set("DATABASE_URL", &pooled)
        .set("JARVIS_LISTEN_DATABASE_URL", &direct)
        .set("JARVIS_DATABASE_POOLER", "pgbouncer")
        .set("JARVIS_EMF_INTERVAL_MS", "0")
        .set("JARVIS_BREAKER_RECONCILE_MS", "60000");
    // `a` serves the API only; `b` runs every task.
    env.set("JARVIS_INSTANCE_ID", "a")
        .set("JARVIS_WORKERS_ENABLED", "false");
    let a = TestProcess::start(&env).await;
    env.set("JARVIS_INSTANCE_ID", "b")
        .set("JARVIS_WORKERS_ENABLED", "true");
    let b = TestProcess::start(&env).await;
    let ps = [a, b];
    let pg = sqlx::PgPool::connect(&direct).await.unwrap();

    // Tasks submitted on `a` run on `b`, each attempt recorded once.
    let (s, body) = ps[0].put_agent("music", json!({"url": agent.url})).await;
    assert_eq!(s, 201, "{body}");
    let tasks: Vec<Value> = (0..200)
        .map(|i| json!({"domain": "music", "action": "play", "parameters": {"i": i}}))
        .collect();
    let mut ids = Vec::new();
    for chunk in tasks.chunks(50) {
        let batch = ps[0].submit_batch(json!(chunk)).await;
        ids.extend(
            batch["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["taskId"].as_str().unwrap().to_string()),
        );
    }
    // One more, waited for on `a`: the settlement on `b` reaches `a` through its LISTEN.
    let (s, body) = ps[0]
        .api(
            Method::POST,
            "/api/v1/tasks?wait=true&waitMs=20000",
            Some(json!({"domain": "music", "action": "play", "parameters": {"i": "waited"}})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["status"], "succeeded", "{body}");
    ids.push(body["data"]["taskId"].as_str().unwrap().to_string());
    eventually(LIMIT, "every task to succeed", || async {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status = 'succeeded'")
            .fetch_one(&pg)
            .await
            .unwrap();
        done == 201
    })
    .await;
    let (attempts, records, distinct, on_b): (i64, i64, i64, i64) =
        eventually_some(LIMIT, "one history record per attempt", || async {
            let row: (i64, i64, i64, i64) = sqlx::query_as(
                "SELECT (SELECT sum(attempts)::int8 FROM tasks), \
                        (SELECT count(*) FROM task_history), \
                        (SELECT count(DISTINCT (task_id, attempt)) FROM task_history), \
                        (SELECT count(*) FROM task_history WHERE instance_id = 'b')",
            )
            .fetch_one(&pg)
            .await
            .unwrap();
            (row.0 == row.1).then_some(row)
        })
        .await;
    assert_eq!(records, distinct, "a duplicate history record");
    assert!(attempts >= 201, "{attempts} attempts for 201 tasks");
    assert_eq!(on_b, records, "every attempt ran on b");
    assert_eq!(agent.calls().len() as i64, attempts);
    let (_, body) = ps[1]
        .api(Method::GET, &format!("/api/v1/tasks/{}", ids[0]), None)
        .await;
    assert_eq!(body["data"]["status"], "succeeded", "{body}");

    // A breaker forced open on `a` is seen on `b` (the change feed, not the reconciliation:
    // that runs once a minute here).
    register_service_on_all(&ps, "billing", &service.url("/health"), 300, 2000).await;
    let (s, body) = ps[0]
        .api(Method::POST, "/api/v1/circuit-breakers/billing/open", None)
        .await;
    assert_eq!(s, 200, "{body}");
    eventually(Duration::from_secs(5), "forced OPEN on b", || async {
        let b = breaker(&ps[1], "billing").await;
        b["state"] == "OPEN" && b["forced"] == true
    })
    .await;

    // A 1-second schedule across both instances: one task per tick.
    let (s, body) = ps[1]
        .api(
            Method::PUT,
            "/api/v1/schedules/every-second",
            Some(json!({"everyMs": 1000, "task": {"domain": "music", "action": "tick"}})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let started = chrono::Utc::now();
    // Let it tick for a while: until six ticks were submitted.
    let count = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM tasks WHERE idempotency_key LIKE 'schedule:every-second:%'",
        )
        .fetch_one(&pg)
        .await
        .unwrap()
    };
    eventually(Duration::from_secs(30), "six ticks", || async {
        count().await >= 6
    })
    .await;
    let (s, body) = ps[0]
        .api(Method::POST, "/api/v1/schedules/every-second/pause", None)
        .await;
    assert_eq!(s, 200, "{body}");
    let stopped = chrono::Utc::now();
    let ticks: Vec<String> = sqlx::query_scalar(
        "SELECT idempotency_key FROM tasks WHERE idempotency_key LIKE 'schedule:every-second:%' \
         ORDER BY idempotency_key",
    )
    .fetch_all(&pg)
    .await
    .unwrap();
    let expected = stopped.timestamp() - started.timestamp();
    assert!(
        (ticks.len() as i64 - expected).abs() <= 1,
        "{} tasks for {expected} ticks: {ticks:?}",
        ticks.len()
    );
    let mut unique = ticks.clone();
    unique.dedup();
    assert_eq!(unique, ticks);

    // Nothing went wrong on the way: no driver error in either instance's log.
    for p in &ps {
        let log = p.stderr() + &p.stdout();
        for bad in [
            "prepared statement",
            "unsupported startup parameter",
            "does not exist",
        ] {
            assert!(
                !log.contains(bad),
                "{bad:?} in the log of an instance:\n{log}"
            );
        }
    }
    drop(bouncer);
}
