//! The versioned wire envelope every Slipway message travels in, and its MessagePack codec.
//!
//! On the wire an envelope is a MessagePack map with named fields
//! `{v, id, job_id, kind, cause, created_at, payload}`. Decoding first reads `v` alone, so a message
//! from a future version is reported as [`DecodeError::UnsupportedVersion`] even when the rest of
//! its layout changed; anything that is not a valid envelope is a [`DecodeError`], never a panic.
//!
//! Ids ([`MessageId`], [`JobId`]) are UUIDs. Slipway writes them as a 16-byte MessagePack `bin`
//! (rmp-serde's form of a UUID); it reads that or the canonical hyphenated string
//! (`0190c3e5-7b1a-7cc0-8e3f-5a2b9c1d4e6f`), which is what publishers in other languages usually
//! send. `common/schema/slipway-message.schema.json` and `docs/contract.md` describe the contract
//! for them.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::message::{Kind, Message};

/// The envelope version this build writes and the only one it reads.
pub const WIRE_VERSION: u16 = 1;

/// Unique id of one message (a fresh UUIDv7 per publish of a new event).
///
/// Written as a 16-byte MessagePack `bin` (the canonical hyphenated string in human-readable
/// formats such as JSON); read from either form (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct MessageId(Uuid);

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_uuid(deserializer).map(Self)
    }
}

impl MessageId {
    /// A new, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The id derived from `seed`: the same seed always gives the same id, so an event decided
    /// twice from the same history (a new repo-tracker leader replaying it) is recognised as one.
    pub fn derived(seed: &[u8]) -> Self {
        Self(derived_uuid(b"message", seed))
    }
}

/// A UUIDv8 made of the first 16 bytes of SHA-256(`domain`, 0, `seed`).
fn derived_uuid(domain: &[u8], seed: &[u8]) -> Uuid {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update(domain);
    hasher.update([0]);
    hasher.update(seed);
    let hash = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Id of one job: shared by every message of every stage the job goes through.
///
/// Written as a 16-byte MessagePack `bin` (the canonical hyphenated string in human-readable
/// formats such as JSON); read from either form (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct JobId(Uuid);

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_uuid(deserializer).map(Self)
    }
}

impl JobId {
    /// A new, time-ordered job id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The job id derived from `seed` (see [`MessageId::derived`]); never equal to a message id
    /// derived from the same seed.
    pub fn derived(seed: &[u8]) -> Self {
        Self(derived_uuid(b"job", seed))
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Reads a UUID in either wire form Slipway accepts: 16 bytes (a MessagePack `bin`, which is what
/// Slipway itself writes) or the canonical hyphenated 36-character string, in either case
/// (RFC 9562 §4). Anything else (another length, the simple, braced or URN string forms, an
/// array of numbers, an integer) is an error naming what was expected and what was found.
fn deserialize_uuid<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Uuid, D::Error> {
    deserializer.deserialize_any(UuidVisitor)
}

/// What an id on the wire must be, for error messages.
const EXPECTED_UUID: &str = "a UUID as 16 bytes (MessagePack bin) or as the canonical hyphenated string (8-4-4-4-12 hex digits)";

/// The visitor of [`deserialize_uuid`].
struct UuidVisitor;

impl serde::de::Visitor<'_> for UuidVisitor {
    type Value = Uuid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED_UUID)
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Uuid, E> {
        Uuid::from_slice(bytes).map_err(|_| {
            E::custom(format_args!(
                "expected {EXPECTED_UUID}, found {} bytes",
                bytes.len()
            ))
        })
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Uuid, E> {
        // `Uuid::try_parse` also takes the simple, braced and URN forms; only the hyphenated one
        // is 36 characters long.
        match Uuid::try_parse(text) {
            Ok(uuid) if text.len() == 36 => Ok(uuid),
            _ => Err(E::custom(format_args!(
                "expected {EXPECTED_UUID}, found the string {text:?}"
            ))),
        }
    }
}

/// Milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }

    /// A timestamp from milliseconds since the Unix epoch.
    pub fn from_unix_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> u64 {
        self.0
    }

    /// The time as an RFC 3339 UTC date-time with seconds (`2026-11-23T14:05:09Z`).
    pub fn to_rfc3339(self) -> String {
        let seconds = self.0 / 1000;
        let (days, rest) = (seconds / 86_400, seconds % 86_400);
        // Days since 1970-01-01 to a civil date (the proleptic Gregorian calendar), by eras of
        // 400 years (146 097 days) starting on 0000-03-01.
        let z = days + 719_468;
        let era = z / 146_097;
        let day_of_era = z % 146_097;
        let year_of_era =
            (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_index = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * month_index + 2) / 5 + 1;
        let month = if month_index < 10 {
            month_index + 3
        } else {
            month_index - 9
        };
        let year = year_of_era + era * 400 + u64::from(month <= 2);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60
        )
    }
}

