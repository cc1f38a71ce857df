//! `printgate simulate`: realistic printer agents over the real protocol.
//!
//! Each simulated agent does what the OctoPrint-Obico agent does: checks its
//! token over HTTP, opens `/ws/dev/`, sends `settings` once and a status
//! every tick (idle, heating, printing with progress, layers and temperature
//! curves, finishing), obeys pause/resume/cancel, and posts snapshots while
//! printing. On request it misbehaves (late `_ts`, garbage frames, reconnect
//! storms). Frontend developers use it to see live data; tests and
//! benchmarks use it as load.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

mod report;

/// A picture to post as the webcam snapshot.
const SNAPSHOT: &[u8] = include_bytes!("snapshot.png");
/// The healthy snapshot, for tests of what reads it.
pub const SNAPSHOT_PNG: &[u8] = SNAPSHOT;

/// Arguments of `printgate simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// printgate's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An agent token (a printer's `authToken`); repeat for several printers.
    #[arg(long = "token")]
    pub tokens: Vec<String>,
    /// Create this many printers (needs `--jwt`) and simulate them.
    #[arg(long)]
    pub printers: Option<usize>,
    /// A user's JWT, to create printers with `--printers`.
    #[arg(long, env = "PRINTGATE_SIMULATE_JWT", hide_env_values = true)]
    pub jwt: Option<String>,
    /// Time between status messages.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Percent of a print done per status message.
    #[arg(long, default_value_t = 2.0)]
    pub speed: f64,
    /// Stop after this long (default: run until interrupted).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Don't post snapshots.
    #[arg(long)]
    pub no_snapshots: bool,
    /// Every fourth status carries an older `_ts` (it must lose).
    #[arg(long)]
    pub late_ts: bool,
    /// Every fifth frame is followed by a garbage frame (it must be dropped).
    #[arg(long)]
    pub garbage: bool,
    /// Reconnect after every third frame.
    #[arg(long)]
    pub reconnect_storm: bool,
    /// Also subscribe to the user's printers (needs `--jwt`), check that no
    /// status is lost or reordered, time status-to-subscriber latency, and
    /// print a JSON report at the end (needs `--duration`).
    #[arg(long)]
    pub report: bool,
    /// With `--report`: this many subscribers, each on its own websocket
    /// (a few dashboards watching the farm); the report covers them all.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub subscribers: u16,
    /// Make a print fail part-way: once it is this many percent done, the
    /// failing printers' cameras show a failure (the snapshots they post
    /// say so, for `printgate ml-sim`). Failing printers print at 1% a
    /// status, so the failure shows before the print ends.
    #[arg(long)]
    pub fail_after: Option<f64>,
    /// How many printers (the first ones) fail with `--fail-after`.
    #[arg(long, default_value_t = 1)]
    pub failing: usize,
    /// Post a snapshot every this many statuses while printing.
    #[arg(long, default_value_t = 5)]
    pub snapshot_every: u64,
}

/// What a run did, for scripts and benchmarks.
#[derive(Default)]
pub struct Counters {
    pub statuses_sent: AtomicU64,
    pub commands_received: AtomicU64,
    pub connections: AtomicU64,
    pub snapshots_posted: AtomicU64,
    /// The last `_sim_seq` each agent sent, by [`agent_tag`].
    last_seq: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters")
            .field("statuses_sent", &self.statuses_sent.load(Ordering::Relaxed))
            .field(
                "commands_received",
                &self.commands_received.load(Ordering::Relaxed),
            )
            .field("connections", &self.connections.load(Ordering::Relaxed))
            .field(
                "snapshots_posted",
                &self.snapshots_posted.load(Ordering::Relaxed),
            )
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Idle(u32),
    Heating,
    Printing,
    Paused,
    /// Paused at the printer (a filament swap), resuming after this many ticks.
    PausedAtPrinter(u32),
}

/// One simulated printer.
struct Printer {
    n: usize,
    phase: Phase,
    completion: f64,
    print_ts: i64,
    file: String,
    tool: f64,
    bed: f64,
    seq: u64,
    /// An event to report with the next status.
    event: Option<Value>,
    /// The print just ended: this frame reports its end event with the
    /// print's timestamp...
    ending: bool,
    /// ...and the next one reports `-1`, as the real agent does.
    ended: bool,
    /// The completion at which this printer's prints fail, if they do.
    fails_at: Option<f64>,
    /// Ticks until this printer's operator cancels a failed print that was
    /// paused for them, so the next print (which fails too) starts and a
    /// demo shows its failure again and again, not once before anyone looks.
    clears_in: Option<u32>,
}

