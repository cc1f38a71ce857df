//! Agent frames: what arrives on the websocket, parsed and type-checked
//! before anything is stored. A frame that fails a check is dropped whole.

use serde_json::{Map, Value};

use crate::service::StatusReport;

/// Largest text frame accepted; larger ones are dropped (and logged).
pub const MAX_FRAME_BYTES: usize = 512 * 1024;

/// What a frame asks for.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A reply to (or push about) a passthru request: logged, nothing stored.
    Passthru,
    /// Video and tunnel traffic: ignored.
    Tunnel,
    /// A status message (boxed: it is much larger than the others).
    Status(Box<StatusReport>),
}

/// Parses a text frame; the error says why it was dropped.
pub fn parse(text: &str) -> Result<Frame, String> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(format!("frame of {} bytes is over the cap", text.len()));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("not a JSON object".into());
    };
    if obj.contains_key("passthru") {
        return Ok(Frame::Passthru);
    }
    if ["janus", "http.tunnelv2", "ws.tunnel"]
        .iter()
        .any(|k| obj.contains_key(*k))
    {
        return Ok(Frame::Tunnel);
    }
    // Agents never send predictions (detection.md): the server computes
    // the score from snapshots. Such a frame is dropped, not read as a
    // status without `status` (which would clear the printer's status).
    if obj.contains_key("prediction") {
        return Err("prediction frames are not part of the protocol".into());
    }
    status(&obj).map(|r| Frame::Status(Box::new(r)))
}

fn object(obj: &Map<String, Value>, key: &str) -> Result<Option<Value>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(_) => Err(format!("{key} is not an object")),
    }
}

fn status(obj: &Map<String, Value>) -> Result<StatusReport, String> {
    let settings = object(obj, "settings")?;
    let status = object(obj, "status")?;
    if let Some(ts) = status.as_ref().and_then(|s| s.get("_ts"))
        && !ts.is_number()
        && !ts.is_null()
    {
        return Err("status._ts is not a number".into());
    }
    let current_print_ts = match obj.get("current_print_ts") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            let ts = n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .ok_or("current_print_ts is not an integer")?;
            (ts != 0).then_some(ts)
        }
        Some(_) => return Err("current_print_ts is not a number".into()),
    };
    let (event_type, event_file) = match object(obj, "event")? {
        None => (None, None),
        Some(e) => {
            let ty = match e.get("event_type") {
                Some(Value::String(s)) => Some(s.clone()),
                None | Some(Value::Null) => None,
                Some(_) => return Err("event.event_type is not a string".into()),
            };
            let file = e
                .pointer("/data/name")
                .and_then(Value::as_str)
                .map(str::to_owned);
            (ty, file)
        }
    };
    Ok(StatusReport {
        settings,
        status,
        current_print_ts,
        event_type,
        event_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_sorted_by_what_they_carry() {
        assert_eq!(
            parse(r#"{"passthru": {"ref": "1", "ret": 2}}"#),
            Ok(Frame::Passthru)
        );
        assert_eq!(parse(r#"{"janus": "x"}"#), Ok(Frame::Tunnel));
        let Ok(Frame::Status(r)) = parse(
            r#"{"current_print_ts": 1700000000, "event": {"event_type": "PrintStarted", "data": {"name": "a.gcode"}}, "status": {"_ts": 1}}"#,
        ) else {
            panic!("a status message");
        };
        assert_eq!(r.current_print_ts, Some(1_700_000_000));
        assert_eq!(r.event_type.as_deref(), Some("PrintStarted"));
        assert_eq!(r.event_file.as_deref(), Some("a.gcode"));
    }

    #[test]
    fn bad_frames_are_refused_whole() {
        for bad in [
            "not json",
            "[1]",
            r#"{"status": "printing"}"#,
            r#"{"current_print_ts": "soon", "status": {}}"#,
            r#"{"status": {"_ts": "late"}}"#,
            r#"{"event": {"event_type": 5}, "status": {}}"#,
            r#"{"prediction": {"normalized_p": "high"}}"#,
            r#"{"prediction": {"normalized_p": 0.25}}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse(&format!("{{\"x\": \"{}\"}}", "a".repeat(MAX_FRAME_BYTES))).is_err());
    }

    #[test]
    fn zero_and_null_print_timestamps_carry_no_information() {
        for text in [
            r#"{"current_print_ts": 0}"#,
            r#"{"current_print_ts": null}"#,
            "{}",
        ] {
            let Ok(Frame::Status(r)) = parse(text) else {
                panic!("{text}");
            };
            assert_eq!(r.current_print_ts, None, "{text}");
        }
    }
}
