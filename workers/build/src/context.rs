//! The build context as a tar archive, made the way the docker CLI makes it: the context directory
//! walked in name order, `.dockerignore` applied with Docker's semantics ([`dockerignore`]), the
//! Dockerfile and `.dockerignore` always sent, a Dockerfile from outside the context added under a
//! generated name. Unlike the CLI, the archive is reproducible (owners 0:0 without names, one
//! fixed modification time, no access or change times), symlinks are stored and never followed,
//! nothing outside the repository is read, and the archive has a size limit.

pub mod dockerignore;

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use self::dockerignore::{MatchInfo, Matcher, PatternError};

/// Name of the ignore file at the root of the context.
pub const DOCKERIGNORE: &str = ".dockerignore";

/// Limits and fixed metadata of a context archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextOptions {
    /// Largest archive, in bytes (headers and padding included).
    pub max_bytes: u64,
    /// Most entries (files, directories, links) in the archive.
    pub max_entries: usize,
    /// Modification time of every entry, in seconds since the epoch (e.g. the commit's time).
    pub mtime: u64,
}

impl Default for ContextOptions {
    fn default() -> Self {
        Self {
            max_bytes: 512 * 1024 * 1024,
            max_entries: 200_000,
            mtime: 0,
        }
    }
}

/// A build context archive, ready to send to the Docker Engine's `/build`.
#[derive(Clone, PartialEq, Eq)]
pub struct ContextTar {
    /// The uncompressed tar archive.
    pub tar: Vec<u8>,
    /// The Dockerfile's path inside the archive: the `dockerfile` parameter of the build.
    pub dockerfile: String,
    /// Entries in the archive (files, directories, links).
    pub entries: usize,
    /// Bytes of file contents in the archive.
    pub content_bytes: u64,
}

impl std::fmt::Debug for ContextTar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextTar")
            .field("tar_bytes", &self.tar.len())
            .field("dockerfile", &self.dockerfile)
            .field("entries", &self.entries)
            .field("content_bytes", &self.content_bytes)
            .finish()
    }
}

/// The context could not be archived.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The context or the Dockerfile lies outside the repository (lexically or through a symlink).
    #[error("{what} {path:?} {reason}: expected a path inside the repository")]
    OutsideRepository {
        /// `build context`, `Dockerfile` or `.dockerignore`.
        what: &'static str,
        /// The path as given, relative to the repository.
        path: String,
        /// How it leaves.
        reason: String,
    },
    /// A path is missing or of the wrong type.
    #[error("{what} {path}: expected {expected}, found {found}")]
    WrongType {
        /// What the path is for.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What it should be.
        expected: &'static str,
        /// What it is.
        found: String,
    },
    /// `.dockerignore` has a pattern Docker rejects too.
    #[error("{path}: {source}")]
    Dockerignore {
        /// The `.dockerignore` file.
        path: PathBuf,
        /// The pattern and what is wrong with it.
        source: PatternError,
    },
    /// The archive would pass the size limit.
    #[error(
        "the build context exceeds the limit of {limit} bytes: expected at most {limit}, reached {reached} with {path:?}"
    )]
    TooLarge {
        /// The limit.
        limit: u64,
        /// The size the archive would have had.
        reached: u64,
        /// The entry that passed it.
        path: String,
    },
    /// The archive would have too many entries.
    #[error("the build context has more than {limit} entries (the limit), reached with {path:?}")]
    TooManyEntries {
        /// The limit.
        limit: usize,
        /// The entry that passed it.
        path: String,
    },
    /// A file changed while it was read.
    #[error(
        "{path}: the file changed while it was archived: expected {expected} bytes, found {found}"
    )]
    Changed {
        /// The file.
        path: PathBuf,
        /// Its size when it was opened.
        expected: u64,
        /// The bytes read.
        found: u64,
    },
    /// Reading the tree or writing the archive failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Archive the build context `context` of the checkout at `repository`, for the Dockerfile