/// Ticks a paused failed print waits for its (simulated) operator: long
/// enough that a client sees the printer Paused, short enough that the
/// next failure comes within about a minute.
const OPERATOR_CLEARS_AFTER: u32 = 40;

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Printer {
    /// Printer `n` of a fleet: the even ones start idle, the odd ones are
    /// already part-way through a print, as in a farm that was running.
    fn new(n: usize) -> Self {
        let mut p = Self {
            n,
            phase: Phase::Idle(1 + (n % 3) as u32),
            completion: 0.0,
            print_ts: -1,
            file: String::new(),
            tool: 25.0,
            bed: 24.0,
            seq: 0,
            event: None,
            ending: false,
            ended: false,
            fails_at: None,
            clears_in: None,
        };
        if n % 2 == 1 {
            p.phase = Phase::Printing;
            p.completion = ((n * 37) % 80) as f64;
            p.print_ts = unix_now() - (p.completion * 36.0) as i64;
            p.file = format!("part-{n}-{}.gcode", p.print_ts % 1000);
            p.tool = 215.0;
            p.bed = 60.0;
            p.event = Some(json!({"event_type": "PrintStarted", "data": {"name": p.file}}));
        }
        p
    }

    /// Moves the simulation one tick on.
    fn tick(&mut self, speed: f64) {
        let (tool_target, bed_target) = self.targets();
        // Heaters approach their targets like a first-order system.
        self.tool += (tool_target - self.tool) * 0.5;
        self.bed += (bed_target - self.bed) * 0.4;
        match self.phase {
            Phase::Idle(0) => {
                self.phase = Phase::Heating;
                self.print_ts = unix_now();
                self.file = format!("part-{}-{}.gcode", self.n, self.print_ts % 1000);
                self.completion = 0.0;
                self.event =
                    Some(json!({"event_type": "PrintStarted", "data": {"name": self.file}}));
            }
            Phase::Idle(k) => self.phase = Phase::Idle(k - 1),
            Phase::Heating if (tool_target - self.tool).abs() < 5.0 => self.phase = Phase::Printing,
            Phase::Paused => match self.clears_in {
                Some(0) => {
                    self.clears_in = None;
                    self.command("cancel");
                }
                Some(k) => self.clears_in = Some(k - 1),
                None => {}
            },
            Phase::Heating => {}
            Phase::PausedAtPrinter(0) => {
                self.phase = Phase::Printing;
                self.event =
                    Some(json!({"event_type": "PrintResumed", "data": {"name": self.file}}));
            }
            Phase::PausedAtPrinter(k) => self.phase = Phase::PausedAtPrinter(k - 1),
            Phase::Printing => {
                let before = self.completion;
                let speed = if self.fails_at.is_some() { 1.0 } else { speed };
                self.completion = (self.completion + speed).min(100.0);
                // Every third printer stops half-way for a filament swap, as
                // a farm's printers do, so pausing is seen without a command.
                if self.n % 3 == 2 && before < 50.0 && self.completion >= 50.0 {
                    self.phase = Phase::PausedAtPrinter(4);
                    self.event =
                        Some(json!({"event_type": "PrintPaused", "data": {"name": self.file}}));
                    return;
                }
                if self.completion >= 100.0 {
                    self.event =
                        Some(json!({"event_type": "PrintDone", "data": {"name": self.file}}));
                    self.finish();
                }
            }
        }
    }

    fn targets(&self) -> (f64, f64) {
        match self.phase {
            Phase::Heating | Phase::Printing | Phase::PausedAtPrinter(_) => (215.0, 60.0),
            Phase::Paused | Phase::Idle(_) => (25.0, 24.0),
        }
    }

    fn finish(&mut self) {
        self.clears_in = None;
        self.phase = Phase::Idle(3);
        self.ending = true;
    }

    /// Obeys a command from the server.
    fn command(&mut self, cmd: &str) {
        match (cmd, self.phase) {
            ("pause", Phase::Printing | Phase::Heating | Phase::PausedAtPrinter(_)) => {
                if self.camera_shows_failure() {
                    self.clears_in = Some(OPERATOR_CLEARS_AFTER);
                }
                self.phase = Phase::Paused;
                self.event =
                    Some(json!({"event_type": "PrintPaused", "data": {"name": self.file}}));
            }
            ("resume", Phase::Paused) => {
                self.clears_in = None;
                self.phase = Phase::Printing;
                self.event =
                    Some(json!({"event_type": "PrintResumed", "data": {"name": self.file}}));
            }
            (
                "cancel",
                Phase::Printing | Phase::Heating | Phase::Paused | Phase::PausedAtPrinter(_),
            ) => {
                self.event = Some(
                    json!({"event_type": "PrintFailed", "data": {"name": self.file, "reason": "cancelled"}}),
                );
                self.finish();
            }
            _ => {}
        }
    }

    /// Whether the camera shows a failed print (spaghetti) now.
    fn camera_shows_failure(&self) -> bool {
        self.printing() && self.fails_at.is_some_and(|f| self.completion >= f)
    }

    fn printing(&self) -> bool {
        matches!(
            self.phase,
            Phase::Printing | Phase::Heating | Phase::Paused | Phase::PausedAtPrinter(_)
        )
    }

    /// The status message for this tick.
    fn frame(&mut self, late: bool, with_settings: bool) -> Value {
        self.seq += 1;
        let now = unix_now();
        let (tool_target, bed_target) = self.targets();
        let text = match self.phase {
            Phase::Idle(_) => "Operational",
            Phase::Heating | Phase::Printing => "Printing",
            Phase::Paused | Phase::PausedAtPrinter(_) => "Paused",
        };
        let paused = matches!(self.phase, Phase::Paused | Phase::PausedAtPrinter(_));
        let layer = (self.completion * 2.0).floor();
        let printing = matches!(self.phase, Phase::Printing | Phase::Heating);
        let current_print_ts = if self.ending {
            self.ending = false;
            self.ended = true;
            self.print_ts
        } else if self.ended {
            self.ended = false;
            self.print_ts = -1;
            -1
        } else if self.printing() {
            self.print_ts
        } else {
            -1
        };
        let mut frame = json!({
            "current_print_ts": current_print_ts,
            "status": {
                "_ts": if late { now - 100 } else { now },
                "_sim_seq": self.seq,
                "_sim_sent_ms": chrono::Utc::now().timestamp_millis(),
                "state": {"text": text, "flags": {
                    "operational": true, "printing": printing, "paused": paused,
                    "pausing": false, "cancelling": false, "error": false, "ready": !printing, "closedOrError": false
                }},
                "job": {"file": {"name": if self.printing() { json!(self.file) } else { Value::Null }}},
                "progress": {
                    "completion": self.completion,
                    "printTime": (self.completion * 36.0).round(),
                    "printTimeLeft": ((100.0 - self.completion) * 36.0).round(),
                },
                "currentLayerHeight": layer * 0.2,
                "currentZ": layer * 0.2,
                "temperatures": {
                    "tool0": {"actual": (self.tool * 10.0).round() / 10.0, "target": tool_target, "offset": 0},
                    "bed": {"actual": (self.bed * 10.0).round() / 10.0, "target": bed_target, "offset": 0},
                },
            },
        });
        if let Some(e) = self.event.take() {
            frame["event"] = e;
        } else {
            frame["event"] =
                json!({"event_type": "PrinterStateChanged", "data": {"state_string": text}});
        }
        if with_settings {
            frame["settings"] = json!({
                "webcams": [{"name": "classic", "is_primary_camera": true, "flipH": false, "flipV": false, "rotation": 0, "streamRatio": "16:9"}],
                "temperature": {"profiles": [{"name": "PLA", "extruder": 215, "bed": 60}, {"name": "PETG", "extruder": 240, "bed": 80}]},
                "agent": {"name": "printgate_simulator", "version": env!("CARGO_PKG_VERSION")},
            });
        }
        frame
    }
}

