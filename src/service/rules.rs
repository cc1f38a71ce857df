//! The printer domain's rules, each in one place: defaults, what a valid
//! value is, what is derived (not_watching_reason, should_watch, the visible
//! status, the settings object). Pure functions over entity models.

use chrono::{DateTime, Utc};
use entity::{print, printer, user};
use serde_json::{Map, Value, json};

use crate::error::AppError;

/// A status older than this (or from an agent that is gone) is not shown.
pub const STATUS_TTL_SECS: i64 = 120;
/// Longest printer name, in characters.
pub const NAME_MAX_CHARS: usize = 256;
/// Length of a generated agent token, in hex characters.
pub const AUTH_TOKEN_HEX_CHARS: usize = 32;

/// Defaults of a new printer.
pub mod defaults {
    pub const WATCHING_ENABLED: bool = true;
    pub const TOOLS_OFF_ON_PAUSE: bool = true;
    pub const BED_OFF_ON_PAUSE: bool = false;
    pub const RETRACT_ON_PAUSE: f64 = 6.5;
    pub const LIFT_Z_ON_PAUSE: f64 = 2.5;
    pub const DETECTIVE_SENSITIVITY: f64 = 1.0;
    pub const MIN_TIMELAPSE_SECS_ON_FINISH: i32 = 600;
    pub const MIN_TIMELAPSE_SECS_ON_CANCEL: i32 = 300;
}

/// What the printer does when a failure is detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionOnFailure {
    Pause,
    None,
}

impl ActionOnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "PAUSE",
            Self::None => "NONE",
        }
    }

    /// Reads the stored value; anything unknown is the default.
    pub fn from_stored(s: &str) -> Self {
        if s == "NONE" { Self::None } else { Self::Pause }
    }
}

/// The user's verdict on a failure alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertOverwrite {
    Failed,
    NotFailed,
}

impl AlertOverwrite {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "FAILED",
            Self::NotFailed => "NOT_FAILED",
        }
    }

    pub fn from_stored(s: &str) -> Option<Self> {
        match s {
            "FAILED" => Some(Self::Failed),
            "NOT_FAILED" => Some(Self::NotFailed),
            _ => None,
        }
    }
}

/// A printer name: trimmed, 1 to 256 characters.
pub fn valid_name(name: &str) -> Result<String, AppError> {
    valid_text("name", name, NAME_MAX_CHARS)
}

/// Text a user names something with (a printer, an API key, a webhook's
/// description): trimmed, not blank, no control characters, at most
/// `max_chars` characters.
pub fn valid_text(field: &'static str, text: &str, max_chars: usize) -> Result<String, AppError> {
    let text = text.trim();
    if has_control_chars(text) {
        return Err(AppError::invalid(
            field,
            "This field may not contain control characters.",
        ));
    }
    if text.is_empty() {
        return Err(AppError::invalid(field, "This field may not be blank."));
    }
    if text.chars().count() > max_chars {
        return Err(AppError::invalid(
            field,
            format!("Ensure this field has no more than {max_chars} characters."),
        ));
    }
    Ok(text.to_owned())
}

/// Whether text holds control characters (U+0000 among them, which
/// PostgreSQL cannot store): refused where a user sent it.
pub fn has_control_chars(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// Agent text as stored: NUL characters (which PostgreSQL cannot store)
/// removed, and cut to `max_chars` characters. Agent data is cleaned, not
/// refused: a report with one bad field keeps the rest.
pub fn clean_agent_text(text: &str, max_chars: usize) -> String {
    text.chars()
        .filter(|c| *c != '\0')
        .take(max_chars)
        .collect()
}

/// An agent's JSON with NUL characters removed from every string (keys
/// included), so one bad value does not lose the whole report.
pub fn clean_agent_json(value: Value) -> Value {
    match value {
        Value::String(s) if s.contains('\0') => Value::String(s.replace('\0', "")),
        Value::Array(a) => Value::Array(a.into_iter().map(clean_agent_json).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (k.replace('\0', ""), clean_agent_json(v)))
                .collect(),
        ),
        other => other,
    }
}

/// A print's start time as an agent reports it (unix seconds): a value
/// outside 2000..2100 is absurd and treated as absent.
pub fn plausible_print_ts(ts: i64) -> bool {
    ts == -1 || (946_684_800..4_102_444_800).contains(&ts)
}

