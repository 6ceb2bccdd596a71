//! The Redis store: the connection, the bound on every operation, the fallback bookkeeping
//! (counting and throttled warnings), and the scripts run with `EVALSHA` (falling back to `EVAL`).

use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, FromRedisValue, RedisError, ServerErrorKind, ToRedisArgs};
use tokio::time::Instant;

use crate::stats::{Field, Stats};

/// Why a store could not be made, installed or reached. Its message never contains the store's
/// URL or password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
}

/// The kind of a [`StoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The URL is not a Redis URL the client understands.
    InvalidUrl,
    /// An option is out of range.
    InvalidOption,
    /// The server could not be reached, or did not answer in time.
    Unreachable,
    /// The server answered with an error (e.g. wrong password).
    Server,
    /// [`connect_lazy`](RedisStoreBuilder::connect_lazy) was called outside a tokio runtime.
    NoRuntime,
    /// [`install`](super::install) was called when a store was installed already.
    AlreadyInstalled,
}

impl StoreError {
    pub(crate) fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

/// Builds a [`RedisStore`]; see [`RedisStore::builder`].
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    options: Options,
}

/// Holds the URL, which may carry a password: shown as `"<redacted>"`.
impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("url", &"<redacted>")
            .field("options", &self.options)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Options {
    pub(crate) op_timeout: Duration,
    pub(crate) sync: Duration,
    pub(crate) trial_lease: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) pause_after_failure: Duration,
}

impl Options {
    const DEFAULT: Options = Options {
        op_timeout: Duration::from_millis(50),
        sync: Duration::from_secs(1),
        trial_lease: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        pause_after_failure: Duration::from_millis(250),
    };
}

impl RedisStoreBuilder {
    /// The bound on every store operation (> 0; default 50 ms). A call never waits longer than
    /// this for the store: past it, the policy uses its local state.
    pub fn op_timeout(mut self, bound: Duration) -> Self {
        self.options.op_timeout = bound;
        self
    }

    /// How often each replica's shared circuit breakers read the state in the store (> 0; default
    /// 1 s): an opening by any replica is seen by every replica within this time.
    pub fn sync(mut self, every: Duration) -> Self {
        self.options.sync = every;
        self
    }

    /// How long a replica holds the right to send a shared breaker's half-open trial calls, unless
    /// its trials end sooner (> 0; default 5 s). Longer than a trial call takes: put a
    /// `#[timeout]` below the breaker.
    pub fn trial_lease(mut self, lease: Duration) -> Self {
        self.options.trial_lease = lease;
        self
    }

    /// How long [`connect`](Self::connect) may take (> 0; default 2 s).
    pub fn connect_timeout(mut self, bound: Duration) -> Self {
        self.options.connect_timeout = bound;
        self
    }

    /// After a store operation failed, the store is left alone for this long (default 250 ms;
    /// zero: never): calls use local state at once instead of each waiting for a store that is
    /// down. Each call that skips the store counts as a store error.
    pub fn pause_after_failure(mut self, pause: Duration) -> Self {
        self.options.pause_after_failure = pause;
        self
    }

    fn check(&self) -> Result<(), StoreError> {
        let o = &self.options;
        for (name, value) in [
            ("op_timeout", o.op_timeout),
            ("sync", o.sync),
            ("trial_lease", o.trial_lease),
            ("connect_timeout", o.connect_timeout),
        ] {
            if value.is_zero() {
                return Err(StoreError::new(
                    StoreErrorKind::InvalidOption,
                    format!("invalid `{name}`: must be longer than zero"),
                ));
            }
        }
        Ok(())
    }

    fn client(&self) -> Result<(redis::Client, Redactor), StoreError> {
        self.check()?;
        let redactor = Redactor::new(&self.url);
        let client = redis::Client::open(self.url.as_str()).map_err(|e| {
            StoreError::new(
                StoreErrorKind::InvalidUrl,
                format!("not a Redis URL: {}", redactor.clean(&e)),
            )
        })?;
        if let Some(password) = client.get_connection_info().redis_settings().password() {
            redactor.add(password);
        }
        Ok((client, redactor))
    }

