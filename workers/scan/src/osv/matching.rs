//! Whether an installed version is affected by an OSV `affected` entry, with the schema's
//! semantics ("Evaluation" in the OSV schema) and each ecosystem's own version ordering.
//!
//! A version is affected when it is listed in `versions` or lies in a range:
//! - `ECOSYSTEM` ranges compare with the package's ecosystem ordering ([`version::compare`]:
//!   dpkg, rpm, apk, PEP 440, node-semver, `Gem::Version`), `SEMVER` ranges with SemVer
//!   precedence (the npm ordering); `GIT` ranges need the repository and are skipped, as are
//!   range types the schema does not define (the loader counts both);
//! - `introduced` is inclusive and `"0"` means "from the first version", `fixed` is exclusive,
//!   `last_affected` inclusive; several `introduced`/`fixed` pairs make several intervals;
//! - when a range has `limit` events, only versions below one of them (`*`: no limit) are in it.
//!
//! The schema walks a range's events sorted by version and lets each event at or below the
//! installed version set the state (`introduced` on, `fixed` and — strictly below —
//! `last_affected` off). That is the state set by the greatest such event, which is what
//! [`in_range`] computes without sorting, so a record whose versions do not order consistently
//! cannot make it panic. Two events at the same version: `fixed` or `last_affected` wins over
//! `introduced`, so an `introduced X`, `fixed X` pair is an empty interval.
//!
//! `versions` entries are compared with the same ordering, so `1.0` lists PyPI's `1.0.0` too,
//! as PEP 440 says they are the same version.

use std::cmp::Ordering;

use super::record::{Affected, Event, Range, RangeKind};
use crate::package::Ecosystem;
use crate::version;

/// The fixed versions of `affected` that apply to `version` when it is affected, `None` when it
/// is not. `ecosystem` is the installed package's.
///
/// The fixed versions are, for each evaluable range, the lowest `fixed` above `version`, lowest
/// first and without repeats; an affected version with no fix yet gets an empty list.
pub fn affected_by(
    affected: &Affected,
    ecosystem: Ecosystem,
    version: &str,
) -> Option<Vec<String>> {
    let listed = affected
        .versions
        .iter()
        .any(|listed| version::compare(ecosystem, listed, version) == Ordering::Equal);
    let evaluable: Vec<(&Range, Ecosystem)> = affected
        .ranges
        .iter()
        .filter_map(|range| Some((range, ordering(&range.kind, ecosystem)?)))
        .collect();
    let in_a_range = evaluable
        .iter()
        .any(|(range, order)| in_range(&range.events, *order, version));
    if !listed && !in_a_range {
        return None;
    }
    // Inserted in order rather than sorted: a sort may panic on an ordering that is not total,
    // and versions from outside are not trusted to make one.
    let mut fixes: Vec<String> = Vec::new();
    for (range, order) in &evaluable {
        let Some(fix) = next_fix(&range.events, *order, version) else {
            continue;
        };
        if fixes.iter().any(|known| known == fix) {
            continue;
        }
        let at = fixes
            .iter()
            .position(|known| version::compare(*order, fix, known).is_lt())
            .unwrap_or(fixes.len());
        fixes.insert(at, fix.to_owned());
    }
    Some(fixes)
}

/// The ordering a range's versions follow, or `None` for ranges that cannot be evaluated here.
fn ordering(kind: &RangeKind, ecosystem: Ecosystem) -> Option<Ecosystem> {
    match kind {
        RangeKind::Ecosystem => Some(ecosystem),
        RangeKind::Semver => Some(Ecosystem::Npm),
        RangeKind::Git | RangeKind::Other(_) => None,
    }
}

