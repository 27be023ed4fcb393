//! The rescan-scheduler's view, folded from the history stream, and what it decides. Pure: no
//! I/O, no clock (every question takes `now`).
//!
//! **Which images are live.** An image becomes known by a `build.succeeded`, and stays known by
//! the scheduler's own `scan.requested` (cause `schedule`), which is published for it once every
//! period and names it and its owner: as long as the period is shorter than the history's
//! retention, every live image has an event inside the retention window, so a view folded from
//! the history alone never forgets one. An `image.retired` forgets it (and a later scheduled
//! request does not bring it back; only a new build does).
//!
//! **When it is rescanned.** Time is cut into periods of `period_ms`, shifted per image by a
//! stable offset (a hash of its name, [`offset`]): the image's *slot* `k` runs from `k·P + o` to
//! `(k+1)·P + o`. An image is due at the start of each slot it was not served in. A build serves
//! the slot it happens in (the scan worker scans every new build), and so does a scheduled
//! request: the slot is computed from the event's `created_at`, which the leader sets when it
//! decides, at or after the slot's start. So each image is requested once per slot, the
//! requests of many images spread evenly over the period, and neither a restart nor a new leader
//! moves an offset.
//!
//! **Scheduled rebuilds.** An index entry's `rebuild-schedule` (cron, UTC) fires a
//! `build.requested` (cause `schedule`) at each firing time. The fold recognises a scheduled
//! request as the last firing at or before its `created_at`. A firing missed by more than
//! `max_rebuild_delay_ms` (no leader at the time) is skipped, not made up, and the first firing
//! counted is the first one after the schedule appeared in the index.
//!
//! **Summaries.** Each owner (`notify-email`) gets one `summary.ready` per period, at its own
//! offset, listing its live images with their latest `scan.completed` counts.
//!
//! Every decision's id derives from what it is for (image and slot, entry and firing, owner and
//! slot), so a decision made twice is recognisably one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use slipway_common::index::Entry;
use slipway_common::message::{BuildRequested, ImageSummary, ScanRequested, SummaryReady};
use slipway_common::schedule::RebuildSchedule;
use slipway_common::{Cause, Digest, Envelope, ImageRef, JobId, Message, MessageId, Timestamp};

/// The scheduler's clock settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// The rescan period: each live image is requested once per period.
    pub period_ms: u64,
    /// A scheduled rebuild found due later than this after its firing time is skipped.
    pub max_rebuild_delay_ms: u64,
    /// Most images listed in one owner's summary.
    pub max_summary_images: usize,
}

/// An image's name in the schedule: its repository path and tag (`app-id/job-id:tag`), whatever
/// registry the event names it in.
pub type ImageKey = Arc<str>;

/// The schedule's name of `image`, when it has a tag.
pub fn key_of(image: &ImageRef) -> Option<ImageKey> {
    image
        .tag()
        .map(|tag| Arc::from(format!("{}:{tag}", image.path())))
}