/// `dockerfile`. Both paths are relative to the repository root (`""` is the root), `/`-separated,
/// and must stay inside it, also after resolving symlinks.
///
/// The same tree and options always give the same bytes.
pub fn context_tar(
    repository: &Path,
    context: &str,
    dockerfile: &str,
    options: &ContextOptions,
) -> Result<ContextTar, ContextError> {
    let repo_real = repository.canonicalize().map_err(io_error(repository))?;
    check_relative("build context", context)?;
    check_relative("Dockerfile", dockerfile)?;
    if dockerfile
        .split('/')
        .all(|part| part.is_empty() || part == ".")
    {
        return Err(ContextError::WrongType {
            what: "Dockerfile",
            path: repository.join(dockerfile),
            expected: "a file",
            found: "the repository root".to_owned(),
        });
    }

    let context_path = repo_real.join(context);
    let context_real = inside_repository(&repo_real, "build context", context, &context_path)?;
    if !context_real.is_dir() {
        return Err(ContextError::WrongType {
            what: "build context",
            path: context_path,
            expected: "a directory",
            found: describe_type(&context_real),
        });
    }
    let dockerfile_path = repo_real.join(dockerfile);
    let dockerfile_real =
        inside_repository(&repo_real, "Dockerfile", dockerfile, &dockerfile_path)?;
    if !dockerfile_real.is_file() {
        return Err(ContextError::WrongType {
            what: "Dockerfile",
            path: dockerfile_path,
            expected: "a regular file",
            found: describe_type(&dockerfile_real),
        });
    }

    // .dockerignore at the root of the context (read through a symlink only inside the repo).
    let ignore_path = context_real.join(DOCKERIGNORE);
    let ignore_contents = match fs::symlink_metadata(&ignore_path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(&ignore_path)(e)),
        Ok(_) => {
            let shown = format!("{context}/{DOCKERIGNORE}");
            let real = inside_repository(&repo_real, ".dockerignore", &shown, &ignore_path)?;
            Some(fs::read(&real).map_err(io_error(&ignore_path))?)
        }
    };
    let mut patterns = ignore_contents
        .as_deref()
        .map(dockerignore::read_patterns)
        .unwrap_or_default();

    // Where the daemon finds the Dockerfile: inside the context, its resolved path; outside, a
    // generated name (the CLI uses a random one; a digest of the contents keeps bytes stable).
    let (dockerfile_name, outside) = match dockerfile_real.strip_prefix(&context_real) {
        Ok(relative) => (slash_path(relative), None),
        Err(_) => {
            let contents = fs::read(&dockerfile_real).map_err(io_error(&dockerfile_path))?;
            let hex: String = Sha256::digest(&contents)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            (format!(".dockerfile.{}", &hex[..20]), Some(contents))
        }
    };

    // The CLI's TrimBuildFilesFromExcludes: keep .dockerignore and the Dockerfile.
    let keep = |patterns: &Vec<String>, file: &str| -> Result<bool, ContextError> {
        match Matcher::new(patterns.as_slice()) {
            Ok(matcher) => Ok(matcher.matches_one_parent_level(file).unwrap_or(false)),
            Err(source) => Err(ContextError::Dockerignore {
                path: ignore_path.clone(),
                source,
            }),
        }
    };
    if keep(&patterns, DOCKERIGNORE)? {
        patterns.push(format!("!{DOCKERIGNORE}"));
    }
    if outside.is_none() && keep(&patterns, &dockerfile_name)? {
        patterns.push(format!("!{dockerfile_name}"));
    }
    let matcher =
        Matcher::new(patterns.as_slice()).map_err(|source| ContextError::Dockerignore {
            path: ignore_path.clone(),
            source,
        })?;

    // With an outside Dockerfile, .dockerignore also names it, so the daemon drops it after
    // reading it (the CLI's AddDockerfileToBuildContext).
    let ignore_override = outside.as_ref().map(|_| {
        let mut text = ignore_contents
            .clone()
            .unwrap_or_else(|| DOCKERIGNORE.as_bytes().to_vec());
        text.extend_from_slice(format!("\n{dockerfile_name}\n").as_bytes());
        text
    });

    let mut archive = Archive {
        root: &context_real,
        matcher: &matcher,
        options,
        builder: tar::Builder::new(Vec::new()),
        hardlinks: HashMap::new(),
        entries: 0,
        content_bytes: 0,
        ignore_override: ignore_override.as_deref(),
        ignore_written: false,
    };
    archive.walk(&context_real, "", None)?;
    if let (Some(contents), Some(override_text)) = (&outside, &ignore_override) {
        archive.append_generated(&dockerfile_name, contents)?;
        if !archive.ignore_written {
            archive.append_generated(DOCKERIGNORE, override_text)?;
        }
    }
    let Archive {
        builder,
        entries,
        content_bytes,
        ..
    } = archive;
    let tar = builder.into_inner().map_err(io_error(&context_real))?;
    if tar.len() as u64 > options.max_bytes {
        return Err(ContextError::TooLarge {
            limit: options.max_bytes,
            reached: tar.len() as u64,
            path: "the end of the archive".to_owned(),
        });
    }
    Ok(ContextTar {
        tar,
        dockerfile: dockerfile_name,
        entries,
        content_bytes,
    })
}

