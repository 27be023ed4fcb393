//! SSH agents for `RUN --mount=type=ssh` in BuildKit builds: the worker's own agents (sockets of
//! its machine, named by id), forwarded through the build's session, read-only.
//!
//! BuildKit asks the session `/moby.sshforward.v1.SSH/CheckAgent` with the mount's id when a step
//! mounts an agent, then opens `/moby.sshforward.v1.SSH/ForwardAgent` (the id in the gRPC
//! metadata `buildkit.ssh.id`, `default` when absent) for each connection the step makes to
//! the socket it sees: a stream of bytes each way, the SSH agent protocol (each message a
//! big-endian `u32` length, then a type byte and its body).
//!
//! The step only ever talks to the agent through [`Gate`]: a request to list the keys
//! (`SSH_AGENTC_REQUEST_IDENTITIES`, 11) or to sign with one (`SSH_AGENTC_SIGN_REQUEST`, 13)
//! reaches the agent and its answer comes back; any other request (adding or removing keys,
//! locking the agent, extensions) is answered `SSH_AGENT_FAILURE` (5) without reaching it, as the
//! docker CLI's own provider does. A message longer than [`MAX_AGENT_MESSAGE`] ends the
//! connection, and so does an agent that does not answer within [`AGENT_ANSWER_LIMIT`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bollard_buildkit_proto::moby::sshforward::v1::ssh_server::Ssh;
use bollard_buildkit_proto::moby::sshforward::v1::{
    BytesMessage, CheckAgentRequest, CheckAgentResponse,
};
use futures_util::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

/// The id of an agent mount that names none (BuildKit's `sshforward.DefaultID`).
pub const DEFAULT_AGENT_ID: &str = "default";

/// The gRPC metadata key of the agent id on `ForwardAgent` (BuildKit's `KeySSHID`).
const AGENT_ID_KEY: &str = "buildkit.ssh.id";

/// The longest agent protocol message relayed either way, length prefix included (OpenSSH's
/// agent refuses longer ones too).
pub const MAX_AGENT_MESSAGE: usize = 256 * 1024;

/// How long the agent may take to answer one request.
pub const AGENT_ANSWER_LIMIT: Duration = Duration::from_secs(30);

/// `SSH_AGENT_FAILURE`, as a whole message.
const FAILURE: [u8; 5] = [0, 0, 0, 1, 5];

/// Request types that reach the agent: list the keys, sign with one.
const REQUEST_IDENTITIES: u8 = 11;
const SIGN_REQUEST: u8 = 13;

/// The SSH agents a BuildKit build may mount with `RUN --mount=type=ssh[,id=ID]`: ids mapped to
/// the agents' sockets on the worker's machine. An id that is not here is answered "not found"
/// (BuildKit then skips a mount that is not `required`, and fails a required one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshAgents {
    sockets: BTreeMap<String, PathBuf>,
}

impl SshAgents {
    /// No agents.
    pub fn new() -> Self {
        Self::default()
    }

    /// These agents and the agent `id`, listening on the socket `path`.
    pub fn with_socket(mut self, id: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        self.sockets.insert(id.into(), path.into());
        self
    }

    /// The socket of the agent `id`.
    pub fn socket(&self, id: &str) -> Option<&Path> {
        self.sockets.get(id).map(PathBuf::as_path)
    }

    /// The ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.sockets.keys().map(String::as_str)
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }
}

/// What the step sent that cannot be relayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    /// A message announced longer than [`MAX_AGENT_MESSAGE`].
    #[error("an SSH agent message of {0} bytes, more than the {MAX_AGENT_MESSAGE} relayed")]
    TooLong(usize),
}

/// The agent protocol as the step speaks it, cut into whole requests, each judged.
#[derive(Debug, Default)]
pub struct Gate {
    pending: Vec<u8>,
}

/// What to do with one whole request of the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send it to the agent and relay its answer.
    Relay(Vec<u8>),
    /// Answer it with this message (`SSH_AGENT_FAILURE`) without asking the agent.
    Refuse(Vec<u8>),
}

