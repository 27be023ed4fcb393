//! One flagged and one clean Dockerfile for every DL rule of [`catalog`], as a single table.
//!
//! Each [`Example`] pairs a Dockerfile that breaks the rule with the same Dockerfile fixed the
//! way hadolint's wiki asks for, so the table documents what each rule wants and proves that
//! every rule both fires and stays quiet. Rules that read configuration carry the
//! `.hadolint.yaml` document that switches them on (trusted registries, a label schema, strict
//! labels, or an override for the rules that are off by default).
//!
//! Every pair was checked against hadolint 2.15.1 (`hadolint -f json --no-fail --config …`):
//! it reports the rule at the same lines in the flagged file and not at all in the clean one.

use super::catalog;
use crate::config::{Options, Partial};
use crate::lint::{Settings, lint};

/// A rule's flagged and clean Dockerfiles.
struct Example {
    /// The rule code, e.g. `DL3008`.
    code: &'static str,
    /// A whole Dockerfile that breaks the rule.
    flagged: &'static str,
    /// The lines at which `code` is reported in `flagged`, in order.
    lines: &'static [u32],
    /// `flagged` fixed as the rule asks: `code` is not reported.
    clean: &'static str,
    /// The `.hadolint.yaml` document both files are linted with, when the rule needs one.
    config: Option<&'static str>,
}

