//! One TCP connection of a session: OPEN exchange, then keepalives, hold timer and route
//! updates until something ends it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use ipnet::IpNet;
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::negotiate::{negotiate, Negotiated};
use super::routes::{announceable, difference};
use super::{stop_requested, Session};
use crate::config::Route;
use crate::status::SessionState;
use crate::wire::{self, Incoming, Notification, ProtocolError, UpdateContext};

/// How long to wait for the peer's OPEN, and for its KEEPALIVE when no hold time was agreed
/// (RFC 4271 §8.2.2 suggests 4 minutes).
const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);
/// The longest a write may take when no hold time bounds it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the goodbye may take: the NOTIFICATION, then waiting for the peer to close.
const GOODBYE_TIME: Duration = Duration::from_secs(1);

/// How a connection ended.
pub(super) enum Ended {
    /// The speaker asked the session to end; the NOTIFICATION is sent.
    Stopped,
    /// Anything else; the session retries.
    Failed { error: String, was_established: bool },
}

/// Why the connection is ending, before the goodbye.
enum Failure {
    /// Socket trouble, or a message we could not send.
    Io(String),
    /// The peer sent something wrong: we answer with this NOTIFICATION.
    Protocol(ProtocolError),
    /// The peer sent a NOTIFICATION.
    Notified(Notification),
    /// Nothing from the peer for the hold time.
    HoldExpired(Duration),
    /// The speaker asks us to stop with this NOTIFICATION.
    Stop(Notification),
}

/// Runs the connection until it ends, then says goodbye (a NOTIFICATION where one is due).
pub(super) async fn run(session: &mut Session, stream: TcpStream) -> Ended {
    let local = stream.local_addr();
    let (reader, writer) = stream.into_split();
    let inbox = Inbox {
        reader,
        buffer: BytesMut::with_capacity(4096),
        ibgp: session.config.ibgp(),
        notifications: session.metrics.notifications_received.clone(),
    };
    let mut connection = Connection { session, inbox, writer, write_timeout: WRITE_TIMEOUT };
    let failure = match local {
        Ok(local) => connection.open_and_serve(local.ip()).await,
        Err(e) => Err(Failure::Io(format!("reading the local address: {e}"))),
    };
    let was_established = connection.session.status.get().state == SessionState::Established;
    connection.mark_down();
    let Err(failure) = failure;
    let (notification, ended) = match failure {
        Failure::Io(error) => (None, Ended::Failed { error, was_established }),
        Failure::Protocol(error) => {
            let text = format!("{}; sent NOTIFICATION {}", error.detail, error.notification);
            (Some(error.notification), Ended::Failed { error: text, was_established })
        }
        Failure::Notified(notification) => {
            let error = format!("the peer sent NOTIFICATION {notification}");
            (None, Ended::Failed { error, was_established })
        }
        Failure::HoldExpired(hold) => {
            let error = format!("hold timer expired: nothing from the peer for {hold:?}");
            (Some(Notification::HOLD_TIMER_EXPIRED), Ended::Failed { error, was_established })
        }
        Failure::Stop(reason) => (Some(reason), Ended::Stopped),
    };
    connection.goodbye(notification).await;
    ended
}

/// Never returned: the connection only ends with a [`Failure`].
enum Never {}

struct Connection<'a> {
    session: &'a mut Session,
    inbox: Inbox,
    writer: OwnedWriteHalf,
    write_timeout: Duration,
}

/// The receiving side, apart so that reading can run beside the other `select!` branches.
struct Inbox {
    reader: OwnedReadHalf,
    buffer: BytesMut,
    ibgp: bool,
    notifications: Counter,
}