impl Gate {
    /// Takes the next bytes of the step's side; returns the requests they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Verdict>, GateError> {
        self.pending.extend_from_slice(bytes);
        let mut verdicts = Vec::new();
        while let Some(length) = announced_length(&self.pending)? {
            if self.pending.len() < 4 + length {
                break;
            }
            let message: Vec<u8> = self.pending.drain(..4 + length).collect();
            verdicts.push(match message.get(4) {
                Some(&(REQUEST_IDENTITIES | SIGN_REQUEST)) => Verdict::Relay(message),
                _ => Verdict::Refuse(FAILURE.to_vec()),
            });
        }
        Ok(verdicts)
    }
}

/// The body length a message starting `bytes` announces, once its prefix is there.
fn announced_length(bytes: &[u8]) -> Result<Option<usize>, GateError> {
    let Some(prefix) = bytes.get(..4) else {
        return Ok(None);
    };
    let length = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if length + 4 > MAX_AGENT_MESSAGE {
        return Err(GateError::TooLong(length + 4));
    }
    Ok(Some(length))
}

/// The session's SSH service.
pub(crate) struct SshService {
    pub(crate) agents: Arc<SshAgents>,
    /// Cancelled when the session ends: every relay stops with it.
    pub(crate) stop: CancellationToken,
}

/// The stream of the agent's answers to the step.
type Answers = Pin<Box<dyn Stream<Item = Result<BytesMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Ssh for SshService {
    async fn check_agent(
        &self,
        request: Request<CheckAgentRequest>,
    ) -> Result<Response<CheckAgentResponse>, Status> {
        let id = request.into_inner().id;
        let id = if id.is_empty() {
            DEFAULT_AGENT_ID.to_owned()
        } else {
            id
        };
        match self.agents.socket(&id) {
            Some(_) => Ok(Response::new(CheckAgentResponse {})),
            None => Err(unknown_agent(&id)),
        }
    }

    type ForwardAgentStream = Answers;

    async fn forward_agent(
        &self,
        request: Request<Streaming<BytesMessage>>,
    ) -> Result<Response<Self::ForwardAgentStream>, Status> {
        let id = request
            .metadata()
            .get(AGENT_ID_KEY)
            .and_then(|value| value.to_str().ok())
            .filter(|id| !id.is_empty())
            .unwrap_or(DEFAULT_AGENT_ID)
            .to_owned();
        let Some(socket) = self.agents.socket(&id) else {
            return Err(unknown_agent(&id));
        };
        let agent = UnixStream::connect(socket).await.map_err(|e| {
            Status::unavailable(format!(
                "SSH agent {id:?}: cannot connect to {}: {e}",
                socket.display()
            ))
        })?;
        let (answers, receiver) = tokio::sync::mpsc::channel(8);
        let stop = self.stop.clone();
        let steps = request.into_inner();
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                relayed = relay(steps, agent, &answers) => if let Err(problem) = relayed {
                    tracing::warn!(agent = %id, %problem, "SSH agent connection of a build step ended");
                    let _ = answers.send(Err(Status::aborted(problem))).await;
                },
            }
        });
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|answer| (answer, receiver))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

fn unknown_agent(id: &str) -> Status {
    Status::not_found(format!(
        "SSH agent {id:?} is not one of this worker's SSH agents"
    ))
}