/// One example per rule, in the order of [`catalog`].
const EXAMPLES: &[Example] = &[
    Example {
        code: "DL1000",
        flagged: "FROM debian:12\n\
                  RUNN echo hello\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                RUN echo hello\n",
        config: None,
    },
    Example {
        code: "DL1001",
        flagged: "FROM debian:12\n\
                  # hadolint ignore=DL3003\n\
                  RUN cd /usr/src/app && make\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                WORKDIR /usr/src/app\n\
                RUN make\n",
        config: Some("override:\n  info: [DL1001]\n"),
    },
    Example {
        code: "DL3000",
        flagged: "FROM debian:12\n\
                  WORKDIR usr/src/app\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                WORKDIR /usr/src/app\n",
        config: None,
    },
    Example {
        code: "DL3001",
        flagged: "FROM nginx:1.25\n\
                  RUN service nginx start\n",
        lines: &[2],
        clean: "FROM nginx:1.25\n\
                CMD [\"nginx\", \"-g\", \"daemon off;\"]\n",
        config: None,
    },
    Example {
        code: "DL3002",
        flagged: "FROM debian:12\n\
                  USER root\n\
                  RUN mkdir /data\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                USER root\n\
                RUN mkdir /data\n\
                USER 1000\n",
        config: None,
    },
    Example {
        code: "DL3003",
        flagged: "FROM debian:12\n\
                  RUN cd /usr/src/app && make\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                WORKDIR /usr/src/app\n\
                RUN make\n",
        config: None,
    },
    Example {
        code: "DL3004",
        flagged: "FROM debian:12\n\
                  RUN sudo apt-get update\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                RUN apt-get update\n",
        config: None,
    },
    Example {
        code: "DL3006",
        flagged: "FROM debian\n",
        lines: &[1],
        clean: "FROM debian:12\n",
        config: None,
    },
    Example {
        code: "DL3007",
        flagged: "FROM debian:latest\n",
        lines: &[1],
        clean: "FROM debian:12\n",
        config: None,
    },
    Example {
        code: "DL3008",
        flagged: "FROM debian:12\n\
                  RUN apt-get update \\\n\
                  && apt-get install -y --no-install-recommends curl \\\n\
                  && rm -rf /var/lib/apt/lists/*\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                RUN apt-get update \\\n\
                && apt-get install -y --no-install-recommends curl=7.88.1-10+deb12u5 \\\n\
                && rm -rf /var/lib/apt/lists/*\n",
        config: None,
    },
    Example {
        code: "DL3009",
        flagged: "FROM debian:12\n\
                  RUN apt-get update \\\n\
                  && apt-get install -y --no-install-recommends curl=7.88.1-10+deb12u5\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                RUN apt-get update \\\n\
                && apt-get install -y --no-install-recommends curl=7.88.1-10+deb12u5 \\\n\
                && rm -rf /var/lib/apt/lists/*\n",
        config: None,
    },
    Example {
        code: "DL3010",
        flagged: "FROM debian:12\n\
                  COPY app.tar.gz /tmp/\n\
                  RUN tar -xzf /tmp/app.tar.gz -C /opt/\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                ADD app.tar.gz /opt/\n",
        config: None,
    },
    Example {
        code: "DL3011",
        flagged: "FROM debian:12\n\
                  EXPOSE 80000\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                EXPOSE 8000\n",
        config: None,
    },
    Example {
        code: "DL3012",
        flagged: "FROM nginx:1.25\n\
                  HEALTHCHECK CMD curl -f http://localhost/ || exit 1\n\
                  HEALTHCHECK CMD curl -f http://localhost/health || exit 1\n",
        lines: &[3],
        clean: "FROM nginx:1.25\n\
                HEALTHCHECK CMD curl -f http://localhost/health || exit 1\n",
        config: None,
    },
    Example {
        code: "DL3013",
        flagged: "FROM python:3.12\n\
                  RUN pip install --no-cache-dir django\n",
        lines: &[2],
        clean: "FROM python:3.12\n\
                RUN pip install --no-cache-dir django==5.0.1\n",
        config: None,
    },
    Example {
        code: "DL3014",
        flagged: "FROM debian:12\n\
                  RUN apt-get update \\\n\
                  && apt-get install --no-install-recommends curl=7.88.1-10+deb12u5 \\\n\
                  && rm -rf /var/lib/apt/lists/*\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                RUN apt-get update \\\n\
                && apt-get install -y --no-install-recommends curl=7.88.1-10+deb12u5 \\\n\
                && rm -rf /var/lib/apt/lists/*\n",
        config: None,
    },
    Example {
        code: "DL3015",
        flagged: "FROM debian:12\n\
                  RUN apt-get update \\\n\
                  && apt-get install -y curl=7.88.1-10+deb12u5 \\\n\
                  && rm -rf /var/lib/apt/lists/*\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                RUN apt-get update \\\n\
                && apt-get install -y --no-install-recommends curl=7.88.1-10+deb12u5 \\\n\
                && rm -rf /var/lib/apt/lists/*\n",
        config: None,
    },
    Example {
        code: "DL3016",
        flagged: "FROM node:20\n\
                  RUN npm install -g express\n",
        lines: &[2],
        clean: "FROM node:20\n\
                RUN npm install -g express@4.18.2\n",
        config: None,
    },
    Example {
        code: "DL3018",
        flagged: "FROM alpine:3.19\n\
                  RUN apk add --no-cache curl\n",
        lines: &[2],
        clean: "FROM alpine:3.19\n\
                RUN apk add --no-cache curl=8.5.0-r0\n",
        config: None,
    },
    Example {
        code: "DL3019",
        flagged: "FROM alpine:3.19\n\
                  RUN apk add curl=8.5.0-r0\n",
        lines: &[2],
        clean: "FROM alpine:3.19\n\
                RUN apk add --no-cache curl=8.5.0-r0\n",
        config: None,
    },
    Example {
        code: "DL3020",
        flagged: "FROM debian:12\n\
                  ADD app.conf /etc/app/\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                COPY app.conf /etc/app/\n",
        config: None,
    },
    Example {
        code: "DL3021",
        flagged: "FROM debian:12\n\
                  COPY app.conf log.conf /etc/app\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                COPY app.conf log.conf /etc/app/\n",
        config: None,
    },
    Example {
        code: "DL3022",
        flagged: "FROM golang:1.22 AS builder\n\
                  RUN go build -o /out/app .\n\
                  FROM debian:12\n\
                  COPY --from=build /out/app /usr/local/bin/app\n",
        lines: &[4],
        clean: "FROM golang:1.22 AS builder\n\
                RUN go build -o /out/app .\n\
                FROM debian:12\n\
                COPY --from=builder /out/app /usr/local/bin/app\n",
        config: None,
    },
    Example {
        code: "DL3023",
        flagged: "FROM golang:1.22 AS build\n\
                  RUN go build -o /out/app .\n\
                  FROM debian:12 AS runtime\n\
                  COPY --from=runtime /out/app /usr/local/bin/app\n",
        lines: &[4],
        clean: "FROM golang:1.22 AS build\n\
                RUN go build -o /out/app .\n\
                FROM debian:12 AS runtime\n\
                COPY --from=build /out/app /usr/local/bin/app\n",
        config: None,
    },
    Example {
        code: "DL3024",
        flagged: "FROM golang:1.22 AS build\n\
                  FROM node:20 AS build\n\
                  FROM debian:12\n",
        lines: &[2],
        clean: "FROM golang:1.22 AS build\n\
                FROM node:20 AS assets\n\
                FROM debian:12\n",
        config: None,
    },
    Example {
        code: "DL3025",
        flagged: "FROM nginx:1.25\n\
                  CMD nginx -g \"daemon off;\"\n",
        lines: &[2],
        clean: "FROM nginx:1.25\n\
                CMD [\"nginx\", \"-g\", \"daemon off;\"]\n",
        config: None,
    },
    Example {
        code: "DL3026",
        flagged: "FROM docker.io/library/debian:12\n",
        lines: &[1],
        clean: "FROM registry.example.com/library/debian:12\n",
        config: Some("trustedRegistries:\n  - registry.example.com\n"),
    },
    Example {
        code: "DL3027",
        flagged: "FROM debian:12\n\
                  RUN apt update \\\n\
                  && apt install -y --no-install-recommends curl=7.88.1-10+deb12u5 \\\n\
                  && rm -rf /var/lib/apt/lists/*\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                RUN apt-get update \\\n\
                && apt-get install -y --no-install-recommends curl=7.88.1-10+deb12u5 \\\n\
                && rm -rf /var/lib/apt/lists/*\n",
        config: None,
    },
    Example {
        code: "DL3028",
        flagged: "FROM ruby:3.3\n\
                  RUN gem install bundler\n",
        lines: &[2],
        clean: "FROM ruby:3.3\n\
                RUN gem install bundler:2.5.6\n",
        config: None,
    },
    Example {
        code: "DL3029",
        flagged: "FROM --platform=linux/amd64 debian:12\n",
        lines: &[1],
        clean: "FROM debian:12\n",
        config: None,
    },
    Example {
        code: "DL3030",
        flagged: "FROM centos:7\n\
                  RUN yum install httpd-2.4.6 && yum clean all\n",
        lines: &[2],
        clean: "FROM centos:7\n\
                RUN yum install -y httpd-2.4.6 && yum clean all\n",
        config: None,
    },
    Example {
        code: "DL3032",
        flagged: "FROM centos:7\n\
                  RUN yum install -y httpd-2.4.6\n",
        lines: &[2],
        clean: "FROM centos:7\n\
                RUN yum install -y httpd-2.4.6 && yum clean all\n",
        config: None,
    },
    Example {
        code: "DL3033",
        flagged: "FROM centos:7\n\
                  RUN yum install -y httpd && yum clean all\n",
        lines: &[2],
        clean: "FROM centos:7\n\
                RUN yum install -y httpd-2.4.6 && yum clean all\n",
        config: None,
    },
    Example {
        code: "DL3034",
        flagged: "FROM opensuse/leap:15.5\n\
                  RUN zypper install apache2=2.4.51 && zypper clean\n",
        lines: &[2],
        clean: "FROM opensuse/leap:15.5\n\
                RUN zypper install -y apache2=2.4.51 && zypper clean\n",
        config: None,
    },
    Example {
        code: "DL3035",
        flagged: "FROM opensuse/leap:15.5\n\
                  RUN zypper dist-upgrade -y && zypper clean\n",
        lines: &[2],
        clean: "FROM opensuse/leap:15.5\n\
                RUN zypper update -y && zypper clean\n",
        config: None,
    },
    Example {
        code: "DL3036",
        flagged: "FROM opensuse/leap:15.5\n\
                  RUN zypper install -y apache2=2.4.51\n",
        lines: &[2],
        clean: "FROM opensuse/leap:15.5\n\
                RUN zypper install -y apache2=2.4.51 && zypper clean\n",
        config: None,
    },
    Example {
        code: "DL3037",
        flagged: "FROM opensuse/leap:15.5\n\
                  RUN zypper install -y apache2 && zypper clean\n",
        lines: &[2],
        clean: "FROM opensuse/leap:15.5\n\
                RUN zypper install -y apache2=2.4.51 && zypper clean\n",
        config: None,
    },
    Example {
        code: "DL3038",
        flagged: "FROM fedora:39\n\
                  RUN dnf install httpd-2.4.58 && dnf clean all\n",
        lines: &[2],
        clean: "FROM fedora:39\n\
                RUN dnf install -y httpd-2.4.58 && dnf clean all\n",
        config: None,
    },
    Example {
        code: "DL3040",
        flagged: "FROM fedora:39\n\
                  RUN dnf install -y httpd-2.4.58\n",
        lines: &[2],
        clean: "FROM fedora:39\n\
                RUN dnf install -y httpd-2.4.58 && dnf clean all\n",
        config: None,
    },
    Example {
        code: "DL3041",
        flagged: "FROM fedora:39\n\
                  RUN dnf install -y httpd && dnf clean all\n",
        lines: &[2],
        clean: "FROM fedora:39\n\
                RUN dnf install -y httpd-2.4.58 && dnf clean all\n",
        config: None,
    },
    Example {
        code: "DL3042",
        flagged: "FROM python:3.12\n\
                  RUN pip install django==5.0.1\n",
        lines: &[2],
        clean: "FROM python:3.12\n\
                RUN pip install --no-cache-dir django==5.0.1\n",
        config: None,
    },
    Example {
        code: "DL3043",
        flagged: "FROM debian:12\n\
                  ONBUILD MAINTAINER Jane Doe <jane@example.com>\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                ONBUILD LABEL maintainer=\"Jane Doe <jane@example.com>\"\n",
        config: None,
    },
    Example {
        code: "DL3044",
        flagged: "FROM debian:12\n\
                  ENV APP_HOME=/opt/app APP_BIN=$APP_HOME/bin\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                ENV APP_HOME=/opt/app\n\
                ENV APP_BIN=$APP_HOME/bin\n",
        config: None,
    },
    Example {
        code: "DL3045",
        flagged: "FROM debian:12\n\
                  COPY app.conf etc/\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                WORKDIR /opt/app\n\
                COPY app.conf etc/\n",
        config: None,
    },
    Example {
        code: "DL3046",
        flagged: "FROM debian:12\n\
                  RUN useradd -u 123456 app\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                RUN useradd -l -u 123456 app\n",
        config: None,
    },
    Example {
        code: "DL3047",
        flagged: "FROM debian:12\n\
                  RUN wget https://example.com/app.tar.gz\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                RUN wget --progress=dot:giga https://example.com/app.tar.gz\n",
        config: None,
    },
    Example {
        code: "DL3048",
        flagged: "FROM debian:12\n\
                  LABEL Vendor=\"ACME\"\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                LABEL vendor=\"ACME\"\n",
        config: None,
    },
    Example {
        code: "DL3049",
        flagged: "FROM debian:12\n\
                  LABEL vendor=\"ACME\"\n",
        lines: &[1],
        clean: "FROM debian:12\n\
                LABEL vendor=\"ACME\" owner=\"team-a\"\n",
        config: Some("label-schema:\n  owner: text\n"),
    },
    Example {
        code: "DL3050",
        flagged: "FROM debian:12\n\
                  LABEL owner=\"team-a\" colour=\"blue\"\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                LABEL owner=\"team-a\"\n",
        config: Some("label-schema:\n  owner: text\nstrict-labels: true\n"),
    },
    Example {
        code: "DL3051",
        flagged: "FROM debian:12\n\
                  LABEL owner=\"\"\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                LABEL owner=\"team-a\"\n",
        config: Some("label-schema:\n  owner: text\n"),
    },
    Example {
        code: "DL3052",
        flagged: "FROM debian:12\n\
                  LABEL homepage=\"example.com/app\"\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                LABEL homepage=\"https://example.com/app\"\n",
        config: Some("label-schema:\n  homepage: url\n"),
    },
    Example {
        code: "DL3053",
        flagged: "FROM debian:12\n\
                  LABEL created=\"2024-01-15 10:00\"\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                LABEL created=\"2024-01-15T10:00:00Z\"\n",
        config: Some("label-schema:\n  created: rfc3339\n"),
    },
    Example {
        code: "DL3054",
        flagged: "FROM debian:12\n\
                  LABEL license=\"Apache 2.0\"\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                LABEL license=\"Apache-2.0\"\n",
        config: Some("label-schema:\n  license: spdx\n"),
    },
    Example {
        code: "DL3055",
        flagged: "FROM debian:12\n\
                  LABEL revision=\"main\"\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                LABEL revision=\"2f8e1c7d9a3b4e5f60718293a4b5c6d7e8f90a1b\"\n",
        config: Some("label-schema:\n  revision: hash\n"),
    },
    Example {
        code: "DL3056",
        flagged: "FROM debian:12\n\
                  LABEL version=\"v1.2\"\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                LABEL version=\"1.2.0\"\n",
        config: Some("label-schema:\n  version: semver\n"),
    },
    Example {
        code: "DL3057",
        flagged: "FROM nginx:1.25\n",
        lines: &[1],
        clean: "FROM nginx:1.25\n\
                HEALTHCHECK CMD curl -f http://localhost/ || exit 1\n",
        config: Some("override:\n  info: [DL3057]\n"),
    },
    Example {
        code: "DL3058",
        flagged: "FROM debian:12\n\
                  LABEL maintainer=\"Jane Doe\"\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                LABEL maintainer=\"jane@example.com\"\n",
        config: Some("label-schema:\n  maintainer: email\n"),
    },
    Example {
        code: "DL3059",
        flagged: "FROM debian:12\n\
                  RUN mkdir /data\n\
                  RUN chown 1000 /data\n",
        lines: &[3],
        clean: "FROM debian:12\n\
                RUN mkdir /data && chown 1000 /data\n",
        config: None,
    },
    Example {
        code: "DL3060",
        flagged: "FROM node:20\n\
                  RUN yarn install\n",
        lines: &[2],
        clean: "FROM node:20\n\
                RUN yarn install && yarn cache clean\n",
        config: None,
    },
    Example {
        code: "DL3061",
        flagged: "LABEL vendor=\"ACME\"\n\
                  FROM debian:12\n",
        lines: &[1],
        clean: "FROM debian:12\n\
                LABEL vendor=\"ACME\"\n",
        config: None,
    },
    Example {
        code: "DL3062",
        flagged: "FROM golang:1.22\n\
                  RUN go install github.com/golangci/golangci-lint/cmd/golangci-lint\n",
        lines: &[2],
        clean: "FROM golang:1.22\n\
                RUN go install github.com/golangci/golangci-lint/cmd/golangci-lint@v1.55.2\n",
        config: None,
    },
    Example {
        code: "DL3063",
        flagged: "FROM golang:1.22 AS scratch\n\
                  RUN go build -o /out/app .\n\
                  FROM debian:12\n\
                  COPY --from=scratch /out/app /usr/local/bin/app\n",
        lines: &[1],
        clean: "FROM golang:1.22 AS build\n\
                RUN go build -o /out/app .\n\
                FROM debian:12\n\
                COPY --from=build /out/app /usr/local/bin/app\n",
        config: None,
    },
    Example {
        code: "DL3064",
        flagged: "FROM node:20\n\
                  ARG NPM_TOKEN\n\
                  RUN npm ci\n",
        lines: &[2],
        clean: "FROM node:20\n\
                RUN --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci\n",
        config: None,
    },
    Example {
        code: "DL3065",
        flagged: "FROM --platform=$TARGETPLATFORM debian:12\n",
        lines: &[1],
        clean: "FROM debian:12\n",
        config: None,
    },
    Example {
        code: "DL3066",
        flagged: "FROM debian:12\n\
                  USER app\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                USER 1000\n",
        config: None,
    },
    Example {
        code: "DL3067",
        flagged: "FROM golang:1.22 AS build\n\
                  RUN go build -o /out/app .\n\
                  FROM debian:12\n\
                  COPY --from=build / /\n",
        lines: &[4],
        clean: "FROM golang:1.22 AS build\n\
                RUN go build -o /out/app .\n\
                FROM debian:12\n\
                COPY --from=build /out/app /usr/local/bin/app\n",
        config: None,
    },
    Example {
        code: "DL4000",
        flagged: "FROM debian:12\n\
                  MAINTAINER Jane Doe <jane@example.com>\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                LABEL maintainer=\"Jane Doe <jane@example.com>\"\n",
        config: None,
    },
    Example {
        code: "DL4001",
        flagged: "FROM debian:12\n\
                  RUN wget -q https://example.com/a.tar.gz\n\
                  COPY b.conf /etc/\n\
                  RUN curl -fsSLO https://example.com/b.tar.gz\n",
        lines: &[4],
        clean: "FROM debian:12\n\
                RUN curl -fsSLO https://example.com/a.tar.gz\n\
                COPY b.conf /etc/\n\
                RUN curl -fsSLO https://example.com/b.tar.gz\n",
        config: None,
    },
    Example {
        code: "DL4003",
        flagged: "FROM debian:12\n\
                  CMD [\"bash\"]\n\
                  CMD [\"/usr/local/bin/app\"]\n",
        lines: &[3],
        clean: "FROM debian:12\n\
                CMD [\"/usr/local/bin/app\"]\n",
        config: None,
    },
    Example {
        code: "DL4004",
        flagged: "FROM debian:12\n\
                  ENTRYPOINT [\"/bin/sh\", \"-c\"]\n\
                  ENTRYPOINT [\"/usr/local/bin/app\"]\n",
        lines: &[3],
        clean: "FROM debian:12\n\
                ENTRYPOINT [\"/usr/local/bin/app\"]\n",
        config: None,
    },
    Example {
        code: "DL4005",
        flagged: "FROM debian:12\n\
                  RUN ln -sf /bin/bash /bin/sh\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                SHELL [\"/bin/bash\", \"-c\"]\n",
        config: None,
    },
    Example {
        code: "DL4006",
        flagged: "FROM debian:12\n\
                  RUN curl -fsSL https://example.com/install.sh | bash\n",
        lines: &[2],
        clean: "FROM debian:12\n\
                SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\n\
                RUN curl -fsSL https://example.com/install.sh | bash\n",
        config: None,
    },
];

