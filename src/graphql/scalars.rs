//! Scalars with the wire format printgate's clients expect.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{SecondsFormat, Timelike, Utc};

/// An RFC 3339 timestamp in UTC with a `Z` suffix, with microseconds only
/// when they are not zero (`2025-01-02T03:04:05Z`,
/// `2026-11-27T05:16:29.652873Z`): the form Obico's clients have always seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime(pub chrono::DateTime<Utc>);

impl DateTime {
    pub fn format(&self) -> String {
        let form = if self.0.nanosecond() / 1_000 == 0 {
            SecondsFormat::Secs
        } else {
            SecondsFormat::Micros
        };
        self.0.to_rfc3339_opts(form, true)
    }
}

/// A date and time in RFC 3339 form, always in UTC (`Z`).
#[Scalar(
    name = "DateTime",
    specified_by_url = "https://datatracker.ietf.org/doc/html/rfc3339"
)]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| DateTime(d.with_timezone(&Utc)))
                .map_err(|_| InputValueError::custom("expected an RFC 3339 date and time")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.format())
    }
}

impl From<chrono::DateTime<Utc>> for DateTime {
    fn from(d: chrono::DateTime<Utc>) -> Self {
        Self(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn microseconds_appear_only_when_not_zero() {
        let whole = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).single();
        let whole = whole.map(|d| DateTime(d).format());
        assert_eq!(whole.as_deref(), Some("2025-01-02T03:04:05Z"));
        let frac = chrono::DateTime::parse_from_rfc3339("2026-11-27T05:16:29.652873+00:00")
            .map(|d| DateTime(d.with_timezone(&Utc)).format());
        assert_eq!(frac.ok().as_deref(), Some("2026-11-27T05:16:29.652873Z"));
        let milli = chrono::DateTime::parse_from_rfc3339("2026-11-27T05:16:29.5+00:00")
            .map(|d| DateTime(d.with_timezone(&Utc)).format());
        assert_eq!(milli.ok().as_deref(), Some("2026-11-27T05:16:29.500000Z"));
    }
}
