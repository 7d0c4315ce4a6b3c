//! Every command block of the README and `docs/` runs against a real Jarvis, so the
//! documentation cannot drift from the product (issue 18).
//!
//! A fenced block tagged `sh` (or `bash`, `shell`) runs in `bash -euo pipefail`, in the
//! directory of a running `jarvis serve` (so `data/dev-token` and `logs/` are that instance's),
//! with `jarvis` on the `PATH`, `TOKEN` and `JARVIS_AUTH_TOKEN` set to the instance's token,
//! `JARVIS_URL` to its address, and `curl` failing on any HTTP error. A block tagged `toml` is
//! a configuration file: `jarvis config check --config` must accept it. Blocks of other tags
//! (JSON shapes, HTTP exchanges) are not commands.
//!
//! The examples' fixed names are replaced by this test's: `localhost:4000` by the instance,
//! `127.0.0.1:3001` by a healthy service, `127.0.0.1:8001` by a real agent, `postgres://…` by a
//! fresh PostgreSQL database (also `DATABASE_URL`), and the placeholders `NAME`, `ID` and
//! `TASK_ID` by a registered service and a task run before the blocks (correlation ID
//! `req-abc123xyz`, as in the docs).
//!
//! An HTML comment on the line before a block steers it:
//! - `<!-- docs-test: skip: REASON -->` — the block needs what a test machine has not (AWS,
//!   Docker, a remote database) or is the test suite itself; the reason is required.
//! - `<!-- docs-test: fresh-database -->` — `DATABASE_URL` names a new, empty database (for
//!   blocks that apply the migrations by hand).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::agent::{Behaviour, TestAgent};
use crate::helpers::{
    eventually, eventually_some, jarvis_bin, Backend, FakeService, Mode, TestDatabase, TestEnv,
    TestProcess,
};

/// The correlation ID the docs follow through logs and history.
const CORRELATION: &str = "req-abc123xyz";

/// How long one block may run.
const BLOCK_LIMIT: Duration = Duration::from_secs(60);

/// What the comment before a block asks for.
#[derive(Debug, Clone, PartialEq)]
enum Directive {
    None,
    Skip(String),
    FreshDatabase,
}

/// A fenced block of a Markdown file.
#[derive(Debug, Clone)]
struct Block {
    /// `file:line` of the opening fence.
    at: String,
    lang: String,
    text: String,
    directive: Directive,
}

/// The fenced blocks of `markdown`, with the directive of the comment just before each.
fn blocks(file: &str, markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    let mut previous = "";
    for (n, line) in markdown.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("```") {
            match open.take() {
                Some(block) => out.push(block),
                None => {
                    open = Some(Block {
                        at: format!("{file}:{}", n + 1),
                        lang: rest.split_whitespace().next().unwrap_or("").to_string(),
                        text: String::new(),
                        directive: directive(previous),
                    })
                }
            }
        } else if let Some(block) = open.as_mut() {
            block.text.push_str(line);
            block.text.push('\n');
        }
        if !trimmed.is_empty() {
            previous = trimmed;
        }
    }
    assert!(open.is_none(), "{file}: a fenced block is not closed");
    out
}

fn directive(line: &str) -> Directive {
    let Some(body) = line
        .strip_prefix("<!-- docs-test:")
        .and_then(|r| r.strip_suffix("-->"))
    else {
        return Directive::None;
    };
    let body = body.trim();
    if body == "fresh-database" {
        Directive::FreshDatabase
    } else if let Some(reason) = body.strip_prefix("skip:") {
        assert!(!reason.trim().is_empty(), "a docs-test skip needs a reason");
        Directive::Skip(reason.trim().to_string())
    } else {
        panic!("unknown docs-test directive {line:?}");
    }
}

/// Replaces `word` where it stands alone as a placeholder: after a space or `/`, before a
/// space, `/`, `?`, a quote or the end of the line (so `X-Correlation-ID` keeps its `ID`).
fn replace_placeholder(text: &str, word: &str, with: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (i, _) in text.match_indices(word) {
        let before = text[..i].chars().last();
        let after = text[i + word.len()..].chars().next();
        let standalone = matches!(before, Some(' ' | '/'))
            && matches!(after, None | Some(' ' | '/' | '?' | '"' | '\'' | '\n'));
        if standalone {
            out.push_str(&text[last..i]);
            out.push_str(with);
            last = i + word.len();
        }
    }
    out.push_str(&text[last..]);
    out
}