    fn config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            // Reconnection is retried on the next operation; a failed one is not retried in a
            // loop that every waiting operation would sit in.
            .set_number_of_retries(1)
            .set_max_delay(self.options.op_timeout)
            .set_connection_timeout(Some(self.options.connect_timeout))
            .set_response_timeout(Some(self.options.connect_timeout))
    }

    /// Connects, and checks that the server answers (`PING`) within the connect timeout. An `Err`
    /// says why when it does not (never with the URL or password in it). After this, the store
    /// reconnects on its own.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        let (client, redactor) = self.client()?;
        let bound = self.options.connect_timeout;
        let connect = async {
            let mut conn = ConnectionManager::new_with_config(client, self.config()).await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await?;
            Ok::<_, RedisError>(conn)
        };
        let conn = match tokio::time::timeout(bound, connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                let kind = match e.kind() {
                    ErrorKind::Server(_) => StoreErrorKind::Server,
                    _ => StoreErrorKind::Unreachable,
                };
                return Err(StoreError::new(
                    kind,
                    format!("cannot reach the Redis store: {}", redactor.clean(&e)),
                ));
            }
            Err(_) => {
                return Err(StoreError::new(
                    StoreErrorKind::Unreachable,
                    format!("cannot reach the Redis store: no answer within {bound:?}"),
                ));
            }
        };
        Ok(RedisStore::made(conn, self.options, redactor))
    }

    /// A store that connects on its first operation: start-up does not wait for, or fail on, a
    /// server that is down (only a URL the client cannot parse is an `Err`). Until the server can
    /// be reached, shared policies use their local state.
    ///
    /// Call it within a tokio runtime (the client starts a task of its own): outside one, it is an
    /// `Err` of kind [`StoreErrorKind::NoRuntime`].
    pub fn connect_lazy(self) -> Result<RedisStore, StoreError> {
        let (client, redactor) = self.client()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::new(
                StoreErrorKind::NoRuntime,
                "`connect_lazy` must be called within a tokio runtime",
            ));
        }
        let conn = ConnectionManager::new_lazy_with_config(client, self.config()).map_err(|e| {
            StoreError::new(
                StoreErrorKind::InvalidOption,
                format!("cannot make the Redis client: {}", redactor.clean(&e)),
            )
        })?;
        Ok(RedisStore::made(conn, self.options, redactor))
    }
}

/// Removes the URL and password from error messages.
struct Redactor {
    secrets: std::sync::Mutex<Vec<String>>,
}

impl Redactor {
    fn new(url: &str) -> Self {
        let redactor = Redactor {
            secrets: std::sync::Mutex::new(Vec::new()),
        };
        redactor.add(url);
        // `redis://user:password@host`: the part between the scheme's `//` and the `@`.
        if let Some((before, _)) = url.rsplit_once('@') {
            let userinfo = before.rsplit_once("//").map_or(before, |(_, u)| u);
            redactor.add(userinfo);
            if let Some((_, password)) = userinfo.split_once(':') {
                redactor.add(password);
            }
        }
        redactor
    }