/// A stable offset in `[0, period_ms)` for `name`: the first 8 bytes of its SHA-256.
pub fn offset(name: &str, period_ms: u64) -> u64 {
    let hash = Sha256::digest(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(first) % period_ms.max(1)
}

/// The slot `moment` falls in, for `offset`: slot `k` starts at `k·P + offset`.
fn slot(moment: u64, offset: u64, period_ms: u64) -> u64 {
    moment.saturating_sub(offset) / period_ms.max(1)
}

/// The start of slot `k`.
fn slot_start(k: u64, offset: u64, period_ms: u64) -> u64 {
    k.saturating_mul(period_ms).saturating_add(offset)
}

/// A manifest digest, kept small: SHA-256 as its 32 bytes, anything else as written.
#[derive(Clone, Debug, PartialEq, Eq)]
enum StoredDigest {
    Sha256([u8; 32]),
    Other(Box<str>),
}

impl StoredDigest {
    fn of(digest: &Digest) -> Self {
        let hex = digest.encoded().as_bytes();
        let mut bytes = [0u8; 32];
        let decoded = digest.algorithm() == "sha256"
            && hex.len() == 64
            && bytes.iter_mut().enumerate().all(|(i, byte)| {
                let pair = std::str::from_utf8(&hex[2 * i..2 * i + 2]).unwrap_or("");
                u8::from_str_radix(pair, 16).map(|b| *byte = b).is_ok()
            });
        if decoded {
            StoredDigest::Sha256(bytes)
        } else {
            StoredDigest::Other(digest.as_str().into())
        }
    }

    fn digest(&self) -> Option<Digest> {
        match self {
            StoredDigest::Sha256(bytes) => {
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                Digest::parse(&format!("sha256:{hex}")).ok()
            }
            StoredDigest::Other(text) => Digest::parse(text).ok(),
        }
    }
}

/// The latest scan of an image (boxed in [`Known`]: many images are never scanned again).
#[derive(Clone, Debug, PartialEq, Eq)]
struct LatestScan {
    /// The digest scanned.
    digest: StoredDigest,
    /// When the scan completed (the event's time).
    at: Timestamp,
    /// The names of its counts, shared by every image whose scan had the same names.
    names: Arc<[Arc<str>]>,
    /// The counts, in the order of `names`.
    values: Box<[u64]>,
}

/// A live image. A view of 100,000 images holds 100,000 of these, so each holds only what the
/// key does not: its registry (shared), its owner (shared), its slot and its latest scan.
#[derive(Clone, Debug)]
struct Known {
    /// The registry the last event named it in (`127.0.0.1:5000`), if any.
    registry: Option<Arc<str>>,
    owner: Option<Arc<str>>,
    offset: u64,
    /// The last slot it was served in.
    served: u64,
    latest: Option<Box<LatestScan>>,
}

impl Known {
    /// Its reference: the registry, then the key (`app-id/job-id:tag`).
    fn reference(&self, key: &str) -> Option<ImageRef> {
        match &self.registry {
            Some(registry) => ImageRef::parse(&format!("{registry}/{key}")).ok(),
            None => ImageRef::parse(key).ok(),
        }
    }

    fn next_due(&self, period_ms: u64) -> u64 {
        slot_start(self.served.saturating_add(1), self.offset, period_ms)
    }
}

/// An owner of live images.
#[derive(Clone, Debug, Default)]
struct Owner {
    images: BTreeSet<ImageKey>,
    offset: u64,
    /// The last slot summarised (or the slot the owner was first seen in).
    served: u64,
}

/// An index entry with a rebuild schedule.
#[derive(Clone, Debug)]
struct Scheduled {
    entry: Entry,
    schedule: RebuildSchedule,
    /// When the schedule came into force: firings before it do not count.
    since: u64,
    /// The last firing a request was seen for.
    fired: Option<u64>,
}

impl Scheduled {
    /// The firing due at `now`, if any: the last one at or before `now`, after what was fired
    /// and after the schedule came into force, and not older than `max_delay`.
    fn due(&self, now: u64, max_delay: u64) -> Option<u64> {
        let firing = self.schedule.last_at_or_before(now)?;
        let fresh = firing > self.fired.unwrap_or(0).max(self.since);
        (fresh && now - firing <= max_delay).then_some(firing)
    }

    /// The next moment something may be due, seen from `now`.
    fn next(&self, now: u64, max_delay: u64) -> Option<u64> {
        if self.due(now, max_delay).is_some() {
            return Some(now);
        }
        self.schedule.next_after(now.max(self.since))
    }
}

/// One rescan, rebuild or summary that is due.
#[derive(Clone, Debug, PartialEq)]
pub struct Due {
    /// When it became due.
    pub at: u64,
    /// What it is for, to ask the view later whether it is still due.
    pub token: DueToken,
    /// The event that carries it out (its id derives from what it is for).
    pub envelope: Envelope,
}

/// What a due decision is for: a rescan of an image in a slot, a rebuild at a firing, a
/// summary of an owner in a slot (see [`SchedulerState::is_pending`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueToken {
    kind: DueKind,
    subject: Arc<str>,
    unit: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DueKind {
    Rescan,
    Rebuild,
    Summary,
}

/// What is planned next, for `slipway schedule`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    /// When.
    pub at: u64,
    /// `rescan`, `rebuild` or `summary`.
    pub what: &'static str,
    /// The image, or the owner for a summary.
    pub subject: String,
}

/// The view.
#[derive(Debug)]
pub struct SchedulerState {
    timing: Timing,
    images: HashMap<ImageKey, Known>,
    /// `(next due, image)` of every live image.
    rescans: BTreeSet<(u64, ImageKey)>,
    /// Images retired and not built since: a scheduled request does not revive them.
    retired: HashSet<ImageKey>,
    owners: HashMap<Arc<str>, Owner>,
    /// `(next due, owner)` of every owner with a live image.
    summaries: BTreeSet<(u64, Arc<str>)>,
    schedules: BTreeMap<ImageKey, Scheduled>,
    /// The lists of scan-count names (`os-updates`, …), one copy each for every image's counts.
    count_names: HashSet<Arc<[Arc<str>]>>,
    /// Registry names, one copy each.
    registries: HashSet<Arc<str>>,
    applied_events: u64,
}

impl SchedulerState {
    /// The empty view.
    pub fn new(timing: Timing) -> Self {
        SchedulerState {
            timing,
            images: HashMap::new(),
            rescans: BTreeSet::new(),
            retired: HashSet::new(),
            owners: HashMap::new(),
            summaries: BTreeSet::new(),
            schedules: BTreeMap::new(),
            count_names: HashSet::new(),
            registries: HashSet::new(),
            applied_events: 0,
        }
    }

    /// Events folded so far.
    pub fn applied_events(&self) -> u64 {
        self.applied_events
    }

    /// How many live images the view holds.
    pub fn live_images(&self) -> usize {
        self.images.len()
    }

    /// The live images, by name.
    pub fn images(&self) -> Vec<ImageRef> {
        let mut images: Vec<ImageRef> = self
            .images
            .iter()
            .filter_map(|(key, known)| known.reference(key))
            .collect();
        images.sort_by_key(ToString::to_string);
        images
    }

    /// Each live image's owner (`notify-email`), by name.
    pub fn owners(&self) -> HashMap<ImageKey, Option<String>> {
        self.images
            .iter()
            .map(|(key, known)| (Arc::clone(key), known.owner.as_deref().map(str::to_owned)))
            .collect()
    }