/// Relays the step's requests through the [`Gate`] to the agent, and its answers back, until
/// the step closes its side.
async fn relay(
    mut steps: Streaming<BytesMessage>,
    mut agent: UnixStream,
    answers: &tokio::sync::mpsc::Sender<Result<BytesMessage, Status>>,
) -> Result<(), String> {
    let mut gate = Gate::default();
    while let Some(chunk) = steps.message().await.map_err(|s| s.message().to_owned())? {
        for verdict in gate.push(&chunk.data).map_err(|e| e.to_string())? {
            let answer = match verdict {
                Verdict::Refuse(answer) => answer,
                Verdict::Relay(request) => {
                    agent
                        .write_all(&request)
                        .await
                        .map_err(|e| format!("cannot write to the agent: {e}"))?;
                    answer_within(&mut agent, AGENT_ANSWER_LIMIT).await?
                }
            };
            if answers
                .send(Ok(BytesMessage { data: answer }))
                .await
                .is_err()
            {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The agent's answer to the request just sent, if it comes within `limit`.
async fn answer_within(agent: &mut UnixStream, limit: Duration) -> Result<Vec<u8>, String> {
    tokio::time::timeout(limit, read_answer(agent))
        .await
        .map_err(|_| format!("the agent did not answer within {limit:?}"))?
}

/// One whole message from the agent, length prefix included.
async fn read_answer(agent: &mut UnixStream) -> Result<Vec<u8>, String> {
    let mut prefix = [0u8; 4];
    agent
        .read_exact(&mut prefix)
        .await
        .map_err(|e| format!("cannot read the agent's answer: {e}"))?;
    let length = announced_length(&prefix)
        .map_err(|e| format!("the agent's answer: {e}"))?
        .unwrap_or(0);
    let mut answer = prefix.to_vec();
    answer.resize(4 + length, 0);
    agent
        .read_exact(&mut answer[4..])
        .await
        .map_err(|e| format!("cannot read the agent's answer: {e}"))?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        m.push(kind);
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn listing_and_signing_reach_the_agent_and_everything_else_is_refused() {
        let mut gate = Gate::default();
        let list = message(11, &[]);
        let sign = message(13, b"key-blob-and-data");
        let remove_all = message(19, &[]);
        let add = message(17, b"a private key");
        let lock = message(22, b"passphrase");
        let mut stream = Vec::new();
        for m in [&list, &remove_all, &sign, &add, &lock] {
            stream.extend_from_slice(m);
        }
        // Cut anywhere: whole requests come out, in order, once complete.
        let (first, second) = stream.split_at(7);
        let mut verdicts = gate.push(first).unwrap();
        assert_eq!(verdicts, vec![Verdict::Relay(list.clone())]);
        verdicts.extend(gate.push(second).unwrap());
        let failure = Verdict::Refuse(FAILURE.to_vec());
        assert_eq!(
            verdicts,
            vec![
                Verdict::Relay(list),
                failure.clone(),
                Verdict::Relay(sign),
                failure.clone(),
                failure,
            ]
        );
        assert!(
            gate.push(&[0, 0]).unwrap().is_empty(),
            "half a prefix waits"
        );
    }

    #[test]
    fn an_overlong_message_is_refused_before_it_is_buffered() {
        let mut gate = Gate::default();
        let announced = (MAX_AGENT_MESSAGE as u32).to_be_bytes();
        assert_eq!(
            gate.push(&announced),
            Err(GateError::TooLong(MAX_AGENT_MESSAGE + 4))
        );
        let mut gate = Gate::default();
        let largest = ((MAX_AGENT_MESSAGE - 4) as u32).to_be_bytes();
        assert_eq!(gate.push(&largest), Ok(Vec::new()), "waits for its body");
    }

    #[tokio::test]
    async fn an_agent_answer_past_the_bound_is_refused_and_one_within_it_is_read_whole() {
        let (mut agent, mut ours) = UnixStream::pair().unwrap();
        agent
            .write_all(&(MAX_AGENT_MESSAGE as u32).to_be_bytes())
            .await
            .unwrap();
        let error = read_answer(&mut ours).await.expect_err("too long");
        assert!(error.contains("more than the 262144 relayed"), "{error}");

        let (mut agent, mut ours) = UnixStream::pair().unwrap();
        let answer = message(12, &[0, 0, 0, 0]);
        agent.write_all(&answer).await.unwrap();
        assert_eq!(read_answer(&mut ours).await.unwrap(), answer);
    }

    #[tokio::test]
    async fn an_agent_that_does_not_answer_in_time_ends_the_connection() {
        let (_agent, mut ours) = UnixStream::pair().unwrap();
        let error = answer_within(&mut ours, Duration::from_millis(100))
            .await
            .expect_err("no answer");
        assert_eq!(error, "the agent did not answer within 100ms");
    }

    #[tokio::test]
    async fn an_unknown_agent_is_not_found_and_the_default_id_applies() {
        let service = SshService {
            agents: Arc::new(SshAgents::new().with_socket("default", "/run/agent.sock")),
            stop: CancellationToken::new(),
        };
        let check =
            |id: &str| service.check_agent(Request::new(CheckAgentRequest { id: id.into() }));
        assert!(check("").await.is_ok(), "an empty id is the default");
        assert!(check("default").await.is_ok());
        let unknown = check("deploy").await.expect_err("not configured");
        assert_eq!(unknown.code(), tonic::Code::NotFound);
        assert!(unknown.message().contains("\"deploy\""), "{unknown:?}");
    }
}
