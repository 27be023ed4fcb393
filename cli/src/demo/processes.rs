//! The processes the demo starts (the workers and the SMTP sink): each in its own process group,
//! so a Ctrl-C at the terminal reaches the demo alone and the demo stops them in order; each
//! killed by the kernel if the demo itself dies (`PR_SET_PDEATHSIG`), so even a `kill -9` of the
//! demo leaves none behind; output appended to a log file.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One started process.
#[derive(Debug)]
pub struct Started {
    /// What it is (`slipway-lint`, `smtp-sink`).
    pub name: String,
    /// Where its output goes.
    pub log: PathBuf,
    child: Child,
}

impl Started {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The processes started, in start order.
#[derive(Debug, Default)]
pub struct Processes {
    started: Vec<Started>,
}

impl Processes {
    /// Start `command` as `name`, its output appended to `log`.
    pub fn start(&mut self, name: &str, mut command: Command, log: &Path) -> io::Result<&Started> {
        let output = File::options().create(true).append(true).open(log)?;
        command
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .process_group(0);
        die_with_this_thread(&mut command);
        let child = command.spawn()?;
        self.started.push(Started {
            name: name.to_owned(),
            log: log.to_owned(),
            child,
        });
        Ok(self.started.last().expect("just pushed"))
    }

    /// Every process started, in start order.
    pub fn list(&self) -> &[Started] {
        &self.started
    }

    /// The first process found to have exited, with its status (it stays listed).
    pub fn exited(&mut self) -> Option<(&Started, ExitStatus)> {
        let index = self
            .started
            .iter_mut()
            .position(|started| matches!(started.child.try_wait(), Ok(Some(_))))?;
        let started = &mut self.started[index];
        let status = started.child.try_wait().ok().flatten()?;
        Some((&self.started[index], status))
    }

    /// SIGTERM to each, newest first; whatever has not exited after `grace` gets SIGKILL. Every
    /// process is reaped. Returns how many had to be killed.
    pub fn stop_all(&mut self, grace: Duration) -> usize {
        for started in self.started.iter().rev() {
            signal(&started.child, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        let mut killed = 0;
        for started in self.started.iter_mut().rev() {
            loop {
                match started.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = started.child.kill();
                        let _ = started.child.wait();
                        killed += 1;
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        self.started.clear();
        killed
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for started in &mut self.started {
            let _ = started.child.kill();
            let _ = started.child.wait();
        }
    }
}

/// Send `signal` to `child`, unless it has been reaped.
fn signal(child: &Child, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    if pid > 1 {
        // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our own child, not yet
        // reaped (`Processes` reaps only in `stop_all`, after signalling), so it names no other
        // process.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// The child gets SIGKILL when the thread that started it ends (the demo killed, even with
/// `kill -9`). The demo starts every process from its main thread, which lives as long as the
/// demo.
fn die_with_this_thread(command: &mut Command) {
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(libc::pid_t::MAX);
    let (death_signal, unused): (libc::c_ulong, libc::c_ulong) =
        (libc::SIGKILL.unsigned_abs().into(), 0);
    let hook = move || {
        // SAFETY: between fork and exec only async-signal-safe functions may run; prctl(2),
        // getppid(2) and _exit(2) are system calls that take plain values and allocate nothing.
        unsafe {
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal, unused, unused, unused) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The demo died before prctl took effect: nobody would stop this child.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
        }
        Ok(())
    };
    // SAFETY: the hook calls only async-signal-safe system calls (above).
    unsafe {
        command.pre_exec(hook);
    }
}