    /// How many index entries have a rebuild schedule.
    pub fn scheduled_rebuilds(&self) -> usize {
        self.schedules.len()
    }

    /// Fold one event.
    pub fn apply(&mut self, event: &Envelope) {
        self.applied_events += 1;
        let at = event.created_at.unix_millis();
        match &event.message {
            Message::BuildSucceeded(built) => {
                if let Some(key) = key_of(&built.image) {
                    self.retired.remove(&key);
                    self.record(key, &built.image, built.entry.notify_email.as_deref(), at);
                }
            }
            Message::ScanRequested(requested) if event.cause == Cause::Schedule => {
                if let Some(key) = key_of(&requested.image)
                    && !self.retired.contains(&key)
                {
                    self.record(key, &requested.image, requested.notify_email.as_deref(), at);
                }
            }
            Message::ScanCompleted(completed) => {
                let Some(key) = key_of(&completed.image) else {
                    return;
                };
                if !self.images.contains_key(&key) {
                    return;
                }
                let names = self.count_names(completed.counts.keys());
                let values: Box<[u64]> = completed.counts.values().copied().collect();
                if let Some(known) = self.images.get_mut(&key) {
                    known.latest = Some(Box::new(LatestScan {
                        digest: StoredDigest::of(&completed.digest),
                        at: event.created_at,
                        names,
                        values,
                    }));
                }
            }
            Message::ImageRetired(retired) => {
                if let Some(key) = key_of(&retired.entry.image()) {
                    self.forget(&key);
                    self.retired.insert(key);
                }
            }
            Message::IndexApplied(applied) => self.on_index(&applied.entries, at),
            Message::BuildRequested(requested) if event.cause == Cause::Schedule => {
                if let Some(scheduled) =
                    key_of(&requested.entry.image()).and_then(|key| self.schedules.get_mut(&key))
                    && let Some(firing) = scheduled.schedule.last_at_or_before(at)
                {
                    scheduled.fired = Some(scheduled.fired.unwrap_or(0).max(firing));
                }
            }
            Message::SummaryReady(summary) => {
                let email: Arc<str> = Arc::from(summary.notify_email.as_str());
                let period = self.timing.period_ms;
                if let Some(owner) = self.owners.get_mut(&email) {
                    let served = slot(at, owner.offset, period);
                    if served > owner.served {
                        self.summaries.remove(&(
                            slot_start(owner.served + 1, owner.offset, period),
                            Arc::clone(&email),
                        ));
                        owner.served = served;
                        self.summaries
                            .insert((slot_start(served + 1, owner.offset, period), email));
                    }
                }
            }
            _ => {}
        }
    }

