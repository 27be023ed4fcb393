//! The `<namespace>.reports` stream: its name, retention and declaration. What a report entry
//! holds and whose it is (image, digest, job) is the scan worker's business
//! (`slipway_scan::reports`), which appends and reads it through [`crate::streams`]: entries go to
//! the default exchange with the stream's name as routing key, confirmed and `mandatory`, so a
//! missing stream is an error, never a silent loss.

use serde::{Deserialize, Serialize};

use crate::streams::{self, StreamRetention};
use crate::{BrokerConnection, BrokerError, BrokerSettings};

/// The name of the report stream of `namespace`: `<namespace>.reports`.
pub fn report_stream_name(namespace: &str) -> String {
    format!("{namespace}.reports")
}

/// Retention of the report stream: reports are wanted longer than logs (the latest report of an
/// image that is rarely rescanned), and are fewer. RabbitMQ deletes whole segments, oldest first,
/// once a segment is entirely older than `max_age` or the stream is larger than
/// `max_length_bytes`.
///
/// The arguments are fixed when the stream is first declared: declaring it again with other
/// values fails with a 406 naming the argument. Change retention on a live stream with a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportStreamSettings {
    /// How long reports are kept (`x-max-age`): a number and one unit of `Y`, `M`, `D`, `h`, `m`,
    /// `s`; default `90D`.
    pub max_age: String,
    /// Largest size of the stream on disk (`x-max-length-bytes`); default 5 GiB.
    pub max_length_bytes: u64,
    /// Size of one segment file (`x-stream-max-segment-size-bytes`); default 100 MiB, so
    /// retention drops reports in steps of at most that much.
    pub max_segment_size_bytes: u64,
}

impl Default for ReportStreamSettings {
    fn default() -> Self {
        Self {
            max_age: "90D".to_owned(),
            max_length_bytes: 5 << 30,
            max_segment_size_bytes: 100 << 20,
        }
    }
}

impl ReportStreamSettings {
    /// Reject retention settings RabbitMQ would refuse, naming the key.
    pub fn validate(&self) -> Result<(), BrokerError> {
        self.retention().validate()
    }

    pub(crate) fn retention(&self) -> StreamRetention<'_> {
        StreamRetention {
            section: "reports",
            max_age: &self.max_age,
            max_length_bytes: self.max_length_bytes,
            max_segment_size_bytes: self.max_segment_size_bytes,
        }
    }
}

/// Declare the report stream of `broker`'s namespace (idempotent; a 406 names an argument that
/// differs from the existing stream's), or check that it exists (`broker.topology = "verify"`).
pub async fn declare_report_stream(
    connection: &BrokerConnection,
    broker: &BrokerSettings,
    settings: &ReportStreamSettings,
) -> Result<(), BrokerError> {
    let stream = report_stream_name(&broker.namespace);
    streams::declare_stream(
        connection,
        broker,
        &stream,
        settings.retention(),
        "report stream",
    )
    .await
}

/// Delete the report stream `stream` and every report in it (test namespaces, dev resets).
pub async fn delete_report_stream(
    connection: &BrokerConnection,
    stream: &str,
) -> Result<(), BrokerError> {
    streams::delete_stream(connection, stream).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers;

    #[test]
    fn the_stream_is_named_after_the_namespace_and_kept_ninety_days() {
        assert_eq!(report_stream_name("slipway"), "slipway.reports");
        let settings = ReportStreamSettings::default();
        assert!(settings.validate().is_ok());
        let arguments = settings.retention().arguments();
        assert_eq!(
            headers::text(Some(&arguments), "x-max-age").as_deref(),
            Some("90D")
        );
        let bad = ReportStreamSettings {
            max_age: "90 days".into(),
            ..ReportStreamSettings::default()
        };
        let error = bad.validate().unwrap_err().to_string();
        assert!(error.contains("reports.max_age"), "{error}");
    }
}
