//! The failure-detection math, exactly as Obico computes it
//! (`../shared/spec/detection.md` §3): per printer, the ML service's
//! detections for each judged frame move an exponentially weighted mean
//! and two rolling means; from them come the display score
//! (`normalized_p`) and whether the print is failing (alert, or pause).
//! Pure functions over a plain state, so the numbers are testable against
//! the spec's vectors; storing the state is the service's business.

/// EWM span 12: alpha = 2 / (12 + 1).
pub const EWM_ALPHA: f64 = 2.0 / 13.0;
/// Window of the short rolling mean, in frames (this print).
pub const ROLLING_WIN_SHORT: u64 = 310;
/// Window of the long rolling mean, in frames (the printer's life).
pub const ROLLING_WIN_LONG: u64 = 7200;
pub const THRESHOLD_LOW: f64 = 0.38;
pub const THRESHOLD_HIGH: f64 = 0.78;
/// Frames at the start of a print that never count as failing.
pub const INIT_SAFE_FRAMES: u64 = 30;
pub const ROLLING_MEAN_SHORT_MULTIPLE: f64 = 3.8;
pub const ESCALATING_FACTOR: f64 = 1.75;

/// A printer's prediction state.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct State {
    /// Frames judged in this print.
    pub current_frame_num: u64,
    /// Frames judged in the printer's life.
    pub lifetime_frame_num: u64,
    pub current_p: f64,
    pub ewm_mean: f64,
    pub rolling_mean_short: f64,
    pub rolling_mean_long: f64,
    pub normalized_p: f64,
}

/// What one frame decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Fine,
    Alert,
    Pause,
}

/// One detection: the confidence is all the math uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub confidence: f64,
    /// Centre x, centre y, width, height, in pixels of the image.
    pub bbox: [f64; 4],
}

/// `D(count, win)`: the window once enough frames were seen, else
/// `count + 1`.
fn divisor(count: u64, win: u64) -> f64 {
    if win <= count {
        win as f64
    } else {
        (count + 1) as f64
    }
}

impl State {
    /// The state at a print's start or end: this print's numbers go to 0,
    /// the printer's lifetime ones stay.
    pub fn reset_for_print(self) -> Self {
        Self {
            current_frame_num: 0,
            current_p: 0.0,
            ewm_mean: 0.0,
            rolling_mean_short: 0.0,
            normalized_p: 0.0,
            ..self
        }
    }

    /// Folds one judged frame in (steps 1 to 6) and says what it decides
    /// (steps 7 and 8). `sensitivity` is the printer's
    /// `detective_sensitivity`; `bending` the optional bending factor.
    pub fn judge(
        mut self,
        detections: &[Detection],
        sensitivity: f64,
        bending: Option<f64>,
    ) -> (Self, Verdict) {
        let factor = bending.unwrap_or(1.0);
        let p: f64 = detections
            .iter()
            .map(|d| d.confidence * factor)
            .filter(|c| c.is_finite())
            .sum();
        // Frame numbers count up before the means move, and the divisor is
        // the new count plus one: the first frame's short mean is p / 2, as
        // Obico's.
        self.current_frame_num += 1;
        self.lifetime_frame_num += 1;
        self.current_p = p;
        self.ewm_mean = p * EWM_ALPHA + self.ewm_mean * (1.0 - EWM_ALPHA);
        self.rolling_mean_short +=
            (p - self.rolling_mean_short) / divisor(self.current_frame_num, ROLLING_WIN_SHORT);
        self.rolling_mean_long +=
            (p - self.rolling_mean_long) / divisor(self.lifetime_frame_num, ROLLING_WIN_LONG);
        self.normalized_p = self.display_score(sensitivity);
        let verdict = if self.is_failing(sensitivity, ESCALATING_FACTOR) {
            Verdict::Pause
        } else if self.is_failing(sensitivity, 1.0) {
            Verdict::Alert
        } else {
            Verdict::Fine
        };
        (self, verdict)
    }

