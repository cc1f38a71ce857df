//! The failure detector's machinery, off the request path: the agent's
//! snapshot upload offers the printer here: the service says whether the
//! frame is to be judged (§2 steps 1 to 3, as the upload saw the printer:
//! mostly from the printer row it already has, else two reads at once)
//! and the upload answers; a bounded queue (a frame that finds it full,
//! or its printer already queued, is skipped and counted, never queued
//! without bound) feeds a few workers, which check the minimum interval
//! against the stored state (step 4), call the ML service and hand the
//! detections back to the service (§3, §4).
//!
//! [`MlClient`] speaks Obico's `ml_api` contract (detection.md §1):
//! `GET {url}/p/?img=<signed snapshot URL>`, `Authorization: Bearer
//! <token>` when a token is set, with a timeout. An ML service that is
//! down, slow or answers garbage changes nothing but the metrics and the
//! log (and `/readyz`'s detail).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};

use crate::metrics::metrics;
use crate::service::Service;
use crate::service::detection::{DetectionSettings, Frame, FrameJudge, Skip};
use crate::service::prediction::Detection;
use crate::urls::UrlSigner;

/// Detection's settings, from the command line.
#[derive(Debug, Clone)]
pub struct DetectionConfig {
    /// The ML service (`--ml-api-url`); unset, detection is off.
    pub ml_api_url: String,
    pub ml_api_token: Option<String>,
    pub ml_timeout: Duration,
    /// The origin the ML service reaches printgate at, for image URLs.
    pub image_base: String,
    pub settings: DetectionSettings,
    /// Frames waiting to be judged on this instance, at most.
    pub queue: usize,
    /// ML calls in flight at once.
    pub concurrency: usize,
}

/// The ML service over HTTP.
pub struct MlClient {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl MlClient {
    pub fn new(url: &str, token: Option<String>, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("ML client: {e}"))?;
        Ok(Self {
            http,
            url: url.trim_end_matches('/').to_owned(),
            token,
        })
    }
}

/// `{"detections": [[label, confidence, [xc, yc, w, h]], ...]}` into
/// detections; anything else is garbage.
pub fn parse_detections(body: &Value) -> Result<Vec<Detection>, String> {
    let list = body
        .get("detections")
        .and_then(Value::as_array)
        .ok_or("no detections list")?;
    list.iter()
        .map(|d| {
            let confidence = d
                .get(1)
                .and_then(Value::as_f64)
                .filter(|c| c.is_finite() && *c >= 0.0)
                .ok_or("a detection without a confidence")?;
            let b = d.get(2).and_then(Value::as_array);
            let mut bbox = [0.0; 4];
            for (i, slot) in bbox.iter_mut().enumerate() {
                *slot = b
                    .and_then(|b| b.get(i))
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
            }
            Ok(Detection { confidence, bbox })
        })
        .collect()
}

#[async_trait::async_trait]
impl FrameJudge for MlClient {
    async fn detect(&self, image_url: &str) -> Result<Vec<Detection>, String> {
        let mut req = self
            .http
            .get(format!("{}/p/", self.url))
            .query(&[("img", image_url)]);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| format!("ML service: {e}"))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| format!("ML service answered {status} with no JSON: {e}"))?;
        if !status.is_success() {
            let why = body.get("message").and_then(Value::as_str).unwrap_or("");
            return Err(format!("ML service answered {status} {why}"));
        }
        parse_detections(&body)
    }
}

/// Most printers remembered as recently judged on this instance; past it,
/// the ones whose minimum interval is over are forgotten.
const RECENT_CAP: usize = 100_000;

/// When this instance last queued a frame of each printer, to skip frames
/// under the minimum interval without a read (the stored state is checked
/// again before the ML call: another instance may have judged one since).
#[derive(Debug, Default)]
struct Recent {
    at: HashMap<i32, Instant>,
}

impl Recent {
    fn too_soon(&self, printer_id: i32, interval: Duration, now: Instant) -> bool {
        self.at
            .get(&printer_id)
            .is_some_and(|t| now.duration_since(*t) < interval)
    }

    /// Remembers a queued frame; the map never holds more than
    /// [`RECENT_CAP`] printers whose interval is still running.
    fn queued(&mut self, printer_id: i32, interval: Duration, now: Instant) {
        if interval.is_zero() {
            return;
        }
        if self.at.len() >= RECENT_CAP {
            self.at.retain(|_, t| now.duration_since(*t) < interval);
            if self.at.len() >= RECENT_CAP {
                // Every one still running: forgetting some only costs a read.
                self.at.clear();
            }
        }
        self.at.insert(printer_id, now);
    }
}

/// The queue snapshot uploads offer their printers to.
pub struct Detector {
    tx: mpsc::Sender<Frame>,
    /// Printers with a frame queued or being judged: one at a time each.
    pending: Arc<Mutex<HashSet<i32>>>,
    recent: Mutex<Recent>,
    service: Service,
    settings: DetectionSettings,
}

impl Detector {
    /// Starts the workers.
    pub fn start(
        config: &DetectionConfig,
        service: Service,
        urls: Arc<UrlSigner>,
        judge: Arc<dyn FrameJudge>,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let pending = Arc::new(Mutex::new(HashSet::new()));
        tokio::spawn(work(
            rx,
            pending.clone(),
            Worker {
                service: service.clone(),
                urls,
                judge,
                base: config.image_base.clone(),
                settings: config.settings,
            },
            config.concurrency.max(1),
        ));
        Arc::new(Self {
            tx,
            pending,
            recent: Mutex::new(Recent::default()),
            service,
            settings: config.settings,
        })
    }

