//! Retiring an image's tag (an `image.retired` that asks for it): whether the manifest the tag
//! names may be deleted, decided from what the registry holds. The registry API cannot delete a
//! tag, only a manifest, and that takes every tag naming it away; so the manifest goes only when
//! no tag but the image's own (its desired tag and its test tag) names it, and when it was not
//! pushed after the retirement (the entry came back and was built again while the retirement
//! waited).

use slipway_common::message::{ImageRemoved, Removal};
use slipway_common::{Digest, ImageRef, Timestamp};

use crate::plan::test_tag;

/// What the registry says about a retired image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryFacts {
    /// The manifest the retired tag names; `None` when the tag is absent.
    pub digest: Option<Digest>,
    /// When that image was created (its configuration's `created`, RFC 3339 UTC), if known.
    pub created: Option<String>,
    /// The repository's other tags (not the image's own) that name the same manifest.
    pub sharing: Vec<String>,
    /// Whether every tag of the repository was looked at (a repository with more tags than
    /// are listed cannot be shown free of sharers).
    pub every_tag_checked: bool,
}

/// What to do about the retired tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to delete: the registry holds no such tag.
    Absent,
    /// Delete this manifest.
    Delete(Digest),
    /// Keep this manifest, for this reason.
    Keep(Digest, String),
}

/// The tags that belong to the image of `desired_tag` alone: the tag itself and its test tag,
/// which names the same manifest after promotion.
pub fn own_tags(desired_tag: &str) -> [String; 2] {
    [desired_tag.to_owned(), test_tag(desired_tag)]
}

/// Decide for the image retired at `retired_at`, given what the registry holds.
pub fn decide(retired_at: Timestamp, facts: &RegistryFacts) -> Decision {
    let Some(digest) = facts.digest.clone() else {
        return Decision::Absent;
    };
    if !facts.sharing.is_empty() {
        let shown: Vec<&str> = facts.sharing.iter().take(5).map(String::as_str).collect();
        let more = facts.sharing.len().saturating_sub(shown.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        return Decision::Keep(
            digest,
            format!(
                "the manifest is also tagged {}{more}; deleting it would remove those tags too",
                shown.join(", ")
            ),
        );
    }
    if !facts.every_tag_checked {
        return Decision::Keep(
            digest,
            "the repository has more tags than were listed, so no other tag can be ruled out"
                .to_owned(),
        );
    }
    if let Some(created) = &facts.created
        && created_since(created, retired_at)
    {
        return Decision::Keep(
            digest,
            format!(
                "the image was created at {created}, after its retirement at {}: it was built again",
                retired_at.to_rfc3339()
            ),
        );
    }
    Decision::Delete(digest)
}

/// Whether an RFC 3339 UTC time (`2026-12-06T02:40:00.123Z`) is at or after `moment`, to the
/// second. A time in another form is not (the guard then does not hold the deletion back).
fn created_since(created: &str, moment: Timestamp) -> bool {
    let seconds = created.get(..19).filter(|head| {
        head.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        })
    });
    let utc = created.ends_with('Z');
    match seconds {
        Some(head) if utc => head >= &moment.to_rfc3339()[..19],
        _ => false,
    }
}

/// The `image.removed` payload for `image` after `decision` was carried out (`deleted` says
/// whether the delete found the manifest still there).
pub fn removed(image: &ImageRef, decision: Decision, deleted: bool) -> ImageRemoved {
    let (outcome, digest, detail) = match decision {
        Decision::Absent => (
            Removal::Absent,
            None,
            "the registry holds no such tag".to_owned(),
        ),
        Decision::Keep(digest, why) => (Removal::Kept, Some(digest), why),
        Decision::Delete(digest) if deleted => (
            Removal::Deleted,
            Some(digest),
            "the manifest and its tags were deleted; the registry's garbage collection frees \
             its layers"
                .to_owned(),
        ),
        Decision::Delete(digest) => (
            Removal::Absent,
            Some(digest),
            "the manifest was already gone when it was to be deleted".to_owned(),
        ),
    };
    ImageRemoved {
        image: image.clone(),
        outcome,
        digest,
        detail,
    }
}

