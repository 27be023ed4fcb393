//! A real OpenSSH `ssh-agent` holding one fresh key, for the tests of `RUN --mount=type=ssh`,
//! and a Perl client of the agent protocol for build steps (the base image has `perl-base`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Lists the agent's keys, prints the first one's comment, then asks it to remove every key and
/// prints the answer's type (5: SSH_AGENT_FAILURE; 6: success).
pub const AGENT_CLIENT: &str = r#"use strict;
use IO::Socket::UNIX;
my $agent = IO::Socket::UNIX->new(Peer => $ENV{SSH_AUTH_SOCK}) or die "connect: $!";
sub ask {
    my ($type, $body) = @_;
    print $agent pack("NC", 1 + length($body), $type) . $body;
    $agent->flush;
    read($agent, my $prefix, 4) == 4 or die "no answer";
    my $length = unpack("N", $prefix);
    read($agent, my $answer, $length) == $length or die "short answer";
    return $answer;
}
my $identities = ask(11, "");
my ($type, $count) = unpack("CN", $identities);
my $blob = unpack("N", substr($identities, 5, 4));
my $rest = substr($identities, 9 + $blob);
my $comment = substr($rest, 4, unpack("N", $rest));
print "identities type=$type count=$count comment=$comment\n";
print "remove-all type=" . unpack("C", ask(19, "")) . "\n";
"#;

/// An `ssh-agent` in the foreground on a socket of its own, killed when dropped.
pub struct TestAgent {
    child: Child,
    socket: PathBuf,
}

impl TestAgent {
    /// Starts the agent on `dir/agent.sock` and adds a new ed25519 key commented `key_comment`.
    ///
    /// # Panics
    /// When `ssh-agent`, `ssh-keygen` or `ssh-add` fail (`apt-get install openssh-client`).
    pub fn start(dir: &Path, key_comment: &str) -> TestAgent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent (apt-get install openssh-client)");
        let agent = TestAgent { child, socket };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !agent.socket.exists() {
            assert!(Instant::now() < deadline, "ssh-agent made no socket");
            std::thread::yield_now();
        }
        let key = dir.join("key");
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", key_comment, "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen");
        assert!(made.success());
        assert!(agent.ssh_add(&[key.to_str().unwrap()]).status.success());
        agent
    }

    /// Runs `ssh-add ARGS` against this agent.
    pub fn ssh_add(&self, args: &[&str]) -> Output {
        Command::new("ssh-add")
            .args(args)
            .env("SSH_AUTH_SOCK", &self.socket)
            .output()
            .expect("ssh-add")
    }
}

impl TestAgent {
    /// The agent's socket (its `SSH_AUTH_SOCK`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
