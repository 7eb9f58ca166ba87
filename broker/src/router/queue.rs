//! One actor per `/queue/...` destination. It alone owns the ready messages,
//! the consumers, their prefetch credit and their unacknowledged deliveries,
//! so none of that needs a lock.
//!
//! Delivery is round-robin among consumers that have credit. A delivery
//! stays unacknowledged until the session ACKs it (client modes) or has
//! written it to the socket (auto mode); NACKed deliveries and those of a
//! consumer that goes away return to the front of the queue, flagged
//! `redelivered`.

use crate::config::{QueueOverflowPolicy, QueuesConfig};
use crate::message::Message;
use crate::session::outbox::{Delivery, Outbound, Outbox, PushOutcome, QueueDeliveryTag};
use crate::stats::Stats;
use bytestring::ByteString;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Commands waiting for one queue actor. A full channel makes publishers
/// wait: backpressure, not loss.
const QUEUE_COMMAND_CAPACITY: usize = 4096;

/// Why a publish to a queue was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(crate) enum PublishError {
    /// The queue is at `max_length` and the policy is `reject`.
    #[error("queue {0} is full")]
    Full(String),
    /// The queue actor has stopped (broker shutting down).
    #[error("queue {0} is unavailable")]
    Gone(String),
}

/// A consumer as the session registers it.
#[derive(Debug)]
pub(crate) struct ConsumerSpec {
    /// Unique id (broker-wide).
    pub id: u64,
    /// The SUBSCRIBE id, echoed in MESSAGE frames.
    pub subscription: ByteString,
    /// Where deliveries go.
    pub outbox: Arc<Outbox>,
    /// Maximum unacknowledged deliveries.
    pub prefetch: u32,
}

/// Messages to a queue actor.
#[derive(Debug)]
pub(crate) enum QueueCommand {
    /// Enqueue a message and say how it went.
    Publish {
        message: Arc<Message>,
        reply: PublishReply,
    },
    /// A new consumer.
    Subscribe(ConsumerSpec),
    /// A consumer left; its unacknowledged deliveries are redelivered.
    Unsubscribe { consumer: u64 },
    /// Deliveries processed.
    Ack { consumer: u64, tags: Vec<u64> },
    /// Deliveries refused: redeliver them.
    Nack { consumer: u64, tags: Vec<u64> },
}

/// Where a queue actor reports the fate of a published message.
#[derive(Debug)]
pub(crate) enum PublishReply {
    /// The publisher waits for the outcome (it asked for a receipt).
    Confirm(oneshot::Sender<Result<(), PublishError>>),
    /// Only a refusal is reported, as an ERROR in the publisher's outbox.
    OnError(Arc<Outbox>),
}

/// A cheap handle to a queue actor.
#[derive(Debug, Clone)]
pub(crate) struct QueueHandle {
    name: ByteString,
    commands: mpsc::Sender<QueueCommand>,
}

impl QueueHandle {
    /// Starts the actor for `name`.
    pub(crate) fn spawn(name: ByteString, config: QueuesConfig, stats: Arc<Stats>) -> QueueHandle {
        let (tx, rx) = mpsc::channel(QUEUE_COMMAND_CAPACITY);
        let actor = QueueActor {
            name: name.clone(),
            config,
            stats,
            ready: VecDeque::new(),
            consumers: Vec::new(),
            next_consumer: 0,
            next_tag: 0,
        };
        tokio::spawn(actor.run(rx));
        QueueHandle { name, commands: tx }
    }

    /// Sends a command; waits while the actor's channel is full.
    pub(crate) async fn send(&self, command: QueueCommand) -> Result<(), PublishError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| PublishError::Gone(self.name.to_string()))
    }

    /// Sends a command without waiting (used from `Drop`-like cleanup).
    pub(crate) fn send_now(&self, command: QueueCommand) {
        if let Err(mpsc::error::TrySendError::Full(command)) = self.commands.try_send(command) {
            let commands = self.commands.clone();
            tokio::spawn(async move {
                let _ = commands.send(command).await;
            });
        }
    }

    /// Publishes without waiting for the actor; a refusal is sent to the
    /// publisher's outbox as an ERROR.
    pub(crate) async fn publish(
        &self,
        message: Arc<Message>,
        publisher: Arc<Outbox>,
    ) -> Result<(), PublishError> {
        self.send(QueueCommand::Publish {
            message,
            reply: PublishReply::OnError(publisher),
        })
        .await
    }

    /// Publishes and waits until the actor has accepted (or refused) it.
    pub(crate) async fn publish_confirmed(
        &self,
        message: Arc<Message>,
    ) -> Result<(), PublishError> {
        let (tx, rx) = oneshot::channel();
        self.send(QueueCommand::Publish {
            message,
            reply: PublishReply::Confirm(tx),
        })
        .await?;
        rx.await
            .unwrap_or_else(|_| Err(PublishError::Gone(self.name.to_string())))
    }
}

#[derive(Debug)]
struct QueuedMessage {
    message: Arc<Message>,
    redelivered: bool,
}