/// A repository-relative path must not be absolute or climb with `..`.
fn check_relative(what: &'static str, path: &str) -> Result<(), ContextError> {
    let reason = if path.starts_with('/') {
        Some("is absolute")
    } else if path.split('/').any(|part| part == "..") {
        Some("climbs out with '..'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ContextError::OutsideRepository {
            what,
            path: path.to_owned(),
            reason: reason.to_owned(),
        }),
        None => Ok(()),
    }
}

/// `path` with every symlink resolved, which must still be inside `repo_real`.
fn inside_repository(
    repo_real: &Path,
    what: &'static str,
    shown: &str,
    path: &Path,
) -> Result<PathBuf, ContextError> {
    let real = path.canonicalize().map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            ContextError::WrongType {
                what,
                path: path.to_owned(),
                expected: "an existing path",
                found: "nothing (or a dangling symlink)".to_owned(),
            }
        } else {
            io_error(path)(source)
        }
    })?;
    if real.starts_with(repo_real) {
        Ok(real)
    } else {
        Err(ContextError::OutsideRepository {
            what,
            path: shown.to_owned(),
            reason: format!("resolves through a symlink to {}", real.display()),
        })
    }
}

fn describe_type(path: &Path) -> String {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => "a directory".to_owned(),
        Ok(meta) if meta.is_file() => "a regular file".to_owned(),
        Ok(meta) if meta.file_type().is_symlink() => "a symlink".to_owned(),
        Ok(_) => "a special file".to_owned(),
        Err(e) => format!("nothing readable ({e})"),
    }
}

fn slash_path(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// The archive being written.
struct Archive<'a> {
    root: &'a Path,
    matcher: &'a Matcher,
    options: &'a ContextOptions,
    builder: tar::Builder<Vec<u8>>,
    /// First archived path of each (device, inode) with several links.
    hardlinks: HashMap<(u64, u64), PathBuf>,
    entries: usize,
    content_bytes: u64,
    /// Contents to write instead of the context's `.dockerignore`.
    ignore_override: Option<&'a [u8]>,
    ignore_written: bool,
}