/// Creates `n` printers for the JWT's user and returns their agent tokens.
pub async fn create_printers(
    http: &reqwest::Client,
    url: &str,
    jwt: &str,
    n: usize,
) -> Result<Vec<String>, String> {
    let mut tokens = Vec::with_capacity(n);
    // Batches of 10: the server's default batch limit.
    for chunk_start in (0..n).step_by(10) {
        let batch: Vec<Value> = (chunk_start..(chunk_start + 10).min(n))
            .map(|i| {
                json!({"query": "mutation($n: String!) { createPrinter(input: {name: $n}) { authToken } }",
                       "variables": {"n": format!("sim-{i}")}})
            })
            .collect();
        let resp: Value = http
            .post(format!("{url}/graphql"))
            .bearer_auth(jwt)
            .json(&batch)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        for r in resp.as_array().ok_or("unexpected answer")? {
            let t = r["data"]["createPrinter"]["authToken"]
                .as_str()
                .ok_or_else(|| format!("create failed: {r}"))?;
            tokens.push(t.to_owned());
        }
    }
    Ok(tokens)
}

/// Runs the simulation until `--duration` passes (or forever).
pub async fn run(args: SimulateArgs) -> Result<Arc<Counters>, String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let url = args.url.trim_end_matches('/').to_owned();
    let mut tokens = args.tokens.clone();
    if let Some(n) = args.printers {
        let jwt = args.jwt.as_deref().ok_or("--printers needs --jwt")?;
        tokens.extend(create_printers(&http, &url, jwt, n).await?);
    }
    if tokens.is_empty() {
        return Err("give --token AUTH_TOKEN (repeatable) or --printers N --jwt JWT".into());
    }
    let counters = Arc::new(Counters::default());
    let args = Arc::new(args);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let started = std::time::Instant::now();
    let started_ms = chrono::Utc::now().timestamp_millis();
    let steady_from = started_ms + i64::try_from(report::WARM_UP.as_millis()).unwrap_or(0);
    let watchers = match (args.report, args.jwt.clone()) {
        (true, Some(jwt)) => (0..args.subscribers)
            .map(|_| {
                tokio::spawn(report::watch(
                    url.clone(),
                    jwt.clone(),
                    steady_from,
                    stop.clone(),
                ))
            })
            .collect(),
        (true, None) => return Err("--report needs --jwt".into()),
        _ => Vec::new(),
    };
    let mut tasks = Vec::new();
    for (n, token) in tokens.iter().cloned().enumerate() {
        let (http, url, args, counters, stop) = (
            http.clone(),
            url.clone(),
            args.clone(),
            counters.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            // Spread the connections over the first interval.
            tokio::time::sleep(args.interval.mul_f64((n % 100) as f64 / 100.0)).await;
            agent(n, &token, &http, &url, &args, &counters, stop).await
        }));
    }
    match args.duration {
        Some(d) => tokio::time::sleep(d).await,
        None => {
            futures_util::future::join_all(tasks).await;
            return Ok(counters);
        }
    }
    // Stop sending but keep the connections open, let the last statuses
    // land, then compare what is stored with what was sent.
    let _ = stop_tx.send(true);
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    if let (false, Some(jwt)) = (watchers.is_empty(), args.jwt.as_deref()) {
        let mut seen = Vec::new();
        for w in watchers {
            seen.push(w.await.map_err(|e| e.to_string())?);
        }
        let sent = counters
            .last_seq
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        let stored = report::stored_seqs(&http, &url, jwt).await?;
        let r = report::summarize(&counters, started_ms, elapsed, &sent, &stored, &seen);
        println!("{r}");
    }
    for t in tasks {
        t.abort();
    }
    Ok(counters)
}