/// A finite number within `min..=max`.
pub fn valid_range(field: &'static str, value: f64, min: f64, max: f64) -> Result<f64, AppError> {
    if !value.is_finite() {
        return Err(AppError::invalid(field, "A valid number is required."));
    }
    if value < min || value > max {
        return Err(AppError::invalid(
            field,
            format!("Ensure this value is between {min:?} and {max:?}."),
        ));
    }
    Ok(value)
}

/// Retract and lift distances: 0 to 100 mm.
pub fn valid_mm(field: &'static str, value: f64) -> Result<f64, AppError> {
    valid_range(field, value, 0.0, 100.0)
}

/// Detection sensitivity: 0.8 to 1.2 (Obico documents it, printgate checks it).
pub fn valid_sensitivity(value: f64) -> Result<f64, AppError> {
    valid_range("detective_sensitivity", value, 0.8, 1.2)
}

/// A timelapse threshold: -1 (no timelapse) or a number of seconds >= 0.
pub fn valid_timelapse_secs(field: &'static str, value: i32) -> Result<i32, AppError> {
    if value < -1 {
        return Err(AppError::invalid(
            field,
            "Ensure this value is -1 (no timelapse) or greater than or equal to 0.",
        ));
    }
    Ok(value)
}

/// A fresh agent token: random hex, long enough to be unguessable.
pub fn new_auth_token() -> String {
    hex::encode(rand::random::<[u8; AUTH_TOKEN_HEX_CHARS / 2]>())
}

/// The status clients see: the stored one while fresh, else none (offline).
pub fn visible_status(p: &printer::Model, now: DateTime<Utc>) -> Option<&Value> {
    // Online means an agent is connected now (to some live instance): a
    // status left behind by a crashed instance is not shown.
    p.agent_instance.as_ref()?;
    let at = p.status_at?;
    let status = p.status.as_ref()?;
    ((now - at).num_seconds() <= STATUS_TTL_SECS && !status.is_null()).then_some(status)
}

/// What a printer is doing, typed: `status.state` as the agent words it
/// (its flags first, then its text), or `Offline` when no status is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrinterState {
    /// No status is shown: no agent connected, or nothing heard for 120 s.
    Offline,
    /// The agent is connected but its printer is not (closed, no error).
    Disconnected,
    /// Connected and idle.
    Operational,
    Printing,
    Pausing,
    Paused,
    Resuming,
    Cancelling,
    /// The print's end (the agent's "Finishing").
    Finishing,
    /// The printer reports an error.
    Error,
    /// A status whose state says none of the above.
    Unknown,
}

impl PrinterState {
    pub const ALL: [Self; 11] = [
        Self::Offline,
        Self::Disconnected,
        Self::Operational,
        Self::Printing,
        Self::Pausing,
        Self::Paused,
        Self::Resuming,
        Self::Cancelling,
        Self::Finishing,
        Self::Error,
        Self::Unknown,
    ];

    /// The stored name (`printers.state`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "OFFLINE",
            Self::Disconnected => "DISCONNECTED",
            Self::Operational => "OPERATIONAL",
            Self::Printing => "PRINTING",
            Self::Pausing => "PAUSING",
            Self::Paused => "PAUSED",
            Self::Resuming => "RESUMING",
            Self::Cancelling => "CANCELLING",
            Self::Finishing => "FINISHING",
            Self::Error => "ERROR",
            Self::Unknown => "UNKNOWN",
        }
    }

    pub fn from_stored(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .unwrap_or(Self::Unknown)
    }

    /// Whether a print is under way (printing, or on its way in or out of
    /// a pause or its end).
    pub fn is_busy(self) -> bool {
        matches!(
            self,
            Self::Printing
                | Self::Pausing
                | Self::Paused
                | Self::Resuming
                | Self::Cancelling
                | Self::Finishing
        )
    }
}