impl Archive<'_> {
    /// Archive the entries of directory `dir` (`relative` to the context, `""` for the root), in
    /// byte order of their names as Go's `filepath.WalkDir` visits them.
    fn walk(
        &mut self,
        dir: &Path,
        relative: &str,
        parent: Option<&MatchInfo>,
    ) -> Result<(), ContextError> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .map_err(io_error(dir))?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_error(dir))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = dir.join(&name);
            let name = name.to_string_lossy();
            let entry = if relative.is_empty() {
                name.into_owned()
            } else {
                format!("{relative}/{name}")
            };
            let meta = fs::symlink_metadata(&path).map_err(io_error(&path))?;
            let (excluded, info) = self
                .matcher
                .matches_using_parent_results(&entry, parent)
                .map_err(|source| ContextError::Dockerignore {
                    path: self.root.join(DOCKERIGNORE),
                    source,
                })?;
            if excluded {
                // An excluded directory is still walked when an exception may re-include
                // something inside it; the directory itself is not archived.
                if meta.is_dir()
                    && self.matcher.exclusions()
                    && self.matcher.has_exception_inside(&entry)
                {
                    self.walk(&path, &entry, Some(&info))?;
                }
                continue;
            }
            self.append(&path, &entry, &meta)?;
            if meta.is_dir() {
                self.walk(&path, &entry, Some(&info))?;
            }
        }
        Ok(())
    }

    /// A header with the normalised metadata.
    fn header(&self, kind: tar::EntryType, mode: u32) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(self.options.mtime);
        header.set_size(0);
        header
    }

    fn count(&mut self, entry: &str) -> Result<(), ContextError> {
        self.entries += 1;
        if self.entries > self.options.max_entries {
            return Err(ContextError::TooManyEntries {
                limit: self.options.max_entries,
                path: entry.to_owned(),
            });
        }
        Ok(())
    }

    /// Fail before writing `size` more bytes would pass the limit.
    fn reserve(&self, entry: &str, size: u64) -> Result<(), ContextError> {
        let padded = size.div_ceil(512) * 512;
        // A header, maybe a long-name header and its block, the contents, the final two blocks.
        let name_blocks = if entry.len() >= 100 {
            512 + (entry.len() as u64 + 1).div_ceil(512) * 512
        } else {
            0
        };
        let reached = self.builder.get_ref().len() as u64 + 512 + name_blocks + padded + 1024;
        if reached > self.options.max_bytes {
            return Err(ContextError::TooLarge {
                limit: self.options.max_bytes,
                reached,
                path: entry.to_owned(),
            });
        }
        Ok(())
    }

    fn append(
        &mut self,
        path: &Path,
        entry: &str,
        meta: &fs::Metadata,
    ) -> Result<(), ContextError> {
        let file_type = meta.file_type();
        // Permission bits with setuid, setgid and sticky, as Docker's tar headers carry them.
        let mode = meta.mode() & 0o7777;
        let write_error = io_error(path);
        if file_type.is_socket() {
            // Docker skips sockets too (Go's tar cannot store them).
            return Ok(());
        }
        self.count(entry)?;
        // The name in the archive keeps the file name's bytes (`entry` is for matching and
        // messages, and is lossy for names that are not UTF-8).
        let name = path
            .strip_prefix(self.root)
            .map_or_else(|_| PathBuf::from(entry), Path::to_path_buf);
        if entry == DOCKERIGNORE
            && let Some(text) = self.ignore_override
        {
            // Rewritten to name an outside Dockerfile (stored as a file even if it is a link).
            self.ignore_written = true;
            let mode = if file_type.is_file() { mode } else { 0o600 };
            return self.write_file(&name, entry, mode, text, path);
        }
        if file_type.is_dir() {
            self.reserve(entry, 0)?;
            let mut header = self.header(tar::EntryType::Directory, mode);
            let mut directory = name.into_os_string();
            directory.push("/");
            return self
                .builder
                .append_data(&mut header, directory, io::empty())
                .map_err(write_error);
        }
        if file_type.is_symlink() {
            let target = fs::read_link(path).map_err(io_error(path))?;
            self.reserve(entry, target.as_os_str().len() as u64)?;
            let mut header = self.header(tar::EntryType::Symlink, mode);
            return self
                .builder
                .append_link(&mut header, &name, &target)
                .map_err(write_error);
        }
        if file_type.is_fifo() || file_type.is_char_device() || file_type.is_block_device() {
            self.reserve(entry, 0)?;
            let kind = if file_type.is_fifo() {
                tar::EntryType::Fifo
            } else if file_type.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            };
            let mut header = self.header(kind, mode);
            if !file_type.is_fifo() {
                let rdev = meta.rdev();
                header
                    .set_device_major(libc::major(rdev))
                    .map_err(io_error(path))?;
                header
                    .set_device_minor(libc::minor(rdev))
                    .map_err(io_error(path))?;
            }
            return self
                .builder
                .append_data(&mut header, &name, io::empty())
                .map_err(write_error);
        }

        // A regular file: a hard link to an earlier one becomes a link entry, as Docker does.
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.hardlinks.get(&key) {
                let first = first.clone();
                self.reserve(entry, first.as_os_str().len() as u64)?;
                let mut header = self.header(tar::EntryType::Link, mode);
                return self
                    .builder
                    .append_link(&mut header, &name, &first)
                    .map_err(write_error);
            }
            self.hardlinks.insert(key, name.clone());
        }
        let contents = self.read_regular(path, entry)?;
        self.write_file(&name, entry, mode, &contents, path)
    }

    /// Read a regular file without following a symlink swapped in since the walk saw it.
    fn read_regular(&self, path: &Path, entry: &str) -> Result<Vec<u8>, ContextError> {
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(io_error(path))?;
        let meta = file.metadata().map_err(io_error(path))?;
        if !meta.is_file() {
            return Err(ContextError::WrongType {
                what: "context entry",
                path: path.to_owned(),
                expected: "the regular file the walk found",
                found: describe_type(path),
            });
        }
        let size = meta.len();
        self.reserve(entry, size)?;
        let mut contents = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.take(size.saturating_add(1))
            .read_to_end(&mut contents)
            .map_err(io_error(path))?;
        if contents.len() as u64 != size {
            return Err(ContextError::Changed {
                path: path.to_owned(),
                expected: size,
                found: contents.len() as u64,
            });
        }
        Ok(contents)
    }

    fn write_file(
        &mut self,
        name: &Path,
        entry: &str,
        mode: u32,
        contents: &[u8],
        path: &Path,
    ) -> Result<(), ContextError> {
        self.reserve(entry, contents.len() as u64)?;
        let mut header = self.header(tar::EntryType::Regular, mode);
        header.set_size(contents.len() as u64);
        self.builder
            .append_data(&mut header, name, contents)
            .map_err(io_error(path))?;
        self.content_bytes += contents.len() as u64;
        Ok(())
    }

    /// A file that is not in the tree (the outside Dockerfile, a generated `.dockerignore`).
    fn append_generated(&mut self, entry: &str, contents: &[u8]) -> Result<(), ContextError> {
        self.count(entry)?;
        let path = self.root.join(entry);
        self.write_file(Path::new(entry), entry, 0o600, contents, &path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::{PermissionsExt as _, symlink};

    /// A scratch repository under the system temp dir, removed on drop.
    struct Repo(PathBuf);

    impl Repo {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("slipway-context-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Repo(dir)
        }

        fn file(&self, path: &str, contents: &str) -> &Self {
            let full = self.0.join(path);
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(full, contents).unwrap();
            self
        }
    }

    impl Drop for Repo {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Entry path → (type, mode, uid, gid, mtime, contents or link target).
    fn entries(tar: &[u8]) -> BTreeMap<String, (char, u32, u64, u64, u64, String)> {
        let mut archive = tar::Archive::new(tar);
        let mut map = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let kind = match header.entry_type() {
                tar::EntryType::Regular => 'f',
                tar::EntryType::Directory => 'd',
                tar::EntryType::Symlink => 'l',
                tar::EntryType::Link => 'h',
                _ => '?',
            };
            let mut text = String::new();
            if kind == 'l' || kind == 'h' {
                text = entry
                    .link_name()
                    .unwrap()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
            } else {
                entry.read_to_string(&mut text).unwrap();
            }
            map.insert(
                path,
                (
                    kind,
                    header.mode().unwrap(),
                    header.uid().unwrap(),
                    header.gid().unwrap(),
                    header.mtime().unwrap(),
                    text,
                ),
            );
        }
        map
    }

    fn names(tar: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    fn build(repo: &Repo, context: &str, dockerfile: &str) -> ContextTar {
        context_tar(&repo.0, context, dockerfile, &ContextOptions::default()).unwrap()
    }

    #[test]
    fn dockerignore_exceptions_and_whole_directories() {
        let repo = Repo::new("ignore");
        repo.file("Dockerfile", "FROM scratch\n")
            .file("README.md", "readme")
            .file("CHANGES.md", "changes")
            .file("main.go", "package main")
            .file("src/a.go", "package a")
            .file("src/deep/b.go", "package b")
            .file("src/keep.txt", "keep")
            .file("build/out.bin", "binary")
            .file("build/sub/x", "x")
            .file("docs/guide.md", "guide")
            .file("docs/api/index.html", "html")
            .file(
                ".dockerignore",
                "# generated files\n*.md\n!README.md\n**/*.go\nbuild\ndocs\n!docs/api/index.html\n",
            );
        let context = build(&repo, "", "Dockerfile");
        assert_eq!(context.dockerfile, "Dockerfile");
        assert_eq!(
            names(&context.tar),
            vec![
                ".dockerignore",
                "Dockerfile",
                "README.md",
                // docs is excluded but walked for the exception; the directory is not sent.
                "docs/api/index.html",
                "src/",
                "src/deep/",
                "src/keep.txt",
            ]
        );
        assert_eq!(context.entries, 7);
        assert_eq!(
            context.content_bytes,
            fs::metadata(repo.0.join(".dockerignore")).unwrap().len()
                + "FROM scratch\n".len() as u64
                + "readme".len() as u64
                + "html".len() as u64
                + "keep".len() as u64
        );
    }

    #[test]
    fn the_dockerfile_and_dockerignore_are_sent_even_when_ignored() {
        let repo = Repo::new("kept");
        repo.file("docker/Dockerfile.prod", "FROM scratch\n")
            .file("docker/other", "x")
            .file("app.py", "print()")
            .file(".dockerignore", "docker\n.dockerignore\n*\n!app.py\n");
        let context = build(&repo, "", "docker/Dockerfile.prod");
        assert_eq!(context.dockerfile, "docker/Dockerfile.prod");
        assert_eq!(
            names(&context.tar),
            vec![".dockerignore", "app.py", "docker/Dockerfile.prod"]
        );
    }

    #[test]
    fn a_dockerfile_outside_the_context_gets_a_stable_generated_name() {
        let repo = Repo::new("outside");
        repo.file("Dockerfile", "FROM scratch\nCOPY . /\n")
            .file("app/main.c", "int main;")
            .file("app/.dockerignore", "*.o\n");
        let context = build(&repo, "app", "Dockerfile");
        assert!(
            context.dockerfile.starts_with(".dockerfile."),
            "{}",
            context.dockerfile
        );
        assert_eq!(context.dockerfile.len(), ".dockerfile.".len() + 20);
        let listed = entries(&context.tar);
        assert_eq!(listed[&context.dockerfile].5, "FROM scratch\nCOPY . /\n");
        assert_eq!(listed[&context.dockerfile].1, 0o600);
        // The daemon removes the Dockerfile after reading it because .dockerignore names it.
        assert_eq!(
            listed[".dockerignore"].5,
            format!("*.o\n\n{}\n", context.dockerfile)
        );
        assert_eq!(
            build(&repo, "app", "Dockerfile").tar,
            context.tar,
            "stable name"
        );

        // Without a .dockerignore one is made, listing itself and the Dockerfile.
        fs::remove_file(repo.0.join("app/.dockerignore")).unwrap();
        let context = build(&repo, "app", "Dockerfile");
        let listed = entries(&context.tar);
        assert_eq!(
            listed[".dockerignore"].5,
            format!(".dockerignore\n{}\n", context.dockerfile)
        );
        assert_eq!(
            names(&context.tar),
            vec![
                "main.c".to_owned(),
                context.dockerfile.clone(),
                ".dockerignore".to_owned()
            ]
        );
    }

    #[test]
    fn the_same_tree_gives_the_same_bytes_with_normalised_metadata() {
        let repo = Repo::new("determinism");
        repo.file("Dockerfile", "FROM scratch\n")
            .file("b/z", "z")
            .file("b/a", "a")
            .file("a.txt", "a")
            .file("a/inner", "i")
            .file("script.sh", "#!/bin/sh\n");
        fs::set_permissions(repo.0.join("script.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        let first = build(&repo, "", "Dockerfile");
        // Touch everything: new mtimes, same contents.
        for path in ["b/z", "a.txt", "script.sh"] {
            let contents = fs::read(repo.0.join(path)).unwrap();
            fs::write(repo.0.join(path), contents).unwrap();
        }
        let second = build(&repo, "", "Dockerfile");
        assert_eq!(first.tar, second.tar);
        // Go's WalkDir order: names sorted within each directory, parents first.
        assert_eq!(
            names(&first.tar),
            vec![
                "Dockerfile",
                "a/",
                "a/inner",
                "a.txt",
                "b/",
                "b/a",
                "b/z",
                "script.sh"
            ]
        );
        for (path, (_, mode, uid, gid, mtime, _)) in entries(&first.tar) {
            assert_eq!((uid, gid, mtime), (0, 0, 0), "{path}");
            if path == "script.sh" {
                assert_eq!(mode, 0o755);
            }
        }
        let options = ContextOptions {
            mtime: 1_700_000_000,
            ..ContextOptions::default()
        };
        let dated = context_tar(&repo.0, "", "Dockerfile", &options).unwrap();
        assert!(entries(&dated.tar).values().all(|e| e.4 == 1_700_000_000));
    }

    #[test]
    fn symlinks_are_stored_not_followed() {
        let repo = Repo::new("symlinks");
        repo.file("Dockerfile", "FROM scratch\n")
            .file("real/file", "data");
        symlink("real/file", repo.0.join("link")).unwrap();
        symlink("/etc", repo.0.join("etc-link")).unwrap();
        symlink("../../outside", repo.0.join("real/up")).unwrap();
        let context = build(&repo, "", "Dockerfile");
        let listed = entries(&context.tar);
        assert_eq!(listed["link"].0, 'l');
        assert_eq!(listed["link"].5, "real/file");
        assert_eq!(listed["etc-link"].0, 'l');
        assert_eq!(listed["etc-link"].5, "/etc");
        assert_eq!(listed["real/up"].5, "../../outside");
        assert!(
            !listed.keys().any(|k| k.starts_with("etc-link/")),
            "not followed"
        );
        assert_eq!(context.entries, 6);
    }

    #[test]
    fn hard_links_become_link_entries() {
        let repo = Repo::new("hardlinks");
        repo.file("Dockerfile", "FROM scratch\n").file("a", "same");
        fs::hard_link(repo.0.join("a"), repo.0.join("b")).unwrap();
        let listed = entries(&build(&repo, "", "Dockerfile").tar);
        assert_eq!(listed["a"].0, 'f');
        assert_eq!((listed["b"].0, listed["b"].5.as_str()), ('h', "a"));
    }

    #[test]
    fn paths_that_leave_the_repository_are_refused() {
        let repo = Repo::new("escape");
        let outside = Repo::new("escape-target");
        outside.file("Dockerfile", "FROM scratch\n");
        repo.file("Dockerfile", "FROM scratch\n").file("sub/x", "x");
        symlink(outside.0.join("Dockerfile"), repo.0.join("Linked")).unwrap();
        symlink(&outside.0, repo.0.join("linkdir")).unwrap();
        let refuse = |context: &str, dockerfile: &str| {
            context_tar(&repo.0, context, dockerfile, &ContextOptions::default()).unwrap_err()
        };
        for (context, dockerfile) in [
            ("", "../Dockerfile"),
            ("", "/etc/passwd"),
            ("..", "Dockerfile"),
            ("sub/../..", "Dockerfile"),
            ("", "Linked"),
            ("linkdir", "Dockerfile"),
            ("", "linkdir/Dockerfile"),
        ] {
            let error = refuse(context, dockerfile);
            assert!(
                matches!(error, ContextError::OutsideRepository { .. }),
                "{context:?} {dockerfile:?}: {error}"
            );
            assert!(
                error.to_string().contains("inside the repository"),
                "{error}"
            );
        }
        assert!(matches!(
            refuse("", "missing"),
            ContextError::WrongType { .. }
        ));
        assert!(matches!(refuse("", "sub"), ContextError::WrongType { .. }));
        assert!(matches!(refuse("", ""), ContextError::WrongType { .. }));
        assert!(matches!(
            refuse("Dockerfile", "Dockerfile"),
            ContextError::WrongType { .. }
        ));
    }

    #[test]
    fn the_size_and_entry_limits_name_the_limit() {
        let repo = Repo::new("limits");
        repo.file("Dockerfile", "FROM scratch\n")
            .file("big", &"x".repeat(100_000));
        let small = ContextOptions {
            max_bytes: 50_000,
            ..ContextOptions::default()
        };
        let error = context_tar(&repo.0, "", "Dockerfile", &small).unwrap_err();
        assert!(matches!(error, ContextError::TooLarge { .. }), "{error}");
        let message = error.to_string();
        assert!(
            message.contains("50000") && message.contains("\"big\""),
            "{message}"
        );

        let fits = ContextOptions {
            max_bytes: 104_448,
            ..ContextOptions::default()
        };
        let context = context_tar(&repo.0, "", "Dockerfile", &fits).unwrap();
        assert!(context.tar.len() as u64 <= fits.max_bytes);

        let few = ContextOptions {
            max_entries: 1,
            ..ContextOptions::default()
        };
        let error = context_tar(&repo.0, "", "Dockerfile", &few).unwrap_err();
        assert!(error.to_string().contains("more than 1 entries"), "{error}");
    }

    #[test]
    fn a_bad_dockerignore_pattern_is_an_error_naming_it() {
        let repo = Repo::new("badpattern");
        repo.file("Dockerfile", "FROM scratch\n")
            .file(".dockerignore", "ok\n[unclosed\n");
        let error = context_tar(&repo.0, "", "Dockerfile", &ContextOptions::default()).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("[unclosed") && message.contains(".dockerignore"),
            "{message}"
        );
    }

    #[test]
    fn names_that_are_not_utf8_keep_their_bytes() {
        use std::os::unix::ffi::OsStrExt as _;
        let repo = Repo::new("bytes");
        repo.file("Dockerfile", "FROM scratch\n");
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9");
        fs::write(repo.0.join(name), "latin-1").unwrap();
        let context = build(&repo, "", "Dockerfile");
        let mut archive = tar::Archive::new(context.tar.as_slice());
        let found: Vec<Vec<u8>> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path_bytes().into_owned())
            .collect();
        assert_eq!(found, vec![b"Dockerfile".to_vec(), b"caf\xe9".to_vec()]);
    }

    #[test]
    fn a_linked_dockerignore_is_rewritten_once_for_an_outside_dockerfile() {
        let repo = Repo::new("linkedignore");
        repo.file("Dockerfile", "FROM scratch\n")
            .file("app/ignore-rules", "*.o\n")
            .file("app/x.o", "obj")
            .file("app/x.c", "src");
        symlink("ignore-rules", repo.0.join("app/.dockerignore")).unwrap();
        let context = build(&repo, "app", "Dockerfile");
        let names = names(&context.tar);
        assert_eq!(
            names.iter().filter(|n| *n == ".dockerignore").count(),
            1,
            "{names:?}"
        );
        assert!(!names.contains(&"x.o".to_owned()), "{names:?}");
        let listed = entries(&context.tar);
        assert_eq!(listed[".dockerignore"].0, 'f');
        assert_eq!(
            listed[".dockerignore"].5,
            format!("*.o\n\n{}\n", context.dockerfile)
        );
    }

    #[test]
    fn long_names_survive() {
        let repo = Repo::new("long");
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(150));
        repo.file("Dockerfile", "FROM scratch\n")
            .file(&long, "deep");
        let listed = entries(&build(&repo, "", "Dockerfile").tar);
        assert_eq!(listed[&long].5, "deep");
    }
}
