//! The demo's sample: an application repository with four Dockerfiles and an index repository
//! naming them — a parent image, two children built on it, and one entry whose Dockerfile has a
//! lint error. Pure: file names and contents; [`super::setup`] writes and commits them.

/// The index's app-id, and the name of its index file (`index.d/demo.yaml`).
pub const APP_ID: &str = "demo";
/// The tag every sample image gets.
pub const TAG: &str = "1";
/// The owner every sample entry mails.
pub const OWNER: &str = "team@demo.example";
/// The branch of both repositories.
pub const BRANCH: &str = "main";
/// The image the parent is built from (made by `deploy/dev-env.sh`).
pub const BASE_IMAGE: &str = "slipway/debian:bookworm";

/// One sample entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleEntry {
    /// Its job-id (the image is `demo/<job>:1`).
    pub job: &'static str,
    /// Its parent in the index, if any.
    pub parent: Option<&'static str>,
    /// Whether the pipeline is expected to fail it at lint.
    pub fails_lint: bool,
}

/// The four entries, parent first.
pub const ENTRIES: [SampleEntry; 4] = [
    SampleEntry {
        job: "base",
        parent: None,
        fails_lint: false,
    },
    SampleEntry {
        job: "web",
        parent: Some("base"),
        fails_lint: false,
    },
    SampleEntry {
        job: "worker",
        parent: Some("base"),
        fails_lint: false,
    },
    SampleEntry {
        job: "broken",
        parent: None,
        fails_lint: true,
    },
];

impl SampleEntry {
    /// Its image as the index names it: `demo/<job>:1`.
    pub fn image(&self) -> String {
        format!("{APP_ID}/{}:{TAG}", self.job)
    }
}

/// The application repository's files: `<job>/Dockerfile` and what they copy.
pub fn application_files(registry: &str) -> Vec<(String, String)> {
    let parent = format!("{registry}/{APP_ID}/base:{TAG}");
    vec![
        (
            "base/Dockerfile".into(),
            format!(
                "# The parent image: what every demo service shares.\n\
                 FROM {BASE_IMAGE}\n\
                 LABEL org.opencontainers.image.title=\"demo base\"\n\
                 COPY motd /etc/motd\n\
                 RUN mkdir -p /srv/demo && echo base > /srv/demo/layer\n"
            ),
        ),
        ("base/motd".into(), "Built by the Slipway demo.\n".into()),
        (
            "web/Dockerfile".into(),
            format!(
                "# A service built on the demo base image.\n\
                 FROM {parent}\n\
                 COPY serve.sh /usr/local/bin/web\n\
                 RUN chmod 0755 /usr/local/bin/web\n\
                 CMD [\"/usr/local/bin/web\"]\n"
            ),
        ),
        (
            "web/serve.sh".into(),
            "#!/bin/sh\necho \"web: serving from $(cat /srv/demo/layer)\"\n".into(),
        ),
        (
            "worker/Dockerfile".into(),
            format!(
                "# A second service on the same base: rebuilt whenever the base is.\n\
                 FROM {parent}\n\
                 RUN echo worker > /srv/demo/role\n\
                 CMD [\"cat\", \"/srv/demo/role\"]\n"
            ),
        ),
        (
            "broken/Dockerfile".into(),
            // DL3020 (error): ADD for a local file. The lint stage stops this entry.
            format!(
                "# This entry fails lint on purpose: ADD of a local file (DL3020).\n\
                 FROM {BASE_IMAGE}\n\
                 ADD run.sh /usr/local/bin/run\n\
                 CMD [\"/usr/local/bin/run\"]\n"
            ),
        ),
        ("broken/run.sh".into(), "#!/bin/sh\necho broken\n".into()),
    ]
}

/// The line of `broken/Dockerfile` the lint error is on.
pub const BROKEN_LINE: u32 = 3;
/// The rule the broken entry breaks.
pub const BROKEN_RULE: &str = "DL3020";

/// `index.d/demo.yaml` for sources at `application_url`.
pub fn index_file(application_url: &str) -> String {
    let mut yaml = String::from(
        "# The Slipway demo's index: a parent, two children built on it, and one entry that\n\
         # fails lint. The repo-tracker builds it (parents first) when it first reads it.\n\
         Projects:\n",
    );
    for (position, entry) in ENTRIES.iter().enumerate() {
        let depends = match entry.parent {
            Some(parent) => format!("{APP_ID}/{parent}:{TAG}"),
            None => "null".into(),
        };
        yaml.push_str(&format!(
            "  - id: {id}\n    app-id: {APP_ID}\n    job-id: {job}\n    git-url: {application_url}\n    \
             git-branch: {BRANCH}\n    git-path: {job}\n    target-file: Dockerfile\n    \
             desired-tag: \"{TAG}\"\n    build-context: ./\n    notify-email: {OWNER}\n    \
             depends-on: {depends}\n\n",
            id = position + 1,
            job = entry.job,
        ));
    }
    yaml
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_common::ImageRef;
    use slipway_common::index::parse_index;
    use slipway_common::index::set::IndexSet;

    #[test]
    fn the_index_is_valid_with_the_parent_before_its_children() {
        let yaml = index_file("file:///tmp/demo/apps");
        let file = parse_index(&yaml).expect("the sample index parses");
        let set = IndexSet::validate(
            vec![("index.d/demo.yaml".into(), file)],
            &[ImageRef::parse(BASE_IMAGE).unwrap()],
        );
        assert!(set.is_valid(), "{set:?}");
        let graph = set.graph();
        let children: Vec<String> = graph
            .children_of(&ImageRef::parse("demo/base:1").unwrap())
            .into_iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(children.len(), 2, "{children:?}");
    }

    #[test]
    fn only_the_broken_dockerfile_has_a_lint_error_and_it_is_the_one_announced() {
        for (path, text) in application_files("127.0.0.1:5000") {
            let Some(job) = path.strip_suffix("/Dockerfile") else {
                continue;
            };
            let findings = slipway_lint::lint::lint(&text, &Default::default());
            let errors: Vec<_> = findings
                .iter()
                .filter(|f| f.severity == slipway_lint::rules::Severity::Error)
                .collect();
            let entry = ENTRIES.iter().find(|e| e.job == job).unwrap();
            if entry.fails_lint {
                assert_eq!(errors.len(), 1, "{job}: {findings:?}");
                assert_eq!(
                    (errors[0].code.as_str(), errors[0].line),
                    (BROKEN_RULE, BROKEN_LINE)
                );
            } else {
                assert!(errors.is_empty(), "{job}: {findings:?}");
            }
        }
    }
}