/// Why a job exists. On the wire it is a string: `user`, `git-change`, `index-change`,
/// `parent-rebuilt:<image>`, `package-update:<package>` or `schedule`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// Somebody asked for it (CLI or another service).
    User,
    /// A new commit on the tracked branch.
    GitChange,
    /// The entry was added to the index, or changed in a field that shapes its image.
    IndexChange,
    /// The named parent image was rebuilt.
    ParentRebuilt(String),
    /// The named package was updated in a tracked yum/apt repository.
    PackageUpdate(String),
    /// The periodic rescan.
    Schedule,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::User => f.write_str("user"),
            Cause::GitChange => f.write_str("git-change"),
            Cause::IndexChange => f.write_str("index-change"),
            Cause::ParentRebuilt(image) => write!(f, "parent-rebuilt:{image}"),
            Cause::PackageUpdate(package) => write!(f, "package-update:{package}"),
            Cause::Schedule => f.write_str("schedule"),
        }
    }
}

/// A cause string that is none of the known forms.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown cause {0:?}: expected user, git-change, index-change, parent-rebuilt:<image>, package-update:<package> or schedule"
)]
pub struct UnknownCause(String);

impl FromStr for Cause {
    type Err = UnknownCause;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let with_subject = |prefix: &str| {
            s.strip_prefix(prefix)
                .filter(|subject| !subject.is_empty())
                .map(str::to_owned)
        };
        match s {
            "user" => Ok(Cause::User),
            "git-change" => Ok(Cause::GitChange),
            "index-change" => Ok(Cause::IndexChange),
            "schedule" => Ok(Cause::Schedule),
            _ => {
                if let Some(image) = with_subject("parent-rebuilt:") {
                    Ok(Cause::ParentRebuilt(image))
                } else if let Some(package) = with_subject("package-update:") {
                    Ok(Cause::PackageUpdate(package))
                } else {
                    Err(UnknownCause(shown_kind(s)))
                }
            }
        }
    }
}

impl Serialize for Cause {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cause {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One message: who it belongs to, why it exists, and what it says.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// This message's own id.
    pub id: MessageId,
    /// The job this message belongs to.
    pub job_id: JobId,
    /// Why the job exists.
    pub cause: Cause,
    /// When this message was created.
    pub created_at: Timestamp,
    /// The typed payload; its kind is the routing key.
    pub message: Message,
}

impl Envelope {
    /// A message starting a new job.
    pub fn new_job(cause: Cause, message: Message) -> Self {
        Self::for_job(JobId::new(), cause, message)
    }

    /// A new message of an existing job.
    pub fn for_job(job_id: JobId, cause: Cause, message: Message) -> Self {
        Self {
            id: MessageId::new(),
            job_id,
            cause,
            created_at: Timestamp::now(),
            message,
        }
    }

    /// The next event of the same job, with the same cause.
    pub fn follow_up(&self, message: Message) -> Self {
        Self::for_job(self.job_id, self.cause.clone(), message)
    }

    /// The message kind, which is also its routing key.
    pub fn kind(&self) -> Kind {
        self.message.kind()
    }

    /// Encode as a MessagePack map with named fields.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        Ok(rmp_serde::to_vec_named(self)?)
    }

    /// Decode an envelope, checking its version before anything else.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let probe: VersionProbe =
            rmp_serde::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if probe.v != WIRE_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: probe.v,
                supported: WIRE_VERSION,
            });
        }
        let wire: WireIn =
            rmp_serde::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        let kind: Kind = wire
            .kind
            .parse()
            .map_err(|_| DecodeError::UnknownKind(shown_kind(&wire.kind)))?;
        let message =
            Message::from_payload(kind, bytes).map_err(|source| DecodeError::Payload {
                kind,
                reason: source.to_string(),
            })?;
        Ok(Self {
            id: wire.id,
            job_id: wire.job_id,
            cause: wire.cause,
            created_at: wire.created_at,
            message,
        })
    }
}

