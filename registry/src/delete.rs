//! Listing a repository's tags and deleting a manifest: what retiring an image needs. The
//! registry API cannot delete a tag, only a manifest by digest (which takes every tag naming it
//! away), so deciding whether that is safe is left to the caller (`crate::retire`).

use reqwest::header::{HeaderMap, LINK};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use slipway_common::{Digest, ImageRef};

use super::{
    Access, RegistryClient, RegistryError, accept_manifests, body_excerpt, expect_status,
    read_body, status_error,
};

/// Most tags [`RegistryClient::tags`] reads from one repository; a longer list is cut there.
pub const MAX_TAGS_LISTED: usize = 1000;

/// Tags asked for per page.
const TAGS_PER_PAGE: usize = 100;

/// A repository's tags, as far as they were read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagList {
    /// The tags, in the registry's order (lexical, for Distribution).
    pub tags: Vec<String>,
    /// False when the repository has more than [`MAX_TAGS_LISTED`] tags and the list was cut.
    pub complete: bool,
}

impl RegistryClient {
    /// The tags of `image`'s repository (`GET /v2/<name>/tags/list`, following `Link` pages),
    /// at most [`MAX_TAGS_LISTED`]; an unknown repository has none.
    pub async fn tags(&self, image: &ImageRef) -> Result<TagList, RegistryError> {
        let repository = self.repository_of(image)?;
        let mut url = self.url(&format!("v2/{repository}/tags/list?n={TAGS_PER_PAGE}"))?;
        let mut tags = Vec::new();
        loop {
            let response = self
                .send(
                    Method::GET,
                    &url,
                    repository,
                    Access::Pull,
                    HeaderMap::new(),
                    None,
                )
                .await?;
            let status = response.status();
            if status == StatusCode::NOT_FOUND && tags.is_empty() {
                return Ok(TagList {
                    tags,
                    complete: true,
                });
            }
            let next = response
                .headers()
                .get(LINK)
                .and_then(|value| value.to_str().ok())
                .and_then(next_page);
            let body =
                expect_status(Method::GET, &url, response, &[StatusCode::OK], "200 OK").await?;
            let page = tag_page(&body).map_err(|found| RegistryError::Malformed {
                url: url.to_string(),
                expected: "a JSON object whose tags are a list of strings".to_owned(),
                found,
            })?;
            for tag in page {
                if tags.len() == MAX_TAGS_LISTED {
                    return Ok(TagList {
                        tags,
                        complete: false,
                    });
                }
                tags.push(tag);
            }
            match next {
                Some(path) => url = self.next_url(&url, &path)?,
                None => {
                    return Ok(TagList {
                        tags,
                        complete: true,
                    });
                }
            }
        }
    }

    /// Delete the manifest `digest` of `image`'s repository, and with it every tag that names it.
    /// `Ok(false)` when the registry did not hold it. A registry that does not allow deletes
    /// (Distribution without `storage.delete.enabled`) is a permanent error that says so.
    pub async fn delete_manifest(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let repository = self.repository_of(image)?;
        let url = self.url(&format!("v2/{repository}/manifests/{digest}"))?;
        let response = self
            .send(
                Method::DELETE,
                &url,
                repository,
                Access::Delete,
                accept_manifests(),
                None,
            )
            .await?;
        let status = response.status();
        match status {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NO_CONTENT => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            StatusCode::METHOD_NOT_ALLOWED => {
                let body = read_body(Method::DELETE, &url, response).await?;
                Err(RegistryError::Status {
                    method: Method::DELETE,
                    url: url.to_string(),
                    expected: "202 Accepted (the registry refuses deletes: with Distribution, \
                               set storage.delete.enabled: true)",
                    status,
                    body: body_excerpt(&body),
                })
            }
            _ => {
                let body = read_body(Method::DELETE, &url, response).await?;
                Err(status_error(
                    Method::DELETE,
                    &url,
                    "202 Accepted or 404",
                    status,
                    body,
                ))
            }
        }
    }

    /// The next page's URL: a path on this registry (a `Link` to another host is refused, so the
    /// credentials never follow it).
    fn next_url(&self, current: &Url, link: &str) -> Result<Url, RegistryError> {
        let next = current.join(link).map_err(|e| RegistryError::Malformed {
            url: current.to_string(),
            expected: "a Link header with a URL".to_owned(),
            found: format!("{link:?}: {e}"),
        })?;
        if next.origin() != current.origin() {
            return Err(RegistryError::Malformed {
                url: current.to_string(),
                expected: "a next page on the same registry".to_owned(),
                found: next.to_string(),
            });
        }
        Ok(next)
    }
}

/// The target of a `Link: <…>; rel="next"` header, if it has one.
fn next_page(header: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.trim().split_once(';')?;
        let is_next = params.split(';').any(|param| {
            param
                .trim()
                .strip_prefix("rel=")
                .is_some_and(|rel| rel.trim_matches('"') == "next")
        });
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_owned())
    })
}

/// The tags of one `tags/list` answer (`"tags": null` is none).
fn tag_page(body: &[u8]) -> Result<Vec<String>, String> {
    #[derive(Deserialize)]
    struct Page {
        #[serde(default)]
        tags: Option<Vec<String>>,
    }
    serde_json::from_slice::<Page>(body)
        .map(|page| page.tags.unwrap_or_default())
        .map_err(|e| format!("{e} in {:?}", body_excerpt(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_is_the_link_marked_next() {
        assert_eq!(
            next_page(r#"</v2/a/b/tags/list?n=100&last=x>; rel="next""#).as_deref(),
            Some("/v2/a/b/tags/list?n=100&last=x")
        );
        assert_eq!(
            next_page(r#"</prev>; rel="prev", </next>; rel=next"#).as_deref(),
            Some("/next")
        );
        assert_eq!(next_page(r#"</v2/a/tags/list>; rel="prev""#), None);
        assert_eq!(next_page("garbage"), None);
    }

    #[test]
    fn a_tag_page_may_have_no_tags() {
        assert_eq!(
            tag_page(br#"{"name":"a/b","tags":["1","latest"]}"#).unwrap(),
            ["1", "latest"]
        );
        assert!(
            tag_page(br#"{"name":"a/b","tags":null}"#)
                .unwrap()
                .is_empty()
        );
        assert!(tag_page(br#"{"name":"a/b","tags":[1]}"#).is_err());
    }
}