    fn add(&self, secret: &str) {
        if !secret.is_empty() {
            let mut secrets = crate::stats::lock(&self.secrets);
            secrets.push(secret.to_owned());
            // Longest first, so a secret inside another is not left half-redacted.
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    fn clean(&self, error: &dyn fmt::Display) -> String {
        let mut text = error.to_string();
        for secret in crate::stats::lock(&self.secrets).iter() {
            text = text.replace(secret.as_str(), "<redacted>");
        }
        text
    }
}

/// A connection to a Redis server (or anything speaking its protocol, such as Valkey) that shared
/// policies keep their shared state in. Clones are the same store.
///
/// Every operation is bounded ([`op_timeout`](RedisStoreBuilder::op_timeout), 50 ms by default).
/// When one fails or times out, the policy that asked uses its local state, the policy's
/// `store_errors` counter moves, and a warning is logged (at most once a second per store, with
/// the count of failures since the last one). After a failure the store is left alone for
/// [`pause_after_failure`](RedisStoreBuilder::pause_after_failure). The connection is made again
/// on its own once the server is back.
///
/// Its URL, which may carry a password, is never logged, never in an error, and not in its
/// `Debug` output.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    conn: ConnectionManager,
    options: Options,
    redactor: Redactor,
    /// The clock of the warning throttle and the pause after a failure.
    epoch: Instant,
    /// When the last warning was logged, in nanoseconds since `epoch`, plus one (zero: never).
    warned_at: AtomicU64,
    /// Failures since the last warning.
    unreported: AtomicU64,
    /// Nanoseconds since `epoch` before which the store is left alone (after a failure).
    paused_until: AtomicU64,
    /// This store's identity in leases (random).
    token: String,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &"<redacted>")
            .field("options", &self.inner.options)
            .finish()
    }
}

/// How a store operation failed.
pub(crate) enum Failure {
    Redis(RedisError),
    Timeout(Duration),
    Paused,
}

impl RedisStore {
    /// Connects to `url` (`redis://[:password@]host[:port][/db]`) with the default options; see
    /// [`builder`](Self::builder).
    ///
    /// A server that cannot be reached is an `Err` saying why, without the URL or its password:
    ///
    /// ```
    /// use reliability::shared::{RedisStore, StoreErrorKind};
    ///
    /// # #[tokio::main] async fn main() {
    /// let error = RedisStore::connect("redis://:hunter2@127.0.0.1:1").await.unwrap_err();
    /// assert_eq!(error.kind(), StoreErrorKind::Unreachable);
    /// assert!(error.to_string().starts_with("cannot reach the Redis store"));
    /// assert!(!error.to_string().contains("hunter2"));
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        Self::builder(url).connect().await
    }

    /// Starts the options of a store at `url`.
    pub fn builder(url: &str) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.to_owned(),
            options: Options::DEFAULT,
        }
    }

    fn made(conn: ConnectionManager, options: Options, redactor: Redactor) -> Self {
        // Unique per store: the process, a count of stores, and a random seed.
        static STORES: AtomicU64 = AtomicU64::new(0);
        let token = format!(
            "{:016x}",
            foldhash::fast::RandomState::default()
                .hash_one((std::process::id(), STORES.fetch_add(1, Ordering::Relaxed),))
        );
        RedisStore {
            inner: Arc::new(StoreInner {
                conn,
                options,
                redactor,
                epoch: Instant::now(),
                warned_at: AtomicU64::new(0),
                unreported: AtomicU64::new(0),
                paused_until: AtomicU64::new(0),
                token,
            }),
        }
    }

    /// The bound on each store operation.
    pub fn op_timeout(&self) -> Duration {
        self.inner.options.op_timeout
    }

    /// How often shared circuit breakers read the store.
    pub fn sync(&self) -> Duration {
        self.inner.options.sync
    }

    /// How long a replica holds the right to send a shared breaker's trial calls.
    pub fn trial_lease(&self) -> Duration {
        self.inner.options.trial_lease
    }

    /// This store's identity in leases.
    pub(crate) fn token(&self) -> &str {
        &self.inner.token
    }

    fn now(&self) -> u64 {
        nanos(self.inner.epoch.elapsed()).max(1)
    }

    /// Runs `op` on a connection, bounded by the operation timeout; `None` when it failed, timed
    /// out or was skipped (the store failed just before): then it is counted in `stats` and
    /// reported (throttled), and the caller uses its local state.
    pub(crate) async fn run<T, F, Fut>(&self, stats: &Stats, what: &'static str, op: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let inner = &*self.inner;
        if self.now() < inner.paused_until.load(Ordering::Relaxed) {
            self.failed(stats, what, Failure::Paused);
            return None;
        }
        let bound = inner.options.op_timeout;
        match tokio::time::timeout(bound, op(inner.conn.clone())).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                self.failed(stats, what, Failure::Redis(e));
                None
            }
            Err(_) => {
                self.failed(stats, what, Failure::Timeout(bound));
                None
            }
        }
    }

    /// Runs `script` (`EVALSHA`, and `EVAL` when the server does not have it, e.g. after a restart).
    pub(crate) async fn eval<T: FromRedisValue>(
        &self,
        stats: &Stats,
        what: &'static str,
        script: &Script,
        keys: &[&str],
        args: &[&dyn ToRedisArgsDyn],
    ) -> Option<T> {
        self.run(stats, what, |mut conn| async move {
            let mut evalsha = redis::cmd("EVALSHA");
            evalsha.arg(script.sha.as_str()).arg(keys.len()).arg(keys);
            for arg in args {
                arg.push_to(&mut evalsha);
            }
            match evalsha.query_async::<T>(&mut conn).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    let mut eval = redis::cmd("EVAL");
                    eval.arg(script.source).arg(keys.len()).arg(keys);
                    for arg in args {
                        arg.push_to(&mut eval);
                    }
                    eval.query_async::<T>(&mut conn).await
                }
                other => other,
            }
        })
        .await
    }

    #[cold]
    fn failed(&self, stats: &Stats, what: &'static str, failure: Failure) {
        let inner = &*self.inner;
        stats.add(Field::StoreErrors);
        let now = self.now();
        if !matches!(failure, Failure::Paused) && !inner.options.pause_after_failure.is_zero() {
            let until = now.saturating_add(nanos(inner.options.pause_after_failure));
            inner.paused_until.fetch_max(until, Ordering::Relaxed);
        }
        let unreported = inner.unreported.fetch_add(1, Ordering::Relaxed) + 1;
        let last = inner.warned_at.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= 1_000_000_000;
        if !due
            || inner
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        inner.unreported.fetch_sub(unreported, Ordering::Relaxed);
        let error = match &failure {
            Failure::Redis(e) => inner.redactor.clean(e),
            Failure::Timeout(bound) => format!("no answer within {bound:?}"),
            Failure::Paused => "the store failed just before".to_owned(),
        };
        tracing::warn!(
            target: "reliability",
            policy = %stats.name,
            kind = %stats.kind,
            operation = what,
            %error,
            failures = unreported,
            "shared store unavailable: using local state"
        );
    }
}