impl Connection<'_> {
    async fn open_and_serve(&mut self, local: std::net::IpAddr) -> Result<Never, Failure> {
        let config = &self.session.config;
        self.send(wire::open(config).map_err(Failure::Io)?).await?;
        self.session.status.set_state(SessionState::OpenSent);
        let peer = match self.receive(Some(OPEN_HOLD_TIME), false).await? {
            Incoming::Open(peer) => peer,
            other => return Err(unexpected(Notification::UNEXPECTED_IN_OPEN_SENT, "OpenSent", &other)),
        };
        let agreed = negotiate(&self.session.config, &peer).map_err(Failure::Protocol)?;
        self.write_timeout = agreed.hold_time.unwrap_or(WRITE_TIMEOUT);
        self.send(wire::keepalive().map_err(Failure::Io)?).await?;
        self.session.status.set_state(SessionState::OpenConfirm);
        match self.receive(Some(agreed.hold_time.unwrap_or(OPEN_HOLD_TIME)), agreed.four_octet_as).await? {
            Incoming::Keepalive => {}
            other => return Err(unexpected(Notification::UNEXPECTED_IN_OPEN_CONFIRM, "OpenConfirm", &other)),
        }
        self.established(&agreed, local).await
    }

    async fn established(&mut self, agreed: &Negotiated, local: std::net::IpAddr) -> Result<Never, Failure> {
        let name = &self.session.name;
        tracing::info!(peer = %name, address = %self.session.config.peer_address, "BGP session established");
        self.session.status.update(|status| {
            status.state = SessionState::Established;
            status.established_since = Some(SystemTime::now());
            status.last_error = None;
        });
        self.session.metrics.session_up.set(1);
        self.session.metrics.session_established.inc();
        let context = UpdateContext {
            local_asn: self.session.config.local_asn,
            ibgp: self.session.config.ibgp(),
            four_octet_as: agreed.four_octet_as,
            next_hop: local,
        };
        let mut announced = BTreeMap::new();
        let mut skipped = None;
        self.session.routes.mark_unchanged();
        self.sync(&mut announced, &mut skipped, agreed, &context).await?;
        let mut hold_deadline = agreed.hold_time.map(|hold| Instant::now() + hold);
        let mut keepalives = agreed.keepalive_time.map(|period| {
            let mut interval = tokio::time::interval_at(Instant::now() + period, period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        let mut routes_open = true;
        loop {
            tokio::select! {
                biased;
                reason = stop_requested(&mut self.session.stop) => return Err(Failure::Stop(reason)),
                () = sleep_until(hold_deadline) => {
                    return Err(Failure::HoldExpired(agreed.hold_time.unwrap_or_default()));
                }
                message = self.inbox.next_message(agreed.four_octet_as) => {
                    hold_deadline = agreed.hold_time.map(|hold| Instant::now() + hold);
                    match message? {
                        Incoming::Keepalive | Incoming::Update => {}
                        Incoming::RouteRefresh => {
                            let all: Vec<&Route> = announced.values().collect();
                            self.send_all(wire::announcements(all, &context)).await?;
                        }
                        other => return Err(unexpected(Notification::UNEXPECTED_IN_ESTABLISHED, "Established", &other)),
                    }
                }
                _ = tick(&mut keepalives) => self.send(wire::keepalive().map_err(Failure::Io)?).await?,
                changed = self.session.routes.changed(), if routes_open => {
                    routes_open = changed.is_ok();
                    self.sync(&mut announced, &mut skipped, agreed, &context).await?;
                }
            }
        }
    }

    /// Sends what changed between `announced` and the routes the speaker wants now.
    async fn sync(
        &mut self,
        announced: &mut BTreeMap<IpNet, Route>,
        skipped: &mut Option<String>,
        agreed: &Negotiated,
        context: &UpdateContext,
    ) -> Result<(), Failure> {
        let routes = self.session.routes.borrow_and_update().clone();
        let peer = self.session.config.peer_address;
        let mut wanted = announceable(&routes, peer, agreed.takes_family_of(peer));
        let mut problems: Vec<String> = wanted.skipped.take().into_iter().collect();
        let (announce, _) = difference(announced, &wanted.routes);
        let messages = match wire::announcements(announce.iter().copied(), context) {
            Ok(messages) => messages,
            Err(_) => {
                // Some route cannot be encoded (too many communities): leave it out, by name.
                let mut bad = Vec::new();
                for route in announce {
                    if let Err(error) = wire::announcements([route], context) {
                        problems.push(format!("{} not announced: {error}", route.prefix));
                        bad.push(route.prefix);
                    }
                }
                wanted.routes.retain(|prefix, _| !bad.contains(prefix));
                let (announce, _) = difference(announced, &wanted.routes);
                wire::announcements(announce, context).map_err(Failure::Io)?
            }
        };
        let (_, withdraw) = difference(announced, &wanted.routes);
        self.send_all(wire::withdrawals(&withdraw, context)).await?;
        self.send_all(Ok(messages)).await?;
        *announced = wanted.routes;
        let count = announced.len();
        self.session.status.update(|status| status.announced = count);
        self.session.metrics.announced_prefixes.set(i64::try_from(count).unwrap_or(i64::MAX));
        let problem = (!problems.is_empty()).then(|| problems.join("; "));
        if problem != *skipped {
            if let Some(problem) = &problem {
                tracing::warn!(peer = %self.session.name, %problem, "BGP routes not announced");
            }
            let text = problem.clone();
            self.session.status.update(|status| status.last_error = text);
            *skipped = problem;
        }
        Ok(())
    }

    async fn send_all(&mut self, messages: Result<Vec<Bytes>, String>) -> Result<(), Failure> {
        for message in messages.map_err(Failure::Io)? {
            self.send(message).await?;
            self.session.metrics.updates_sent.inc();
        }
        Ok(())
    }

    async fn send(&mut self, message: Bytes) -> Result<(), Failure> {
        match tokio::time::timeout(self.write_timeout, self.writer.write_all(&message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure::Io(format!("sending to the peer: {e}"))),
            Err(_) => Err(Failure::Io(format!("the peer took no data for {:?}", self.write_timeout))),
        }
    }

    /// The next message, within `hold` (when some) and unless the speaker stops us.
    async fn receive(&mut self, hold: Option<Duration>, four_octet_as: bool) -> Result<Incoming, Failure> {
        let deadline = hold.map(|hold| Instant::now() + hold);
        tokio::select! {
            biased;
            reason = stop_requested(&mut self.session.stop) => Err(Failure::Stop(reason)),
            () = sleep_until(deadline) => Err(Failure::HoldExpired(hold.unwrap_or_default())),
            message = self.inbox.next_message(four_octet_as) => message,
        }
    }

    /// The session is down: gauges back to 0, state Active until the task decides.
    fn mark_down(&mut self) {
        self.session.metrics.session_up.set(0);
        self.session.metrics.announced_prefixes.set(0);
        self.session.status.set_state(SessionState::Active);
    }

    /// Sends `notification` (if any), closes our side and waits briefly for the peer to close
    /// its own, so that the NOTIFICATION is read before the connection goes.
    async fn goodbye(mut self, notification: Option<Notification>) {
        let _ = tokio::time::timeout(GOODBYE_TIME, async {
            if let Some(message) = notification.and_then(|n| n.encode().ok()) {
                let _ = self.writer.write_all(&message).await;
            }
            let _ = self.writer.shutdown().await;
            let mut sink = [0u8; 4096];
            while matches!(self.inbox.reader.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

impl Inbox {
    /// Reads until a whole message is in; cancel-safe (bytes stay in the buffer).
    async fn next_message(&mut self, four_octet_as: bool) -> Result<Incoming, Failure> {
        loop {
            if let Some(message) =
                wire::read_message(&mut self.buffer, four_octet_as, self.ibgp).map_err(Failure::Protocol)?
            {
                if let Incoming::Notification(notification) = message {
                    self.notifications.inc();
                    return Err(Failure::Notified(notification));
                }
                return Ok(message);
            }
            match self.reader.read_buf(&mut self.buffer).await {
                Ok(0) if self.buffer.is_empty() => {
                    return Err(Failure::Io("the peer closed the connection".to_owned()))
                }
                Ok(0) => {
                    return Err(Failure::Io(format!(
                        "the peer closed the connection in the middle of a message ({} bytes of it)",
                        self.buffer.len()
                    )))
                }
                Ok(_) => {}
                Err(e) => return Err(Failure::Io(format!("reading from the peer: {e}"))),
            }
        }
    }
}

fn unexpected(notification: Notification, state: &str, message: &Incoming) -> Failure {
    let kind = match message {
        Incoming::Open(_) => "OPEN",
        Incoming::Update => "UPDATE",
        Incoming::Keepalive => "KEEPALIVE",
        Incoming::Notification(_) => "NOTIFICATION",
        Incoming::RouteRefresh => "ROUTE-REFRESH",
    };
    Failure::Protocol(ProtocolError::new(notification, format!("unexpected {kind} in {state}")))
}

/// Sleeps until `deadline`, forever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The next keepalive tick, never when keepalives are off.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