/// Whether `version` lies in the range made of `events`, versions ordered as `order`'s.
pub fn in_range(events: &[Event], order: Ecosystem, version: &str) -> bool {
    let cmp = |a: &str, b: &str| version::compare(order, a, b);
    let mut limits = events.iter().filter_map(|event| match event {
        Event::Limit(limit) => Some(limit.as_str()),
        _ => None,
    });
    let has_limits = events.iter().any(|event| matches!(event, Event::Limit(_)));
    if has_limits && !limits.any(|limit| limit.contains('*') || cmp(version, limit).is_lt()) {
        return false;
    }
    // The events at or below `version` that set the state, each with where it stands.
    let setting = events.iter().filter_map(|event| match event {
        Event::Introduced(at) if at == "0" => Some((Point::Start, event)),
        Event::Introduced(at) | Event::Fixed(at) if cmp(version, at).is_ge() => {
            Some((Point::At(at), event))
        }
        Event::LastAffected(at) if cmp(version, at).is_gt() => Some((Point::At(at), event)),
        _ => None,
    });
    let last = setting.max_by(|(a, a_event), (b, b_event)| {
        a.cmp_with(b, &cmp)
            .then_with(|| turns_off(a_event).cmp(&turns_off(b_event)))
    });
    matches!(last, Some((_, Event::Introduced(_))))
}

/// The lowest `fixed` above `version` in a range, if any.
fn next_fix<'a>(events: &'a [Event], order: Ecosystem, version: &str) -> Option<&'a str> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Fixed(at) if version::compare(order, version, at).is_lt() => Some(at.as_str()),
            _ => None,
        })
        .min_by(|a, b| version::compare(order, a, b))
}

/// Whether an event ends an interval (what wins a tie with an `introduced`).
fn turns_off(event: &Event) -> bool {
    matches!(event, Event::Fixed(_) | Event::LastAffected(_))
}

/// Where an event stands in a range's timeline.
#[derive(Clone, Copy, Debug)]
enum Point<'a> {
    /// `introduced: "0"`: before every version.
    Start,
    /// At a version.
    At(&'a str),
}