/// `d` in nanoseconds, saturating.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// An argument of a script, of any type.
pub(crate) trait ToRedisArgsDyn: Sync {
    fn push_to(&self, cmd: &mut redis::Cmd);
}

impl<T: ToRedisArgs + Sync> ToRedisArgsDyn for T {
    fn push_to(&self, cmd: &mut redis::Cmd) {
        cmd.arg(self);
    }
}

/// A Lua script and its SHA-1.
pub(crate) struct Script {
    source: &'static str,
    sha: String,
}

impl Script {
    pub(crate) fn new(source: &'static str) -> Self {
        Script {
            source,
            sha: redis::Script::new(source).get_hash().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_never_show_the_url_or_password() {
        let redactor = Redactor::new("redis://alice:s3cret@db.internal:6379/2");
        let shown = redactor.clean(&"failed for redis://alice:s3cret@db.internal:6379/2 (s3cret)");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("alice:"), "{shown}");
        let bare = Redactor::new("redis://:pw-only@host");
        assert_eq!(bare.clean(&"auth pw-only"), "auth <redacted>");
    }

    #[test]
    fn options_out_of_range_are_errors() {
        let error = RedisStore::builder("redis://127.0.0.1")
            .op_timeout(Duration::ZERO)
            .connect_lazy()
            .unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::InvalidOption);
        assert_eq!(
            error.to_string(),
            "invalid `op_timeout`: must be longer than zero"
        );
        let builder = RedisStore::builder("redis://:pw@127.0.0.1");
        assert!(!format!("{builder:?}").contains("pw"));
        let outside = builder.connect_lazy().unwrap_err();
        assert_eq!(outside.kind(), StoreErrorKind::NoRuntime);
    }
}