/// The settings an example is linted with: the defaults, with its configuration applied.
fn settings(example: &Example) -> Settings {
    let mut options = Options::default();
    if let Some(yaml) = example.config {
        let partial = Partial::from_yaml(yaml)
            .unwrap_or_else(|e| panic!("{}: the example's configuration: {e}", example.code));
        options.apply(partial);
    }
    options.settings
}

/// The lines at which the example's rule is reported for `dockerfile`.
fn reported(example: &Example, dockerfile: &str) -> Vec<u32> {
    lint(dockerfile, &settings(example))
        .into_iter()
        .filter(|f| f.code == example.code)
        .map(|f| f.line)
        .collect()
}

#[test]
fn the_table_covers_every_rule_once() {
    let table: Vec<&str> = EXAMPLES.iter().map(|e| e.code).collect();
    let rules: Vec<&str> = catalog().iter().map(|m| m.code).collect();
    assert_eq!(
        table, rules,
        "one example per catalog rule, in catalog order"
    );
}

#[test]
fn each_flagged_example_is_reported_on_its_lines() {
    let wrong: Vec<String> = EXAMPLES
        .iter()
        .filter_map(|example| {
            let found = reported(example, example.flagged);
            (example.lines.is_empty() || found != example.lines).then(|| {
                format!(
                    "{}: expected at lines {:?}, reported at {found:?} in the flagged example:\n{}",
                    example.code, example.lines, example.flagged
                )
            })
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn each_clean_example_is_not_reported() {
    let wrong: Vec<String> = EXAMPLES
        .iter()
        .filter_map(|example| {
            let found = reported(example, example.clean);
            (!found.is_empty()).then(|| {
                format!(
                    "{}: reported at lines {found:?} in the clean example:\n{}",
                    example.code, example.clean
                )
            })
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