impl Point<'_> {
    /// Orders two points, versions by `cmp`.
    fn cmp_with(&self, other: &Self, cmp: &impl Fn(&str, &str) -> Ordering) -> Ordering {
        match (self, other) {
            (Point::Start, Point::Start) => Ordering::Equal,
            (Point::Start, Point::At(_)) => Ordering::Less,
            (Point::At(_), Point::Start) => Ordering::Greater,
            (Point::At(a), Point::At(b)) => cmp(a, b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn introduced(v: &str) -> Event {
        Event::Introduced(v.to_owned())
    }
    fn fixed(v: &str) -> Event {
        Event::Fixed(v.to_owned())
    }
    fn last_affected(v: &str) -> Event {
        Event::LastAffected(v.to_owned())
    }
    fn limit(v: &str) -> Event {
        Event::Limit(v.to_owned())
    }

    fn entry(kind: RangeKind, events: Vec<Event>, versions: &[&str]) -> Affected {
        Affected {
            ecosystem: "test".to_owned(),
            name: "test".to_owned(),
            ranges: vec![Range { kind, events }],
            versions: versions.iter().map(|v| (*v).to_owned()).collect(),
            severity: vec![],
        }
    }

    /// Asserts which of `versions` are in the range, by `order`.
    #[track_caller]
    fn check(order: Ecosystem, events: &[Event], cases: &[(&str, bool)]) {
        for &(version, expected) in cases {
            assert_eq!(
                in_range(events, order, version),
                expected,
                "{version} in {events:?} ({order:?})"
            );
        }
    }

    #[test]
    fn fixed_is_exclusive_and_introduced_inclusive() {
        let events = [introduced("1.2-1"), fixed("1.4-2")];
        check(
            Ecosystem::Deb,
            &events,
            &[
                ("1.1-9", false),
                ("1.2-1", true),
                ("1.4-1", true),
                ("1.4-2~deb12u1", true),
                ("1.4-2", false),
                ("1:1.0-1", false),
            ],
        );
    }

    #[test]
    fn introduced_zero_is_the_beginning_in_every_ordering() {
        for order in [
            Ecosystem::Deb,
            Ecosystem::Rpm,
            Ecosystem::Npm,
            Ecosystem::Pypi,
        ] {
            check(
                order,
                &[introduced("0"), fixed("2.0.0")],
                &[("0.0.1", true), ("1.9.0", true), ("2.0.0", false)],
            );
        }
        // Unparseable versions sort first, so they count as affected rather than as fixed.
        check(
            Ecosystem::Npm,
            &[introduced("0"), fixed("1.0.0")],
            &[("not a version", true)],
        );
    }

    #[test]
    fn last_affected_is_inclusive() {
        check(
            Ecosystem::Pypi,
            &[introduced("0"), last_affected("2.1.214")],
            &[
                ("2.1.213", true),
                ("2.1.214", true),
                ("2.1.214.post1", false),
                ("2.2", false),
            ],
        );
    }

    #[test]
    fn several_intervals_in_any_event_order() {
        let events = [
            introduced("3.0.0"),
            fixed("3.2.5"),
            fixed("1.0.2"),
            introduced("1.0.0"),
        ];
        check(
            Ecosystem::Npm,
            &events,
            &[
                ("0.9.0", false),
                ("1.0.0", true),
                ("1.0.2-rc.1", true),
                ("1.0.2", false),
                ("2.9.9", false),
                ("3.0.0", true),
                ("3.2.4", true),
                ("3.2.5", false),
            ],
        );
    }

    #[test]
    fn limits_bound_the_range() {
        check(
            Ecosystem::Npm,
            &[introduced("1.0.0"), limit("2.0.0")],
            &[("1.5.0", true), ("2.0.0", false), ("3.0.0", false)],
        );
        check(
            Ecosystem::Npm,
            &[introduced("1.0.0"), limit("*")],
            &[("9.0.0", true)],
        );
    }

    #[test]
    fn equal_introduced_and_fixed_is_empty() {
        check(
            Ecosystem::Deb,
            &[fixed("1.0"), introduced("1.0")],
            &[("1.0", false), ("0.9", false)],
        );
        check(
            Ecosystem::Deb,
            &[introduced("1.0"), last_affected("1.0")],
            &[("1.0", true), ("1.0-1", false)],
        );
    }

    #[test]
    fn a_range_without_introduced_affects_nothing() {
        check(
            Ecosystem::Deb,
            &[fixed("2.0")],
            &[("1.0", false), ("3.0", false)],
        );
    }

    #[test]
    fn epochs_and_tildes_order_as_their_ecosystem_says() {
        let deb = [introduced("0"), fixed("1:2.36-9+deb12u3")];
        check(
            Ecosystem::Deb,
            &deb,
            &[
                ("2.99-1", true), // No epoch: epoch 0, below any epoch 1 version.
                ("1:2.36-9+deb12u2", true),
                ("1:2.36-9+deb12u3~1", true),
                ("1:2.36-9+deb12u3", false),
                ("1:2.36-9+deb12u3+b1", false),
            ],
        );
        let rpm = [introduced("0"), fixed("0:3.0.7-27.el9")];
        check(
            Ecosystem::Rpm,
            &rpm,
            &[
                ("3.0.7-26.el9", true),
                ("3.0.7-27.el9", false), // A missing epoch is epoch 0.
                ("3.0.7-27.el9~rc1", true),
                ("1:3.0.1-1.el9", false),
            ],
        );
    }

    #[test]
    fn versions_lists_git_ranges_and_fix_lists() {
        let pypi = entry(
            RangeKind::Ecosystem,
            vec![
                introduced("2.0"),
                fixed("2.2.1"),
                introduced("3.0"),
                fixed("3.0.4"),
            ],
            &["1.9"],
        );
        assert_eq!(
            affected_by(&pypi, Ecosystem::Pypi, "1.9.0"),
            Some(vec!["2.2.1".to_owned()])
        );
        assert_eq!(
            affected_by(&pypi, Ecosystem::Pypi, "2.1"),
            Some(vec!["2.2.1".to_owned()])
        );
        assert_eq!(
            affected_by(&pypi, Ecosystem::Pypi, "3.0.1"),
            Some(vec!["3.0.4".to_owned()])
        );
        assert_eq!(affected_by(&pypi, Ecosystem::Pypi, "2.2.1"), None);
        assert_eq!(affected_by(&pypi, Ecosystem::Pypi, "1.8"), None);

        let mut branches = entry(
            RangeKind::Ecosystem,
            vec![introduced("0"), fixed("2.0-1")],
            &[],
        );
        branches.ranges.push(Range {
            kind: RangeKind::Ecosystem,
            events: vec![introduced("0"), fixed("1.10-1")],
        });
        branches.ranges.push(Range {
            kind: RangeKind::Ecosystem,
            events: vec![introduced("0"), fixed("1.9-1")],
        });
        assert_eq!(
            affected_by(&branches, Ecosystem::Deb, "1.0-1"),
            Some(vec![
                "1.9-1".to_owned(),
                "1.10-1".to_owned(),
                "2.0-1".to_owned()
            ])
        );

        let unfixed = entry(RangeKind::Ecosystem, vec![introduced("0")], &[]);
        assert_eq!(affected_by(&unfixed, Ecosystem::Deb, "1.0-1"), Some(vec![]));

        let git = entry(RangeKind::Git, vec![introduced("0"), fixed("abcdef")], &[]);
        assert_eq!(affected_by(&git, Ecosystem::Npm, "1.0.0"), None);
        let other = entry(RangeKind::Other("X".to_owned()), vec![introduced("0")], &[]);
        assert_eq!(affected_by(&other, Ecosystem::Npm, "1.0.0"), None);

        // SEMVER ranges use SemVer precedence whatever the package's ecosystem.
        let semver = entry(
            RangeKind::Semver,
            vec![introduced("0"), fixed("1.0.0")],
            &[],
        );
        assert_eq!(
            affected_by(&semver, Ecosystem::Gem, "1.0.0-rc.1"),
            Some(vec!["1.0.0".to_owned()])
        );
    }

    /// Events of any kinds over versions of any shape.
    fn events() -> impl Strategy<Value = Vec<Event>> {
        let version = prop_oneof![
            Just("0".to_owned()),
            Just("*".to_owned()),
            any::<String>(),
            "[0-9]{1,2}(:[0-9.]{1,5})?(\\.[0-9]{1,3}){0,2}([-~+^_.][a-z0-9]{0,4}){0,2}",
        ];
        let event = (0..4u8, version).prop_map(|(kind, v)| match kind {
            0 => Event::Introduced(v),
            1 => Event::Fixed(v),
            2 => Event::LastAffected(v),
            _ => Event::Limit(v),
        });
        proptest::collection::vec(event, 0..8)
    }

    proptest! {
        #[test]
        fn matching_never_panics(
            events in events(),
            version in prop_oneof![any::<String>(), "[0-9]{1,2}(\\.[0-9]{1,3}){0,2}(-[a-z0-9.~+]{1,4})?"],
            listed in proptest::collection::vec(any::<String>(), 0..3),
        ) {
            for order in Ecosystem::ALL {
                let affected = Affected {
                    ecosystem: "x".to_owned(),
                    name: "x".to_owned(),
                    ranges: vec![
                        Range { kind: RangeKind::Ecosystem, events: events.clone() },
                        Range { kind: RangeKind::Semver, events: events.clone() },
                    ],
                    versions: listed.clone(),
                    severity: vec![],
                };
                let _ = affected_by(&affected, order, &version);
            }
        }

        #[test]
        fn one_interval_is_introduced_up_to_fixed(
            a in "[0-9]{1,2}(\\.[0-9]{1,2}){0,2}(-[0-9a-z~+.]{1,3})?",
            b in "[0-9]{1,2}(\\.[0-9]{1,2}){0,2}(-[0-9a-z~+.]{1,3})?",
            v in "[0-9]{1,2}(\\.[0-9]{1,2}){0,2}(-[0-9a-z~+.]{1,3})?",
        ) {
            for order in [Ecosystem::Deb, Ecosystem::Rpm, Ecosystem::Apk] {
                let events = [Event::Introduced(a.clone()), Event::Fixed(b.clone())];
                // As the schema's sorted walk decides: `introduced` "0" is the start, a
                // `fixed` at or below `introduced` leaves everything from `introduced` on
                // affected, and one at the same version wins.
                let cmp = |x: &str, y: &str| version::compare(order, x, y);
                let from_a = a == "0" || cmp(&v, &a).is_ge();
                let expected = match (a == "0", cmp(&a, &b)) {
                    (true, _) | (false, Ordering::Less) => from_a && cmp(&v, &b).is_lt(),
                    (false, Ordering::Equal) => false,
                    (false, Ordering::Greater) => from_a,
                };
                prop_assert_eq!(in_range(&events, order, &v), expected, "{:?}", order);
            }
        }
    }
}
