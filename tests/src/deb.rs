//! The Debian packages for tests: `deploy/package.sh --binaries` run once per test process over
//! the binaries `cargo test` built (`target/debug`; a release build of the workspace takes about
//! 9 minutes, and the packaging is the same either way), and the project's image with systemd
//! they are tried in (`slipway/debian-systemd:bookworm`, made by `deploy/dev-env.sh`).
//!
//! Without cargo-deb the package tests are skipped with a printed line, unless
//! `SLIPWAY_REQUIRE_SHARED` is set (as `.ci/run` does, after `deploy/dev-env.sh` installed it):
//! then they fail. Also the options under which systemd boots in a container here.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::tools::skip_unless_required;

/// The image with systemd as `/sbin/init` that `deploy/dev-env.sh` imports.
pub const SYSTEMD_IMAGE: &str = "slipway/debian-systemd:bookworm";

/// The two packages `deploy/package.sh` makes.
#[derive(Debug)]
pub struct Packages {
    /// The directory holding both (mount it in a container).
    pub dir: PathBuf,
    /// The file name of `slipway-workers_<version>_<arch>.deb`.
    pub workers: String,
    /// The file name of `slipway_<version>_<arch>.deb` (the command line).
    pub cli: String,
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

/// Where `cargo test` put the binaries of this build (`target/debug`): the test executable is
/// in its `deps/`.
pub fn bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_owned()))
        .expect("target/debug")
}

/// Whether cargo-deb is installed. When it is not, the calling test is skipped
/// ([`crate::tools::skip_unless_required`]) and this returns `false`.
///
/// # Panics
/// When it is missing and [`REQUIRE_SHARED_VAR`] is set.
pub fn cargo_deb_or_skip() -> bool {
    let found = Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        skip_unless_required(
            "cargo-deb is not installed; `bash deploy/dev-env.sh` installs it (cargo install \
             cargo-deb --locked)",
        );
    }
    found
}

/// The packages of this build, made on first use by `deploy/package.sh --binaries target/debug
/// --fast` into `target/debian-test` (replaced each time).
///
/// # Panics
/// When a worker binary is missing or the script fails; the message has its output.
pub fn packages() -> &'static Packages {
    static BUILT: OnceLock<Result<Packages, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let bin_dir = bin_dir();
        let dir = bin_dir
            .parent()
            .expect("the target directory")
            .join("debian-test");
        let _ = std::fs::remove_dir_all(&dir);
        let started = std::time::Instant::now();
        let output = Command::new("bash")
            .arg(workspace_root().join("deploy/package.sh"))
            .arg("--binaries")
            .arg(&bin_dir)
            .arg("--out")
            .arg(&dir)
            .arg("--fast")
            .output()
            .map_err(|e| format!("cannot run deploy/package.sh: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "deploy/package.sh failed ({}):\n{stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        println!(
            "deploy/package.sh made in {:.1?}:\n{stdout}",
            started.elapsed()
        );
        let named = |prefix: &str| {
            stdout
                .lines()
                .filter_map(|line| Path::new(line).file_name()?.to_str())
                .find(|name| name.starts_with(prefix) && name.ends_with(".deb"))
                .map(str::to_owned)
                .ok_or_else(|| format!("deploy/package.sh printed no {prefix}*.deb: {stdout}"))
        };
        Ok(Packages {
            workers: named("slipway-workers_")?,
            cli: named("slipway_")?,
            dir,
        })
    });
    built
        .as_ref()
        .unwrap_or_else(|reason| panic!("no packages: {reason}"))
}

/// Make sure [`SYSTEMD_IMAGE`] exists, running `deploy/dev-env.sh` (idempotent) when it does
/// not; also makes sure of what [`crate::ensure_docker`] does.
///
/// # Panics
/// When the image is still missing afterwards.
pub fn ensure_systemd_image() {
    crate::ensure_docker();
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let present = || {
            Command::new("docker")
                .args(["image", "inspect", SYSTEMD_IMAGE])
                .output()
                .is_ok_and(|out| out.status.success())
        };
        if present() {
            return Ok(());
        }
        let output = Command::new("bash")
            .arg(workspace_root().join("deploy/dev-env.sh"))
            .output()
            .map_err(|e| format!("cannot run deploy/dev-env.sh: {e}"))?;
        if present() {
            Ok(())
        } else {
            Err(format!(
                "deploy/dev-env.sh ({}) did not make {SYSTEMD_IMAGE}:\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    if let Err(reason) = ready {
        panic!("{reason}");
    }
}

/// `docker run` options under which systemd can boot as the container's init: every capability
/// this process has (`--privileged` asks for all of them, which a daemon whose own bounding set
/// lacks one cannot grant: "unable to apply caps"), no seccomp or AppArmor profile (systemd and
/// the units' sandboxing make namespaces, mounts and seccomp filters of their own), the host's
/// cgroup hierarchy writable (systemd manages its own part of it), and tmpfs on `/run`.
pub fn systemd_boot_options() -> Vec<String> {
    let mut options: Vec<String> = [
        "--cap-add",
        "ALL",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
        "--cgroupns",
        "host",
        "-v",
        "/sys/fs/cgroup:/sys/fs/cgroup:rw",
        "--tmpfs",
        "/run",
        "--tmpfs",
        "/run/lock",
    ]
    .map(str::to_owned)
    .into();
    for missing in missing_capabilities() {
        options.push("--cap-drop".to_owned());
        options.push(missing.to_owned());
    }
    options
}

/// Capability names (as docker spells them, without `CAP_`) by number.
const CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The capabilities missing from this process's bounding set (`CapBnd` in /proc/self/status):
/// the daemon, started from the same environment, cannot grant them either.
fn missing_capabilities() -> Vec<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(bounding) = status
        .lines()
        .find_map(|line| line.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
    else {
        return Vec::new();
    };
    CAPABILITIES
        .iter()
        .enumerate()
        .filter(|&(bit, _)| bounding & (1 << bit) == 0)
        .map(|(_, name)| *name)
        .collect()
}