/// An envelope serialises as the wire map `{v, id, job_id, kind, cause, created_at, payload}`:
/// with MessagePack that is [`Envelope::encode`]; with a human-readable format such as JSON the ids
/// are canonical UUID strings, which is the JSON data model `common/schema/` describes.
impl Serialize for Envelope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireOut {
            v: WIRE_VERSION,
            id: self.id,
            job_id: self.job_id,
            kind: self.kind(),
            cause: &self.cause,
            created_at: self.created_at,
            payload: PayloadOut(&self.message),
        }
        .serialize(serializer)
    }
}

/// Encoding failed (only possible for payloads serde cannot represent).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode envelope: {0}")]
pub struct EncodeError(#[from] rmp_serde::encode::Error);

/// Why bytes are not a usable envelope.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not a MessagePack map with the envelope's fields.
    #[error(
        "not a Slipway envelope (expected a MessagePack map with v, id, job_id, kind, cause, created_at, payload): {0}"
    )]
    Malformed(String),
    /// An envelope of another version.
    #[error("envelope version {found} is not supported (this worker reads version {supported})")]
    UnsupportedVersion {
        /// The version the message carries.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// A kind this build does not know (as written, cut to [`MAX_SHOWN_KIND`] characters).
    #[error("unknown message kind {0:?}")]
    UnknownKind(String),
    /// The payload does not match its kind.
    #[error("payload of {kind} is invalid: {reason}")]
    Payload {
        /// The kind named by the envelope.
        kind: Kind,
        /// What is wrong with the payload.
        reason: String,
    },
}

/// The most characters of an unknown kind an error quotes: a hostile 1 MiB kind must not make a
/// 1 MiB error message.
pub const MAX_SHOWN_KIND: usize = 64;

/// `kind` (or another unknown word: a cause), cut to [`MAX_SHOWN_KIND`] characters with its
/// full length when longer.
fn shown_kind(kind: &str) -> String {
    if kind.chars().count() <= MAX_SHOWN_KIND {
        return kind.to_owned();
    }
    let cut: String = kind.chars().take(MAX_SHOWN_KIND).collect();
    format!("{cut}… ({} bytes)", kind.len())
}

#[derive(Serialize)]
struct WireOut<'a> {
    v: u16,
    id: MessageId,
    job_id: JobId,
    kind: Kind,
    cause: &'a Cause,
    created_at: Timestamp,
    payload: PayloadOut<'a>,
}

/// Serializes the payload struct alone (the kind travels in its own field).
struct PayloadOut<'a>(&'a Message);

impl Serialize for PayloadOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_payload(serializer)
    }
}

#[derive(Deserialize)]
struct VersionProbe {
    v: u16,
}

/// Everything but the payload, which is decoded in a second pass once its kind is known.
#[derive(Deserialize)]
struct WireIn {
    id: MessageId,
    job_id: JobId,
    kind: String,
    cause: Cause,
    created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_distinct_per_seed_and_per_domain_and_valid_uuids() {
        assert_eq!(MessageId::derived(b"a"), MessageId::derived(b"a"));
        assert_ne!(MessageId::derived(b"a"), MessageId::derived(b"b"));
        assert_ne!(
            MessageId::derived(b"a").to_string(),
            JobId::derived(b"a").to_string()
        );
        let id = JobId::derived(b"seed");
        assert_eq!(id.0.get_version_num(), 8);
        assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
    }