    /// Offers a printer's new snapshot for judging. Whether it is to be
    /// judged (§2) is decided now, as the upload saw the printer (most
    /// skips from memory, else two reads at once); the ML call is queued
    /// and never waited for.
    pub async fn offer(&self, printer: entity::printer::Model, viewing_boost: bool) {
        let d = &metrics().detection;
        let printer_id = printer.id;
        let interval = self.settings.min_interval;
        if self
            .pending
            .lock()
            .map_or(true, |p| p.contains(&printer_id))
        {
            return d.skipped("already_queued");
        }
        if self
            .recent
            .lock()
            .map_or(true, |r| r.too_soon(printer_id, interval, Instant::now()))
        {
            return d.skipped(Skip::TooSoon.as_str());
        }
        let frame = match self.service.frame_to_judge(printer, viewing_boost).await {
            Ok(Ok(f)) => f,
            Ok(Err(skip)) => return d.skipped(skip.as_str()),
            Err(e) => return e.log(),
        };
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        if !pending.insert(printer_id) {
            return d.skipped("already_queued");
        }
        if self.tx.try_send(frame).is_err() {
            pending.remove(&printer_id);
            return d.skipped("queue_full");
        }
        drop(pending);
        if let Ok(mut r) = self.recent.lock() {
            r.queued(printer_id, interval, Instant::now());
        }
    }
}

#[derive(Clone)]
struct Worker {
    service: Service,
    urls: Arc<UrlSigner>,
    judge: Arc<dyn FrameJudge>,
    base: String,
    settings: DetectionSettings,
}

async fn work(
    mut rx: mpsc::Receiver<Frame>,
    pending: Arc<Mutex<HashSet<i32>>>,
    worker: Worker,
    concurrency: usize,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    while let Some(frame) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let worker = worker.clone();
        let pending = pending.clone();
        tokio::spawn(async move {
            let printer_id = frame.printer.id;
            worker.judge_one(frame).await;
            if let Ok(mut p) = pending.lock() {
                p.remove(&printer_id);
            }
            drop(slot);
        });
    }
}

impl Worker {
    async fn judge_one(&self, frame: Frame) {
        let d = &metrics().detection;
        let printer_id = frame.printer.id;
        let ticket = match self.service.ticket(frame, self.settings).await {
            Ok(Ok(t)) => t,
            Ok(Err(skip)) => return d.skipped(skip.as_str()),
            Err(e) => return e.log(),
        };
        let url = self.urls.sign_on(
            &self.base,
            printer_id,
            ticket.frame.taken_at,
            chrono::Utc::now(),
        );
        let started = Instant::now();
        let detections = self.judge.detect(&url).await;
        let seconds = started.elapsed().as_secs_f64();
        let detections = match detections {
            Ok(d) => {
                metrics().detection.ml_call(seconds, None);
                d
            }
            Err(why) => {
                if let Ok(true) = self.service.snapshot_replaced(&ticket.frame).await {
                    // The agent uploads faster than frames are judged.
                    metrics().detection.ml_call(seconds, None);
                    return d.skipped(Skip::Replaced.as_str());
                }
                tracing::warn!(printer_id, error = %crate::metrics::truncated(&why), "ML service call failed; frame not judged");
                return metrics().detection.ml_call(seconds, Some(why));
            }
        };
        match self
            .service
            .apply_judgement(ticket, &detections, self.settings)
            .await
        {
            Ok(Ok(_)) => {
                d.judged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(Err(skip)) => d.skipped(skip.as_str()),
            Err(e) => e.log(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recent_frames_are_remembered_within_a_bound() {
        let interval = Duration::from_secs(10);
        let t0 = Instant::now();
        let mut r = Recent::default();
        r.queued(1, interval, t0);
        assert!(r.too_soon(1, interval, t0 + Duration::from_secs(9)));
        assert!(!r.too_soon(1, interval, t0 + Duration::from_secs(10)));
        assert!(!r.too_soon(2, interval, t0));
        // No interval: nothing to remember.
        r.queued(3, Duration::ZERO, t0);
        assert!(!r.at.contains_key(&3));
        // Full: the printers whose interval ran out are forgotten first.
        for id in 0..RECENT_CAP as i32 {
            r.queued(id, interval, t0);
        }
        assert_eq!(r.at.len(), RECENT_CAP);
        let later = t0 + Duration::from_secs(11);
        r.queued(-1, interval, later);
        assert_eq!(r.at.len(), 1);
        assert!(r.too_soon(-1, interval, later));
        // Full of running intervals: still bounded.
        for id in 0..RECENT_CAP as i32 {
            r.queued(id, interval, later);
        }
        assert!(r.at.len() <= RECENT_CAP);
    }

    #[test]
    fn the_ml_answer_is_read_as_obico_writes_it() {
        let body = json!({"detections": [["failure", 0.62, [120.0, 80.5, 30.0, 20.0]], ["failure", 0.1, [1, 2, 3, 4]]]});
        let d = parse_detections(&body).unwrap_or_default();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].confidence, 0.62);
        assert_eq!(d[0].bbox, [120.0, 80.5, 30.0, 20.0]);
        assert!(parse_detections(&json!({"detections": []})).is_ok_and(|d| d.is_empty()));
        for garbage in [
            json!({}),
            json!({"detections": "x"}),
            json!({"detections": [["failure", "high"]]}),
        ] {
            assert!(parse_detections(&garbage).is_err(), "{garbage}");
        }
    }
}