    /// The 0..1 score a gauge shows: 1/3 and 2/3 are the warning and
    /// failing bands.
    fn display_score(&self, sensitivity: f64) -> f64 {
        let tw = ((self.rolling_mean_short - self.rolling_mean_long) * ROLLING_MEAN_SHORT_MULTIPLE)
            .clamp(THRESHOLD_LOW, THRESHOLD_HIGH);
        let tf = ESCALATING_FACTOR * tw;
        let x = (self.ewm_mean - self.rolling_mean_long) * sensitivity;
        let scale = |x: f64, from: (f64, f64), to: (f64, f64)| {
            let t = (x - from.0) / (from.1 - from.0);
            (to.0 + t * (to.1 - to.0)).clamp(to.0, to.1)
        };
        if x > tf {
            scale(x, (tf, 1.5 * tf), (2.0 / 3.0, 1.0))
        } else if x > tw {
            scale(x, (tw, tf), (1.0 / 3.0, 2.0 / 3.0))
        } else {
            scale(x, (0.0, tw), (0.0, 1.0 / 3.0))
        }
    }

    fn is_failing(&self, sensitivity: f64, escalating: f64) -> bool {
        if self.current_frame_num < INIT_SAFE_FRAMES {
            return false;
        }
        let adjusted = (self.ewm_mean - self.rolling_mean_long) * sensitivity / escalating;
        if adjusted < THRESHOLD_LOW {
            return false;
        }
        if adjusted > THRESHOLD_HIGH {
            return true;
        }
        adjusted > (self.rolling_mean_short - self.rolling_mean_long) * ROLLING_MEAN_SHORT_MULTIPLE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(p: f64) -> Vec<Detection> {
        vec![Detection {
            confidence: p,
            bbox: [0.0; 4],
        }]
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn the_spec_vectors_hold() {
        let mut s = State::default();
        let want = [
            (0.5, 0.076_923_1, 0.25, 0.25),
            (0.5, 0.142_011_8, 0.333_333_3, 0.333_333_3),
            (0.0, 0.120_163_9, 0.25, 0.25),
        ];
        for (p, ewm, short, long) in want {
            let (next, verdict) = s.judge(&frame(p), 1.0, None);
            s = next;
            assert!(close(s.ewm_mean, ewm), "ewm {} vs {ewm}", s.ewm_mean);
            assert!(
                close(s.rolling_mean_short, short),
                "short {}",
                s.rolling_mean_short
            );
            assert!(
                close(s.rolling_mean_long, long),
                "long {}",
                s.rolling_mean_long
            );
            assert_eq!(verdict, Verdict::Fine, "never failing within 30 frames");
        }
    }

    #[test]
    fn thirty_quiet_frames_then_a_failing_run_alerts_twice_then_pauses() {
        let mut s = State::default();
        for _ in 0..30 {
            let (next, v) = s.judge(&frame(0.0), 1.0, None);
            assert_eq!(v, Verdict::Fine);
            s = next;
        }
        let mut verdicts = Vec::new();
        for _ in 31..=34 {
            let (next, v) = s.judge(&frame(2.0), 1.0, None);
            s = next;
            verdicts.push(v);
        }
        assert_eq!(
            verdicts,
            [
                Verdict::Fine,
                Verdict::Alert,
                Verdict::Alert,
                Verdict::Pause
            ]
        );
        assert!(s.normalized_p > 2.0 / 3.0, "{}", s.normalized_p);
    }

    #[test]
    fn p_is_the_sum_of_confidences_bent_when_asked() {
        let two = vec![
            Detection {
                confidence: 0.3,
                bbox: [0.0; 4],
            },
            Detection {
                confidence: 0.4,
                bbox: [0.0; 4],
            },
        ];
        let (s, _) = State::default().judge(&two, 1.0, None);
        assert!(close(s.current_p, 0.7));
        let (s, _) = State::default().judge(&two, 1.0, Some(2.0));
        assert!(close(s.current_p, 1.4));
    }

    #[test]
    fn a_print_reset_keeps_the_lifetime_numbers() {
        let (s, _) = State::default().judge(&frame(0.5), 1.0, None);
        let r = s.reset_for_print();
        assert_eq!(r.current_frame_num, 0);
        assert_eq!(r.lifetime_frame_num, 1);
        assert!(close(r.rolling_mean_long, 0.25));
        assert_eq!(r.ewm_mean, 0.0);
        assert_eq!(r.normalized_p, 0.0);
    }

    #[test]
    fn the_display_score_stays_in_its_bands() {
        let mut s = State::default();
        for p in [0.0, 0.1, 5.0, 50.0, 0.0] {
            s = s.judge(&frame(p), 1.0, None).0;
            assert!((0.0..=1.0).contains(&s.normalized_p), "{}", s.normalized_p);
        }
    }
}