/// The `image.removed` payload for a registry that refused.
pub fn refused(image: &ImageRef, digest: Option<Digest>, error: String) -> ImageRemoved {
    ImageRemoved {
        image: image.clone(),
        outcome: Removal::Failed,
        digest,
        detail: format!("the tag stays: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_common::message::test_support::sample_digest;

    /// 2026-12-06T10:00:00Z.
    fn retired_at() -> Timestamp {
        Timestamp::from_unix_millis(1_796_551_200_000)
    }

    fn facts(sharing: &[&str]) -> RegistryFacts {
        RegistryFacts {
            digest: Some(sample_digest("ab")),
            created: Some("2026-12-01T08:00:00.123456789Z".to_owned()),
            sharing: sharing.iter().map(|tag| tag.to_string()).collect(),
            every_tag_checked: true,
        }
    }

    #[test]
    fn the_sample_moment_is_the_one_named() {
        assert_eq!(retired_at().to_rfc3339(), "2026-12-06T10:00:00Z");
    }

    #[test]
    fn a_manifest_only_the_images_own_tags_name_is_deleted() {
        assert_eq!(
            decide(retired_at(), &facts(&[])),
            Decision::Delete(sample_digest("ab"))
        );
        assert_eq!(own_tags("1.0"), ["1.0", "1.0-slipway-test"]);
    }

    #[test]
    fn a_manifest_another_tag_names_is_kept_naming_the_tags() {
        let Decision::Keep(digest, why) = decide(retired_at(), &facts(&["latest", "1"])) else {
            panic!("a shared manifest must be kept");
        };
        assert_eq!(digest, sample_digest("ab"));
        assert!(why.contains("latest, 1"), "{why}");
        let many: Vec<String> = (0..8).map(|n| format!("v{n}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let Decision::Keep(_, why) = decide(retired_at(), &facts(&many)) else {
            panic!("kept");
        };
        assert!(why.contains("v4 and 3 more"), "{why}");
    }

    #[test]
    fn an_unlisted_rest_of_the_repository_keeps_the_manifest() {
        let mut cut = facts(&[]);
        cut.every_tag_checked = false;
        assert!(matches!(
            decide(retired_at(), &cut),
            Decision::Keep(_, why) if why.contains("more tags")
        ));
    }

    #[test]
    fn an_image_built_again_after_the_retirement_is_kept() {
        for (created, kept) in [
            ("2026-12-06T10:00:01.5Z", true),
            ("2026-12-06T10:00:00Z", true),
            ("2026-12-06T09:59:59.999Z", false),
            ("2027-01-01T00:00:00Z", true),
            // Not UTC or not RFC 3339: the guard does not apply.
            ("2026-12-06T12:00:00+02:00", false),
            ("yesterday", false),
            ("", false),
        ] {
            let mut later = facts(&[]);
            later.created = Some(created.to_owned());
            let decision = decide(retired_at(), &later);
            assert_eq!(
                matches!(decision, Decision::Keep(..)),
                kept,
                "{created}: {decision:?}"
            );
        }
    }

    #[test]
    fn an_absent_tag_needs_nothing() {
        let mut gone = facts(&["latest"]);
        gone.digest = None;
        assert_eq!(decide(retired_at(), &gone), Decision::Absent);
        let image = ImageRef::parse("127.0.0.1:5000/team/app:1").unwrap();
        assert_eq!(
            removed(&image, Decision::Absent, false).outcome,
            Removal::Absent
        );
        let deleted = removed(&image, Decision::Delete(sample_digest("ab")), true);
        assert_eq!(
            (deleted.outcome, deleted.digest),
            (Removal::Deleted, Some(sample_digest("ab")))
        );
        assert_eq!(
            removed(&image, Decision::Delete(sample_digest("ab")), false).outcome,
            Removal::Absent
        );
        assert_eq!(
            refused(&image, None, "HTTP 405".into()).outcome,
            Removal::Failed
        );
    }
}