/// The state a status reports. The flags decide (OctoPrint's and
/// Moonraker's agents send the same ones), the most specific first; an
/// agent that sends no flags is read by its text.
pub fn reported_state(status: &Value) -> PrinterState {
    let state = status.get("state");
    let flag = |k: &str| {
        state
            .and_then(|s| s.pointer(&format!("/flags/{k}")))
            .and_then(Value::as_bool)
    };
    // Most specific first: each state's flag, and the texts that say it.
    let order: [(&str, &[&str], PrinterState); 10] = [
        ("error", &["error"], PrinterState::Error),
        ("cancelling", &["cancelling"], PrinterState::Cancelling),
        ("pausing", &["pausing"], PrinterState::Pausing),
        ("resuming", &["resuming"], PrinterState::Resuming),
        ("paused", &["paused"], PrinterState::Paused),
        ("finishing", &["finishing"], PrinterState::Finishing),
        ("printing", &["printing"], PrinterState::Printing),
        (
            "closedOrError",
            &["offline", "closed"],
            PrinterState::Disconnected,
        ),
        (
            "operational",
            &["operational", "ready"],
            PrinterState::Operational,
        ),
        ("ready", &[], PrinterState::Operational),
    ];
    if let Some((_, _, s)) = order.iter().find(|(k, _, _)| flag(k) == Some(true)) {
        return *s;
    }
    let text = state
        .and_then(|s| s.get("text"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    order
        .iter()
        .find(|(_, texts, _)| texts.iter().any(|t| text.starts_with(t)))
        .map_or(PrinterState::Unknown, |(_, _, s)| *s)
}

/// When the print a status describes should end: `at` (when it arrived)
/// plus the agent's `progress.printTimeLeft`, while a print is under way.
pub fn reported_finish(status: &Value, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if !reported_state(status).is_busy() {
        return None;
    }
    let left = status.pointer("/progress/printTimeLeft")?.as_f64()?;
    // Seconds, at most a year (an agent's nonsense is not a date).
    (left.is_finite() && (0.0..=31_536_000.0).contains(&left))
        .then(|| at + chrono::Duration::milliseconds((left * 1000.0) as i64))
}

/// The columns written with a status: `(state, finishes_at)`.
pub fn status_columns(
    status: Option<&Value>,
    at: DateTime<Utc>,
) -> (Option<&'static str>, Option<DateTime<Utc>>) {
    match status.filter(|s| !s.is_null()) {
        Some(s) => (Some(reported_state(s).as_str()), reported_finish(s, at)),
        None => (None, None),
    }
}

/// The printer's state as clients see it: the stored state while its
/// status is shown, else `Offline`. [`printer_state_expr`] is the same
/// rule in SQL.
pub fn printer_state(p: &printer::Model, now: DateTime<Utc>) -> PrinterState {
    match visible_status(p, now) {
        Some(_) => p
            .state
            .as_deref()
            .map_or(PrinterState::Unknown, PrinterState::from_stored),
        None => PrinterState::Offline,
    }
}

/// [`printer_state`] as a SQL expression on `printers` (its stored name).
pub fn printer_state_expr(now: DateTime<Utc>) -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::{Expr, ExprTrait};
    // `visible_status` keeps whole seconds up to the TTL: under TTL + 1.
    let cutoff = now - chrono::Duration::seconds(STATUS_TTL_SECS + 1);
    let col = |c: printer::Column| Expr::col((printer::Entity, c));
    let shown = col(printer::Column::AgentInstance)
        .is_not_null()
        .and(col(printer::Column::Status).is_not_null())
        .and(col(printer::Column::StatusAt).gt(cutoff));
    sea_orm::sea_query::CaseStatement::new()
        .case(
            shown,
            col(printer::Column::State).if_null(PrinterState::Unknown.as_str()),
        )
        .finally(Expr::val(PrinterState::Offline.as_str()))
        .into()
}

/// Whether a print's failure alert stands unanswered: alerted, and not
/// acknowledged since. [`alert_unanswered_condition`] is the SQL twin.
pub fn alert_unanswered(p: &print::Model) -> bool {
    p.alerted_at.is_some()
        && p.alert_acknowledged_at
            .is_none_or(|ack| p.alerted_at.is_some_and(|a| a > ack))
}

/// [`alert_unanswered`] as a SQL condition on `prints`.
pub fn alert_unanswered_condition() -> sea_orm::Condition {
    use sea_orm::sea_query::{Expr, ExprTrait};
    use sea_orm::{ColumnTrait, Condition};
    Condition::all()
        .add(print::Column::AlertedAt.is_not_null())
        .add(
            Condition::any()
                .add(print::Column::AlertAcknowledgedAt.is_null())
                .add(
                    Expr::col(print::Column::AlertedAt)
                        .gt(Expr::col(print::Column::AlertAcknowledgedAt)),
                ),
        )
}

/// A snapshot older than this is not shown.
pub const PIC_TTL_SECS: i64 = 30 * 60;

/// When the snapshot clients see was taken; none when there is none or it
/// is older than 30 minutes.
pub fn visible_pic_at(p: &printer::Model, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    p.pic_at
        .filter(|at| (now - *at).num_seconds() <= PIC_TTL_SECS)
}

/// Whether a status says the printer is actively printing (paused is not).
pub fn is_printing(status: Option<&Value>) -> bool {
    status
        .and_then(|s| s.pointer("/state/flags/printing"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Why failure detection is not watching this printer; the first rule that
/// holds wins, and the strings are the ones Obico's clients know.
pub fn not_watching_reason(
    p: &printer::Model,
    owner: &user::Model,
    current_print: Option<&print::Model>,
    now: DateTime<Utc>,
) -> Option<&'static str> {
    if !p.watching_enabled {
        return Some("AI failure detection is disabled");
    }
    if owner.dh_balance < 0.0 {
        return Some("You have run out of AI Detection Hours");
    }
    if !is_printing(visible_status(p, now)) {
        return Some("Printer is not actively printing");
    }
    if current_print.is_some_and(|c| c.alert_muted_at.is_some()) {
        return Some("Alerts are muted for current print");
    }
    None
}

/// Whether the agent should watch for failures: sent in `remote_status`.
pub fn should_watch(
    p: &printer::Model,
    owner: &user::Model,
    current_print: Option<&print::Model>,
) -> bool {
    p.watching_enabled
        && owner.dh_balance >= 0.0
        && current_print.is_some_and(|c| c.alert_muted_at.is_none())
}

/// The `pause` command's arguments: exactly these four keys, or the
/// OctoPrint agent drops the whole frame.
pub fn pause_args(p: &printer::Model) -> Value {
    json!({
        "retract": p.retract_on_pause,
        "lift_z": p.lift_z_on_pause,
        "tools_off": p.tools_off_on_pause,
        "bed_off": p.bed_off_on_pause,
    })
}

/// Where a print is in its lifecycle. (A pause is the printer's state,
/// `PrinterStatus`, not the print's: a paused print is still PRINTING.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrintState {
    /// Started and not ended.
    Printing,
    /// Ended normally.
    Finished,
    /// Ended by a cancel.
    Cancelled,
    /// The agent reported it failed, or it was cancelled under a failure
    /// alert the user did not mark false.
    Failed,
}

impl PrintState {
    pub const ALL: [Self; 4] = [
        Self::Printing,
        Self::Finished,
        Self::Cancelled,
        Self::Failed,
    ];
}

/// A print's state (the rule; [`print_state_condition`] is the same rule
/// in SQL, for filters).
pub fn print_state(p: &print::Model) -> PrintState {
    let alert_stands = p.alerted_at.is_some()
        && p.alert_overwrite.as_deref() != Some(AlertOverwrite::NotFailed.as_str());
    match (p.cancelled_at, p.finished_at) {
        (Some(_), _) if p.failed_at.is_some() || alert_stands => PrintState::Failed,
        (Some(_), _) => PrintState::Cancelled,
        (None, Some(_)) => PrintState::Finished,
        (None, None) => PrintState::Printing,
    }
}

/// [`print_state`] as a SQL condition on `prints`.
pub fn print_state_condition(state: PrintState) -> sea_orm::Condition {
    use sea_orm::{ColumnTrait, Condition};
    let alert_stands = Condition::all()
        .add(print::Column::AlertedAt.is_not_null())
        .add(
            Condition::any()
                .add(print::Column::AlertOverwrite.is_null())
                .add(print::Column::AlertOverwrite.ne(AlertOverwrite::NotFailed.as_str())),
        );
    let failed = Condition::all()
        .add(print::Column::CancelledAt.is_not_null())
        .add(
            Condition::any()
                .add(print::Column::FailedAt.is_not_null())
                .add(alert_stands),
        );
    match state {
        PrintState::Failed => failed,
        PrintState::Cancelled => Condition::all()
            .add(print::Column::CancelledAt.is_not_null())
            .add(failed.not()),
        PrintState::Finished => Condition::all()
            .add(print::Column::CancelledAt.is_null())
            .add(print::Column::FinishedAt.is_not_null()),
        PrintState::Printing => Condition::all()
            .add(print::Column::CancelledAt.is_null())
            .add(print::Column::FinishedAt.is_null()),
    }
}

/// A print's end: cancelled_at, else finished_at.
pub fn ended_at(p: &print::Model) -> Option<DateTime<Utc>> {
    p.cancelled_at.or(p.finished_at)
}

/// The printer's `settings` object: webcam keys derived from the agent's
/// primary camera (else the first), plus agent name/version and temperature
/// profiles; always an object, with defaults when the agent sent nothing.
pub fn derived_settings(p: &printer::Model) -> Map<String, Value> {
    let agent = p.agent_settings.as_ref();
    let webcams = agent
        .and_then(|s| s.get("webcams"))
        .and_then(Value::as_array);
    let cam = webcams.and_then(|cams| {
        cams.iter()
            .find(|c| c.get("is_primary_camera").and_then(Value::as_bool) == Some(true))
            .or_else(|| cams.first())
    });
    let flag = |key: &str| {
        cam.and_then(|c| c.get(key))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let rotation = cam
        .and_then(|c| c.get("rotation"))
        .and_then(Value::as_i64)
        .filter(|r| matches!(r, 0 | 90 | 180 | 270))
        .unwrap_or(0);
    let ratio = match cam
        .and_then(|c| c.get("streamRatio"))
        .and_then(Value::as_str)
    {
        Some("4:3") => "4:3",
        _ => "16:9",
    };
    let mut out = Map::new();
    out.insert("webcam_flipV".into(), Value::Bool(flag("flipV")));
    out.insert("webcam_flipH".into(), Value::Bool(flag("flipH")));
    out.insert("webcam_rotate90".into(), Value::Bool(rotation == 270));
    out.insert("webcam_rotation".into(), Value::from(rotation));
    out.insert("webcam_streamRatio".into(), Value::from(ratio));
    out.insert("ratio169".into(), Value::Bool(ratio == "16:9"));
    if let Some(agent) = agent {
        if let Some(name) = &p.agent_name {
            out.insert("agent_name".into(), Value::from(name.as_str()));
        }
        if let Some(version) = &p.agent_version {
            out.insert("agent_version".into(), Value::from(version.as_str()));
        }
        if let Some(profiles) = agent.pointer("/temperature/profiles") {
            out.insert("temp_profiles".into(), profiles.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn printer() -> printer::Model {
        printer::Model {
            id: 1,
            user_id: 1,
            name: "p".into(),
            created_at: Utc::now(),
            action_on_failure: "PAUSE".into(),
            watching_enabled: true,
            tools_off_on_pause: true,
            bed_off_on_pause: false,
            retract_on_pause: 6.5,
            lift_z_on_pause: 2.5,
            detective_sensitivity: 1.0,
            min_timelapse_secs_on_finish: 600,
            min_timelapse_secs_on_cancel: 300,
            auth_token: "t".into(),
            archived_at: None,
            deleted_at: None,
            agent_name: None,
            agent_version: None,
            status: None,
            status_ts: None,
            status_at: None,
            agent_settings: None,
            current_print_id: None,
            normalized_p: 0.0,
            pic_at: None,
            agent_instance: None,
            online_announced: false,
            state: None,
            finishes_at: None,
            last_seen_at: None,
            revision: 0,
        }
    }

    fn owner(balance: f64) -> user::Model {
        user::Model {
            id: 1,
            sub: "u".into(),
            email: None,
            dh_balance: balance,
            created_at: Utc::now(),
            data_version: 0,
        }
    }

    #[test]
    fn the_first_not_watching_rule_that_holds_wins() {
        let now = Utc::now();
        let mut p = printer();
        p.watching_enabled = false;
        assert_eq!(
            not_watching_reason(&p, &owner(-1.0), None, now),
            Some("AI failure detection is disabled")
        );
        p.watching_enabled = true;
        assert_eq!(
            not_watching_reason(&p, &owner(-1.0), None, now),
            Some("You have run out of AI Detection Hours")
        );
        assert_eq!(
            not_watching_reason(&p, &owner(0.0), None, now),
            Some("Printer is not actively printing")
        );
        p.status = Some(json!({"state": {"flags": {"printing": true}}}));
        p.status_at = Some(now);
        p.agent_instance = Some("me".into());
        assert_eq!(not_watching_reason(&p, &owner(0.0), None, now), None);
        p.status_at = Some(now - Duration::seconds(STATUS_TTL_SECS + 1));
        assert_eq!(
            not_watching_reason(&p, &owner(0.0), None, now),
            Some("Printer is not actively printing")
        );
    }

    #[test]
    fn a_status_reports_the_most_specific_state_its_flags_say() {
        let of = |flags: Value, text: &str| {
            reported_state(&json!({"state": {"text": text, "flags": flags}}))
        };
        let octoprint_paused =
            json!({"operational": true, "paused": true, "printing": false, "ready": false});
        assert_eq!(of(octoprint_paused, "Paused"), PrinterState::Paused);
        assert_eq!(
            of(
                json!({"operational": true, "printing": true, "pausing": true}),
                "Pausing"
            ),
            PrinterState::Pausing
        );
        assert_eq!(
            of(json!({"printing": true, "cancelling": true}), "Cancelling"),
            PrinterState::Cancelling
        );
        assert_eq!(
            of(json!({"error": true, "closedOrError": true}), "Error"),
            PrinterState::Error
        );
        assert_eq!(
            of(json!({"closedOrError": true}), "Offline"),
            PrinterState::Disconnected
        );
        assert_eq!(
            of(json!({"operational": true, "ready": true}), "Operational"),
            PrinterState::Operational
        );
        // No flags: the text decides.
        assert_eq!(of(json!({}), "Printing from SD"), PrinterState::Printing);
        assert_eq!(of(json!({}), "Warming up"), PrinterState::Unknown);
        assert_eq!(reported_state(&json!({})), PrinterState::Unknown);
        for s in PrinterState::ALL {
            assert_eq!(PrinterState::from_stored(s.as_str()), s);
        }
    }

    #[test]
    fn a_print_under_way_finishes_when_the_agent_estimates() {
        let at = Utc::now();
        let printing =
            json!({"state": {"flags": {"printing": true}}, "progress": {"printTimeLeft": 90.0}});
        assert_eq!(
            reported_finish(&printing, at),
            Some(at + Duration::seconds(90))
        );
        let idle =
            json!({"state": {"flags": {"operational": true}}, "progress": {"printTimeLeft": 90.0}});
        assert_eq!(reported_finish(&idle, at), None);
        let nonsense =
            json!({"state": {"flags": {"printing": true}}, "progress": {"printTimeLeft": -5}});
        assert_eq!(reported_finish(&nonsense, at), None);
        assert_eq!(status_columns(Some(&Value::Null), at), (None, None));
    }

    #[test]
    fn settings_default_without_agent_data() {
        let s = Value::Object(derived_settings(&printer()));
        assert_eq!(
            s.to_string(),
            r#"{"webcam_flipV":false,"webcam_flipH":false,"webcam_rotate90":false,"webcam_rotation":0,"webcam_streamRatio":"16:9","ratio169":true}"#
        );
    }

    #[test]
    fn settings_follow_the_primary_camera() {
        let mut p = printer();
        p.agent_settings = Some(json!({"webcams": [
            {"name": "a", "flipH": true, "rotation": 90},
            {"name": "b", "is_primary_camera": true, "flipV": true, "rotation": 270, "streamRatio": "4:3"}
        ]}));
        let s = derived_settings(&p);
        assert_eq!(s["webcam_flipV"], json!(true));
        assert_eq!(s["webcam_flipH"], json!(false));
        assert_eq!(s["webcam_rotate90"], json!(true));
        assert_eq!(s["ratio169"], json!(false));
    }

    #[test]
    fn ranges_refuse_non_finite_and_out_of_range_values() {
        assert!(valid_mm("lift_z_on_pause", 100.0).is_ok());
        assert!(valid_mm("lift_z_on_pause", 100.5).is_err());
        assert!(valid_mm("lift_z_on_pause", f64::NAN).is_err());
        assert!(valid_sensitivity(0.79).is_err());
        assert!(valid_timelapse_secs("x", -1).is_ok());
        assert!(valid_timelapse_secs("x", -2).is_err());
        assert!(valid_name("  ").is_err());
        assert_eq!(valid_name(" a ").ok().as_deref(), Some("a"));
        assert!(valid_name(&"x".repeat(257)).is_err());
        assert!(valid_name(&"é".repeat(256)).is_ok());
    }
}