/// A short, one-way name of an agent's token that its statuses carry
/// (`_sim_agent`), so the report can tell the agents apart without the
/// token (which reads do not show).
pub fn agent_tag(token: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(token.as_bytes())[..8])
}

/// One agent: token check, then websocket sessions until told to stop.
async fn agent(
    n: usize,
    token: &str,
    http: &reqwest::Client,
    url: &str,
    args: &SimulateArgs,
    counters: &Counters,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    // The real agent waits for the token check before opening the socket.
    let mut wait = Duration::from_millis(500);
    loop {
        let ok = http
            .get(format!("{url}/api/v1/octo/printer/"))
            .header("authorization", format!("Token {token}"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        tracing::warn!(agent = n, "token check failed; retrying");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
    let mut printer = Printer::new(n);
    if n < args.failing {
        printer.fails_at = args.fail_after;
    }
    let mut settings_sent = false;
    loop {
        let ended = session(
            n,
            token,
            (http, url, args, counters),
            &mut printer,
            &mut settings_sent,
            stop.clone(),
        )
        .await;
        match ended {
            SessionEnd::Replaced => {
                tracing::warn!(
                    agent = n,
                    "closed with 4321: the token is used twice; stopping"
                );
                return;
            }
            SessionEnd::Reconnect => tokio::time::sleep(Duration::from_millis(200)).await,
            SessionEnd::Lost => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

enum SessionEnd {
    Replaced,
    Reconnect,
    Lost,
}

async fn session(
    n: usize,
    token: &str,
    (http, url, args, counters): (&reqwest::Client, &str, &SimulateArgs, &Counters),
    printer: &mut Printer,
    settings_sent: &mut bool,
    stop: tokio::sync::watch::Receiver<bool>,
) -> SessionEnd {
    let ws_url = format!("{}/ws/dev/", url.replacen("http", "ws", 1));
    let Ok(mut req) = ws_url.into_client_request() else {
        return SessionEnd::Lost;
    };
    if let Ok(v) = format!("bearer {token}").parse() {
        req.headers_mut().insert("authorization", v);
    }
    let Ok((ws, _)) = tokio_tungstenite::connect_async(req).await else {
        return SessionEnd::Lost;
    };
    counters.connections.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = ws.split();
    let mut ticker = tokio::time::interval(args.interval);
    let mut frames_this_session = 0u32;
    loop {
        tokio::select! {
            _ = ticker.tick(), if !*stop.borrow() => {
                printer.tick(args.speed);
                let late = args.late_ts && printer.seq % 4 == 3;
                let mut frame = printer.frame(late, !*settings_sent);
                // Which agent sent it, for the report (the token itself
                // never goes into a status: statuses are read by clients).
                frame["status"]["_sim_agent"] = agent_tag(token).into();
                *settings_sent = true;
                if sink.send(Message::Text(frame.to_string().into())).await.is_err() {
                    return SessionEnd::Lost;
                }
                counters.statuses_sent.fetch_add(1, Ordering::Relaxed);
                if !late && let Ok(mut m) = counters.last_seq.lock() {
                    m.insert(agent_tag(token), printer.seq);
                }
                frames_this_session += 1;
                if args.garbage && printer.seq.is_multiple_of(5) {
                    let _ = sink.send(Message::Text("{garbage".into())).await;
                }
                if !args.no_snapshots
                    && printer.printing()
                    && printer.seq.is_multiple_of(args.snapshot_every.max(1))
                {
                    post_snapshot(http, url, token, counters, printer.camera_shows_failure()).await;
                }
                if args.reconnect_storm && frames_this_session >= 3 {
                    let _ = sink.close().await;
                    return SessionEnd::Reconnect;
                }
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                    if let Some(cmds) = v.get("commands").and_then(Value::as_array) {
                        for c in cmds {
                            let cmd = c.get("cmd").and_then(Value::as_str).unwrap_or_default();
                            counters.commands_received.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(agent = n, cmd, "command");
                            printer.command(cmd);
                        }
                    }
                }
                Some(Ok(Message::Close(Some(f)))) if u16::from(f.code) == 4321 => return SessionEnd::Replaced,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return SessionEnd::Lost,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// What `printgate ml-sim` looks for in a snapshot: a PNG text chunk the
/// simulated camera writes when it shows a failed print.
pub const FAILURE_MARK: &[u8] = b"printgate-sim\0failure";

/// The snapshot of a failing print: the same picture with the failure
/// mark in a `tEXt` chunk after the header (still a valid PNG).
pub fn failing_snapshot() -> Vec<u8> {
    // Signature (8) + IHDR (4 length + 4 type + 13 data + 4 CRC).
    let at = 33.min(SNAPSHOT.len());
    let mut chunk = Vec::with_capacity(FAILURE_MARK.len() + 12);
    chunk.extend_from_slice(&u32::try_from(FAILURE_MARK.len()).unwrap_or(0).to_be_bytes());
    let typed: Vec<u8> = [b"tEXt".as_slice(), FAILURE_MARK].concat();
    chunk.extend_from_slice(&typed);
    chunk.extend_from_slice(&crc32(&typed).to_be_bytes());
    [&SNAPSHOT[..at], &chunk, &SNAPSHOT[at..]].concat()
}

/// CRC-32 (IEEE), as PNG chunks carry it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

async fn post_snapshot(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    counters: &Counters,
    failing: bool,
) {
    let bytes = if failing {
        failing_snapshot()
    } else {
        SNAPSHOT.to_vec()
    };
    let part = reqwest::multipart::Part::bytes(bytes).file_name("snapshot.png");
    let form = reqwest::multipart::Form::new()
        .part("pic", part)
        .text("is_primary_camera", "true");
    let ok = http
        .post(format!("{url}/api/v1/octo/pic/"))
        .header("authorization", format!("Token {token}"))
        .multipart(form)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    if ok {
        counters.snapshots_posted.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulated_print_runs_from_idle_to_done() {
        let mut p = Printer::new(0);
        let mut saw = Vec::new();
        for _ in 0..200 {
            p.tick(10.0);
            let f = p.frame(false, false);
            saw.push((
                f["current_print_ts"].as_i64().unwrap_or(0),
                f["event"]["event_type"].as_str().unwrap_or("").to_owned(),
            ));
        }
        assert!(saw.iter().any(|(_, e)| e == "PrintStarted"));
        assert!(saw.iter().any(|(_, e)| e == "PrintDone"));
        assert!(saw.iter().any(|(ts, _)| *ts > 0));
    }

    #[test]
    fn every_third_printer_pauses_half_way_and_resumes() {
        let mut p = Printer::new(2);
        let mut events = Vec::new();
        for _ in 0..400 {
            p.tick(5.0);
            let f = p.frame(false, false);
            events.push(f["event"]["event_type"].as_str().unwrap_or("").to_owned());
        }
        let paused = events.iter().position(|e| e == "PrintPaused");
        let resumed = events.iter().position(|e| e == "PrintResumed");
        assert!(
            matches!((paused, resumed), (Some(a), Some(b)) if a < b),
            "{events:?}"
        );
    }

    #[test]
    fn commands_move_the_state_machine() {
        let mut p = Printer::new(0);
        p.phase = Phase::Printing;
        p.command("pause");
        assert_eq!(p.phase, Phase::Paused);
        p.command("resume");
        assert_eq!(p.phase, Phase::Printing);
        p.command("cancel");
        assert!(matches!(p.phase, Phase::Idle(_)));
    }
}

#[cfg(test)]
mod failure_tests {
    use super::*;

    #[test]
    fn the_failing_snapshot_is_a_png_with_the_mark() {
        let f = failing_snapshot();
        assert!(f.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert!(f.windows(FAILURE_MARK.len()).any(|w| w == FAILURE_MARK));
        assert!(
            !SNAPSHOT
                .windows(FAILURE_MARK.len())
                .any(|w| w == FAILURE_MARK)
        );
        assert_eq!(crc32(b"IEND"), 0xAE42_6082, "PNG's own IEND CRC");
    }

    #[test]
    fn a_failing_printer_shows_its_failure_once_past_the_mark() {
        let mut p = Printer::new(0);
        p.fails_at = Some(5.0);
        for _ in 0..30 {
            p.tick(3.0);
            if p.camera_shows_failure() {
                assert!(p.completion >= 5.0);
                return;
            }
        }
        panic!("the failure never showed");
    }

    #[test]
    fn a_failed_print_paused_by_the_server_is_cleared_and_the_next_one_fails_too() {
        let mut p = Printer::new(0);
        p.fails_at = Some(5.0);
        let mut failures = 0;
        let mut cancelled = 0;
        for _ in 0..400 {
            p.tick(3.0);
            if p.camera_shows_failure() && p.phase == Phase::Printing {
                failures += 1;
                p.command("pause");
                assert_eq!(p.phase, Phase::Paused);
                // The operator leaves it paused long enough to be seen.
                for _ in 0..OPERATOR_CLEARS_AFTER {
                    p.tick(3.0);
                    assert_eq!(p.phase, Phase::Paused);
                }
                p.tick(3.0);
                assert!(matches!(p.phase, Phase::Idle(_)), "{:?}", p.phase);
                let ev = p.event.take().unwrap_or_default();
                assert_eq!(ev["event_type"], "PrintFailed");
                cancelled += 1;
            }
        }
        assert!(failures >= 2, "the next print failed too: {failures}");
        assert_eq!(failures, cancelled);
        // A pause that is not for a failure is left to whoever paused it.
        let mut q = Printer::new(1);
        q.command("pause");
        for _ in 0..(2 * OPERATOR_CLEARS_AFTER) {
            q.tick(3.0);
        }
        assert_eq!(q.phase, Phase::Paused);
    }
}