    /// The shared list of count names equal to `names`. Names come from scan events: a stream
    /// of new ones would grow the set, so it is bounded, past which lists are not shared.
    fn count_names<'a>(&mut self, names: impl Iterator<Item = &'a String>) -> Arc<[Arc<str>]> {
        let names: Vec<Arc<str>> = names.map(|name| Arc::from(name.as_str())).collect();
        if let Some(known) = self.count_names.get(names.as_slice()) {
            return Arc::clone(known);
        }
        let names: Arc<[Arc<str>]> = names.into();
        if self.count_names.len() < MAX_SHARED_NAMES {
            self.count_names.insert(Arc::clone(&names));
        }
        names
    }

    /// The shared copy of a registry's name (bounded as [`Self::count_names`]).
    fn registry_name(&mut self, registry: &str) -> Arc<str> {
        if let Some(known) = self.registries.get(registry) {
            return Arc::clone(known);
        }
        let registry: Arc<str> = Arc::from(registry);
        if self.registries.len() < MAX_SHARED_NAMES {
            self.registries.insert(Arc::clone(&registry));
        }
        registry
    }

    /// Know `image` (served in the slot of `at`), owned by `owner`.
    fn record(&mut self, key: ImageKey, image: &ImageRef, owner: Option<&str>, at: u64) {
        let period = self.timing.period_ms;
        let registry = image.domain().map(|domain| self.registry_name(domain));
        // One copy of each owner's address: the owners map's key.
        let owner: Option<Arc<str>> = owner.map(|owner| {
            self.owners
                .get_key_value(owner)
                .map_or_else(|| Arc::from(owner), |(shared, _)| Arc::clone(shared))
        });
        let previous_owner = match self.images.get_mut(&key) {
            Some(known) => {
                self.rescans
                    .remove(&(known.next_due(period), Arc::clone(&key)));
                known.served = known.served.max(slot(at, known.offset, period));
                known.registry = registry;
                let previous = std::mem::replace(&mut known.owner, owner.clone());
                self.rescans
                    .insert((known.next_due(period), Arc::clone(&key)));
                previous
            }
            None => {
                let offset = offset(&key, period);
                let known = Known {
                    registry,
                    owner: owner.clone(),
                    offset,
                    served: slot(at, offset, period),
                    latest: None,
                };
                self.rescans
                    .insert((known.next_due(period), Arc::clone(&key)));
                self.images.insert(Arc::clone(&key), known);
                None
            }
        };
        if previous_owner != owner {
            if let Some(previous) = previous_owner {
                self.leave_owner(&previous, &key);
            }
            if let Some(owner) = owner {
                let entry = self.owners.entry(Arc::clone(&owner)).or_insert_with(|| {
                    let offset = offset(&owner, period);
                    Owner {
                        images: BTreeSet::new(),
                        offset,
                        served: slot(at, offset, period),
                    }
                });
                if entry.images.is_empty() {
                    self.summaries.insert((
                        slot_start(entry.served + 1, entry.offset, period),
                        Arc::clone(&owner),
                    ));
                }
                entry.images.insert(key);
            }
        }
    }

    fn leave_owner(&mut self, email: &Arc<str>, key: &ImageKey) {
        let period = self.timing.period_ms;
        if let Some(owner) = self.owners.get_mut(email) {
            owner.images.remove(key);
            if owner.images.is_empty() {
                self.summaries.remove(&(
                    slot_start(owner.served + 1, owner.offset, period),
                    Arc::clone(email),
                ));
                self.owners.remove(email);
            }
        }
    }

    fn forget(&mut self, key: &ImageKey) {
        let period = self.timing.period_ms;
        if let Some(known) = self.images.remove(key) {
            self.rescans
                .remove(&(known.next_due(period), Arc::clone(key)));
            if let Some(owner) = &known.owner {
                self.leave_owner(owner, key);
            }
        }
    }

    /// A new index: the entries with a rebuild schedule, each keeping what was fired when its
    /// pattern did not change.
    fn on_index(&mut self, entries: &[Entry], at: u64) {
        let mut schedules = BTreeMap::new();
        for entry in entries {
            let Some(pattern) = &entry.rebuild_schedule else {
                continue;
            };
            let (Some(key), Ok(schedule)) =
                (key_of(&entry.image()), RebuildSchedule::parse(pattern))
            else {
                continue;
            };
            let kept = self
                .schedules
                .remove(&key)
                .filter(|old| old.schedule == schedule);
            let (since, fired) = kept.map_or((at, None), |old| (old.since, old.fired));
            schedules.insert(
                key,
                Scheduled {
                    entry: entry.clone(),
                    schedule,
                    since,
                    fired,
                },
            );
        }
        self.schedules = schedules;
    }

    /// Everything due at `now`, earliest first, at most `limit`: the events to publish.
    pub fn due(&self, now: u64, limit: usize) -> Vec<Due> {
        self.due_except(now, limit, |_| false)
    }

    /// What is due at `now`, earliest first, leaving out what `skip` says (the leader's
    /// decisions published and not folded yet, so they are neither built again nor counted),
    /// at most `limit`.
    pub fn due_except(
        &self,
        now: u64,
        limit: usize,
        skip: impl Fn(&MessageId) -> bool,
    ) -> Vec<Due> {
        let mut due = Vec::new();
        for (at, key) in self.rescans.range(..=(now, max_key())) {
            if due.len() >= limit {
                break;
            }
            let Some(known) = self.images.get(key) else {
                continue;
            };
            let slot = slot(now, known.offset, self.timing.period_ms);
            let seed = format!("rescan:{key}:{slot}");
            if skip(&MessageId::derived(seed.as_bytes())) {
                continue;
            }
            let Some(image) = known.reference(key) else {
                continue;
            };
            due.push(Due {
                at: *at,
                token: DueToken {
                    kind: DueKind::Rescan,
                    subject: Arc::clone(key),
                    unit: slot,
                },
                envelope: decided(
                    &seed,
                    now,
                    Message::ScanRequested(ScanRequested {
                        image,
                        digest: None,
                        notify_email: known.owner.as_deref().map(str::to_owned),
                    }),
                ),
            });
        }
        for (key, scheduled) in &self.schedules {
            if due.len() >= limit {
                break;
            }
            let Some(firing) = scheduled.due(now, self.timing.max_rebuild_delay_ms) else {
                continue;
            };
            let seed = format!("rebuild:{key}:{firing}");
            if skip(&MessageId::derived(seed.as_bytes())) {
                continue;
            }
            due.push(Due {
                at: firing,
                token: DueToken {
                    kind: DueKind::Rebuild,
                    subject: Arc::clone(key),
                    unit: firing,
                },
                envelope: decided(
                    &seed,
                    now,
                    Message::BuildRequested(BuildRequested {
                        entry: scheduled.entry.clone(),
                        commit: None,
                    }),
                ),
            });
        }
        let mut summaries = 0;
        for (at, email) in self.summaries.range(..=(now, max_key())) {
            // A summary lists up to `max_summary_images` images: a few per pass keep a pass's
            // memory small when many owners are due at once (a leader taking over).
            if due.len() >= limit || summaries >= SUMMARIES_PER_PASS {
                break;
            }
            let Some(owner) = self.owners.get(email) else {
                continue;
            };
            let slot = slot(now, owner.offset, self.timing.period_ms);
            let seed = format!("summary:{email}:{slot}");
            if skip(&MessageId::derived(seed.as_bytes())) {
                continue;
            }
            if let Some(summary) = self.summary(email, *at) {
                due.push(Due {
                    at: *at,
                    token: DueToken {
                        kind: DueKind::Summary,
                        subject: Arc::clone(email),
                        unit: slot,
                    },
                    envelope: decided(&seed, now, Message::SummaryReady(summary)),
                });
                summaries += 1;
            }
        }
        due.sort_by_key(|due| due.at);
        due
    }

    /// Whether the decision `token` names is still due: its event has not been folded.
    pub fn is_pending(&self, token: &DueToken) -> bool {
        match token.kind {
            DueKind::Rescan => self
                .images
                .get(&token.subject)
                .is_some_and(|known| known.served < token.unit),
            DueKind::Rebuild => self
                .schedules
                .get(&token.subject)
                .is_some_and(|scheduled| scheduled.fired.is_none_or(|fired| fired < token.unit)),
            DueKind::Summary => self
                .owners
                .get(&token.subject)
                .is_some_and(|owner| owner.served < token.unit),
        }
    }

    /// The summary of `email`'s images for the period ending at `end`.
    fn summary(&self, email: &Arc<str>, end: u64) -> Option<SummaryReady> {
        let owner = self.owners.get(email)?;
        let mut images: Vec<ImageSummary> = owner
            .images
            .iter()
            .take(self.timing.max_summary_images)
            .filter_map(|key| Some((self.images.get(key)?, key)))
            .filter_map(|(known, key)| Some((known, known.reference(key)?)))
            .map(|(known, image)| ImageSummary {
                image,
                digest: known.latest.as_ref().and_then(|scan| scan.digest.digest()),
                scanned_at: known.latest.as_ref().map(|scan| scan.at.unix_millis()),
                counts: known
                    .latest
                    .as_ref()
                    .map(|scan| {
                        scan.names
                            .iter()
                            .zip(scan.values.iter())
                            .map(|(name, count)| (name.to_string(), *count))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        images.sort_by_key(|summary| summary.image.to_string());
        Some(SummaryReady {
            notify_email: email.to_string(),
            period_start: end.saturating_sub(self.timing.period_ms),
            period_end: end,
            omitted: (owner.images.len() - images.len()) as u64,
            images,
        })
    }

    /// The earliest moment something is or becomes due, seen from `now` (`now` itself when
    /// something is due already).
    pub fn next_due(&self, now: u64) -> Option<u64> {
        let rescan = self.rescans.first().map(|(at, _)| *at);
        let summary = self.summaries.first().map(|(at, _)| *at);
        let rebuild = self
            .schedules
            .values()
            .filter_map(|scheduled| scheduled.next(now, self.timing.max_rebuild_delay_ms))
            .min();
        [rescan, summary, rebuild]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.max(now))
    }

    /// How many decisions are due at `now`, and since when the oldest is: the lag.
    pub fn lag(&self, now: u64) -> (usize, u64) {
        let rescans = self.rescans.range(..=(now, max_key()));
        let summaries = self.summaries.range(..=(now, max_key()));
        let rebuilds = self
            .schedules
            .values()
            .filter_map(|scheduled| scheduled.due(now, self.timing.max_rebuild_delay_ms));
        let mut count = 0;
        let mut oldest = now;
        for at in rescans
            .map(|(at, _)| *at)
            .chain(summaries.map(|(at, _)| *at))
            .chain(rebuilds)
        {
            count += 1;
            oldest = oldest.min(at);
        }
        (count, now - oldest)
    }

    /// The next `limit` planned rescans, rebuilds and summaries after `now`, earliest first.
    pub fn planned(&self, now: u64, limit: usize) -> Vec<Planned> {
        let mut planned: Vec<Planned> = self
            .rescans
            .iter()
            .take(limit)
            .filter_map(|(at, key)| {
                let known = self.images.get(key)?;
                Some(Planned {
                    at: *at,
                    what: "rescan",
                    subject: known.reference(key)?.to_string(),
                })
            })
            .collect();
        planned.extend(self.schedules.values().filter_map(|scheduled| {
            Some(Planned {
                at: scheduled.next(now, self.timing.max_rebuild_delay_ms)?,
                what: "rebuild",
                subject: scheduled.entry.image().to_string(),
            })
        }));
        planned.extend(
            self.summaries
                .iter()
                .take(limit)
                .map(|(at, email)| Planned {
                    at: *at,
                    what: "summary",
                    subject: email.to_string(),
                }),
        );
        planned.sort_by(|a, b| (a.at, &a.subject).cmp(&(b.at, &b.subject)));
        planned.truncate(limit);
        planned
    }
}

/// Most summaries built in one call of [`SchedulerState::due_except`].
const SUMMARIES_PER_PASS: usize = 4;

/// Most distinct lists of scan-count names, and registry names, shared (there are a handful).
const MAX_SHARED_NAMES: usize = 256;

/// The largest key, for range bounds that include every key at a moment.
fn max_key<T: From<&'static str>>() -> T {
    T::from("\u{10FFFF}")
}

/// A decision: an event whose id and job id derive from `seed`, created at `now`, cause
/// `schedule`.
fn decided(seed: &str, now: u64, message: Message) -> Envelope {
    Envelope {
        id: MessageId::derived(seed.as_bytes()),
        job_id: JobId::derived(seed.as_bytes()),
        cause: Cause::Schedule,
        created_at: Timestamp::from_unix_millis(now),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_common::index::test_support::sample_entry;
    use slipway_common::message::test_support::{sample_built, sample_digest};
    use slipway_common::message::{CommitSha, ImageRetired, IndexApplied, ScanCompleted};

    const PERIOD: u64 = 1_000_000;

    fn timing() -> Timing {
        Timing {
            period_ms: PERIOD,
            max_rebuild_delay_ms: 60_000,
            max_summary_images: 100,
        }
    }

    fn entry(job: &str, owner: &str) -> Entry {
        Entry {
            app_id: "team".into(),
            job_id: job.into(),
            desired_tag: "1".into(),
            notify_email: Some(owner.into()),
            rebuild_schedule: None,
            ..sample_entry()
        }
    }

    fn at(millis: u64, cause: Cause, message: Message) -> Envelope {
        Envelope {
            created_at: Timestamp::from_unix_millis(millis),
            ..Envelope::new_job(cause, message)
        }
    }

    fn built(job: &str, owner: &str, millis: u64) -> Envelope {
        let entry = entry(job, owner);
        at(
            millis,
            Cause::User,
            Message::BuildSucceeded(sample_built(entry)),
        )
    }

    fn image_key(job: &str) -> String {
        format!("team/{job}:1")
    }

    /// Fold the decisions due at `now`, as the leader publishes them; returns their seeds'
    /// kinds and subjects.
    fn run(state: &mut SchedulerState, now: u64) -> Vec<String> {
        let due = state.due(now, usize::MAX);
        let mut seen = Vec::new();
        for decision in due {
            let subject = match &decision.envelope.message {
                Message::ScanRequested(r) => format!("rescan {}", r.image),
                Message::BuildRequested(r) => format!("rebuild {}", r.entry.image()),
                Message::SummaryReady(s) => {
                    format!("summary {} {}", s.notify_email, s.images.len())
                }
                other => panic!("unexpected decision {other:?}"),
            };
            seen.push(subject);
            state.apply(&decision.envelope);
        }
        seen
    }

    #[test]
    fn a_stored_digest_gives_back_the_digest() {
        for digest in [
            sample_digest("ab"),
            Digest::parse(&format!("sha256:{}", "0f".repeat(32))).unwrap(),
            Digest::parse(&format!("sha512:{}", "cd".repeat(64))).unwrap(),
        ] {
            assert_eq!(StoredDigest::of(&digest).digest(), Some(digest.clone()));
        }
        assert!(matches!(
            StoredDigest::of(&sample_digest("ab")),
            StoredDigest::Sha256(_)
        ));
    }

    #[test]
    fn offsets_are_stable_and_spread_over_the_period() {
        assert_eq!(offset("team/a:1", PERIOD), offset("team/a:1", PERIOD));
        let mut tenths = [0usize; 10];
        for n in 0..5000 {
            tenths[(offset(&format!("team/img{n}:1"), PERIOD) * 10 / PERIOD) as usize] += 1;
        }
        assert!(
            tenths.iter().all(|count| (350..=650).contains(count)),
            "{tenths:?}"
        );
    }

    #[test]
    fn each_image_is_requested_once_per_period_at_its_offset() {
        let mut state = SchedulerState::new(timing());
        let start = 50 * PERIOD;
        for job in ["a", "b", "c"] {
            state.apply(&built(job, "owner@example.org", start));
        }
        assert_eq!(state.live_images(), 3);
        // Nothing is due within the slot the build served.
        let mut requested: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        // Walk three periods in steps of a thousandth.
        let mut now = start;
        while now < start + 3 * PERIOD {
            for decided in state.due(now, usize::MAX) {
                if let Message::ScanRequested(r) = &decided.envelope.message {
                    requested.entry(r.image.to_string()).or_default().push(now);
                    assert_eq!(decided.envelope.cause, Cause::Schedule);
                    assert!(decided.at <= now && now - decided.at < PERIOD / 1000 + 1);
                }
                state.apply(&decided.envelope);
            }
            now += PERIOD / 1000;
        }
        assert_eq!(requested.len(), 3);
        for (image, times) in &requested {
            assert_eq!(times.len(), 3, "{image}: {times:?}");
            let key = image.trim_start_matches("127.0.0.1:5000/");
            let o = offset(key, PERIOD);
            for (k, time) in times.iter().enumerate() {
                // The build served the slot it fell in; the next one starts less than a
                // period later.
                let expected = (50 + k as u64) * PERIOD + o;
                assert!(
                    *time >= expected && *time - expected <= PERIOD / 1000,
                    "{image}: requested at {time}, due at {expected}"
                );
            }
        }
    }

    #[test]
    fn a_decision_is_the_same_event_whoever_decides_it_and_once_folded_it_is_not_due() {
        let mut state = SchedulerState::new(timing());
        state.apply(&built("a", "o@example.org", 10 * PERIOD));
        let now = 12 * PERIOD;
        let first = state.due(now, usize::MAX);
        let again = state.due(now + 5, usize::MAX);
        assert_eq!(
            first.len(),
            2,
            "a rescan and the owner's summary: {first:?}"
        );
        assert_eq!(
            first.iter().map(|d| d.envelope.id).collect::<Vec<_>>(),
            again.iter().map(|d| d.envelope.id).collect::<Vec<_>>(),
            "ids derive from what the decision is for, not from when it is made"
        );
        for decided in &first {
            state.apply(&decided.envelope);
        }
        assert!(state.due(now + 5, usize::MAX).is_empty());
        // A late leader (missed a whole period) asks once, for the current slot only.
        let later = 15 * PERIOD + PERIOD / 2;
        let due = run(&mut state, later + PERIOD);
        assert_eq!(
            due.iter().filter(|d| d.starts_with("rescan")).count(),
            1,
            "{due:?}"
        );
    }

    #[test]
    fn a_retired_image_is_not_rescanned_and_a_stale_request_does_not_revive_it() {
        let mut state = SchedulerState::new(timing());
        state.apply(&built("a", "o@example.org", 10 * PERIOD));
        state.apply(&built("b", "o@example.org", 10 * PERIOD));
        let retired = entry("a", "o@example.org");
        state.apply(&at(
            10 * PERIOD + 1,
            Cause::IndexChange,
            Message::ImageRetired(ImageRetired {
                entry: retired,
                index_commit: CommitSha::try_from("ab".repeat(20)).unwrap(),
                delete_tag: false,
            }),
        ));
        assert_eq!(state.live_images(), 1);
        // An overlapping leader's request for it, folded later, does not bring it back.
        state.apply(&at(
            11 * PERIOD,
            Cause::Schedule,
            Message::ScanRequested(ScanRequested {
                image: ImageRef::parse("127.0.0.1:5000/team/a:1").unwrap(),
                digest: None,
                notify_email: None,
            }),
        ));
        assert_eq!(state.live_images(), 1);
        let due = run(&mut state, 12 * PERIOD);
        assert!(
            due.contains(&"rescan 127.0.0.1:5000/team/b:1".to_owned()),
            "{due:?}"
        );
        assert!(!due.iter().any(|d| d.contains("team/a")), "{due:?}");
        // A new build brings it back.
        state.apply(&built("a", "o@example.org", 13 * PERIOD));
        assert_eq!(state.live_images(), 2);
    }

    #[test]
    fn the_schedules_own_requests_keep_an_image_known_after_its_build_aged_out() {
        let mut state = SchedulerState::new(timing());
        // Only a scheduled request is left of the image in the history.
        state.apply(&at(
            20 * PERIOD,
            Cause::Schedule,
            Message::ScanRequested(ScanRequested {
                image: ImageRef::parse("127.0.0.1:5000/team/old:1").unwrap(),
                digest: None,
                notify_email: Some("o@example.org".into()),
            }),
        ));
        // A user's rescan of some image does not make it live.
        state.apply(&at(
            20 * PERIOD,
            Cause::User,
            Message::ScanRequested(ScanRequested {
                image: ImageRef::parse("127.0.0.1:5000/team/other:1").unwrap(),
                digest: None,
                notify_email: None,
            }),
        ));
        assert_eq!(
            state.images(),
            [ImageRef::parse("127.0.0.1:5000/team/old:1").unwrap()]
        );
        let due = run(&mut state, 22 * PERIOD);
        assert!(
            due.contains(&"rescan 127.0.0.1:5000/team/old:1".to_owned()),
            "{due:?}"
        );
    }

    #[test]
    fn one_summary_per_owner_and_period_lists_its_images_with_their_latest_counts() {
        let mut state = SchedulerState::new(timing());
        for job in ["a", "b", "c"] {
            state.apply(&built(job, "one@example.org", 10 * PERIOD));
        }
        state.apply(&built("d", "two@example.org", 10 * PERIOD));
        state.apply(&at(
            10 * PERIOD + 5,
            Cause::User,
            Message::ScanCompleted(ScanCompleted {
                image: ImageRef::parse("127.0.0.1:5000/team/b:1").unwrap(),
                digest: sample_digest("ee"),
                counts: [("os-updates".to_owned(), 4)].into_iter().collect(),
                notify_email: Some("one@example.org".into()),
            }),
        ));
        let mut summaries = Vec::new();
        for now in [12 * PERIOD, 12 * PERIOD + 1, 14 * PERIOD] {
            for decided in state.due(now, usize::MAX) {
                if let Message::SummaryReady(summary) = &decided.envelope.message {
                    summaries.push(summary.clone());
                }
                state.apply(&decided.envelope);
            }
        }
        let one: Vec<&SummaryReady> = summaries
            .iter()
            .filter(|s| s.notify_email == "one@example.org")
            .collect();
        assert_eq!(one.len(), 2, "one per period: {summaries:?}");
        let images: Vec<String> = one[0].images.iter().map(|i| i.image.to_string()).collect();
        assert_eq!(
            images,
            [
                "127.0.0.1:5000/team/a:1",
                "127.0.0.1:5000/team/b:1",
                "127.0.0.1:5000/team/c:1"
            ]
        );
        assert_eq!(one[0].images[1].counts.get("os-updates"), Some(&4));
        assert_eq!(one[0].images[1].digest, Some(sample_digest("ee")));
        assert!(one[0].images[0].counts.is_empty());
        assert_eq!(one[0].period_end - one[0].period_start, PERIOD);
        assert_eq!(
            summaries
                .iter()
                .filter(|s| s.notify_email == "two@example.org")
                .count(),
            2
        );
    }

    #[test]
    fn a_summary_is_bounded_and_says_how_many_it_left_out_and_a_pass_builds_a_few() {
        let mut state = SchedulerState::new(Timing {
            max_summary_images: 2,
            ..timing()
        });
        for job in ["a", "b", "c", "d", "e"] {
            state.apply(&built(job, "big@example.org", 10 * PERIOD));
        }
        for n in 0..10 {
            state.apply(&built(
                &format!("x{n}"),
                &format!("o{n}@example.org"),
                10 * PERIOD,
            ));
        }
        let due = state.due(12 * PERIOD, usize::MAX);
        let summaries: Vec<&SummaryReady> = due
            .iter()
            .filter_map(|d| match &d.envelope.message {
                Message::SummaryReady(summary) => Some(summary),
                _ => None,
            })
            .collect();
        assert_eq!(summaries.len(), SUMMARIES_PER_PASS, "eleven owners are due");
        if let Some(big) = summaries
            .iter()
            .find(|s| s.notify_email == "big@example.org")
        {
            assert_eq!((big.images.len(), big.omitted), (2, 3));
        }
        // Passes go on until every owner had its summary.
        let mut owners = BTreeSet::new();
        for _ in 0..5 {
            for decided in state.due(12 * PERIOD, usize::MAX) {
                if let Message::SummaryReady(summary) = &decided.envelope.message {
                    owners.insert(summary.notify_email.clone());
                }
                state.apply(&decided.envelope);
            }
        }
        assert_eq!(owners.len(), 11);
    }

    #[test]
    fn a_rebuild_schedule_fires_at_each_firing_once_and_skips_what_it_missed() {
        let timing = Timing {
            period_ms: 7 * 86_400_000,
            max_rebuild_delay_ms: 60_000,
            max_summary_images: 10,
        };
        let mut state = SchedulerState::new(timing);
        let mut nightly = entry("nightly", "o@example.org");
        nightly.rebuild_schedule = Some("0 2 * * *".into());
        // 2026-12-06T00:00:00Z.
        let midnight = 1_796_515_200_000;
        state.apply(&at(
            midnight,
            Cause::IndexChange,
            Message::IndexApplied(IndexApplied {
                git_url: "https://git.example.org/index".into(),
                git_branch: "main".into(),
                commit: CommitSha::try_from("ab".repeat(20)).unwrap(),
                entries: vec![nightly.clone(), entry("plain", "o@example.org")],
            }),
        ));
        assert_eq!(state.scheduled_rebuilds(), 1);
        let two = midnight + 2 * 3_600_000;
        assert_eq!(state.next_due(midnight), Some(two));
        assert!(run(&mut state, two - 1).is_empty());
        assert_eq!(run(&mut state, two + 500), ["rebuild team/nightly:1"]);
        assert!(run(&mut state, two + 1_000).is_empty(), "once per firing");
        // The same index again (the daily checkpoint) keeps what was fired.
        state.apply(&at(
            two + 2_000,
            Cause::IndexChange,
            Message::IndexApplied(IndexApplied {
                git_url: "https://git.example.org/index".into(),
                git_branch: "main".into(),
                commit: CommitSha::try_from("ab".repeat(20)).unwrap(),
                entries: vec![nightly],
            }),
        ));
        assert!(run(&mut state, two + 3_000).is_empty());
        // The next night, nobody led until 02:05: that firing is skipped, not made up.
        let next = two + 86_400_000;
        assert!(run(&mut state, next + 5 * 60_000).is_empty());
        assert_eq!(state.next_due(next + 5 * 60_000), Some(next + 86_400_000));
    }

    #[test]
    fn a_restart_folds_the_same_history_into_the_same_schedule() {
        let mut history = Vec::new();
        for (n, job) in ["a", "b", "c", "d"].iter().enumerate() {
            history.push(built(job, "o@example.org", 10 * PERIOD + n as u64 * 1000));
        }
        let mut first = SchedulerState::new(timing());
        for event in &history {
            first.apply(event);
        }
        // The first instance runs for two periods; its decisions go to the history.
        let mut now = 10 * PERIOD;
        while now < 12 * PERIOD {
            for decided in first.due(now, usize::MAX) {
                first.apply(&decided.envelope);
                history.push(decided.envelope);
            }
            now += PERIOD / 100;
        }
        let mut restarted = SchedulerState::new(timing());
        for event in &history {
            restarted.apply(event);
        }
        assert_eq!(restarted.planned(now, 100), first.planned(now, 100));
        assert_eq!(restarted.next_due(now), first.next_due(now));
        assert!(restarted.due(now, usize::MAX).is_empty());
    }

    #[test]
    fn the_lag_counts_what_is_due_and_since_when() {
        let mut state = SchedulerState::new(timing());
        state.apply(&built("a", "o@example.org", 10 * PERIOD));
        let o = offset(&image_key("a"), PERIOD);
        let due_at = 10 * PERIOD + o;
        assert_eq!(state.lag(10 * PERIOD), (0, 0));
        let (count, lag) = state.lag(due_at + 250);
        assert!(count >= 1);
        assert!(lag >= 250, "{lag}");
        let planned = state.planned(10 * PERIOD, 10);
        assert!(planned.iter().any(|p| p.what == "rescan" && p.at == due_at));
        assert!(planned.iter().any(|p| p.what == "summary"));
    }
}