    #[test]
    fn timestamps_print_as_rfc3339() {
        let at = |ms| Timestamp::from_unix_millis(ms).to_rfc3339();
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_294_400_999), "2024-03-01T12:00:00Z");
        assert_eq!(at(1_795_446_309_000), "2026-11-23T15:05:09Z");
        assert_eq!(at(4_102_444_799_000), "2099-12-31T23:59:59Z");
    }
    use crate::message::{ScanRequested, test_support::sample_messages};

    #[test]
    fn every_kind_round_trips() {
        for message in sample_messages() {
            let envelope =
                Envelope::new_job(Cause::ParentRebuilt("centos/centos:7".into()), message);
            let bytes = envelope.encode().unwrap();
            assert_eq!(Envelope::decode(&bytes).unwrap(), envelope);
        }
    }

    #[test]
    fn wire_format_uses_named_fields() {
        let envelope = Envelope::new_job(
            Cause::Schedule,
            Message::ScanRequested(ScanRequested {
                image: crate::ImageRef::parse("registry.local/app/web:latest").unwrap(),
                digest: None,
                notify_email: None,
            }),
        );
        let value: rmpv::Value = rmp_serde::from_slice(&envelope.encode().unwrap()).unwrap();
        let keys: Vec<&str> = value
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "v",
                "id",
                "job_id",
                "kind",
                "cause",
                "created_at",
                "payload"
            ]
        );
        let map = value.as_map().unwrap();
        assert_eq!(map[0].1.as_u64(), Some(u64::from(WIRE_VERSION)));
        // Slipway writes ids as 16-byte bins (what the schema and docs/contract.md promise).
        assert_eq!(
            map[1].1.as_slice(),
            Some(envelope.id.0.as_bytes().as_slice())
        );
        assert_eq!(
            map[2].1.as_slice(),
            Some(envelope.job_id.0.as_bytes().as_slice())
        );
        assert_eq!(map[3].1.as_str(), Some("scan.requested"));
        assert_eq!(map[4].1.as_str(), Some("schedule"));
        let payload_keys: Vec<&str> = map[6]
            .1
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str().unwrap())
            .collect();
        assert_eq!(payload_keys, ["image", "digest", "notify-email"]);
    }

    fn envelope_with(v: u64, kind: &str, payload: rmpv::Value) -> Vec<u8> {
        let good = Envelope::new_job(Cause::User, sample_messages().remove(0));
        let mut value: rmpv::Value = rmp_serde::from_slice(&good.encode().unwrap()).unwrap();
        let rmpv::Value::Map(map) = &mut value else {
            panic!("envelope is a map")
        };
        map[0].1 = v.into();
        map[3].1 = kind.into();
        map[6].1 = payload;
        rmp_serde::to_vec(&value).unwrap()
    }

    #[test]
    fn unknown_version_is_a_typed_error_even_with_an_unreadable_body() {
        let bytes = rmp_serde::to_vec_named(&serde_json_like_v2()).unwrap();
        match Envelope::decode(&bytes) {
            Err(DecodeError::UnsupportedVersion {
                found: 2,
                supported,
            }) => {
                assert_eq!(supported, WIRE_VERSION)
            }
            other => panic!("expected UnsupportedVersion, got {other:?}"),
        }
        let bytes = envelope_with(7, "build.requested", rmpv::Value::Nil);
        assert!(matches!(
            Envelope::decode(&bytes),
            Err(DecodeError::UnsupportedVersion { found: 7, .. })
        ));
    }

    /// A "version 2" message whose other fields have a different shape entirely.
    fn serde_json_like_v2() -> std::collections::BTreeMap<&'static str, u32> {
        [("v", 2), ("schema", 9)].into_iter().collect()
    }

    #[test]
    fn unknown_kind_and_mismatched_payload_are_typed_errors() {
        let bytes = envelope_with(1, "build.exploded", rmpv::Value::Nil);
        assert!(matches!(
            Envelope::decode(&bytes),
            Err(DecodeError::UnknownKind(kind)) if kind == "build.exploded"
        ));
        let huge = "k".repeat(1 << 20);
        let error = Envelope::decode(&envelope_with(1, &huge, rmpv::Value::Nil)).unwrap_err();
        assert!(
            error.to_string().len() < 200,
            "{} bytes",
            error.to_string().len()
        );
        assert!(error.to_string().contains("(1048576 bytes)"), "{error}");
        let bytes = envelope_with(1, "scan.requested", rmpv::Value::from(42));
        let error = Envelope::decode(&bytes).unwrap_err();
        assert!(matches!(
            error,
            DecodeError::Payload {
                kind: Kind::ScanRequested,
                ..
            }
        ));
        assert!(error.to_string().contains("scan.requested"), "{error}");
    }

    /// A sample envelope re-encoded with `id` and `job_id` replaced by `id` and `job_id`.
    fn envelope_with_ids(id: rmpv::Value, job_id: rmpv::Value) -> (Envelope, Vec<u8>) {
        let good = Envelope::new_job(Cause::User, sample_messages().remove(0));
        let mut value: rmpv::Value = rmp_serde::from_slice(&good.encode().unwrap()).unwrap();
        let rmpv::Value::Map(map) = &mut value else {
            panic!("envelope is a map")
        };
        map[1].1 = id;
        map[2].1 = job_id;
        (good, rmp_serde::to_vec(&value).unwrap())
    }

    #[test]
    fn ids_are_read_from_16_byte_bins_or_canonical_strings_in_either_case() {
        let (sent, _) = envelope_with_ids(rmpv::Value::Nil, rmpv::Value::Nil);
        let bin = |u: Uuid| rmpv::Value::Binary(u.as_bytes().to_vec());
        let lower = |u: Uuid| rmpv::Value::from(u.hyphenated().to_string());
        let upper = |u: Uuid| rmpv::Value::from(u.hyphenated().to_string().to_uppercase());
        let (id, job) = (sent.id.0, sent.job_id.0);
        for (form, id, job_id) in [
            ("bin", bin(id), bin(job)),
            ("lowercase string", lower(id), lower(job)),
            ("uppercase string", upper(id), upper(job)),
            ("bin and string", bin(id), lower(job)),
        ] {
            let (_, bytes) = envelope_with_ids(id, job_id);
            let decoded = Envelope::decode(&bytes).unwrap_or_else(|e| panic!("{form}: {e}"));
            assert_eq!(
                (decoded.id, decoded.job_id),
                (sent.id, sent.job_id),
                "{form}"
            );
        }
    }

    #[test]
    fn ids_in_any_other_form_are_malformed_with_what_was_expected() {
        let uuid = Uuid::now_v7();
        let bad: [(&str, rmpv::Value); 9] = [
            ("15 bytes", rmpv::Value::Binary(vec![7; 15])),
            ("17 bytes", rmpv::Value::Binary(vec![7; 17])),
            ("simple string", uuid.simple().to_string().into()),
            ("braced string", uuid.braced().to_string().into()),
            ("urn string", uuid.urn().to_string().into()),
            ("not hex", "0190c3e5-7b1a-7cc0-8e3f-5a2b9c1d4e6g".into()),
            ("empty string", "".into()),
            ("integer", 42.into()),
            (
                "array of 16 numbers",
                rmpv::Value::Array(uuid.as_bytes().iter().map(|&b| b.into()).collect()),
            ),
        ];
        for (what, value) in bad {
            for (id, job_id) in [
                (value.clone(), uuid.as_bytes().to_vec().into()),
                (uuid.as_bytes().to_vec().into(), value.clone()),
            ] {
                let (_, bytes) = envelope_with_ids(id, job_id);
                match Envelope::decode(&bytes) {
                    Err(DecodeError::Malformed(reason)) => assert!(
                        reason.contains("16 bytes (MessagePack bin) or as the canonical"),
                        "{what}: {reason}"
                    ),
                    other => panic!("{what}: expected Malformed, got {other:?}"),
                }
            }
        }
    }

    #[test]
    fn ids_are_canonical_strings_in_json() {
        let id = JobId::new();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<JobId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<MessageId>("\"not-a-uuid\"").is_err());
    }

    #[test]
    fn garbage_is_malformed() {
        for bytes in [&b""[..], b"\xc1", b"hello world", &[0x92, 0x01, 0x02]] {
            assert!(
                matches!(Envelope::decode(bytes), Err(DecodeError::Malformed(_))),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn cause_strings_round_trip_and_reject_unknown_forms() {
        for cause in [
            Cause::User,
            Cause::GitChange,
            Cause::IndexChange,
            Cause::ParentRebuilt("centos/centos:7".into()),
            Cause::PackageUpdate("openssl".into()),
            Cause::Schedule,
        ] {
            assert_eq!(cause.to_string().parse::<Cause>(), Ok(cause));
        }
        let huge = "x".repeat(1 << 20);
        let error = huge.parse::<Cause>().unwrap_err().to_string();
        assert!(error.len() < 300, "{} bytes", error.len());
        for bad in ["", "users", "parent-rebuilt:", "package-update", "cron"] {
            assert!(bad.parse::<Cause>().is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = Envelope::decode(&bytes);
        }

        #[test]
        fn decoding_corrupted_envelopes_never_panics(flips in proptest::collection::vec((0usize..4096, proptest::num::u8::ANY), 1..8)) {
            let mut bytes = Envelope::new_job(Cause::User, sample_messages().remove(0)).encode().unwrap();
            for (at, value) in flips {
                let len = bytes.len();
                bytes[at % len] = value;
            }
            let _ = Envelope::decode(&bytes);
        }
    }
}