#[derive(Debug)]
struct Consumer {
    spec: ConsumerSpec,
    unacked: BTreeMap<u64, QueuedMessage>,
}

impl Consumer {
    fn has_credit(&self) -> bool {
        self.unacked.len() < self.spec.prefetch as usize
    }
}

struct QueueActor {
    name: ByteString,
    config: QueuesConfig,
    stats: Arc<Stats>,
    ready: VecDeque<QueuedMessage>,
    consumers: Vec<Consumer>,
    next_consumer: usize,
    next_tag: u64,
}

impl QueueActor {
    async fn run(mut self, mut commands: mpsc::Receiver<QueueCommand>) {
        let mut batch = Vec::with_capacity(256);
        loop {
            if commands.recv_many(&mut batch, 256).await == 0 {
                break;
            }
            for command in batch.drain(..) {
                self.handle(command);
            }
            self.dispatch();
        }
        tracing::debug!(queue = %self.name, "queue actor stopped");
    }

    fn handle(&mut self, command: QueueCommand) {
        match command {
            QueueCommand::Publish { message, reply } => {
                let result = self.enqueue(message);
                match (reply, result) {
                    (PublishReply::Confirm(done), result) => {
                        let _ = done.send(result);
                    }
                    (PublishReply::OnError(publisher), Err(e)) => {
                        publisher.close_with_error(e.to_string())
                    }
                    (PublishReply::OnError(_), Ok(())) => {}
                }
            }
            QueueCommand::Subscribe(spec) => self.consumers.push(Consumer {
                spec,
                unacked: BTreeMap::new(),
            }),
            QueueCommand::Unsubscribe { consumer } => {
                if let Some(i) = self.consumers.iter().position(|c| c.spec.id == consumer) {
                    let gone = self.consumers.remove(i);
                    self.requeue_front(gone.unacked.into_values());
                }
            }
            QueueCommand::Ack { consumer, tags } => {
                if let Some(c) = self.consumer_mut(consumer) {
                    for tag in tags {
                        c.unacked.remove(&tag);
                    }
                }
            }
            QueueCommand::Nack { consumer, tags } => {
                let mut refused = Vec::with_capacity(tags.len());
                if let Some(c) = self.consumer_mut(consumer) {
                    for tag in tags {
                        if let Some(m) = c.unacked.remove(&tag) {
                            refused.push(m);
                        }
                    }
                }
                self.requeue_front(refused.into_iter());
            }
        }
    }

    fn consumer_mut(&mut self, id: u64) -> Option<&mut Consumer> {
        self.consumers.iter_mut().find(|c| c.spec.id == id)
    }

    fn enqueue(&mut self, message: Arc<Message>) -> Result<(), PublishError> {
        if self.ready.len() >= self.config.max_length {
            self.stats.queue_overflows.inc();
            match self.config.overflow {
                QueueOverflowPolicy::Reject => {
                    return Err(PublishError::Full(self.name.to_string()));
                }
                QueueOverflowPolicy::DropOldest => {
                    self.ready.pop_front();
                }
            }
        }
        self.ready.push_back(QueuedMessage {
            message,
            redelivered: false,
        });
        Ok(())
    }

    /// Puts messages back at the head of the queue, oldest first.
    fn requeue_front(&mut self, messages: impl DoubleEndedIterator<Item = QueuedMessage>) {
        for mut m in messages.rev() {
            m.redelivered = true;
            self.stats.messages_redelivered.inc();
            self.ready.push_front(m);
        }
    }

    /// Hands ready messages to consumers with credit, round-robin.
    fn dispatch(&mut self) {
        while !self.ready.is_empty() && !self.consumers.is_empty() {
            let n = self.consumers.len();
            let Some(offset) = (0..n).find(|k| {
                let i = (self.next_consumer + k) % n;
                self.consumers[i].has_credit()
            }) else {
                return;
            };
            let i = (self.next_consumer + offset) % n;
            self.next_consumer = (i + 1) % n;
            let Some(queued) = self.ready.pop_front() else {
                return;
            };
            let tag = self.next_tag;
            self.next_tag += 1;
            let consumer = &mut self.consumers[i];
            let delivery = Delivery {
                subscription: consumer.spec.subscription.clone(),
                message: Arc::clone(&queued.message),
                queue: Some(QueueDeliveryTag {
                    consumer: consumer.spec.id,
                    tag,
                }),
                redelivered: queued.redelivered,
            };
            if consumer.spec.outbox.push(Outbound::Delivery(delivery)) == PushOutcome::Closed {
                // The session is gone; its Unsubscribe is on the way. Take
                // it out now so nothing more is sent its way.
                let gone = self.consumers.remove(i);
                self.ready.push_front(queued);
                self.requeue_front(gone.unacked.into_values());
                if self.next_consumer >= self.consumers.len() {
                    self.next_consumer = 0;
                }
                continue;
            }
            consumer.unacked.insert(tag, queued);
        }
    }
}