/// Everything the blocks run against.
struct World {
    process: TestProcess,
    env: TestEnv,
    dir: PathBuf,
    agent: TestAgent,
    service: FakeService,
    token: String,
    task_id: String,
    /// One database per file for its `postgres://…`, created when first needed.
    databases: Vec<TestDatabase>,
}

impl World {
    async fn start() -> World {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut env = TestEnv::new(Backend::Sqlite).await;
        // No token given: a development instance writes one to data/dev-token, as a new
        // user's does.
        env.vars.remove("JARVIS_AUTH_TOKEN");
        let dir = env.dir.path().to_path_buf();
        // The blocks run here, and some name the repository's files.
        for entry in ["crates", "scripts", "deploy", "docs"] {
            std::os::unix::fs::symlink(repo.join(entry), dir.join(entry)).unwrap();
        }
        let process = TestProcess::start(&env).await;
        let token = std::fs::read_to_string(dir.join("data/dev-token"))
            .expect("a development instance writes data/dev-token")
            .trim()
            .to_string();
        let agent = TestAgent::start(Behaviour::Succeed).await;
        let service = FakeService::start(Mode::Ok).await;
        let client = reqwest::Client::new();
        let auth = format!("Bearer {token}");
        let put = |path: &str, body: serde_json::Value| {
            client
                .put(process.url(path))
                .header("authorization", &auth)
                .json(&body)
                .send()
        };
        let r = put(
            "/api/v1/services/aiDawgBackend",
            json!({"url": service.url("/health"), "critical": true}),
        )
        .await
        .unwrap();
        assert!(r.status().is_success(), "register the service: {r:?}");
        // Its breaker exists once it has been checked.
        let breaker = process.url("/api/v1/circuit-breakers/aiDawgBackend");
        eventually(Duration::from_secs(20), "the service's first check", || {
            let request = client.get(&breaker).header("authorization", &auth).send();
            async move { request.await.is_ok_and(|r| r.status().is_success()) }
        })
        .await;
        let r = put("/api/v1/agents/music", json!({"url": agent.url}))
            .await
            .unwrap();
        assert!(r.status().is_success(), "register the agent: {r:?}");
        let r: serde_json::Value = client
            .post(process.url("/api/v1/execute?wait=true"))
            .header("authorization", &auth)
            .header("x-correlation-id", CORRELATION)
            .json(
                &json!({"domain": "music", "action": "generate-beat", "parameters": {"bpm": 120}}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let task_id = r["data"]["taskId"]
            .as_str()
            .unwrap_or_else(|| panic!("execute answered {r}"))
            .to_string();
        // The request's log line is what the docs grep for.
        let log = env.log_file();
        eventually_some(Duration::from_secs(10), "the request's log line", || {
            let log = log.clone();
            async move {
                std::fs::read_to_string(&log)
                    .ok()
                    .filter(|l| l.contains(CORRELATION))
            }
        })
        .await;
        World {
            process,
            env,
            dir,
            agent,
            service,
            token,
            task_id,
            databases: Vec::new(),
        }
    }

    /// The block's text with this test's addresses and names.
    fn substitute(&self, text: &str, database: Option<&str>) -> String {
        let instance = format!("127.0.0.1:{}", self.process.port);
        let service = format!("127.0.0.1:{}", self.service.port);
        let agent = self.agent.url.trim_start_matches("http://");
        let agent = agent.trim_end_matches("/run");
        let mut t = text
            .replace("localhost:4000", &instance)
            .replace("127.0.0.1:4000", &instance)
            .replace("127.0.0.1:3001", &service)
            .replace("127.0.0.1:8001", agent);
        if let Some(url) = database {
            t = t.replace("postgres://…", url);
        }
        t = replace_placeholder(&t, "NAME", "aiDawgBackend");
        t = replace_placeholder(&t, "TASK_ID", &self.task_id);
        replace_placeholder(&t, "ID", &self.task_id)
    }

    /// Runs one block; `Err` says what failed.
    async fn run(
        &mut self,
        block: &Block,
        file_database: &mut Option<String>,
    ) -> Result<(), String> {
        match block.lang.as_str() {
            "toml" => {
                let file = self.dir.join("docs-test.toml");
                std::fs::write(&file, &block.text).unwrap();
                let out = Command::new(jarvis_bin())
                    .args(["config", "check", "--config"])
                    .arg(&file)
                    .current_dir(&self.dir)
                    .env_remove("DATABASE_URL")
                    .output()
                    .unwrap();
                if out.status.success() {
                    Ok(())
                } else {
                    Err(format!(
                        "`jarvis config check` refused it:\n{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ))
                }
            }
            "sh" | "bash" | "shell" => {
                let needs_db =
                    block.text.contains("DATABASE_URL") || block.text.contains("postgres://…");
                let database = if !needs_db {
                    None
                } else if block.directive == Directive::FreshDatabase {
                    let db = TestDatabase::create().await;
                    let url = db.url.clone();
                    self.databases.push(db);
                    Some(url)
                } else {
                    if file_database.is_none() {
                        let db = TestDatabase::create().await;
                        *file_database = Some(db.url.clone());
                        self.databases.push(db);
                    }
                    file_database.clone()
                };
                let script = self.substitute(&block.text, database.as_deref());
                self.run_shell(&script, database.as_deref()).await
            }
            _ => Ok(()),
        }
    }

    async fn run_shell(&self, script: &str, database: Option<&str>) -> Result<(), String> {
        let bin_dir = Path::new(jarvis_bin()).parent().unwrap().to_path_buf();
        let prelude = "curl() { command curl --fail-with-body --show-error \"$@\"; }\n";
        let mut vars: HashMap<&str, String> = HashMap::new();
        vars.insert(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
        vars.insert("TOKEN", self.token.clone());
        vars.insert("JARVIS_AUTH_TOKEN", self.token.clone());
        vars.insert("JARVIS_URL", self.process.address.clone());
        vars.insert("HOME", self.dir.display().to_string());
        if let Some(url) = database {
            vars.insert("DATABASE_URL", url.to_string());
        }
        let mut cmd = tokio::process::Command::new("bash");
        cmd.args(["-euo", "pipefail", "-c"])
            .arg(format!("{prelude}{script}"))
            .env_clear()
            .envs(&vars)
            .current_dir(&self.dir)
            .kill_on_drop(true);
        let out = match tokio::time::timeout(BLOCK_LIMIT, cmd.output()).await {
            Ok(out) => out.unwrap(),
            Err(_) => return Err(format!("still running after {BLOCK_LIMIT:?}")),
        };
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "exit {}:\n--- stdout\n{}\n--- stderr\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

/// The Markdown files whose blocks are run: the README and every file under `docs/`.
fn documents() -> Vec<(String, String)> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![repo.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(&repo).unwrap_or(&p).display().to_string();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_block_of_the_readme_and_docs_runs() {
    let mut world = World::start().await;
    let mut failures = Vec::new();
    let mut ran = 0;
    for (file, text) in documents() {
        let mut file_database = None;
        for block in blocks(&file, &text) {
            if let Directive::Skip(_) = block.directive {
                continue;
            }
            if !matches!(block.lang.as_str(), "sh" | "bash" | "shell" | "toml") {
                continue;
            }
            ran += 1;
            if let Err(e) = world.run(&block, &mut file_database).await {
                failures.push(format!(
                    "{} ({}):\n{}\n{e}",
                    block.at, block.lang, block.text
                ));
            }
        }
    }
    assert!(ran >= 10, "only {ran} blocks ran: are the docs there?");
    assert!(
        failures.is_empty(),
        "{} of {ran} documented blocks failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    drop(world.env);
}

/// The harness itself fails on a broken example: an HTTP error, a failing command, a
/// configuration `serve` would refuse.
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_example_fails_the_docs_test() {
    let mut world = World::start().await;
    let broken = "\
```sh
curl -s -H \"Authorization: Bearer $TOKEN\" localhost:4000/api/v1/no-such-route
```

```sh
jarvis tasks show 00000000-0000-0000-0000-000000000000
```

```toml
[services.x]
url = \"localhost:3001/health\"
```

<!-- docs-test: skip: shows that a skipped block does not run -->
```sh
false
```

```sh
curl -s localhost:4000/health
jarvis breakers show NAME
```
";
    let mut db = None;
    let mut results = Vec::new();
    for b in blocks("broken.md", broken) {
        if !matches!(b.directive, Directive::Skip(_)) {
            results.push(world.run(&b, &mut db).await);
        }
    }
    let passed: Vec<bool> = results.iter().map(Result::is_ok).collect();
    assert_eq!(
        passed,
        vec![false, false, false, true],
        "which blocks passed: {results:#?}"
    );
}

#[test]
fn placeholders_are_replaced_only_where_they_stand_alone() {
    let t = "jarvis tasks show ID\ncurl -H 'X-Correlation-ID: x' .../services/NAME/history?limit=2\nALB_DNS_NAME";
    let t = replace_placeholder(t, "NAME", "svc");
    let t = replace_placeholder(&t, "ID", "42");
    assert_eq!(
        t,
        "jarvis tasks show 42\ncurl -H 'X-Correlation-ID: x' .../services/svc/history?limit=2\nALB_DNS_NAME"
    );
}
